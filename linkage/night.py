"""One night's intake: extract -> stage -> standardise -> validate -> publish.

The flow in flows/nightly.py calls these in order. Nothing is published until
`publish_night`, which writes every source's accepted rows, quarantine and counts in
one transaction after the conservation check, so a failed run leaves the last good
warehouse state untouched.
"""

from __future__ import annotations

import logging
import math
import secrets
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pyarrow as pa

from linkage import PROGRESS_LOGGER
from linkage.alerts import AlertOutcome, run_alerts
from linkage.audit import record_run
from linkage.carry import (
    CARRIED_TABLE,
    FINGERPRINT_TABLE,
    STANDARDISED_TONIGHT,
    SourceDelta,
    append_carried,
    changed_rows_sql,
    copy_carried_flags,
    create_carry_tables,
    intake_version,
    keep_accepted,
    refresh_carried,
    save_delta,
    set_aside_unchanged,
)
from linkage.config import ProjectConfig, SourceConfig
from linkage.digest import build_digest
from linkage.drift import (
    FieldMeasure,
    baseline,
    coded_fields,
    date_format_hint,
    find_drift,
    measure_source,
    save_measures,
)
from linkage.errors import ConservationError, LinkageError, SourceFileError
from linkage.export import ExportSummary, export_agency_slices
from linkage.extract import (
    ExtractedFile,
    FlaggedRow,
    RejectedRow,
    extract_source,
    quote_identifier,
    raw_table_name,
)
from linkage.identifiers import IdentifierRegistry
from linkage.index import LinkOutcome, ModelNotFoundError, link_warehouse
from linkage.link.incremental import JOURNAL_TABLE
from linkage.report import RunReport, SourceReport
from linkage.schema import canonical_column_names
from linkage.stage import STAGED_TABLE, create_staged_table, stage_source
from linkage.staged import settle
from linkage.standardise import standardise
from linkage.validate import (
    DUPLICATE_ROW_CHECK,
    SourceValidation,
    Validator,
    exact_duplicate_rows,
    row_checks,
    write_html_report,
)
from linkage.warehouse import (
    execute,
    fetch_one,
    last_good_rows,
    open_warehouse,
    table_columns,
    transaction,
)

log = logging.getLogger(__name__)
STANDARDISED_TABLE = "standardised_record"


@dataclass
class Night:
    """The state of one run, shared by its stages."""

    project: ProjectConfig
    run_date: date
    run_id: str
    con: duckdb.DuckDBPyConnection
    validator: Validator
    started_at: datetime
    full: str | None = None  # why every row and record go through the whole night tonight
    link_skipped: str | None = None  # why the person index was not rebuilt tonight
    stage_seconds: dict[str, float] = field(default_factory=dict)  # for the run report

    def stage_done(self, stage: str) -> None:
        """Seconds since the previous stage ended (or the run started)."""
        now = datetime.now(UTC).replace(tzinfo=None)
        elapsed = (now - self.started_at).total_seconds() - sum(self.stage_seconds.values())
        self.stage_seconds[stage] = round(elapsed, 1)

    @property
    def report_dir(self) -> Path:
        return self.project.output_dir / "runs" / self.run_id


@dataclass
class SourceIntake:
    """What one source delivered tonight, or why it could not be used."""

    config: SourceConfig
    files: list[ExtractedFile] = field(default_factory=list)
    error: str | None = None
    validation: SourceValidation | None = None
    measures: list[FieldMeasure] = field(default_factory=list)  # for drift (linkage/drift.py)
    version: str = ""  # the intake version its rows are standardised under (linkage/carry.py)
    delta: SourceDelta = SourceDelta()  # against its last good night

    @property
    def source(self) -> str:
        return self.config.source

    @property
    def rows_read(self) -> int:
        return sum(extracted.rows_read for extracted in self.files)

    @property
    def rejected(self) -> list[RejectedRow]:
        return [row for extracted in self.files for row in extracted.rejected]

    @property
    def flagged(self) -> list[FlaggedRow]:
        return [row for extracted in self.files for row in extracted.flagged]

    @property
    def used(self) -> bool:
        return self.error is None


def new_run_id(run_date: date) -> str:
    """The night, the time the run started (UTC) and a random suffix: 20261101-020000-a1b2c3."""
    return f"{run_date:%Y%m%d}-{datetime.now(UTC):%H%M%S}-{secrets.token_hex(3)}"


def start_night(
    project: ProjectConfig,
    run_date: date,
    run_id: str | None = None,
    full: str | None = None,
) -> Night:
    """Open the warehouse and scratch tables for a new run (the caller holds its lock).

    Rows unchanged since a source's last good night are carried (linkage/carry.py) unless
    the link stage links only what changed (linkage/link/incremental.py), unless `full`
    says why every row and record must go through the whole night."""
    started_at = datetime.now(UTC).replace(tzinfo=None)
    run_id = run_id or new_run_id(run_date)
    con = open_warehouse(project.warehouse, project.identifier_registry())
    settle(con, project.output_dir)  # what a killed run left staged
    create_staged_table(con)
    create_carry_tables(con)
    con.execute(
        "INSERT INTO run VALUES ($run_id, $run_date, $started_at, NULL, 'running', NULL)",
        {"run_id": run_id, "run_date": run_date, "started_at": started_at},
    )
    return Night(project, run_date, run_id, con, Validator(), started_at, full)


def intake_source(night: Night, config: SourceConfig) -> SourceIntake:
    """Extract and stage one source; any failure skips only this source."""
    intake = SourceIntake(config)
    try:
        intake.files = extract_source(
            night.con, config, night.project.landing_dir, night.project.archive_dir, night.run_date
        )
        failures = night.validator.validate_file(
            config.source, intake.files[0].columns, config.required_columns()
        )
        if failures:
            raise SourceFileError(config.source, str(intake.files[0].archive_path), failures[0])
        _check_not_cut_short(night, config, intake.files)
        stage_source(night.con, config, intake.files, night.run_date)
    except SourceFileError as error:
        intake.error = str(error)
        log.warning(  # the file and why: a file's name and path hold no personal data
            "source %s skipped tonight: %s: %s", config.source, Path(error.path).name, error.reason
        )
    except Exception as error:  # noqa: BLE001 - one agency's file must not stop the night
        _fail_source(night, intake, "reading", error)
    log.info("source %s: %d rows read", config.source, intake.rows_read)
    return intake


def _check_not_cut_short(night: Night, config: SourceConfig, files: list[ExtractedFile]) -> None:
    """A file cut off in transfer holds a source that had a good night before: the records
    after the cut would read as removed, their persons retired and concerns gone. On a
    source's first night its readable rows are taken in (the cut row quarantined)."""
    cut = next((extracted for extracted in files if extracted.cut_short), None)
    if cut is not None and last_good_rows(night.con, config.source) is not None:
        raise SourceFileError(config.source, str(cut.archive_path), str(cut.cut_short))


def standardise_night(night: Night, intakes: list[SourceIntake]) -> list[SourceIntake]:
    """Standardise every staged source at once; if that fails, fail only the sources
    that cannot be standardised alone, and standardise the others together. Rows unchanged
    since their source's last good night are carried, not standardised again."""
    _set_aside_unchanged(night, intakes)
    try:
        _standardise(night, STAGED_TABLE, STANDARDISED_TABLE)
    except Exception as error:  # noqa: BLE001
        log.warning("standardise failed (%s): trying each source alone", type(error).__name__)
        _standardise_each_alone(night, intakes)
    append_carried(night.con, STANDARDISED_TABLE)
    return intakes


def _set_aside_unchanged(night: Night, intakes: list[SourceIntake]) -> None:
    used = [intake for intake in intakes if intake.used]
    for intake in used:
        intake.version = intake_version(night.project, intake.config)
    deltas = set_aside_unchanged(
        night.con,
        {intake.source: intake.version for intake in used},
        night.run_date,
        night.full,
    )
    for intake in used:
        intake.delta = deltas[intake.source]


def _standardise_each_alone(night: Night, intakes: list[SourceIntake]) -> None:
    for intake in (intake for intake in intakes if intake.used):
        night.con.execute(
            "CREATE OR REPLACE TEMP TABLE staged_one_source AS"
            " SELECT * FROM staged_record WHERE source = $source",
            {"source": intake.source},
        )
        try:
            _standardise(night, "staged_one_source", "standardised_one_source")
        except Exception as error:  # noqa: BLE001 - this source alone fails tonight
            _fail_source(night, intake, "standardising", error)
    night.con.execute("DROP TABLE IF EXISTS staged_one_source")
    night.con.execute("DROP TABLE IF EXISTS standardised_one_source")
    _standardise(night, STAGED_TABLE, STANDARDISED_TABLE)


def _standardise(night: Night, staged_table: str, out_table: str) -> int:
    return standardise(
        night.con,
        staged_table,
        out_table,
        registry=night.project.identifier_registry(),
        postcode_format=night.project.postcode_format,
    )


def validate_source(night: Night, intake: SourceIntake) -> SourceIntake:
    """Row checks, the row count and drift against the last good nights; a failed
    row count or a drift holds the source for the night, as does any error."""
    if not intake.used:
        return intake
    try:
        _validate(night, intake)
    except Exception as error:  # noqa: BLE001 - one agency's file must not stop the night
        _fail_source(night, intake, "validating", error)
    return intake


def _validate(night: Night, intake: SourceIntake) -> None:
    registry = night.project.identifier_registry()
    raw_table = quote_identifier(raw_table_name(intake.source))
    duplicates = exact_duplicate_rows(night.con, raw_table)
    # carried rows passed these checks on their last good night: only the others are run
    intake.validation = night.validator.validate_rows(
        night.con,
        intake.source,
        changed_rows_sql(STANDARDISED_TABLE),
        _min_rows(night, intake.config),
        registry,
        duplicates,
        carried=intake.delta.carried,
    )
    if not intake.validation.file_checks_passed:
        failures = "; ".join(intake.validation.file_failures)  # counts: no value of a row
        intake.error = f"{intake.source}: {failures}"
        log.warning("source %s skipped tonight: %s", intake.source, failures)
        return
    intake.measures = measure_source(
        night.con,
        intake.config,
        registry,
        STANDARDISED_TABLE,
        raw_table,
        _quarantined_rows(intake),
        intake.rows_read,
    )
    settings = intake.config.drift or night.project.drift
    reasons = find_drift(
        intake.measures,
        baseline(night.con, intake.source, settings.baseline_nights),
        settings,
        _mapped_codes(intake.config),
    )
    if reasons:
        hint = ""
        if any(reason.startswith("date_of_birth") for reason in reasons):
            hint = date_format_hint(night.con, STANDARDISED_TABLE, intake.source)
        intake.error = (
            f"{intake.source}: held for the night, unlike its last good nights: "
            + "; ".join(reasons)
            + hint
        )
        log.warning("source %s held tonight: %d field(s) drifted", intake.source, len(reasons))


def _quarantined_rows(intake: SourceIntake) -> int:
    """Rows the parser or a quarantine check removes tonight, exact repeats aside."""
    failures = intake.validation.row_failures if intake.validation else []
    removed = {
        f.source_row_number
        for f in failures
        if f.severity == "quarantine" and f.check != DUPLICATE_ROW_CHECK
    }
    return len(intake.rejected) + len(removed)


def _mapped_codes(config: SourceConfig) -> dict[str, set[str]]:
    """Codes the config maps, per coded field: new ones the config knows are not drift."""
    return {
        field: {code.upper() for code in spec.codes or {}}
        for field, spec in coded_fields(config).items()
    }


def _fail_source(night: Night, intake: SourceIntake, stage: str, error: Exception) -> None:
    """An unexpected error in one source: that source fails tonight, the others go on.

    The message goes to the run report; the traceback (which may quote a value) to the
    run's error file, never to the log.
    """
    message = str(error).strip().splitlines()[0][:300] if str(error).strip() else ""
    intake.error = f"{intake.source}: failed while {stage}: {type(error).__name__}: {message}"
    log.warning(
        "source %s failed tonight while %s: %s (details in the run report)",
        intake.source,
        stage,
        type(error).__name__,
    )
    error_file = night.report_dir / "errors" / f"{intake.source}.txt"
    error_file.parent.mkdir(parents=True, exist_ok=True)
    error_file.write_text("".join(traceback.format_exception(error)), encoding="utf-8")
    for table in (STAGED_TABLE, CARRIED_TABLE):
        night.con.execute(f"DELETE FROM {table} WHERE source = $source", {"source": intake.source})


def _min_rows(night: Night, config: SourceConfig) -> int | None:
    previous = last_good_rows(night.con, config.source)
    return None if previous is None else math.ceil(previous * config.min_rows_ratio)


def publish_night(night: Night, intakes: list[SourceIntake]) -> str:
    """Write the night's records in one transaction; returns the run's status to be.

    The run stays `running` until finish_night: a run killed after this is not complete."""
    with transaction(night.con):
        for intake in intakes:
            _publish_source(night, intake)
        _journal_written(night.con)
    raw_tables = [quote_identifier(raw_table_name(intake.source)) for intake in intakes]
    scratch = (STAGED_TABLE, STANDARDISED_TABLE, STANDARDISED_TONIGHT, FINGERPRINT_TABLE)
    for table in (*scratch, CARRIED_TABLE, *raw_tables):
        night.con.execute(f"DROP TABLE IF EXISTS {table}")  # their memory goes to the link
    return "complete" if all(intake.used for intake in intakes) else "partial"


def _journal_written(con: duckdb.DuckDBPyConnection) -> None:
    """Journal every source's records written tonight, in one pass (a source not used
    tonight wrote none; a key journaled needlessly is only hashed again)."""
    if table_columns(con, STANDARDISED_TABLE):  # else nothing was standardised or written
        rows = changed_rows_sql(STANDARDISED_TABLE)
        con.execute(f"INSERT INTO {JOURNAL_TABLE} SELECT record_key FROM {rows}")


def _publish_source(night: Night, intake: SourceIntake) -> None:
    params = {"run_id": night.run_id, "run_date": night.run_date, "source": intake.source}
    if intake.used:
        _insert_failures(night, intake)
        _replace_canonical_records(night.con, params, night.project.identifier_registry())
        keep_accepted(night.con, params, STANDARDISED_TABLE, intake.version)
        save_delta(night.con, params, intake.delta)
    save_measures(night.con, params, intake.measures)
    counts = _source_counts(night.con, params) if intake.used else (0, 0, 0)
    accepted, quarantined, flagged = counts
    if intake.used and intake.rows_read != accepted + quarantined:
        raise ConservationError(
            f"{intake.source}: {intake.rows_read} rows read but {accepted} accepted"
            f" + {quarantined} quarantined: records would be lost; nothing was published"
        )
    night.con.execute(
        "INSERT INTO source_night VALUES ($run_id, $run_date, $source, $status, $error,"
        " $files, $sha, $size, $read, $accepted, $quarantined, $flagged)",
        params
        | {
            "status": "used" if intake.used else "failed",
            "error": intake.error,
            "files": ";".join(str(f.archive_path) for f in intake.files),
            "sha": ";".join(f.sha256 for f in intake.files),
            "size": sum(f.size_bytes for f in intake.files),
            "read": intake.rows_read,
            "accepted": accepted,
            "quarantined": quarantined,
            "flagged": flagged,
        },
    )


def _insert_failures(night: Night, intake: SourceIntake) -> None:
    """Parse rejects and quarantine-severity check failures -> quarantine; flags (the
    reader's repairs and flag-severity check failures) -> record_issue."""
    con = night.con
    params = {"run_id": night.run_id, "run_date": night.run_date, "source": intake.source}
    rejects = intake.rejected
    if rejects:
        con.executemany(
            "INSERT INTO quarantine VALUES (?, ?, ?, ?, ?, ?, NULL, ?, 'parse', ?, ?)",
            [
                (
                    night.run_id,
                    night.run_date,
                    intake.source,
                    row.source_file,
                    row.row_number,
                    row.line_number,
                    row.field,
                    row.reason,
                    row.excerpt,
                )
                for row in rejects
            ],
        )
    if intake.flagged:
        _insert_read_flags(con, intake.flagged, params)
    if intake.delta.carried:
        registry = night.project.identifier_registry()
        copy_carried_flags(con, params, [check.name for check in row_checks(registry)])
    failures = intake.validation.row_failures if intake.validation else []
    if not failures:
        return
    frame = pa.table(
        {
            "source_row_number": [f.source_row_number for f in failures],
            "check_name": [f.check for f in failures],
            "severity": [f.severity for f in failures],
            "field": [f.field for f in failures],
            "reason": [f.reason for f in failures],
        }
    )
    con.register("row_failure", frame)
    execute(
        con,
        f"""
        INSERT INTO quarantine
        SELECT $run_id, $run_date, s.source, s.source_file, s.source_row_number,
               s.source_line_number, s.source_record_id, f.field, f.check_name, f.reason, NULL
        FROM row_failure f
        JOIN {STANDARDISED_TABLE} s
          ON s.source = $source AND s.source_row_number = f.source_row_number
        WHERE f.severity = 'quarantine'
        """,
        params,
    )
    execute(
        con,
        f"""
        INSERT INTO record_issue
        SELECT $run_id, $run_date, s.source, s.source_file, s.source_row_number,
               s.source_record_id, f.field, f.check_name, f.reason
        FROM row_failure f
        JOIN {STANDARDISED_TABLE} s
          ON s.source = $source AND s.source_row_number = f.source_row_number
        WHERE f.severity = 'flag'
        """,
        params,
    )
    con.unregister("row_failure")


def _insert_read_flags(
    con: duckdb.DuckDBPyConnection, flagged: list[FlaggedRow], params: dict
) -> None:
    """Rows the reader kept after a repair (e.g. read in the fallback encoding) -> issues."""
    frame = pa.table(
        {
            "source_file": [f.source_file for f in flagged],
            "source_row_number": [f.row_number for f in flagged],
            "field": pa.array([f.field for f in flagged], type=pa.string()),
            "check_name": [f.check for f in flagged],
            "reason": [f.reason for f in flagged],
        }
    )
    con.register("read_flag", frame)
    execute(
        con,
        f"""
        INSERT INTO record_issue
        SELECT $run_id, $run_date, $source, f.source_file, f.source_row_number,
               s.source_record_id, f.field, f.check_name, f.reason
        FROM read_flag f
        LEFT JOIN {STANDARDISED_TABLE} s
          ON s.source = $source AND s.source_row_number = f.source_row_number
        ORDER BY f.source_row_number
        """,
        params,
    )
    con.unregister("read_flag")


def _replace_canonical_records(
    con: duckdb.DuckDBPyConnection, params: dict, registry: IdentifierRegistry
) -> None:
    """The source's accepted rows replace its previous night's in canonical_record.

    A record keeps what it held on earlier nights as evidence: its earlier postcodes in
    `previous_postcodes` and its earlier surnames in `other_surnames`, so a person who
    moves or marries still matches the agencies that have not caught up yet. A record
    carried unchanged (linkage/carry.py) keeps its row as it is, with tonight's file, row
    and line: only the others are deleted and inserted.
    """
    columns = ", ".join(f'"{name}"' for name in canonical_column_names(registry))
    not_carried = (
        f"c.source = $source AND NOT EXISTS (SELECT 1 FROM {CARRIED_TABLE} r"
        " WHERE r.source = $source AND r.record_key = c.record_key)"
    )
    source = {"source": params["source"]}
    con.execute(
        "CREATE OR REPLACE TEMP TABLE earlier_values AS"
        " SELECT record_key, postcode, previous_postcodes, surname, other_surnames"
        f" FROM canonical_record c WHERE {not_carried}",
        source,
    )
    con.execute(f"DELETE FROM canonical_record c WHERE {not_carried}", source)
    refresh_carried(con, params["source"])
    sql = CARRY_FORWARD_SQL.format(columns=columns, rows=changed_rows_sql(STANDARDISED_TABLE))
    execute(con, sql, params)
    # the journal an incremental link reads: the records deleted here (publish_night adds
    # the ones written)
    con.execute(f"INSERT INTO {JOURNAL_TABLE} SELECT record_key FROM earlier_values")
    con.execute("DROP TABLE earlier_values")


CARRY_FORWARD_SQL = """
INSERT INTO canonical_record ({columns})
WITH accepted AS (
    SELECT s.* FROM {rows} s
    WHERE s.source = $source
      AND NOT EXISTS (
          SELECT 1 FROM quarantine q
          WHERE q.run_id = $run_id AND q.source = s.source
            AND q.source_row_number = s.source_row_number)
),
with_earlier AS (
    SELECT
        accepted.* REPLACE (
            nullif(list_sort(list_filter(
                list_distinct(list_concat([earlier.postcode], earlier.previous_postcodes)),
                lambda code: code IS DISTINCT FROM accepted.postcode
            )), []) AS previous_postcodes,
            nullif(list_sort(list_filter(
                list_distinct(list_concat(
                    accepted.other_surnames, [earlier.surname], earlier.other_surnames
                )),
                lambda name: name IS DISTINCT FROM accepted.surname
            )), []) AS other_surnames
        )
    FROM accepted LEFT JOIN earlier_values AS earlier USING (record_key)
)
SELECT {columns} FROM with_earlier
"""


def _source_counts(con: duckdb.DuckDBPyConnection, params: dict) -> tuple[int, int, int]:
    """(accepted, quarantined distinct rows, flagged distinct rows) for a source tonight."""
    row = fetch_one(
        con,
        """
        SELECT
            (SELECT count(*) FROM canonical_record
              WHERE source = $source AND run_date = $run_date),
            (SELECT count(DISTINCT source_row_number) FROM quarantine
              WHERE run_id = $run_id AND source = $source),
            (SELECT count(DISTINCT source_row_number) FROM record_issue
              WHERE run_id = $run_id AND source = $source)
        """,
        params,
    )
    accepted, quarantined, flagged = row  # type: ignore[misc]
    return int(accepted), int(quarantined), int(flagged)


def last_published_night(project: ProjectConfig) -> date:
    """The newest night whose records are in the warehouse (for re-linking)."""
    con = open_warehouse(project.warehouse)
    try:
        row = fetch_one(con, "SELECT max(run_date) FROM canonical_record")
    finally:
        con.close()
    if row is None or row[0] is None:
        raise LinkageError(f"{project.warehouse}: no records yet: run `linkage nightly` first")
    return row[0]


def mark_linked(night: Night) -> str:
    """A re-link run's status (no intake): complete, or unlinked if it could not link."""
    return "unlinked" if night.link_skipped else "complete"


@contextmanager
def published_together(night: Night) -> Iterator[None]:
    """Tonight's index, alerts and export state commit as one transaction, and the alert and
    export files appear once it has: a night killed anywhere before leaves the last good
    night's index, alerts and exports."""
    with transaction(night.con):
        yield


def link_night(night: Night) -> LinkOutcome | None:
    """Link tonight's canonical records into the person index; None if no model exists."""
    try:
        return link_warehouse(night.con, night.project, night.run_id, night.run_date, night.full)
    except ModelNotFoundError as error:
        log.warning("run %s: linking skipped: %s", night.run_id, error)
        night.link_skipped = str(error)
        return None


def alert_night(night: Night, link: LinkOutcome | None) -> AlertOutcome | None:
    """Raise, carry on and resolve alerts over tonight's index (none if it was not rebuilt)."""
    if link is None:
        return None
    return run_alerts(night.con, night.project, night.run_id, night.run_date)


def export_night(night: Night, link: LinkOutcome | None) -> ExportSummary | None:
    """Each agency's slice of tonight's index (none if it was not rebuilt or no sharing rules)."""
    if link is None or night.project.sharing_rules is None:
        return None
    return export_agency_slices(night.con, night.project, night.run_id)


def fail_night(night: Night) -> None:
    """Mark a run that stopped before publishing as failed; published tables are untouched."""
    night.con.execute(
        "UPDATE run SET status = 'failed', finished_at = $now WHERE run_id = $run_id",
        {"now": datetime.now(UTC).replace(tzinfo=None), "run_id": night.run_id},
    )
    night.con.close()


REASON_COUNTS_SQL = """
    SELECT check_name, count(DISTINCT source_row_number) FROM {table}
    WHERE run_id = $run_id AND source = $source GROUP BY ALL ORDER BY 2 DESC, 1
"""


def build_report(
    night: Night,
    intakes: list[SourceIntake],
    status: str,
    link: LinkOutcome | None = None,
    alerts: AlertOutcome | None = None,
    exports: ExportSummary | None = None,
) -> RunReport:
    """Counts and statuses of the run, read back from what was published."""
    sources = []
    for intake in intakes:
        row = fetch_one(
            night.con,
            "SELECT rows_read, rows_accepted, rows_quarantined, rows_flagged FROM source_night"
            " WHERE run_id = $run_id AND source = $source",
            {"run_id": night.run_id, "source": intake.source},
        )
        params = {"run_id": night.run_id, "source": intake.source}
        reasons = night.con.execute(REASON_COUNTS_SQL.format(table="quarantine"), params)
        quarantine_reasons = dict(reasons.fetchall())
        flags = night.con.execute(REASON_COUNTS_SQL.format(table="record_issue"), params)
        flag_reasons = dict(flags.fetchall())
        read, accepted, quarantined, flagged = row if row else (intake.rows_read, 0, 0, 0)
        sources.append(
            SourceReport(
                source=intake.source,
                status="used" if intake.used else "failed",
                error=intake.error,
                files=[
                    {
                        "file": f.archive_path.name,
                        "sha256": f.sha256,
                        "bytes": f.size_bytes,
                        "rows": f.rows_read,
                        "extra_columns": f.extra_columns,
                        "blank_lines": f.blank_lines,
                    }
                    for f in intake.files
                ],
                rows_read=read,
                rows_accepted=accepted,
                rows_quarantined=quarantined,
                rows_flagged=flagged,
                quarantine_reasons=quarantine_reasons,
                flag_reasons=flag_reasons,
                delta=asdict(intake.delta),
            )
        )
    seconds = (datetime.now(UTC).replace(tzinfo=None) - night.started_at).total_seconds()
    report = RunReport(night.run_id, night.run_date.isoformat(), status, seconds, sources)
    if link is not None:
        report.stages["linkage"] = asdict(link)
    if alerts is not None:
        report.stages["alerts"] = asdict(alerts)
    if exports is not None:
        report.stages["exports"] = exports.report_counts()
    elif night.link_skipped:
        report.status = "unlinked" if status == "complete" else status
        report.stages["linkage"] = {"skipped": night.link_skipped}
    report.digest = build_digest(
        night.con, night.project, night.run_id, asdict(report), night.stage_seconds
    )
    return report


def finish_night(night: Night, intakes: list[SourceIntake], report: RunReport) -> Path:
    """Write the run report and the validation HTML; record where they are."""
    validations = [intake.validation for intake in intakes if intake.validation is not None]
    write_html_report(night.report_dir / "validation.html", night.run_id, validations)
    path = report.write(night.report_dir)
    night.con.execute(
        "UPDATE run SET report_path = $path, status = $status, finished_at = $now"
        " WHERE run_id = $run_id",
        {
            "path": str(path),
            "status": report.status,
            "now": datetime.now(UTC).replace(tzinfo=None),
            "run_id": night.run_id,
        },
    )
    record_run(night.con, night.project, night.run_id, [f for i in intakes for f in i.files])
    night.con.close()
    return path


# ---- progress: one line per stage, counts only ---------------------------------------------

progress = logging.getLogger(PROGRESS_LOGGER)  # the console shows these (linkage/cli.py)


def intake_progress(night: Night, intakes: list[SourceIntake]) -> None:
    night.stage_done("intake")
    used = [intake for intake in intakes if intake.used]
    skipped = sorted(intake.source for intake in intakes if not intake.used)
    progress.info(
        "%s intake: %d of %d sources, %s rows read (%s unchanged), %s quarantined%s",
        night.run_date,
        len(used),
        len(intakes),
        f"{sum(intake.rows_read for intake in intakes):,}",
        f"{sum(intake.delta.carried for intake in used):,}",
        f"{sum(_quarantined_rows(intake) for intake in used):,}",
        f"; skipped: {', '.join(skipped)}" if skipped else "",
    )


def link_progress(night: Night, outcome: LinkOutcome | None) -> None:
    night.stage_done("link")
    if outcome is None:
        progress.info("%s link: skipped (the warning above says why)", night.run_date)
        return
    queue = outcome.review_queue
    how = (
        f"{outcome.records_relinked:,} re-linked"
        if outcome.linked == "incremental"
        else f"all linked: {outcome.linked}"
    )
    progress.info(
        "%s link: %s records (%s) -> %s persons in %.0f s; review: %s queued, %s recorded",
        night.run_date,
        f"{outcome.records:,}",
        how,
        f"{outcome.persons:,}",
        outcome.seconds,
        f"{queue.get('queued', 0):,}",
        f"{queue.get('recorded_only', 0) + queue.get('past_cap', 0):,}",
    )


def output_progress(
    night: Night, alerts: AlertOutcome | None, exports: ExportSummary | None
) -> None:
    night.stage_done("alerts and exports")
    delivered = sum(alerts.delivered_by_recipient.values()) if alerts else 0
    agencies = len(exports.agencies) if exports else 0
    progress.info(
        "%s alerts: %d delivered to %d agencies; exports: %d agencies",
        night.run_date,
        delivered,
        len(alerts.delivered_by_recipient) if alerts else 0,
        agencies,
    )
