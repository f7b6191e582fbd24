"""Score candidate pairs with a saved model (Splink prediction, DuckDB backend)."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import splink
from splink import DuckDBAPI, Linker
from splink.internals.blocking_rule_creator import BlockingRuleCreator

from linkage.extract import quote_identifier
from linkage.link.codes import EDGE_CODES, RECORD_CODE, RecordCodes

# Kept per edge: the pair, its score, then one gamma_<comparison> column per comparison of
# the model (the levels the guards and explanations read).
EDGE_COLUMNS = ["record_key_l", "record_key_r", "match_weight", "match_probability"]
# The names the records and each term-frequency table are registered under, for Splink
# and for its recorded statements alike.
RECORDS_TABLE = "canonical_record"


def _tf_table(column: str) -> str:
    return f"link_tf_{column}"


def load_linker(
    records: pd.DataFrame,
    model_path: Path,
    blocking_rules: list[BlockingRuleCreator] | None = None,
    connection: duckdb.DuckDBPyConnection | None = None,
    unique_id: str | None = None,
    touching: str | None = None,
    validate: bool = True,
    db_api: DuckDBAPI | None = None,
) -> Linker:
    """A linker over the records with a saved model (in its own in-memory DuckDB, in
    `connection`, or through `db_api`); blocking_rules, when given, replace the model's
    prediction rules, and unique_id the model's unique id column (record_key). With
    `touching` (a boolean column of the records), every block pairs only records where one
    side has it set. `validate` False skips Splink's check of the settings' columns (0.2 s
    a linker)."""
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
    db_api = db_api or DuckDBAPI(connection=connection or duckdb.connect())
    return Linker(
        db_api.register(records, dataset_display_name=RECORDS_TABLE),
        settings,
        log_level=logging.WARNING,
        validate_settings=validate,
    )


@dataclass
class CompiledScoring:
    """The statements Splink ran to score records of one shape with one model, blocks and
    floor (`key`), in order: run again on such records, they score them as Splink would,
    without the 0.2-0.4 s Splink spends building its settings and SQL in Python. Empty
    until a Splink run records them."""

    key: str
    statements: list[str] = field(default_factory=list)


class _RecordingDuckDBAPI(DuckDBAPI):
    """Splink's DuckDB backend, keeping every statement Splink runs, in order."""

    def __init__(self, connection: duckdb.DuckDBPyConnection, statements: list[str]) -> None:
        super().__init__(connection=connection)
        self.statements = statements

    def _execute_sql_against_backend(self, final_sql: str) -> duckdb.DuckDBPyRelation:
        self.statements.append(final_sql)
        return super()._execute_sql_against_backend(final_sql)


def scoring_key(
    records: pd.DataFrame,
    model_path: Path,
    floor: float,
    blocking_rules: list[BlockingRuleCreator],
    term_frequencies: dict[str, pd.DataFrame],
    touching: str | None,
) -> str:
    """What Splink's scoring statements follow from: the model, the blocks, the floor,
    the records' and term-frequency tables' columns and types, and the versions."""
    parts = [model_path.read_text(encoding="utf-8"), repr(floor), repr(touching)]
    parts += [rule.create_blocking_rule_dict("duckdb")["blocking_rule"] for rule in blocking_rules]
    parts += [f"{column} {dtype}" for column, dtype in records.dtypes.items()]
    parts += [f"{name}: {list(table.dtypes.items())}" for name, table in term_frequencies.items()]
    parts += [splink.__version__, duckdb.__version__]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def score_pairs(
    records: pd.DataFrame,
    model_path: Path,
    floor: float,
    blocking_rules: list[BlockingRuleCreator] | None = None,
    term_frequencies: dict[str, pd.DataFrame] | None = None,
    touching: str | None = None,
    compiled: CompiledScoring | None = None,
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

    With `compiled` (of scoring_key's key for these arguments), its statements are run
    instead of Splink, or, while it has none, Splink's are recorded into it.
    """
    codes = RecordCodes.of(records)
    coded = records.assign(**{RECORD_CODE: _codes_in_frame_order(codes)})
    # closed at once: Splink's tables of a night's pairs hold a gigabyte or more until the
    # linker's reference cycle is collected, which can be after the next stage's peak
    with duckdb.connect() as connection:
        if compiled is not None and compiled.statements:
            relation = _run_compiled(connection, coded, term_frequencies or {}, compiled)
        else:
            relation = _run_splink(
                connection,
                coded,
                model_path,
                floor,
                blocking_rules,
                term_frequencies,
                touching,
                compiled,
            )
        # only the edge columns leave DuckDB: the model retains every intermediate column
        gammas = [column for column in relation.columns if column.startswith("gamma_")]
        scored = relation.select(*EDGE_CODES, *EDGE_COLUMNS[2:], *gammas).to_arrow_table()
    ends = [codes.keys.take(scored[code]) for code in EDGE_CODES]
    edges = scored.drop_columns(EDGE_CODES)
    edges = edges.add_column(0, EDGE_COLUMNS[1], ends[1]).add_column(0, EDGE_COLUMNS[0], ends[0])
    edges = edges.append_column(EDGE_CODES[0], scored[EDGE_CODES[0]])
    return edges.append_column(EDGE_CODES[1], scored[EDGE_CODES[1]]).to_pandas(
        types_mapper=_pandas_type
    )


def _run_splink(
    connection: duckdb.DuckDBPyConnection,
    coded: pd.DataFrame,
    model_path: Path,
    floor: float,
    blocking_rules: list[BlockingRuleCreator] | None,
    term_frequencies: dict[str, pd.DataFrame] | None,
    touching: str | None,
    compiled: CompiledScoring | None,
) -> duckdb.DuckDBPyRelation:
    """Splink's prediction: the relation of its scored pairs."""
    db_api = (
        DuckDBAPI(connection=connection)
        if compiled is None
        else _RecordingDuckDBAPI(connection, compiled.statements)
    )
    # unvalidated: the model's columns were checked when it was trained, and model_input
    # gives every one of them
    linker = load_linker(
        coded,
        model_path,
        blocking_rules,
        unique_id=RECORD_CODE,
        touching=touching,
        validate=False,
        db_api=db_api,
    )
    for column, table in (term_frequencies or {}).items():
        lookup = db_api.register(table, table_name=_tf_table(column))
        linker.table_management.register_term_frequency_lookup(lookup, column)
    return linker.inference.predict(threshold_match_probability=floor).as_duckdbpyrelation()


def _run_compiled(
    connection: duckdb.DuckDBPyConnection,
    coded: pd.DataFrame,
    term_frequencies: dict[str, pd.DataFrame],
    compiled: CompiledScoring,
) -> duckdb.DuckDBPyRelation:
    """Splink's recorded statements, run in order on the records and term frequencies
    registered as Splink had them: the last one reads its scored pairs."""
    connection.register(RECORDS_TABLE, coded)
    for column, table in term_frequencies.items():
        connection.register(_tf_table(column), table)
    *steps, last = compiled.statements
    for statement in steps:
        connection.execute(statement)
    return connection.sql(last)


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
