"""Drift: a source's night measured field by field against its last good nights.

An agency that silently changes its extract (dates switched to ISO, a column emptied,
sex coded 1/2 instead of M/F) sends rows that parse, so no row check stops them; but
published, they quietly stop linking. Each night every used source is measured per
field (rows filled, rows failing the field's check, the codes of coded fields) and
compared with the source's last used nights (`field_night`). A jump past the
project's `drift` bounds holds the source for the night, like a missing file: its
last good records stay and the message names the field, both rates and a row.
Messages carry rates and row numbers only, never values.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pyarrow as pa

from linkage.config import DriftSettings, FieldSpec, SourceConfig
from linkage.identifiers import IdentifierRegistry
from linkage.stage import SelectBuilder
from linkage.validation_rules import too_long_column, validation_rules
from linkage.warehouse import execute

MAX_CODES = 200  # a "coded" field with more distinct values is free text: codes not compared
QUARANTINE = "rows quarantined"

# field -> (filled, failed) over the standardised rows; failed counts filled rows the
# standardiser nulled or flagged. Identifier types are added from the registry.
FIELD_SQL: dict[str, tuple[str, str]] = {
    "forename": ("forename IS NOT NULL", "false"),
    "middle_names": ("middle_names IS NOT NULL", "false"),
    "preferred_forename": ("preferred_forename IS NOT NULL", "false"),
    "surname": ("surname IS NOT NULL", "false"),
    "other_surnames": ("other_surnames IS NOT NULL", "false"),
    "date_of_birth": (
        "date_of_birth_raw IS NOT NULL",
        "coalesce(dob_issue, 'missing') <> 'missing'",
    ),
    "sex": ("sex_raw IS NOT NULL", "sex_issue IS NOT NULL"),
    "address": ("address_line IS NOT NULL", "false"),
    "town": ("town IS NOT NULL", "false"),
    "postcode": ("postcode_raw IS NOT NULL", "postcode_issue IS NOT NULL"),
}

# Formats a date column commonly switches to, named in the message when they fit.
COMMON_DATE_FORMATS = (
    "%Y-%m-%d",
    "%d/%m/%Y",
    "%m/%d/%Y",
    "%d-%m-%Y",
    "%d.%m.%Y",
    "%Y%m%d",
    "%d/%m/%y",
    "%Y/%m/%d",
    "%d %b %Y",
    "%d-%b-%Y",
)


@dataclass(frozen=True)
class FieldMeasure:
    """One field of one source on one night: counts only, no values."""

    field: str
    rows: int
    filled: int
    failed: int
    first_failed_row: int | None = None
    first_empty_row: int | None = None
    codes: dict[str, int] | None = None  # coded fields: raw code (upper case) -> rows

    @property
    def fill_rate(self) -> float:
        return self.filled / self.rows if self.rows else 0.0

    @property
    def failure_rate(self) -> float:
        return self.failed / self.rows if self.rows else 0.0


def measure_source(
    con: duckdb.DuckDBPyConnection,
    config: SourceConfig,
    registry: IdentifierRegistry,
    table: str,
    raw_table: str,
    quarantined_rows: int,
    rows_read: int,
) -> list[FieldMeasure]:
    """Every mapped field of a source's standardised rows tonight, in one scan."""
    sql_by_field = _field_sql(config, registry)
    aggregates = ["count(*)"]
    for filled, failed in sql_by_field.values():
        aggregates += [
            f"count(*) FILTER (WHERE {filled})",
            f"count(*) FILTER (WHERE {filled} AND {failed})",
            f"min(source_row_number) FILTER (WHERE {filled} AND {failed})",
            f"min(source_row_number) FILTER (WHERE NOT ({filled}))",
        ]
    params = {"source": config.source} | {f"id_{n}": n for n in registry.names}
    row = execute(
        con,
        f"SELECT {', '.join(aggregates)} FROM {table} WHERE source = $source",
        params,
    ).fetchall()[0]
    rows = int(row[0])
    codes = _codes(con, config, raw_table)
    measures = [FieldMeasure(QUARANTINE, rows_read, rows_read, quarantined_rows)]
    for position, field in enumerate(sql_by_field):
        filled, failed, first_failed, first_empty = row[1 + 4 * position : 5 + 4 * position]
        measures.append(
            FieldMeasure(field, rows, filled, failed, first_failed, first_empty, codes.get(field))
        )
    return measures


def _field_sql(config: SourceConfig, registry: IdentifierRegistry) -> dict[str, tuple[str, str]]:
    """(filled, failed) SQL of each field the source maps, record id first."""
    fields = {"record_id": ("source_record_id IS NOT NULL", "false")}
    for name, sql in FIELD_SQL.items():
        if config.fields.made_from(name) is not None:
            fields[name] = sql
    for name in sorted(config.identifiers):
        # nulled for failing its check, or for being longer than max_text_length
        failed = (
            f'("{name}_issue" IS NOT NULL OR "{too_long_column(name)}")'
            if name in registry.names
            else "false"
        )
        fields[name] = (f"identifiers_raw[$id_{name}] IS NOT NULL", failed)
    if config.concern is not None:
        fields["concern_type"] = ("concern_type IS NOT NULL", "false")
    return fields


def coded_fields(config: SourceConfig) -> dict[str, FieldSpec]:
    """Fields whose values are codes the config maps (sex, concern type and status)."""
    specs = {"sex": config.fields.sex}
    if config.concern is not None:
        specs |= {"concern_type": config.concern.type, "concern_status": config.concern.status}
    return {
        field: spec
        for field, spec in specs.items()
        if spec is not None and spec.codes is not None and spec.constant is None
    }


def _codes(
    con: duckdb.DuckDBPyConnection, config: SourceConfig, raw_table: str
) -> dict[str, dict[str, int]]:
    """Raw code -> rows for each coded field, read from the raw rows (unmapped codes too).

    A value longer than max_text_length is no code (its row is quarantined for it) and is
    left out, so field_night never stores a megabyte of damage."""
    result = {}
    bound = {"max_text_length": validation_rules().max_text_length}
    for field, spec in coded_fields(config).items():
        build = SelectBuilder(config.source)
        rows = con.execute(
            f"SELECT upper({build.text(spec)}) AS code, count(*) FROM {raw_table}"
            " WHERE code IS NOT NULL AND length(code) <= $max_text_length"
            f" GROUP BY code ORDER BY 2 DESC LIMIT {MAX_CODES + 1}",
            build.params | bound,
        ).fetchall()
        if len(rows) <= MAX_CODES:
            result[field] = {code: int(n) for code, n in rows}
    return result


def save_measures(
    con: duckdb.DuckDBPyConnection, params: dict, measures: list[FieldMeasure]
) -> None:
    """Append tonight's measures of one source to field_night."""
    if not measures:
        return
    table = pa.table(
        {
            "field": [m.field for m in measures],
            "rows": [m.rows for m in measures],
            "filled": [m.filled for m in measures],
            "failed": [m.failed for m in measures],
            "codes": [None if m.codes is None else list(m.codes) for m in measures],
            "code_rows": [None if m.codes is None else list(m.codes.values()) for m in measures],
        }
    )
    con.register("tonight_measure", table)
    execute(
        con,
        "INSERT INTO field_night SELECT $run_id, $run_date, $source, field, rows, filled,"
        " failed, codes, code_rows FROM tonight_measure",
        params,
    )
    con.unregister("tonight_measure")


def baseline(
    con: duckdb.DuckDBPyConnection, source: str, nights: int
) -> dict[str, list[FieldMeasure]]:
    """field -> its measures on the source's last `nights` used nights, newest first."""
    rows = execute(
        con,
        """
        WITH recent AS (
            SELECT run_id, run_date FROM source_night
            WHERE source = $source AND status = 'used'
            ORDER BY run_date DESC, run_id DESC LIMIT $nights
        )
        SELECT f.field, f.rows, f.filled, f.failed, f.codes, f.code_rows
        FROM field_night f JOIN recent USING (run_id)
        WHERE f.source = $source
        ORDER BY recent.run_date DESC, recent.run_id DESC, f.field
        """,
        {"source": source, "nights": nights},
    ).fetchall()
    measures: dict[str, list[FieldMeasure]] = {}
    for field, n_rows, filled, failed, codes, code_rows in rows:
        code_map = dict(zip(codes, code_rows, strict=True)) if codes is not None else None
        measures.setdefault(field, []).append(
            FieldMeasure(field, n_rows, filled, failed, codes=code_map)
        )
    return measures


def find_drift(
    tonight: list[FieldMeasure],
    earlier: dict[str, list[FieldMeasure]],
    settings: DriftSettings,
    mapped_codes: dict[str, set[str]],
) -> list[str]:
    """Why tonight is unlike the last good nights (empty: it is not), one line per field."""
    if not settings.enabled:
        return []
    reasons = []
    for measure in tonight:
        history = [m for m in earlier.get(measure.field, []) if m.rows > 0]
        if not history or measure.field in settings.ignore or measure.rows == 0:
            continue
        reasons += _rows_growth(measure, history, settings)
        reasons += _failure_jump(measure, history, settings)
        reasons += _fill_drop(measure, history, settings)
        reasons += _code_change(measure, history, settings, mapped_codes.get(measure.field, set()))
    return reasons


def _rows_growth(
    measure: FieldMeasure, history: list[FieldMeasure], settings: DriftSettings
) -> list[str]:
    """Far more rows than ever (a full history sent instead of the current extract)."""
    most = max(m.rows for m in history)
    if measure.field != QUARANTINE or measure.rows <= settings.rows_growth * most:
        return []
    if measure.rows - most < settings.min_rows:
        return []
    return [
        f"{measure.rows} rows read tonight, over {settings.rows_growth:g} times the most"
        f" ({most}) on the last {len(history)} good night(s)"
    ]


def _failure_jump(
    measure: FieldMeasure, history: list[FieldMeasure], settings: DriftSettings
) -> list[str]:
    worst = max(m.failure_rate for m in history)
    if measure.failure_rate - worst <= settings.failure_jump or measure.failed < settings.min_rows:
        return []
    what = QUARANTINE if measure.field == QUARANTINE else f"{measure.field} fails its check in"
    where = f"; first at row {measure.first_failed_row}" if measure.first_failed_row else ""
    return [
        f"{what} {measure.failure_rate:.1%} of rows tonight, at most {worst:.1%} on the last"
        f" {len(history)} good night(s){where}"
    ]


def _fill_drop(
    measure: FieldMeasure, history: list[FieldMeasure], settings: DriftSettings
) -> list[str]:
    usual = min(m.fill_rate for m in history)
    lost_rows = (usual - measure.fill_rate) * measure.rows
    dropped = usual - measure.fill_rate > settings.fill_drop
    halved = usual >= settings.fill_halved_from and measure.fill_rate < usual / 2
    if not (dropped or halved) or lost_rows < settings.min_rows:
        return []
    where = f"; first empty at row {measure.first_empty_row}" if measure.first_empty_row else ""
    return [
        f"{measure.field} filled in {measure.fill_rate:.1%} of rows tonight, at least"
        f" {usual:.1%} on the last {len(history)} good night(s){where}"
    ]


def _code_change(
    measure: FieldMeasure,
    history: list[FieldMeasure],
    settings: DriftSettings,
    mapped: set[str],
) -> list[str]:
    if measure.codes is None or any(m.codes is None for m in history):
        return []
    known = mapped.union(*(m.codes for m in history if m.codes))
    new_rows = sum(n for code, n in measure.codes.items() if code not in known)
    reasons = []
    if new_rows / measure.rows > settings.new_codes and new_rows >= settings.min_rows:
        reasons.append(
            f"{measure.field}: {new_rows / measure.rows:.1%} of rows tonight carry codes never"
            f" seen on the last {len(history)} good night(s)"
        )
    latest = history[0]
    vanished = [
        code
        for code, n in (latest.codes or {}).items()
        if n / latest.rows > settings.new_codes
        and n / latest.rows * measure.rows >= settings.min_rows
        and code not in measure.codes
    ]
    if vanished:
        reasons.append(
            f"{measure.field}: {len(vanished)} code(s) on over {settings.new_codes:.0%} of rows"
            " last good night are absent tonight"
        )
    return reasons


def date_format_hint(con: duckdb.DuckDBPyConnection, table: str, source: str) -> str:
    """A common date format most of tonight's unparseable dates of birth fit, as advice."""
    formats = {f"format{i}": fmt for i, fmt in enumerate(COMMON_DATE_FORMATS)}
    fits = ", ".join(
        f"count(*) FILTER (WHERE try_strptime(value, ${name}) IS NOT NULL)" for name in formats
    )
    counts = con.execute(
        f"""
        WITH failing AS (
            SELECT date_of_birth_raw AS value FROM {table}
            WHERE source = $source AND dob_issue = 'unparseable' LIMIT 500
        )
        SELECT count(*), {fits} FROM failing
        """,
        {"source": source} | formats,
    ).fetchall()[0]
    tried, best = counts[0], max(range(len(formats)), key=lambda i: counts[1 + i])
    if tried == 0 or counts[1 + best] < 0.9 * tried:
        return ""
    fmt = COMMON_DATE_FORMATS[best]
    return f" (they fit {fmt!r}: if the agency changed its date format, add it to formats)"
