"""staged_record -> standardised_record: run the standardisation SQL steps in order.

Each step is one `.sql` file in this package, shaped as named CTEs. Rules that depend only
on a value (name, address, street) run once per distinct value and are joined back, which
keeps the night's run fast and each rule readable. The one rule SQL cannot express,
the metaphone code, is computed in Python once per distinct name.
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import get_args

import duckdb
import jellyfish
import pyarrow as pa
from anyascii import anyascii

from linkage.config import PostcodeFormat
from linkage.errors import ConfigError
from linkage.extract import quote_identifier
from linkage.identifiers import IdentifierRegistry, check_sql, default_registry
from linkage.schema import canonical_columns
from linkage.standardise.reference import REFERENCE_DIR, load_reference_tables, replace_temp_table
from linkage.validation_rules import too_long_column, validation_rules

log = logging.getLogger(__name__)

SQL_DIR = Path(__file__).resolve().parent
STAGED_VIEW = "std_staged"
METAPHONE_TABLE = "std_name_metaphone"
CODED_VIEW = "std_record_coded"
SETTING_TABLE = "std_setting"

# Steps before the phonetic codes (their input is the standardised names) and after.
RECORD_STEPS = (
    "00_macros.sql",
    "05_bounded.sql",
    "10_name_value.sql",
    "11_name.sql",
    "12_other_surnames.sql",
    "20_address.sql",
    "21_street.sql",
    "30_record.sql",
)
PHONETIC_STEP = "40_phonetic.sql"

# Kept after the canonical columns for validation and record_issue; not canonical.
CHECK_COLUMNS = {
    "date_of_birth_raw": "VARCHAR",
    "sex_raw": "VARCHAR",
    "postcode_raw": "VARCHAR",
    "identifiers_raw": "MAP(VARCHAR, VARCHAR)",
    "dob_issue": "VARCHAR",
    "postcode_issue": "VARCHAR",
    "sex_issue": "VARCHAR",
    "concern_opened_issue": "VARCHAR",
    "concern_closed_issue": "VARCHAR",
    "name_control_issue": "VARCHAR",
}

# The names that get a phonetic code: the standardised forename and surname.
DISTINCT_NAMES_SQL = """
    SELECT forename AS name FROM std_record WHERE forename IS NOT NULL
    UNION
    SELECT surname FROM std_record WHERE surname IS NOT NULL
    ORDER BY name
"""

_SQL_TYPE = re.compile(r"[A-Z]+(\[\])?")


def standardise(
    con: duckdb.DuckDBPyConnection,
    staged_table: str = "staged_record",
    out_table: str = "standardised_record",
    reference_dir: Path = REFERENCE_DIR,
    registry: IdentifierRegistry | None = None,
    postcode_format: PostcodeFormat = "uk",
) -> int:
    """Standardise every staged record into out_table (a temporary table, replaced);
    returns its row count.

    out_table holds the canonical columns (schemas/canonical_record.yaml, then one per
    registered identifier), in order and with their types, then the check columns
    (CHECK_COLUMNS, an `<identifier>_issue` per type: why its value was nulled or is
    doubtful, an `<identifier>_restored` per type: true when the value kept had the
    leading zeros a spreadsheet dropped put back, and a `<field>_too_long` per bounded
    field of validation.yaml and per identifier type: true when the value as sent was over
    max_text_length; such values are cut, or for identifiers nulled, before any rule reads
    them). Same input, same output.
    postcode_format is ProjectConfig.postcode_format: "uk" nulls a postcode that is not a
    UK postcode, "as_written" keeps it (upper case).
    """
    registry = registry or default_registry()
    started = time.perf_counter()
    load_reference_tables(con, reference_dir)
    register_functions(con)
    write_settings(con, postcode_format, validation_rules().max_text_length)
    staged = quote_identifier(staged_table)
    con.execute(f"CREATE OR REPLACE TEMP VIEW {STAGED_VIEW} AS SELECT * FROM {staged}")
    for step in RECORD_STEPS:
        run_step(con, step)
    names = build_metaphone_lookup(con)
    run_step(con, PHONETIC_STEP)
    sql, params = final_select(out_table, registry)
    con.execute(sql, params)
    _drop_row_level_steps(con)
    rows = count_rows(con, out_table)
    log.info(
        "standardise: %d records, %d distinct names coded, %.1f s",
        rows,
        names,
        time.perf_counter() - started,
    )
    return rows


def register_functions(con: duckdb.DuckDBPyConnection) -> None:
    """The Python function the SQL steps call: transliterate (00_macros.sql's latin_script),
    for the rare value in a script strip_accents cannot fold."""
    try:
        con.create_function("transliterate", anyascii, ["VARCHAR"], "VARCHAR")
    except duckdb.NotImplementedException:  # already registered on this connection
        pass


def write_settings(
    con: duckdb.DuckDBPyConnection, postcode_format: PostcodeFormat, max_text_length: int
) -> None:
    """The one-row settings table the SQL steps read (through macros in 00_macros.sql)."""
    if postcode_format not in get_args(PostcodeFormat):
        raise ValueError(f"postcode_format must be one of {get_args(PostcodeFormat)}")
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {SETTING_TABLE} AS "
        "SELECT $postcode_format AS postcode_format,"
        " CAST($max_text_length AS INTEGER) AS max_text_length",
        {"postcode_format": postcode_format, "max_text_length": max_text_length},
    )


def run_step(con: duckdb.DuckDBPyConnection, step: str) -> None:
    """Run one .sql step file from this package."""
    con.execute((SQL_DIR / step).read_text(encoding="utf-8"))


def build_metaphone_lookup(con: duckdb.DuckDBPyConnection) -> int:
    """Fill std_name_metaphone with one row per distinct standardised name; returns its size."""
    names = [row[0] for row in con.execute(DISTINCT_NAMES_SQL).fetchall()]
    codes = [jellyfish.metaphone(name) for name in names]
    replace_temp_table(
        con,
        METAPHONE_TABLE,
        pa.table({"name": pa.array(names, pa.string()), "metaphone": pa.array(codes, pa.string())}),
    )
    return len(names)


def output_columns(registry: IdentifierRegistry | None = None) -> dict[str, str]:
    """Name -> SQL type of every output column: the canonical record, then the checks."""
    registry = registry or default_registry()
    columns = {column.name: column.type for column in canonical_columns(registry)}
    for name, sql_type in columns.items():
        if not _SQL_TYPE.fullmatch(sql_type):
            # types are pasted into the SELECT, so only plain type names are allowed
            raise ValueError(f"canonical_record.yaml: column {name}: unexpected type {sql_type!r}")
    issues = {f"{name}_issue": "VARCHAR" for name in registry.names}
    restored = {f"{name}_restored": "BOOLEAN" for name in registry.names}
    bounded = [*validation_rules().bounded_fields, *registry.names]
    too_long = {too_long_column(name): "BOOLEAN" for name in bounded}
    names = [*columns, *CHECK_COLUMNS, *issues, *restored, *too_long]
    clashes = sorted({name for name in names if names.count(name) > 1})
    if clashes:
        # e.g. a type named dob (dob_issue) or chi_restored beside chi
        raise ConfigError(f"{registry.path}: identifier types give clashing columns {clashes}")
    return columns | CHECK_COLUMNS | issues | restored | too_long


def final_select(out_table: str, registry: IdentifierRegistry) -> tuple[str, dict[str, object]]:
    """CREATE the output table from the coded records, columns and casts from the schema;
    identifiers are checked here, each as its registry entry says. Returns (sql, params).

    Three named steps come first: `sent` takes each identifier out of the map once
    (`id<n>_sent`), `given` holds it as the check reads it (`id<n>_given`), `restored` the
    value with dropped leading zeros put back where that passes its check
    (`id<n>_restored`), so the final columns read each value once. A value as sent over
    max_text_length (cut to one past it by 05_bounded.sql) is marked `<type>_too_long` and
    checked as if not sent: it is never kept, and no rule reads it.
    """
    params: dict[str, object] = {"max_text_length": validation_rules().max_text_length}
    sent, given, restored, expressions = [], [], [], {}
    for position, kind in enumerate(registry.types):
        params[f"id{position}"] = kind.name
        params[f"pattern{position}"] = kind.pattern or ""
        params[f"length{position}"] = kind.fixed_length or 0
        sent_column = f"id{position}_sent"
        columns = (f"id{position}_given", f"id{position}_restored")
        too_long = f"too_long({sent_column}, $max_text_length)"
        checks = check_sql(
            kind,
            f"CASE WHEN NOT {too_long} THEN {sent_column} END",
            {
                "dob": "date_of_birth",
                "sex": "sex",
                "pattern": f"$pattern{position}",
                "length": f"$length{position}",
            },
            columns,
        )
        sent.append(f"identifiers_raw[$id{position}] AS {sent_column}")
        given.append(f"{checks.given} AS {columns[0]}")
        restored.append(f"{checks.restored} AS {columns[1]}")
        expressions[kind.name] = checks.value
        expressions[f"{kind.name}_issue"] = checks.issue
        expressions[f"{kind.name}_restored"] = checks.is_restored
        expressions[too_long_column(kind.name)] = too_long
    select_list = ",\n    ".join(
        f"CAST({expressions.get(name, quote_identifier(name))} AS {sql_type})"
        f" AS {quote_identifier(name)}"
        for name, sql_type in output_columns(registry).items()
    )
    sql = FINAL_SELECT_SQL.format(
        out_table=quote_identifier(out_table),
        coded=CODED_VIEW,
        sent="".join(f",\n        {item}" for item in sent),
        given="".join(f",\n        {item}" for item in given),
        restored="".join(f",\n        {item}" for item in restored),
        select_list=select_list,
    )
    return sql, {name: value for name, value in params.items() if re.search(rf"\${name}\b", sql)}


FINAL_SELECT_SQL = """
CREATE OR REPLACE TEMP TABLE {out_table} AS
WITH
sent AS (
    SELECT *{sent}
    FROM {coded}
),
given AS (
    SELECT *{given}
    FROM sent
),
restored AS (
    SELECT *{restored}
    FROM given
)
SELECT
    {select_list}
FROM restored
-- a stable row order keeps downstream goldens and re-runs identical
ORDER BY source, source_row_number, source_record_id, record_key
"""


def count_rows(con: duckdb.DuckDBPyConnection, table: str) -> int:
    rows = con.execute(f"SELECT count(*) FROM {quote_identifier(table)}").fetchall()
    return int(rows[0][0])


def _drop_row_level_steps(con: duckdb.DuckDBPyConnection) -> None:
    """Free the per-record intermediate; the per-value lookups stay for inspection."""
    con.execute(f"DROP VIEW IF EXISTS {CODED_VIEW}")
    con.execute("DROP TABLE IF EXISTS std_record")
