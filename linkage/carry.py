"""Intake in proportion to change: rows as the source sent them last night are carried.

Most rows of a nightly extract are the rows the agency sent the night before. Each staged
row gets a fingerprint: the hash of its values as staged (where in which file it was read
aside). A row is carried forward when its fingerprint and its record id match a record the
source published on its last good night under the same intake version (the source's
config, the identifier registry, the postcode format, the reference data and the
standardisation and validation code): its standardised values are copied from
`intake_keep` instead of being standardised again, its row checks are not run again (their
flags are copied from that night) and only its provenance is tonight's. Everything else
(new records, changed ones, a record id sent twice) goes through the whole intake.

A carried row still counts as read and accepted, so the conservation check holds for every
row read; `source_delta` counts each night's carried, changed, new and removed records.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb

from linkage.config import ProjectConfig, SourceConfig
from linkage.schema import SCHEMAS_DIR
from linkage.stage import STAGED_TABLE
from linkage.standardise.reference import REFERENCE_DIR
from linkage.warehouse import execute, fetch_one

log = logging.getLogger(__name__)

KEEP_TABLE = "intake_keep"  # per source: its last good night's standardised records
FINGERPRINT_TABLE = "staged_fingerprint"  # tonight: every staged row's fingerprint
CARRIED_TABLE = "carried_row"  # tonight: rows carried, with their provenance
STANDARDISED_TONIGHT = "standardised_tonight"  # n: rows standardised tonight (temp)

# Where and when a row was read: not part of what the agency said about the person.
PROVENANCE = ("source_file", "file_sha256", "source_row_number", "source_line_number", "run_date")
KEEP_EXTRA = "row_fingerprint UBIGINT, intake_version VARCHAR"

_CODE_DIR = Path(__file__).resolve().parent
# What an intake version covers besides the config: change any and nothing is carried.
VERSIONED_FILES = (
    sorted((_CODE_DIR / "standardise").glob("*.sql"))
    + sorted((_CODE_DIR / "standardise").glob("*.py"))
    + sorted(REFERENCE_DIR.glob("*.csv"))
    + [
        _CODE_DIR / "stage.py",
        _CODE_DIR / "validate.py",
        _CODE_DIR / "validation_rules.py",
        SCHEMAS_DIR / "validation.yaml",
        SCHEMAS_DIR / "canonical_record.yaml",
    ]
)


@dataclass(frozen=True)
class SourceDelta:
    """One source's night against its last good one, in records."""

    carried: int = 0  # unchanged: copied forward
    changed: int = 0  # its record id was published last night, its row differs
    new: int = 0  # a record id not published last night (or no id)
    removed: int = 0  # published last night, not sent tonight
    full: str | None = None  # why every row went through the whole intake, if it did


def intake_version(project: ProjectConfig, config: SourceConfig) -> str:
    """What a source's standardised rows depend on besides the rows themselves."""
    digest = hashlib.sha256()
    digest.update(config.model_dump_json(exclude={"config_path"}).encode())
    digest.update(project.postcode_format.encode())
    digest.update(duckdb.__version__.encode())  # its hash makes the fingerprints
    for path in [project.identifiers, *VERSIONED_FILES]:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def fingerprint_staged(con: duckdb.DuckDBPyConnection) -> None:
    """Every staged row's fingerprint, provenance aside.

    DuckDB's 64-bit hash of the row: compared only with the same record's last good row,
    so a changed row passes for unchanged with odds of 1 in 2^64 (md5 of the row as JSON
    cost 5 s a million rows, the hash 0.3 s). The DuckDB version is in the intake version.
    """
    columns = [row[0] for row in con.execute(f"DESCRIBE {STAGED_TABLE}").fetchall()]
    values = ", ".join(f'"{name}" := "{name}"' for name in columns if name not in PROVENANCE)
    con.execute(
        f"INSERT INTO {FINGERPRINT_TABLE} SELECT source, source_row_number,"
        f" hash(struct_pack({values})) FROM {STAGED_TABLE}"
    )


def create_carry_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Tonight's (empty) fingerprints and carried rows, and intake_keep if new."""
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {FINGERPRINT_TABLE} (source VARCHAR,"
        " source_row_number BIGINT, row_fingerprint UBIGINT)"
    )
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {CARRIED_TABLE} (source VARCHAR, record_key VARCHAR,"
        " source_file VARCHAR, file_sha256 VARCHAR, source_row_number BIGINT,"
        " source_line_number BIGINT, run_date DATE)"
    )
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {KEEP_TABLE} (source VARCHAR, record_key VARCHAR,"
        f" dob_issue VARCHAR, run_date DATE, {KEEP_EXTRA})"
    )


def set_aside_unchanged(
    con: duckdb.DuckDBPyConnection,
    versions: dict[str, str],
    run_date: date,
    full_intake: str | None = None,
) -> dict[str, SourceDelta]:
    """Move tonight's unchanged staged rows aside (into carried_row); the rest stay staged.

    `versions`: source -> its intake version tonight. `full_intake`, when given, says why
    nothing is carried tonight. Returns each source's delta.
    """
    fingerprint_staged(con)
    deltas = {}
    for source, version in versions.items():
        full = full_intake or _why_full(con, source, version, run_date)
        if full is None:
            execute(con, CARRY_SQL, {"source": source, "version": version})
            execute(
                con,
                f"DELETE FROM {STAGED_TABLE} s USING {CARRIED_TABLE} c"
                " WHERE s.source = $source AND c.source = $source"
                " AND s.source_row_number = c.source_row_number",
                {"source": source},
            )
        deltas[source] = _delta(con, source, full)
        if full:
            log.info("source %s: whole intake tonight: %s", source, full)
    return deltas


def _why_full(
    con: duckdb.DuckDBPyConnection, source: str, version: str, run_date: date
) -> str | None:
    """Why nothing of the source can be carried tonight, or None."""
    row = fetch_one(
        con,
        f"SELECT any_value(intake_version), max(run_date), count(DISTINCT intake_version)"
        f" FROM {KEEP_TABLE} WHERE source = $source",
        {"source": source},
    )
    if row is None or row[0] is None:
        return "no earlier night to carry from"
    if row[2] != 1 or row[0] != version:
        return "its config, the registry, reference data or intake code changed"
    if row[1] > run_date:
        return "an earlier night than the one carried from"
    return None


# Carried: staged rows whose record id is sent once tonight and whose fingerprint equals
# that record's last good night's. Not carried, whatever the fingerprint: a date of birth
# nulled as in the future (tonight may be past it).
CARRY_SQL = f"""
INSERT INTO {CARRIED_TABLE}
WITH tonight AS (
    SELECT s.source_record_id, s.source || ':' || s.source_record_id AS record_key,
           f.row_fingerprint, s.source_file, s.file_sha256, s.source_row_number,
           s.source_line_number, s.run_date,
           count(*) OVER (PARTITION BY s.source_record_id) AS copies
    FROM {STAGED_TABLE} s
    JOIN {FINGERPRINT_TABLE} f USING (source, source_row_number)
    WHERE s.source = $source AND f.source = $source
)
SELECT $source, t.record_key, t.source_file, t.file_sha256, t.source_row_number,
       t.source_line_number, t.run_date
FROM tonight t
JOIN {KEEP_TABLE} k ON k.source = $source AND k.record_key = t.record_key
WHERE t.copies = 1 AND t.source_record_id IS NOT NULL
  AND k.row_fingerprint = t.row_fingerprint AND k.intake_version = $version
  AND k.dob_issue IS DISTINCT FROM 'in the future'
"""


def _delta(con: duckdb.DuckDBPyConnection, source: str, full: str | None) -> SourceDelta:
    row = fetch_one(
        con,
        f"""
        WITH tonight AS (
            SELECT DISTINCT source || ':' || source_record_id AS record_key FROM {STAGED_TABLE}
            WHERE source = $source
        ),
        kept AS (SELECT record_key FROM {KEEP_TABLE} WHERE source = $source)
        SELECT
            (SELECT count(*) FROM {CARRIED_TABLE} WHERE source = $source),
            (SELECT count(*) FROM {STAGED_TABLE} s WHERE source = $source
               AND source || ':' || source_record_id IN (SELECT record_key FROM kept)),
            (SELECT count(*) FROM {STAGED_TABLE} s WHERE source = $source
               AND (source_record_id IS NULL
                    OR source || ':' || source_record_id NOT IN (SELECT record_key FROM kept))),
            (SELECT count(*) FROM kept WHERE record_key NOT IN (SELECT record_key FROM tonight)
               AND record_key NOT IN (SELECT record_key FROM {CARRIED_TABLE}
                                      WHERE source = $source))
        """,
        {"source": source},
    )
    carried, changed, new, removed = row or (0, 0, 0, 0)
    return SourceDelta(int(carried), int(changed), int(new), int(removed), full)


def append_carried(con: duckdb.DuckDBPyConnection, standardised_table: str) -> int:
    """Add the carried rows, as standardised last night with tonight's provenance, to the
    standardised table; returns how many. (Appended: whatever reads the records in an
    order sorts them, as the link stage does by record key.)"""
    # the rows standardised tonight are the table's first ones (changed_rows_sql)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {STANDARDISED_TONIGHT} AS"
        f" SELECT count(*) AS n FROM {standardised_table}"
    )
    carried = fetch_one(con, f"SELECT count(*) FROM {CARRIED_TABLE}")
    if not carried or not carried[0]:
        return 0
    columns = [row[0] for row in con.execute(f"DESCRIBE {standardised_table}").fetchall()]
    kept = ", ".join(f'c."{name}"' if name in PROVENANCE else f'k."{name}"' for name in columns)
    con.execute(
        f"""
        INSERT INTO {standardised_table}
        SELECT {kept} FROM {CARRIED_TABLE} c
        JOIN {KEEP_TABLE} k ON k.source = c.source AND k.record_key = c.record_key
        """
    )
    return int(carried[0])


def changed_rows_sql(standardised_table: str) -> str:
    """Tonight's standardised rows that were not carried (the ones to check): those the
    table held before append_carried added the carried ones after them. The table is only
    ever appended to, so they are the rows below that count by row id: no join with the
    million carried rows, which cost 0.1-1 s in each of the night's statements."""
    return (
        f"(SELECT * FROM {standardised_table} WHERE rowid < (SELECT n FROM {STANDARDISED_TONIGHT}))"
    )


def copy_carried_flags(
    con: duckdb.DuckDBPyConnection, params: dict, check_names: list[str]
) -> None:
    """The row checks' flags of carried rows, as their last good night recorded them."""
    execute(
        con,
        f"""
        INSERT INTO record_issue
        SELECT $run_id, $run_date, i.source, c.source_file, c.source_row_number,
               i.source_record_id, i.field, i.check_name, i.reason
        FROM record_issue i
        JOIN {CARRIED_TABLE} c
          ON c.source = i.source AND c.record_key = i.source || ':' || i.source_record_id
        WHERE i.source = $source AND c.source = $source
          AND i.run_id = (SELECT run_id FROM source_night WHERE source = $source
                          AND status = 'used' ORDER BY run_date DESC, run_id DESC LIMIT 1)
          AND list_contains($checks, i.check_name)
        ORDER BY c.source_row_number, i.check_name
        """,
        params | {"checks": check_names},
    )


def keep_accepted(
    con: duckdb.DuckDBPyConnection, params: dict, standardised_table: str, version: str
) -> None:
    """Tonight's accepted standardised rows of a source become its kept ones (for the next
    night to carry from); called inside the publish transaction. Carried rows are kept as
    they are: only changed, new and removed records are written."""
    columns = [row[0] for row in con.execute(f"DESCRIBE {standardised_table}").fetchall()]
    kept = [row[0] for row in con.execute(f"DESCRIBE {KEEP_TABLE}").fetchall()]
    if kept != [*columns, "row_fingerprint", "intake_version"]:
        # first use, or the standardised shape changed (a new identifier type, say)
        con.execute(f"DROP TABLE {KEEP_TABLE}")
        con.execute(
            f"CREATE TABLE {KEEP_TABLE} AS SELECT *, NULL::UBIGINT AS row_fingerprint,"
            f" NULL::VARCHAR AS intake_version FROM {standardised_table} WHERE false"
        )
    execute(
        con,
        f"""
        DELETE FROM {KEEP_TABLE} k WHERE k.source = $source AND NOT EXISTS (
            SELECT 1 FROM {CARRIED_TABLE} c
            WHERE c.source = $source AND c.record_key = k.record_key)
        """,
        params,
    )
    execute(
        con,
        f"""
        INSERT INTO {KEEP_TABLE}
        SELECT s.*, f.row_fingerprint, $version
        FROM {changed_rows_sql(standardised_table)} s
        JOIN {FINGERPRINT_TABLE} f USING (source, source_row_number)
        WHERE s.source = $source
          AND NOT EXISTS (
              SELECT 1 FROM quarantine q
              WHERE q.run_id = $run_id AND q.source = $source
                AND q.source_row_number = s.source_row_number)
        """,
        params | {"version": version},
    )


def refresh_carried(con: duckdb.DuckDBPyConnection, source: str) -> None:
    """Carried records keep their canonical row: only where and when they were read change
    (an update of five columns, ten times cheaper than writing the rows again)."""
    assignments = ", ".join(f"{name} = r.{name}" for name in PROVENANCE)
    con.execute(
        f"UPDATE canonical_record c SET {assignments} FROM {CARRIED_TABLE} r"
        " WHERE c.source = $source AND r.source = $source AND c.record_key = r.record_key",
        {"source": source},
    )


def save_delta(con: duckdb.DuckDBPyConnection, params: dict, delta: SourceDelta) -> None:
    execute(
        con,
        "INSERT INTO source_delta VALUES ($run_id, $run_date, $source, $carried, $changed,"
        " $new, $removed, $full)",
        params
        | {
            "carried": delta.carried,
            "changed": delta.changed,
            "new": delta.new,
            "removed": delta.removed,
            "full": delta.full,
        },
    )
