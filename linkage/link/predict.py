"""Score candidate pairs with a saved model (Splink prediction, DuckDB backend)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import duckdb
import pandas as pd
from splink import DuckDBAPI, Linker
from splink.internals.blocking_rule_creator import BlockingRuleCreator

# Kept per edge: the pair, its score, then one gamma_<comparison> column per comparison of
# the model (the levels the guards and explanations read).
EDGE_COLUMNS = ["record_key_l", "record_key_r", "match_weight", "match_probability"]


def load_linker(
    records: pd.DataFrame,
    model_path: Path,
    blocking_rules: list[BlockingRuleCreator] | None = None,
    connection: duckdb.DuckDBPyConnection | None = None,
) -> Linker:
    """A linker over the records with a saved model (in its own in-memory DuckDB, or in
    `connection`); blocking_rules, when given, replace the model's prediction rules."""
    settings = json.loads(model_path.read_text(encoding="utf-8"))
    if blocking_rules is not None:
        settings["blocking_rules_to_generate_predictions"] = [
            rule.create_blocking_rule_dict("duckdb") for rule in blocking_rules
        ]
    db_api = DuckDBAPI(connection=connection or duckdb.connect())
    return Linker(
        db_api.register(records, dataset_display_name="canonical_record"),
        settings,
        log_level=logging.WARNING,
    )


def score_pairs(
    records: pd.DataFrame,
    model_path: Path,
    floor: float,
    blocking_rules: list[BlockingRuleCreator] | None = None,
) -> pd.DataFrame:
    """Pairs from the blocking rules (default: the model's) with match probability >= floor."""
    # closed at once: Splink's tables of a night's pairs hold a gigabyte or more until the
    # linker's reference cycle is collected, which can be after the next stage's peak
    with duckdb.connect() as connection:
        linker = load_linker(records, model_path, blocking_rules, connection)
        predictions = linker.inference.predict(threshold_match_probability=floor)
        # only the edge columns leave DuckDB: the model retains every intermediate column
        relation = predictions.as_duckdbpyrelation()
        gammas = [column for column in relation.columns if column.startswith("gamma_")]
        return relation.select(*EDGE_COLUMNS, *gammas).df()


def edge_columns(edges: pd.DataFrame) -> list[str]:
    """The columns an edge frame keeps: the pair, its score, its gammas."""
    return EDGE_COLUMNS + [column for column in edges.columns if column.startswith("gamma_")]
