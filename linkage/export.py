"""What leaves the warehouse: each agency's slice of the person index, under its sharing rules.

For every agency in schemas/sharing.yaml, `export_agency_slices` writes
`<output_dir>/exports/<run_id>/<agency>/`:

- `index.parquet` / `index.csv`: one row per record of that agency in `linked_index`:
  `source_record_id`, `person_id`, `link_confidence`, then one boolean per granted flag,
  then one column `<holder>_<column>` per granted field of another agency (the distinct
  values on that agency's records of the same person, sorted, ';'-joined). Nothing else.
- `changes.parquet` / `changes.csv`: what changed since the agency's last export (new and
  removed records, person id changes with the reason from `person_id_history`, and changes
  in which other agencies the person is known to, among those the agency may be told of).
- `manifest.json`: run id, model version, row counts, sha256 of every file, the grants.

What each agency was last told is kept in the warehouse table `export_state`. The files
are written to a hidden staged directory and moved into place only when the transaction
replacing `export_state` commits (linkage/staged.py): in a night, the same transaction as
the index and alerts. So agencies see all of a night's exports or none, and a re-run of the
same night gives an empty change file. Every CSV goes through `write_safe_csv`, which
neutralises spreadsheet formulas.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import polars as pl

from linkage.concerns import define_open_concern
from linkage.config import FlagSpec, ProjectConfig, SharingRules, load_sharing_rules
from linkage.errors import ConfigError, LinkageError
from linkage.extract import quote_identifier, sha256_of
from linkage.index import LinkRun, link_run, published_link_run
from linkage.lock import warehouse_lock
from linkage.staged import settle, stage_until_commit
from linkage.warehouse import fetch_one, open_warehouse, transaction

log = logging.getLogger(__name__)

OWN_COLUMNS = ["source_record_id", "person_id", "link_confidence"]
AGENCY_NAME = re.compile(r"[a-z][a-z0-9_]*")  # as a source config's `source`
CHANGE_COLUMNS = [
    "change",  # new_record | removed_record | person_id_changed | agencies_changed
    "source_record_id",
    "person_id",
    "previous_person_id",
    "known_agencies",
    "previous_known_agencies",
    "reason",
]
# Tonight's export_state rows, gathered agency by agency until every export is written.
TOLD_SQL = "SELECT agency, source_record_id, person_id, known_agencies FROM export_state LIMIT 0"


@dataclass(frozen=True)
class AgencyExport:
    """One agency's export: where it went and how many rows (no personal data)."""

    agency: str
    directory: Path
    rows: int
    changes: dict[str, int]


@dataclass
class ExportSummary:
    run_id: str
    model_version: str
    agencies: list[AgencyExport] = field(default_factory=list)
    seconds: float = 0.0

    def report_counts(self) -> dict[str, Any]:
        """The run report's `export` stage: counts only."""
        return {
            "run_id": self.run_id,
            "model_version": self.model_version,
            "seconds": self.seconds,
            "agencies": {
                export.agency: {"rows": export.rows, "changes": export.changes}
                for export in self.agencies
            },
        }

    def to_markdown(self) -> str:
        lines = [
            f"# Exports of run {self.run_id} (model {self.model_version})",
            "",
            "| agency | rows | changes | directory |",
            "|---|---:|---:|---|",
        ]
        for export in self.agencies:
            changes = sum(export.changes.values())
            lines.append(f"| {export.agency} | {export.rows} | {changes} | {export.directory} |")
        return "\n".join(lines) + "\n"


# --- the exports ------------------------------------------------------------------------


def export_latest(project: ProjectConfig) -> ExportSummary:
    """Export the published index (the latest linked run) for every agency."""
    with warehouse_lock(project.warehouse, "export"):
        con = open_warehouse(project.warehouse)
        try:
            settle(con, project.output_dir)
            return export_agency_slices(con, project, published_run_id(con))
        finally:
            con.close()


def published_run_id(con: duckdb.DuckDBPyConnection) -> str:
    """The run whose link stage published the current `linked_index`."""
    run = published_link_run(con)
    if run is None:
        raise LinkageError(
            "the warehouse has no published index: run `linkage nightly` or `linkage link` first"
        )
    return run.run_id


def export_agency_slices(
    con: duckdb.DuckDBPyConnection, project: ProjectConfig, run_id: str
) -> ExportSummary:
    """Write every agency's export of run `run_id` (which must be the published index)."""
    started = time.perf_counter()
    if project.sharing_rules is None:
        raise ConfigError(f"{project.config_path}: no sharing_rules set, so nothing is exported")
    rules = load_sharing_rules(project.sharing_rules, project.identifier_registry())
    _check_names(rules, project.sharing_rules)
    run = _link_run(con, run_id)
    run_dir = project.output_dir / "exports" / run_id
    summary = ExportSummary(run_id, run.model_version)
    # All agencies or none, files and state: a failed export tells no agency anything, so
    # its re-run computes the same change files. Inside a night, one with its index.
    with transaction(con):
        staged_dir = stage_until_commit(con, run_dir)
        define_open_concern(con, project)
        con.execute(f"CREATE OR REPLACE TEMP TABLE export_told AS {TOLD_SQL}")
        for agency in sorted(rules.agencies):
            export = export_agency(con, rules, agency, run, staged_dir / agency)
            summary.agencies.append(replace(export, directory=run_dir / agency))
        _replace_state(con, run_id)
        con.execute("DROP TABLE export_told")
    summary.seconds = round(time.perf_counter() - started, 2)
    log.info(
        "run %s: exported %d agencies, %d records in %.2f s",
        run_id,
        len(summary.agencies),
        sum(export.rows for export in summary.agencies),
        summary.seconds,
    )
    return summary


def _link_run(con: duckdb.DuckDBPyConnection, run_id: str) -> LinkRun:
    published = published_run_id(con)
    if run_id != published:
        raise LinkageError(
            f"run {run_id} is not the published index (run {published}): only the"
            " published index can be exported"
        )
    run = link_run(con, run_id)
    if run is None:
        raise LinkageError(f"run {run_id} has no link_run row: was it linked?")
    return run


def export_agency(
    con: duckdb.DuckDBPyConnection, rules: SharingRules, agency: str, run: LinkRun, directory: Path
) -> AgencyExport:
    """One agency's index, change file and manifest; what it was told goes to export_told."""
    sql, params = slice_sql(rules, agency)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE export_slice AS {sql}",
        params | {"run_date": run.run_date},
    )
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE export_current AS {CURRENT_STATE_SQL}",
        {"agency": agency, "visible": visible_agencies(rules, agency)},
    )
    con.execute(f"CREATE OR REPLACE TEMP TABLE export_change AS {CHANGES_SQL}", {"agency": agency})
    directory.mkdir(parents=True)
    rows = _write_table(con, "export_slice", "source_record_id", directory / "index")
    _write_table(con, "export_change", "source_record_id, change", directory / "changes")
    changes = _change_counts(con)
    write_manifest(directory, _manifest(con, rules, agency, run, rows, changes))
    con.execute(
        "INSERT INTO export_told SELECT $agency, source_record_id, person_id, known_agencies"
        " FROM export_current",
        {"agency": agency},
    )
    for table in ("export_slice", "export_current", "export_change"):
        con.execute(f"DROP TABLE {table}")
    log.info(
        "run %s: %s export: %d records, %d changes", run.run_id, agency, rows, sum(changes.values())
    )
    return AgencyExport(agency, directory, rows, changes)


def _check_names(rules: SharingRules, path: Path) -> None:
    """Agency names become directories and flags columns: refuse odd or clashing ones."""
    for agency in rules.agencies:
        if not AGENCY_NAME.fullmatch(agency):
            raise ConfigError(
                f"{path}: agencies.{agency}: not a source name ({AGENCY_NAME.pattern})"
            )
        names = export_columns(rules, agency)
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ConfigError(f"{path}: agencies.{agency}: export columns clash: {duplicates}")


def export_columns(rules: SharingRules, agency: str) -> list[str]:
    """The columns of an agency's index, in order: its own ids, flags, other agencies' fields."""
    share = rules.agencies[agency]
    fields = [f"{holder}_{column}" for holder, column in _field_grants(rules, agency)]
    return OWN_COLUMNS + list(share.flags) + fields


def _field_grants(rules: SharingRules, agency: str) -> list[tuple[str, str]]:
    share = rules.agencies[agency]
    return [(holder, column) for holder, columns in share.fields.items() for column in columns]


def visible_agencies(rules: SharingRules, agency: str) -> list[str]:
    """Other agencies this agency may learn a person is known to (via flags or fields)."""
    share = rules.agencies[agency]
    named = {rules.flags[flag].known_to for flag in share.flags} | set(share.fields)
    return sorted(name for name in named if name is not None and name != agency)


# --- SQL --------------------------------------------------------------------------------


def slice_sql(rules: SharingRules, agency: str) -> tuple[str, dict[str, Any]]:
    """The SELECT of an agency's index and its parameters ($run_date is the caller's)."""
    params: dict[str, Any] = {"agency": agency}
    selects = [f"o.{column}" for column in OWN_COLUMNS]
    for number, flag in enumerate(rules.agencies[agency].flags):
        expression, flag_params = _flag_sql(rules.flags[flag], f"flag_{number}")
        selects.append(f"{expression} AS {quote_identifier(flag)}")
        params |= flag_params
    grants = _field_grants(rules, agency)
    for number, (holder, column) in enumerate(grants):
        params[f"holder_{number}"] = holder
        selects.append(
            f"{_field_sql(column, f'holder_{number}')} AS {quote_identifier(f'{holder}_{column}')}"
        )
    # person_records carries only the canonical columns some grant draws on
    granted = sorted({column for _, column in grants})
    granted_columns = "".join(f", c.{quote_identifier(column)}" for column in granted)
    sql = SLICE_SQL.format(granted_columns=granted_columns, selects=",\n       ".join(selects))
    return sql, params


SLICE_SQL = """
WITH own_records AS (
    SELECT record_key, source_record_id, person_id, link_confidence
    FROM linked_index
    WHERE source = $agency
),
person_records AS (
    -- every linked record of the slice's persons, with only what flags and grants read
    SELECT li.person_id, li.record_key, li.source, c.concern_type, c.concern_status,
           c.concern_opened, c.concern_closed{granted_columns}
    FROM linked_index li
    LEFT JOIN canonical_record c USING (record_key)
    WHERE li.person_id IN (SELECT person_id FROM own_records)
),
open_concerns AS (
    -- open on the night (linkage/concerns.py)
    SELECT r.person_id, r.record_key, r.source, r.concern_type
    FROM person_records r
    LEFT JOIN concern_event_days e USING (source)
    WHERE concern_open_on(
        r.concern_type, r.concern_status, r.concern_opened, r.concern_closed,
        e.open_for_days, CAST($run_date AS DATE)
    )
)
SELECT {selects}
FROM own_records o
ORDER BY o.source_record_id
"""


def _flag_sql(spec: FlagSpec, name: str) -> tuple[str, dict[str, Any]]:
    """A flag as a boolean expression over the row `o`, with its parameters."""
    if spec.known_to is not None:
        # known_to never counts the receiving agency's own records
        return (
            "EXISTS (SELECT 1 FROM person_records p WHERE p.person_id = o.person_id"
            f" AND p.source = ${name}_agency AND p.source <> $agency)",
            {f"{name}_agency": spec.known_to},
        )
    conditions = ["c.person_id = o.person_id"]
    params: dict[str, Any] = {}
    if spec.concern_elsewhere:
        conditions.append("c.source <> $agency")
    if isinstance(spec.concern_types, list):
        conditions.append(f"list_contains(${name}_types, c.concern_type)")
        params[f"{name}_types"] = spec.concern_types
    return f"EXISTS (SELECT 1 FROM open_concerns c WHERE {' AND '.join(conditions)})", params


def _field_sql(column: str, holder_param: str) -> str:
    """Distinct values of a column on the holder's other records of the person, ';'-joined."""
    value = f"CAST(p.{quote_identifier(column)} AS VARCHAR)"
    return (
        f"(SELECT string_agg(DISTINCT {value}, ';' ORDER BY {value}) FROM person_records p"
        f" WHERE p.person_id = o.person_id AND p.source = ${holder_param}"
        " AND p.record_key <> o.record_key)"
    )


# What the agency is being told tonight, in the shape of export_state: the other agencies
# the person is known to, among those the agency may learn of.
CURRENT_STATE_SQL = """
WITH own_records AS (
    SELECT source_record_id, person_id FROM linked_index WHERE source = $agency
),
person_agencies AS (
    SELECT person_id, array_to_string(list_sort(list(DISTINCT source)), ';') AS known_agencies
    FROM linked_index
    WHERE source <> $agency AND list_contains(CAST($visible AS VARCHAR[]), source)
      AND person_id IN (SELECT person_id FROM own_records)  -- in proportion to the agency
    GROUP BY person_id
)
SELECT o.source_record_id, o.person_id, coalesce(a.known_agencies, '') AS known_agencies
FROM own_records o
LEFT JOIN person_agencies a USING (person_id)
"""

CHANGES_SQL = """
WITH previous AS (
    SELECT source_record_id, person_id, known_agencies FROM export_state WHERE agency = $agency
),
kept AS (
    SELECT c.source_record_id, c.person_id, p.person_id AS previous_person_id,
           c.known_agencies, p.known_agencies AS previous_known_agencies
    FROM export_current c
    JOIN previous p USING (source_record_id)
),
id_events AS (
    -- the history's merges and splits as (previous id -> new id, reason)
    SELECT person_id AS previous_person_id, related_person_id AS person_id,
           'merged into ' || related_person_id AS reason
    FROM person_id_history WHERE event = 'merged'
    UNION ALL
    SELECT related_person_id, person_id, 'split from ' || related_person_id
    FROM person_id_history WHERE event = 'split'
),
id_reasons AS (
    SELECT previous_person_id, person_id,
           string_agg(DISTINCT reason, '; ' ORDER BY reason) AS reason
    FROM id_events
    GROUP BY ALL
),
agency_sets AS (
    SELECT k.*,
        list_filter(string_split(known_agencies, ';'), lambda a: a <> '') AS agencies_now,
        list_filter(string_split(previous_known_agencies, ';'), lambda a: a <> '')
            AS agencies_before
    FROM kept k
    WHERE known_agencies IS DISTINCT FROM previous_known_agencies
),
agency_deltas AS (
    SELECT *,
        list_filter(agencies_now, lambda a: NOT list_contains(agencies_before, a)) AS added,
        list_filter(agencies_before, lambda a: NOT list_contains(agencies_now, a)) AS dropped
    FROM agency_sets
),
new_records AS (
    SELECT 'new_record' AS change, c.source_record_id, c.person_id,
           CAST(NULL AS VARCHAR) AS previous_person_id, c.known_agencies,
           CAST(NULL AS VARCHAR) AS previous_known_agencies, 'not in the last export' AS reason
    FROM export_current c
    ANTI JOIN previous p USING (source_record_id)
),
removed_records AS (
    SELECT 'removed_record', p.source_record_id, NULL, p.person_id, NULL, p.known_agencies,
           'no longer in the index'
    FROM previous p
    ANTI JOIN export_current c USING (source_record_id)
),
person_id_changes AS (
    SELECT 'person_id_changed', k.source_record_id, k.person_id, k.previous_person_id,
           k.known_agencies, k.previous_known_agencies,
           coalesce(r.reason, 'moved to another person')
    FROM kept k
    LEFT JOIN id_reasons r USING (previous_person_id, person_id)
    WHERE k.person_id <> k.previous_person_id
),
agency_changes AS (
    SELECT 'agencies_changed', source_record_id, person_id, previous_person_id,
           known_agencies, previous_known_agencies,
           concat_ws('; ',
               'newly linked to ' || nullif(array_to_string(added, ', '), ''),
               'no longer linked to ' || nullif(array_to_string(dropped, ', '), ''))
    FROM agency_deltas
)
SELECT * FROM new_records
UNION ALL SELECT * FROM removed_records
UNION ALL SELECT * FROM person_id_changes
UNION ALL SELECT * FROM agency_changes
"""


def _replace_state(con: duckdb.DuckDBPyConnection, run_id: str) -> None:
    """What the agencies have now been told replaces what they were told before."""
    con.execute("DELETE FROM export_state WHERE agency IN (SELECT agency FROM export_told)")
    con.execute(
        "INSERT INTO export_state SELECT agency, source_record_id, person_id,"
        " known_agencies, $run_id FROM export_told",
        {"run_id": run_id},
    )


def _change_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    rows = con.execute(
        "SELECT change, count(*) FROM export_change GROUP BY 1 ORDER BY 1"
    ).fetchall()
    return {change: int(n) for change, n in rows}


# --- files ------------------------------------------------------------------------------


def _write_table(con: duckdb.DuckDBPyConnection, table: str, order_by: str, stem: Path) -> int:
    """<stem>.parquet (DuckDB COPY) and <stem>.csv (spreadsheet-safe) of a temp table."""
    query = f"SELECT * FROM {table} ORDER BY {order_by}"
    con.execute(
        f"COPY ({query}) TO $path (FORMAT parquet)", {"path": str(stem.with_suffix(".parquet"))}
    )
    return write_safe_csv(con.sql(query).pl(), stem.with_suffix(".csv"))


def _manifest(
    con: duckdb.DuckDBPyConnection,
    rules: SharingRules,
    agency: str,
    run: LinkRun,
    rows: int,
    changes: dict[str, int],
) -> dict[str, Any]:
    previous = fetch_one(
        con, "SELECT max(run_id) FROM export_state WHERE agency = $agency", {"agency": agency}
    )
    share = rules.agencies[agency]
    return {
        "agency": agency,
        "run_id": run.run_id,
        "run_date": run.run_date.isoformat(),
        "model_version": run.model_version,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "changes_since_run_id": previous[0] if previous else None,
        "granted": {"flags": list(share.flags), "fields": dict(share.fields)},
        "columns": export_columns(rules, agency),
        "rows": {"index": rows, "changes": sum(changes.values())},
        "changes": changes,
    }


def write_manifest(directory: Path, manifest: dict[str, Any]) -> Path:
    """manifest.json with the sha256 and size of every other file in the directory."""
    manifest["files"] = {
        path.name: {"sha256": sha256_of(path), "bytes": path.stat().st_size}
        for path in sorted(directory.iterdir())
        if path.is_file() and path.name != "manifest.json"
    }
    path = directory / "manifest.json"
    path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return path


# --- spreadsheet-safe CSV ---------------------------------------------------------------

# OWASP CSV injection: a cell starting with one of these is read as a formula by Excel,
# LibreOffice or Google Sheets; a leading single quote makes it text.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
FORMULA_START = "^[=+\\-@\t\r]"  # the same, as a regular expression


def spreadsheet_safe(text: str) -> str:
    """The text, prefixed with ' if a spreadsheet would read it as a formula."""
    return "'" + text if text.startswith(FORMULA_TRIGGERS) else text


def write_safe_csv(
    rows: pd.DataFrame | pl.DataFrame | Sequence[Mapping[str, object]],
    path: Path,
    columns: Sequence[str] | None = None,
) -> int:
    """Write rows as a CSV that is safe to open in a spreadsheet; returns the rows written.

    `rows` is a pandas or polars DataFrame, or a list of dicts (column order: `columns`, else
    the first dict's keys; a key outside the columns is an error, a missing one is empty).
    Text cells (and headers) starting with = + - @ tab or CR get a leading '; numbers stay
    numbers; None/NaN are empty; booleans are true/false. UTF-8, RFC 4180 quoting.
    A polars frame is written by polars in one call (a million rows in about a second);
    other inputs row by row.
    """
    if isinstance(rows, pl.DataFrame):
        return _write_safe_polars(rows if columns is None else rows.select(columns), path)
    header, records = _tabulate(rows, columns)
    path.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([spreadsheet_safe(str(name)) for name in header])
        for record in records:
            writer.writerow([_cell_text(value) for value in record])
            written += 1
    return written


def _write_safe_polars(frame: pl.DataFrame, path: Path) -> int:
    safe = frame.select(
        _safe_column(name, dtype).alias(spreadsheet_safe(name))
        for name, dtype in frame.schema.items()
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    # as csv.writer: CRLF, and an empty text cell unquoted (polars writes "" for it)
    safe.write_csv(path, line_terminator="\r\n", null_value="")
    return safe.height


def _safe_column(name: str, dtype: pl.DataType) -> pl.Expr:
    """A column as write_safe_csv writes it: formulas neutralised, NaN and '' as missing."""
    column = pl.col(name)
    if dtype.is_float():
        return column.fill_nan(None)
    if dtype.is_numeric() or dtype == pl.Boolean or dtype.is_temporal():
        return column
    text = column.cast(pl.String)
    formula = text.str.contains(FORMULA_START)
    return pl.when(formula).then(pl.lit("'") + text).when(text != "").then(text)


def _tabulate(
    rows: pd.DataFrame | Sequence[Mapping[str, object]],
    columns: Sequence[str] | None,
) -> tuple[list[str], Any]:
    """(header, iterable of value sequences) from a pandas frame or a list of dicts."""
    if isinstance(rows, pd.DataFrame):
        frame = rows if columns is None else rows[list(columns)]
        return [str(name) for name in frame.columns], frame.itertuples(index=False, name=None)
    records = list(rows)
    header = list(columns) if columns is not None else list(records[0]) if records else []
    for number, record in enumerate(records, start=1):
        extra = sorted(set(record) - set(header))
        if extra:
            raise ValueError(f"row {number}: keys {extra} are not among the columns {header}")
    return header, ([record.get(name) for name in header] for record in records)


def _cell_text(value: object) -> str:
    if value is None or value is pd.NA or value is pd.NaT:
        return ""
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, float | np.floating) and math.isnan(value):
        return ""
    if isinstance(value, int | float | np.number):
        return str(value)  # a number, even a negative one, is not a formula
    return spreadsheet_safe(str(value))
