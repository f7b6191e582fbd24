"""Score candidate pairs with a saved model (Splink prediction, DuckDB backend)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
from splink import DuckDBAPI, Linker
from splink.internals.blocking_rule_creator import BlockingRuleCreator

from linkage.extract import quote_identifier
from linkage.link.codes import EDGE_CODES, RECORD_CODE, RecordCodes

# Kept per edge: the pair, its score, then one gamma_<comparison> column per comparison of
# the model (the levels the guards and explanations read).
EDGE_COLUMNS = ["record_key_l", "record_key_r", "match_weight", "match_probability"]


def load_linker(
    records: pd.DataFrame,
    model_path: Path,
    blocking_rules: list[BlockingRuleCreator] | None = None,
    connection: duckdb.DuckDBPyConnection | None = None,
    unique_id: str | None = None,
    touching: str | None = None,
    validate: bool = True,
) -> Linker:
    """A linker over the records with a saved model (in its own in-memory DuckDB, or in
    `connection`); blocking_rules, when given, replace the model's prediction rules, and
    unique_id the model's unique id column (record_key). With `touching` (a boolean column
    of the records), every block pairs only records where one side has it set. `validate`
    False skips Splink's check of the settings' columns (0.2 s a linker)."""
    settings = json.loads(model_path.read_text(encoding="utf-8"))
    if unique_id is not None:
        # Splink reads the id only through this setting (blocking's l.id < r.id, the
        # pairs' id columns); the model's comparisons never name it
        settings["unique_id_column_name"] = unique_id
    if blocking_rules is not None:
        settings["blocking_rules_to_generate_predictions"] = [
            rule.create_blocking_rule_dict("duckdb") for rule in blocking_rules
        ]
    if touching is not None:
        column = quote_identifier(touching)
        for rule in settings["blocking_rules_to_generate_predictions"]:
            rule["blocking_rule"] = f"({rule['blocking_rule']}) AND (l.{column} OR r.{column})"
    db_api = DuckDBAPI(connection=connection or duckdb.connect())
    return Linker(
        db_api.register(records, dataset_display_name="canonical_record"),
        settings,
        log_level=logging.WARNING,
        validate_settings=validate,
    )


def score_pairs(
    records: pd.DataFrame,
    model_path: Path,
    floor: float,
    blocking_rules: list[BlockingRuleCreator] | None = None,
    term_frequencies: dict[str, pd.DataFrame] | None = None,
    touching: str | None = None,
) -> pd.DataFrame:
    """Pairs from the blocking rules (default: the model's) with match probability >= floor.

    For a few records scored as they would be among the whole population (an incremental
    link): term_frequencies (column -> its table) replace the ones Splink would compute
    from `records`, and `touching` (a boolean column) keeps only pairs where one side has
    it set.

    Splink pairs records by their integer code (an integer join key is cheaper than a
    string one, and the clustering wants codes); the keys are looked up once at the end.
    Code order is key order, so the pairs and their orientation (key_l < key_r) are the
    ones record_key would give.
    """
    codes = RecordCodes.of(records)
    coded = records.assign(**{RECORD_CODE: _codes_in_frame_order(codes)})
    # closed at once: Splink's tables of a night's pairs hold a gigabyte or more until the
    # linker's reference cycle is collected, which can be after the next stage's peak
    with duckdb.connect() as connection:
        # unvalidated: the model's columns were checked when it was trained, and model_input
        # gives every one of them
        linker = load_linker(
            coded, model_path, blocking_rules, connection, RECORD_CODE, touching, validate=False
        )
        for column, table in (term_frequencies or {}).items():
            lookup = linker._db_api.register(table)
            linker.table_management.register_term_frequency_lookup(lookup, column)
        predictions = linker.inference.predict(threshold_match_probability=floor)
        # only the edge columns leave DuckDB: the model retains every intermediate column
        relation = predictions.as_duckdbpyrelation()
        gammas = [column for column in relation.columns if column.startswith("gamma_")]
        scored = relation.select(*EDGE_CODES, *EDGE_COLUMNS[2:], *gammas).to_arrow_table()
    ends = [codes.keys.take(scored[code]) for code in EDGE_CODES]
    edges = scored.drop_columns(EDGE_CODES)
    edges = edges.add_column(0, EDGE_COLUMNS[1], ends[1]).add_column(0, EDGE_COLUMNS[0], ends[0])
    edges = edges.append_column(EDGE_CODES[0], scored[EDGE_CODES[0]])
    return edges.append_column(EDGE_CODES[1], scored[EDGE_CODES[1]]).to_pandas(
        types_mapper=_pandas_type
    )


def _codes_in_frame_order(codes: RecordCodes) -> np.ndarray:
    if codes.rows is None:
        return np.arange(len(codes), dtype=np.int64)
    in_frame = np.empty(len(codes), dtype=np.int64)
    in_frame[codes.rows] = np.arange(len(codes), dtype=np.int64)
    return in_frame


def _pandas_type(arrow_type: pa.DataType) -> object:
    """Strings as pandas' default str dtype, as .df() gives them."""
    if arrow_type in (pa.string(), pa.large_string()):
        return pd.StringDtype(na_value=np.nan)
    return None


def edge_columns(edges: pd.DataFrame) -> list[str]:
    """The columns an edge frame keeps: the pair, its score, its gammas."""
    return EDGE_COLUMNS + [column for column in edges.columns if column.startswith("gamma_")]
