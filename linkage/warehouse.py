"""The DuckDB warehouse: published tables and the one place that opens it."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from linkage.errors import LinkageError
from linkage.extract import quote_identifier
from linkage.identifiers import IdentifierRegistry
from linkage.schema import canonical_columns, canonical_table_ddl

# Added since the first warehouses: open_warehouse adds them to an older review_decision.
REVIEW_DECISION_ADDED = [
    ("decided_by", "VARCHAR"),
    ("via", "VARCHAR"),  # browser | cli
    ("link_run_id", "VARCHAR"),  # the published index the decision was made on
    ("evidence", "VARCHAR"),  # JSON: what the reviewer was shown
    ("evidence_sha256", "VARCHAR"),
    ("record_values", "VARCHAR"),  # JSON: record key -> its fingerprinted values then
    ("fingerprint_l", "VARCHAR"),
    ("fingerprint_r", "VARCHAR"),
]
REVIEW_DECISION_COLUMNS = (
    "record_key_l VARCHAR, record_key_r VARCHAR, decision VARCHAR, note VARCHAR,"
    " decided_at TIMESTAMP, "
    + ", ".join(f"{name} {sql_type}" for name, sql_type in REVIEW_DECISION_ADDED)
)

PUBLISHED_TABLES = {
    "run": """
        CREATE TABLE IF NOT EXISTS run (
            run_id VARCHAR PRIMARY KEY, run_date DATE, started_at TIMESTAMP,
            finished_at TIMESTAMP, status VARCHAR, report_path VARCHAR)""",
    "source_night": """
        CREATE TABLE IF NOT EXISTS source_night (
            run_id VARCHAR, run_date DATE, source VARCHAR, status VARCHAR, error VARCHAR,
            files VARCHAR, sha256 VARCHAR, size_bytes BIGINT, rows_read BIGINT,
            rows_accepted BIGINT, rows_quarantined BIGINT, rows_flagged BIGINT)""",
    # Per source and night: records carried unchanged, changed, new and removed (carry.py).
    "source_delta": """
        CREATE TABLE IF NOT EXISTS source_delta (
            run_id VARCHAR, run_date DATE, source VARCHAR, rows_carried BIGINT,
            rows_changed BIGINT, rows_new BIGINT, records_removed BIGINT,
            full_intake VARCHAR)""",
    # Per source, night and field: rows filled and failing, codes seen (linkage/drift.py).
    "field_night": """
        CREATE TABLE IF NOT EXISTS field_night (
            run_id VARCHAR, run_date DATE, source VARCHAR, field VARCHAR, rows BIGINT,
            filled BIGINT, failed BIGINT, codes VARCHAR[], code_rows BIGINT[])""",
    "quarantine": """
        CREATE TABLE IF NOT EXISTS quarantine (
            run_id VARCHAR, run_date DATE, source VARCHAR, source_file VARCHAR,
            source_row_number BIGINT, source_line_number BIGINT, source_record_id VARCHAR,
            field VARCHAR, check_name VARCHAR, reason VARCHAR, raw_excerpt VARCHAR)""",
    "record_issue": """
        CREATE TABLE IF NOT EXISTS record_issue (
            run_id VARCHAR, run_date DATE, source VARCHAR, source_file VARCHAR,
            source_row_number BIGINT, source_record_id VARCHAR, field VARCHAR,
            check_name VARCHAR, reason VARCHAR)""",
    # The person index (linkage/index.py): replaced by each successful link stage, whole or
    # (incrementally) the persons a change reached; a row's run_id is the link run that last
    # placed it, and link_run's latest row (linked_at) is the run that published the index.
    # No primary keys: each publish writes a key once by construction (tests check it), and
    # a key index would cost ~2 s a million rows to build and commit every night.
    "linked_index": """
        CREATE TABLE IF NOT EXISTS linked_index (
            person_id VARCHAR, record_key VARCHAR, source VARCHAR,
            source_record_id VARCHAR, link_confidence DOUBLE, run_id VARCHAR)""",
    "person": """
        CREATE TABLE IF NOT EXISTS person (
            person_id VARCHAR, forename VARCHAR, surname VARCHAR,
            date_of_birth DATE, sex VARCHAR, postcode VARCHAR,
            identifiers MAP(VARCHAR, VARCHAR[]), conflicting_identifiers VARCHAR[],
            sources VARCHAR[], records INTEGER,
            min_link_confidence DOUBLE, needs_review BOOLEAN, run_id VARCHAR)""",
    # Its gamma_<comparison> columns follow the model's comparisons (link/model.py); the
    # publish re-creates it with them.
    "edge": """
        CREATE TABLE IF NOT EXISTS edge (
            record_key_l VARCHAR, record_key_r VARCHAR, match_weight DOUBLE,
            match_probability DOUBLE, linked BOOLEAN, run_id VARCHAR, model_version VARCHAR)""",
    "link_review": """
        CREATE TABLE IF NOT EXISTS link_review (
            record_key_l VARCHAR, record_key_r VARCHAR, person_id_l VARCHAR,
            person_id_r VARCHAR, match_probability DOUBLE, reason VARCHAR, run_id VARCHAR,
            priority INTEGER, stake VARCHAR, queued BOOLEAN, identifiers_agree BOOLEAN)""",
    # Analysts' decisions on pairs (linkage/review.py): the current one per pair, kept for
    # good and read by every link; who decided, what they were shown (JSON and its sha256)
    # and the records' values then (to re-queue a decision whose records changed).
    "review_decision": f"""
        CREATE TABLE IF NOT EXISTS review_decision ({REVIEW_DECISION_COLUMNS})""",
    # Every decision ever recorded, replaced ones included: the audit of who decided what.
    "review_decision_log": f"""
        CREATE TABLE IF NOT EXISTS review_decision_log ({REVIEW_DECISION_COLUMNS})""",
    # Reviewers of the review application (linkage/review_app/accounts.py): a role names
    # the agencies whose records they may see; passwords are scrypt hashes (NULL: only
    # through the reverse proxy's user header).
    "reviewer": """
        CREATE TABLE IF NOT EXISTS reviewer (
            name VARCHAR PRIMARY KEY, role VARCHAR, password_hash VARCHAR,
            created_at TIMESTAMP, disabled_at TIMESTAMP)""",
    # History: appended by every link stage, never rewritten.
    "person_id_history": """
        CREATE TABLE IF NOT EXISTS person_id_history (
            run_id VARCHAR, run_date DATE, person_id VARCHAR, event VARCHAR,
            related_person_id VARCHAR, records INTEGER, reason VARCHAR)""",
    # Alerts (linkage/alerts.py): every alert ever raised, with its lifecycle status.
    "alert": """
        CREATE TABLE IF NOT EXISTS alert (
            alert_id VARCHAR PRIMARY KEY, rule_id VARCHAR, person_id VARCHAR,
            recipient VARCHAR, status VARCHAR, confidence DOUBLE, record_keys VARCHAR[],
            holders VARCHAR[], recipient_record_ids VARCHAR[], first_run_id VARCHAR,
            first_run_date DATE, last_run_id VARCHAR, last_run_date DATE,
            resolved_run_id VARCHAR, note VARCHAR)""",
    "alert_review": """
        CREATE TABLE IF NOT EXISTS alert_review (
            run_id VARCHAR, rule_id VARCHAR, person_id VARCHAR, record_keys VARCHAR[],
            confidence DOUBLE, reason VARCHAR)""",
    # What each agency was last told (linkage/export.py): replaced by every export.
    "export_state": """
        CREATE TABLE IF NOT EXISTS export_state (
            agency VARCHAR, source_record_id VARCHAR, person_id VARCHAR,
            known_agencies VARCHAR, run_id VARCHAR)""",
    "link_run": """
        CREATE TABLE IF NOT EXISTS link_run (
            run_id VARCHAR, run_date DATE, model_version VARCHAR, model_path VARCHAR,
            records BIGINT, persons BIGINT, edges BIGINT, review_items BIGINT,
            seconds DOUBLE, blocking_changes VARCHAR, link_basis VARCHAR,
            linked_at TIMESTAMP)""",
    # What each record was last linked on (link/incremental.py): the hash of its model
    # input, then one column per block key set, hashed (a full link re-creates it with them).
    "link_input": """
        CREATE TABLE IF NOT EXISTS link_input (record_key VARCHAR, input_hash UBIGINT)""",
    # Records an intake wrote (deleted or inserted) since the last link: the only ones an
    # incremental link hashes again (link/incremental.py). Every link's publish empties it
    # and notes in link_input_column the columns its hashes covered.
    "canonical_change": """
        CREATE TABLE IF NOT EXISTS canonical_change (record_key VARCHAR)""",
    "link_input_column": """
        CREATE TABLE IF NOT EXISTS link_input_column (position INTEGER, column_name VARCHAR)""",
    # Each record's connected component of the stored edges (link/incremental.py).
    "link_component": """
        CREATE TABLE IF NOT EXISTS link_component (record_key VARCHAR, component BIGINT)""",
    # The term frequencies the published scores were computed with: refreshed by every full
    # link, kept by incremental ones so every stored score uses one snapshot.
    "link_term_frequency": """
        CREATE TABLE IF NOT EXISTS link_term_frequency (
            column_name VARCHAR, value VARCHAR, tf DOUBLE)""",
    # The statements Splink ran to score an incremental link's pairs, for records of one
    # shape with one model, blocks and floor (`key`): later nights run them again.
    "link_scoring_sql": """
        CREATE TABLE IF NOT EXISTS link_scoring_sql (
            key VARCHAR, position INTEGER, statement VARCHAR)""",
    # Every prediction block's pairs each link run, and what the budget made of it.
    "blocking_rule_run": """
        CREATE TABLE IF NOT EXISTS blocking_rule_run (
            run_id VARCHAR, run_date DATE, rule VARCHAR, pairs BIGINT,
            pairs_per_record DOUBLE, action VARCHAR, why VARCHAR)""",
}


class WarehouseUnavailable(LinkageError):
    """The warehouse file cannot be opened: held by another process, or not a database."""


def connect_warehouse(path: Path, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A connection to the warehouse file, or a clear error that touches nothing."""
    try:
        return duckdb.connect(str(path), read_only=read_only)
    except duckdb.IOException as error:
        message = str(error)
        if "Could not set lock" in message:
            holder = re.search(r"Conflicting lock is held in (.+?) \(PID (\d+)\)", message)
            who = f" ({holder[1]}, pid {holder[2]})" if holder else ""
            raise WarehouseUnavailable(
                f"{path}: the warehouse is open in another process{who}; close it (a DuckDB"
                " session, a notebook) and run again. Nothing was changed."
            ) from None
        if "not a valid DuckDB database" in message:
            raise WarehouseUnavailable(
                f"{path}: not a DuckDB database (damaged or overwritten?); it was left as it"
                " is: restore it from a backup, or move it aside to start a new warehouse"
            ) from None
        raise


def open_warehouse(
    path: Path, registry: IdentifierRegistry | None = None
) -> duckdb.DuckDBPyConnection:
    """Open (creating if needed) the warehouse file with its published tables.

    An identifier type registered since the warehouse was made gets its column here.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    con = connect_warehouse(path)
    for ddl in PUBLISHED_TABLES.values():
        con.execute(ddl)
    # columns added to published tables since a warehouse was made
    con.execute("ALTER TABLE link_run ADD COLUMN IF NOT EXISTS blocking_changes VARCHAR")
    con.execute("ALTER TABLE link_run ADD COLUMN IF NOT EXISTS link_basis VARCHAR")
    con.execute("ALTER TABLE link_run ADD COLUMN IF NOT EXISTS linked_at TIMESTAMP")
    for added, sql_type in [
        ("priority", "INTEGER"),
        ("stake", "VARCHAR"),
        ("queued", "BOOLEAN"),
        ("identifiers_agree", "BOOLEAN"),  # NULL in older rows: the next link is full
    ]:
        con.execute(f"ALTER TABLE link_review ADD COLUMN IF NOT EXISTS {added} {sql_type}")
    for added, sql_type in REVIEW_DECISION_ADDED:
        con.execute(f"ALTER TABLE review_decision ADD COLUMN IF NOT EXISTS {added} {sql_type}")
    con.execute(canonical_table_ddl("canonical_record", registry))
    present = {row[0] for row in con.execute("DESCRIBE canonical_record").fetchall()}
    for column in canonical_columns(registry):
        if column.name not in present:
            con.execute(
                f"ALTER TABLE canonical_record ADD COLUMN {quote_identifier(column.name)}"
                f" {column.type}"
            )
    return con


def last_good_rows(con: duckdb.DuckDBPyConnection, source: str) -> int | None:
    """Rows read on the source's last used night, for the row-count check."""
    row = fetch_one(
        con,
        "SELECT rows_read FROM source_night WHERE source = $source AND status = 'used'"
        " ORDER BY run_date DESC, run_id DESC LIMIT 1",
        {"source": source},
    )
    return None if row is None else int(row[0])


@dataclass
class _OpenTransaction:
    depth: int = 1
    after_commit: list[Callable[[], None]] = field(default_factory=list)


_open: dict[int, _OpenTransaction] = {}  # by id(connection): DuckDB has no savepoints


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """One all-or-nothing write: committed if the block succeeds, else rolled back.

    A transaction opened inside another joins it, so a night can publish its index, alerts
    and export state as one: only the outermost block commits, and any failure rolls back
    everything since the outermost BEGIN.
    """
    current = _open.get(id(con))
    if current is not None:
        current.depth += 1
        try:
            yield con
        finally:
            current.depth -= 1
        return
    current = _open[id(con)] = _OpenTransaction()
    try:
        con.execute("BEGIN TRANSACTION")
        try:
            yield con
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")
    finally:
        del _open[id(con)]
    for action in current.after_commit:
        action()


def after_commit(con: duckdb.DuckDBPyConnection, action: Callable[[], None]) -> None:
    """Run `action` once the open transaction commits (at once if none is open); a rolled
    back transaction drops it."""
    current = _open.get(id(con))
    if current is None:
        action()
    else:
        current.after_commit.append(action)


def canonical_by_keys_sql(columns: str = "*", with_person: bool = True) -> str:
    """Canonical records whose record_key is in the list $keys (and their person ids).

    Fetched in two steps because it is several times faster on a million records: the
    keys' row ids through the one string column, then the wide rows by row id; and the
    person ids by linked_index's key, not a join over the whole index.
    """
    records = f"""
WITH wanted AS (
    SELECT rowid AS row_id FROM canonical_record WHERE record_key IN (SELECT unnest($keys))
),
records AS (
    SELECT {columns} FROM canonical_record WHERE rowid IN (SELECT row_id FROM wanted)
)"""
    if not with_person:
        return records + "\nSELECT * FROM records ORDER BY record_key"
    return (
        records
        + """,
persons AS (
    SELECT record_key, person_id FROM linked_index WHERE record_key IN (SELECT unnest($keys))
)
SELECT records.*, persons.person_id
FROM records LEFT JOIN persons USING (record_key)
ORDER BY record_key
"""
    )


def fetch_one(con: duckdb.DuckDBPyConnection, sql: str, params: dict | None = None) -> tuple | None:
    """First row of a query, or None.

    duckdb 2 keeps a result open until it is fully fetched, so never use fetchone().
    """
    rows = execute(con, sql, params or {}).fetchall()
    return rows[0] if rows else None


def table_columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    """A table's columns in order; none if it does not exist (where DESCRIBE would fail)."""
    rows = con.execute(
        "SELECT column_name FROM duckdb_columns() WHERE table_name = $table ORDER BY column_index",
        {"table": table},
    ).fetchall()
    return [row[0] for row in rows]


def execute(con: duckdb.DuckDBPyConnection, sql: str, params: dict) -> duckdb.DuckDBPyConnection:
    """Execute with only the named parameters the statement uses (duckdb rejects extras)."""
    used = {name: value for name, value in params.items() if f"${name}" in sql}
    return con.execute(sql, used)
