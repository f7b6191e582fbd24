"""Reference tables for standardisation: small CSVs in schemas/reference, loaded into DuckDB.

Name, street and date rules join against these tables, so a new nickname or street
abbreviation is a one-line CSV change, never a code change. Each file is checked on
load and a bad row raises `ConfigError` naming the file, line and field.

What is deliberately *not* in nicknames.csv: Gaelic and English forms of a name
(IAIN/JOHN, CATRIONA/CATHERINE, ALASDAIR/ALEXANDER, SEONAID/JANET). They are registered
given names in their own right, so equating them would make different people look
alike; Splink's fuzzy name comparisons and the date of birth carry such cases instead.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import pyarrow as pa

from linkage.errors import ConfigError
from linkage.schema import SCHEMAS_DIR

REFERENCE_DIR = SCHEMAS_DIR / "reference"

Row = dict[str, str]
RowCheck = Callable[[Row], str | None]  # returns a problem, or None when the row is fine

_WORD = re.compile(r"[A-Z]+")
_TEXT = re.compile(r"[0-9/-]+")


def _word(column: str) -> RowCheck:
    """The column holds one upper-case A-Z word, as the standardised names do."""

    def check(row: Row) -> str | None:
        return None if _WORD.fullmatch(row[column]) else f"{column} must be one A-Z word"

    return check


def _one_of(column: str, allowed: tuple[str, ...]) -> RowCheck:
    def check(row: Row) -> str | None:
        return None if row[column] in allowed else f"{column} must be one of {allowed}"

    return check


def _dob_placeholder(row: Row) -> str | None:
    if row["form"] == "date":
        try:
            date.fromisoformat(row["value"])
        except ValueError:
            return "value must be an ISO date (YYYY-MM-DD) when form is date"
        return None
    return None if _TEXT.fullmatch(row["value"]) else "value must be digits, / or -"


def _unique_rows(path: Path, rows: list[Row]) -> None:
    seen: set[tuple[str, ...]] = set()
    for row in rows:
        key = tuple(row.values())
        if key in seen:
            raise ConfigError(f"{path}: duplicate row {','.join(key)}")
        seen.add(key)


def _one_canonical_per_nickname(path: Path, rows: list[Row]) -> None:
    """One canonical per nickname and sex; a blank sex means 'either', so stands alone."""
    sexes: dict[str, list[str]] = {}
    for row in rows:
        sexes.setdefault(row["nickname"], []).append(row["sex"])
    for nickname, found in sexes.items():
        if len(found) != len(set(found)) or ("" in found and len(found) > 1):
            raise ConfigError(f"{path}: nickname {nickname} has more than one canonical per sex")
    chained = sorted({row["canonical"] for row in rows} & sexes.keys())
    if chained:
        # BILL -> WILL -> WILLIAM would need two lookups; point every nickname at the end.
        raise ConfigError(f"{path}: canonical names that are also nicknames: {chained}")


def _one_expansion_per_position(path: Path, rows: list[Row]) -> None:
    """Per abbreviation: either one 'any' row, or at most one 'last' and one 'other' row."""
    positions: dict[str, list[str]] = {}
    for row in rows:
        positions.setdefault(row["abbreviation"], []).append(row["position"])
    for abbreviation, found in positions.items():
        if len(found) != len(set(found)) or ("any" in found and len(found) > 1):
            raise ConfigError(f"{path}: abbreviation {abbreviation} has overlapping positions")


TableCheck = Callable[[Path, list[Row]], None]


@dataclass(frozen=True)
class ReferenceTable:
    """One CSV file and the DuckDB table it becomes.

    table_check guards the lookups: each must give at most one answer, or a join
    would duplicate records.
    """

    file: str
    table: str
    columns: tuple[str, ...]
    checks: tuple[RowCheck, ...]
    table_check: TableCheck = _unique_rows


REFERENCE_TABLES = (
    ReferenceTable(
        "nicknames.csv",
        "std_ref_nickname",
        ("nickname", "canonical", "sex"),
        (_word("nickname"), _word("canonical"), _one_of("sex", ("", "M", "F"))),
        _one_canonical_per_nickname,
    ),
    ReferenceTable(
        "name_titles.csv",
        "std_ref_name_title",
        ("token", "kind"),
        (_word("token"), _one_of("kind", ("title", "suffix"))),
    ),
    ReferenceTable(
        "name_placeholders.csv",
        "std_ref_name_placeholder",
        ("letters", "applies_to"),
        (_word("letters"), _one_of("applies_to", ("forename", "any"))),
    ),
    ReferenceTable(
        "surname_particles.csv", "std_ref_surname_particle", ("particle",), (_word("particle"),)
    ),
    ReferenceTable(
        "dob_placeholders.csv",
        "std_ref_dob_placeholder",
        ("value", "form"),
        (_one_of("form", ("date", "text")), _dob_placeholder),
    ),
    ReferenceTable(
        "street_abbreviations.csv",
        "std_ref_street_abbreviation",
        ("abbreviation", "expansion", "position"),
        (
            _word("abbreviation"),
            _word("expansion"),
            _one_of("position", ("any", "last", "other")),
        ),
        _one_expansion_per_position,
    ),
    ReferenceTable(
        "street_types.csv", "std_ref_street_type", ("street_type",), (_word("street_type"),)
    ),
)


def read_reference(reference: ReferenceTable, reference_dir: Path = REFERENCE_DIR) -> list[Row]:
    """The file's rows, checked; raises ConfigError at the first bad row."""
    path = reference_dir / reference.file
    if not path.is_file():
        raise ConfigError(f"{path}: reference table is missing")
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if tuple(reader.fieldnames or ()) != reference.columns:
            raise ConfigError(
                f"{path}: header must be {','.join(reference.columns)}, got {reader.fieldnames}"
            )
        rows = []
        for row in reader:
            cleaned = {column: (row[column] or "").strip() for column in reference.columns}
            for check in reference.checks:
                problem = check(cleaned)
                if problem:
                    raise ConfigError(f"{path}: line {reader.line_num}: {problem}")
            rows.append(cleaned)
    reference.table_check(path, rows)
    return rows


def load_reference_tables(
    con: duckdb.DuckDBPyConnection, reference_dir: Path = REFERENCE_DIR
) -> None:
    """(Re)create every reference table as a temporary table on the connection."""
    for reference in REFERENCE_TABLES:
        rows = read_reference(reference, reference_dir)
        columns = {c: [_blank_to_none(row[c]) for row in rows] for c in reference.columns}
        replace_temp_table(con, reference.table, pa.table(columns, schema=_text_schema(reference)))


def replace_temp_table(con: duckdb.DuckDBPyConnection, table: str, data: pa.Table) -> None:
    """Copy an Arrow table into a temporary DuckDB table (table names are ours, not data)."""
    view = f"{table}_arrow"
    con.register(view, data)
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT * FROM {view}")
    finally:
        con.unregister(view)


def _text_schema(reference: ReferenceTable) -> pa.Schema:
    return pa.schema([(column, pa.string()) for column in reference.columns])


def _blank_to_none(value: str) -> str | None:
    return value or None
