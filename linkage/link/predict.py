"""Score candidate pairs with a saved model (Splink prediction, DuckDB backend)."""

from __future__ import annotations

import logging
from pathlib import Path

import duckdb
import pandas as pd
from splink import DuckDBAPI, Linker

from linkage.link.model import IDENTIFIERS

# Kept per edge: the pair, its score, and the levels the guards and explanations read.
EDGE_COLUMNS = [
    "record_key_l",
    "record_key_r",
    "match_weight",
    "match_probability",
    "gamma_forename",
    "gamma_surname",
    "gamma_date_of_birth",
    "gamma_address",
    "gamma_sex",
    *[f"gamma_{name}" for name in IDENTIFIERS],
]


def load_linker(records: pd.DataFrame, model_path: Path) -> Linker:
    """A linker over the records with a saved model (in its own in-memory DuckDB)."""
    db_api = DuckDBAPI(connection=duckdb.connect())
    return Linker(
        db_api.register(records, dataset_display_name="canonical_record"),
        str(model_path),
        log_level=logging.WARNING,
    )


def score_pairs(records: pd.DataFrame, model_path: Path, floor: float) -> pd.DataFrame:
    """Pairs from the model's blocking rules with match probability >= floor."""
    predictions = load_linker(records, model_path).inference.predict(
        threshold_match_probability=floor
    )
    # only the edge columns leave DuckDB: the model retains every intermediate column
    return predictions.as_duckdbpyrelation().select(*EDGE_COLUMNS).df()
