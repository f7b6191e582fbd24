"""Score candidate pairs with a saved model (Splink prediction, DuckDB backend)."""

from __future__ import annotations

import logging
from pathlib import Path

import duckdb
import pandas as pd
from splink import DuckDBAPI, Linker

EDGE_COLUMNS = ["record_key_l", "record_key_r", "match_weight", "match_probability"]


def score_pairs(records: pd.DataFrame, model_path: Path, floor: float) -> pd.DataFrame:
    """Pairs from the model's blocking rules with match probability >= floor."""
    db_api = DuckDBAPI(connection=duckdb.connect())
    linker = Linker(
        db_api.register(records, dataset_display_name="canonical_record"),
        str(model_path),
        log_level=logging.WARNING,
    )
    predictions = linker.inference.predict(threshold_match_probability=floor)
    return predictions.as_pandas_dataframe()[EDGE_COLUMNS]
