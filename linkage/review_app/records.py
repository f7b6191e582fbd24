"""Records as a reviewer sees them: standardised values, what the agency sent, the cluster
they sit in, their persons' id history.

Read from the published tables (never written) and filtered through the reviewer's
`Viewer`: records of agencies outside their role are left out before anything is drawn,
and never-shared columns are left out as if empty.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import duckdb

from linkage.config import PersonFields, SourceConfig
from linkage.extract.header import ROW_NUMBER
from linkage.review_app.context import ReviewContext
from linkage.review_app.graph import Graph, layout
from linkage.review_app.permissions import Viewer
from linkage.warehouse import canonical_by_keys_sql, fetch_one

PERSON_FIELDS = [
    ("forename", "Forename"),
    ("middle_names", "Middle names"),
    ("preferred_forename", "Preferred forename"),
    ("surname", "Surname"),
    ("other_surnames", "Other surnames"),
    ("date_of_birth", "Date of birth"),
    ("sex", "Sex"),
    ("address_line", "Address"),
    ("town", "Town"),
    ("postcode", "Postcode"),
    ("previous_postcodes", "Earlier postcodes"),
]
CONCERN_FIELDS = [
    ("concern_type", "Concern"),
    ("concern_status", "Concern status"),
    ("concern_opened", "Concern opened"),
    ("concern_closed", "Concern closed"),
]


@dataclass(frozen=True)
class RecordView:
    record_key: str
    source: str
    source_record_id: str
    person_id: str | None
    run_date: str | None  # the night of the extract the record came from
    values: dict[str, str | None]  # field -> value as shown (never-shared fields left out)
    raw: dict[str, str]  # field -> the raw columns and values it came from, as sent


@dataclass(frozen=True)
class ReviewRow:
    reason: str
    priority: int | None
    stake: str | None
    match_probability: float
    queued: bool


@dataclass(frozen=True)
class HistoryRow:
    run_date: str
    event: str
    person_id: str
    related_person_id: str | None
    reason: str | None


def records_by_key(con: duckdb.DuckDBPyConnection, keys: list[str]) -> dict[str, dict[str, Any]]:
    """Canonical records (every column) with their person, by record key."""
    result = con.execute(canonical_by_keys_sql(), {"keys": keys})
    columns = [d[0] for d in result.description]
    return {row[0]: dict(zip(columns, row, strict=True)) for row in result.fetchall()}


def record_view(
    record: dict[str, Any], raw: dict[str, str], viewer: Viewer, identifiers: list[str]
) -> RecordView:
    source = record["source"]
    fields = [name for name, _ in PERSON_FIELDS] + identifiers + [n for n, _ in CONCERN_FIELDS]
    # a never-shared column is left out as if empty: "withheld" would tell that it is set
    values = {
        name: shown_value(record.get(name))
        for name in fields
        if viewer.shows(source, name) and shown_value(record.get(name)) is not None
    }
    return RecordView(
        record_key=record["record_key"],
        source=source,
        source_record_id=record["source_record_id"],
        person_id=record.get("person_id"),
        run_date=shown_value(record.get("run_date")),
        values=values,
        raw={name: text for name, text in raw.items() if viewer.shows(source, name)},
    )


def shown_value(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list):
        return ", ".join(str(item) for item in value) or None
    return str(value)


def review_row(
    viewer: Viewer,
    reason: str,
    priority: int | None,
    stake: str | None,
    probability: float,
    queued: bool,
) -> ReviewRow:
    """A review item as the viewer may see it."""
    return ReviewRow(
        viewer.visible_reason(reason),
        priority,
        viewer.visible_stake(stake),
        float(probability),
        bool(queued),
    )


def cluster_graph(
    con: duckdb.DuckDBPyConnection,
    context: ReviewContext,
    viewer: Viewer,
    person_ids: list[str],
    pair: tuple[str, str] | None,
) -> Graph:
    members = con.execute(
        "SELECT record_key, person_id, source, source_record_id FROM linked_index"
        " WHERE person_id IN (SELECT unnest($persons)) ORDER BY record_key",
        {"persons": person_ids},
    ).fetchall()
    visible = [row for row in members if viewer.may_see_source(row[2])]
    keys = [row[0] for row in visible]
    edges = con.execute(
        """
        SELECT record_key_l, record_key_r, match_probability, linked
        FROM edge
        WHERE record_key_l IN (SELECT unnest($keys)) AND record_key_r IN (SELECT unnest($keys))
        ORDER BY record_key_l, record_key_r
        """,
        {"keys": keys},
    ).fetchall()
    return layout(
        [(key, person, source, record_id) for key, person, source, record_id in visible],
        [(kl, kr, float(p), bool(linked)) for kl, kr, p, linked in edges],
        pair,
        context.sources,
    )


def id_history(con: duckdb.DuckDBPyConnection, person_ids: list[str]) -> list[HistoryRow]:
    """The ids' own events, and those of ids merged into them or split from them."""
    rows = con.execute(
        """
        SELECT DISTINCT run_date, event, person_id, related_person_id, reason
        FROM person_id_history
        WHERE person_id IN (SELECT unnest($persons))
           OR related_person_id IN (SELECT unnest($persons))
        ORDER BY run_date, person_id, event, related_person_id, reason
        """,
        {"persons": sorted(person_ids)},
    ).fetchall()
    return [HistoryRow(shown_value(d) or "", e, p, r, why) for d, e, p, r, why in rows]


# ---------------------------------------------------------------------------------------
# Raw values, as the agency sent them
# ---------------------------------------------------------------------------------------


def raw_columns(config: SourceConfig) -> dict[str, list[str]]:
    """canonical field -> the columns of the agency's file it is made from."""
    mapping: dict[str, list[str]] = {}
    for name in PersonFields.model_fields:
        spec = None if name == "full_name" else config.fields.made_from(name)
        if spec is not None and spec.source_columns:
            mapping["address_line" if name == "address" else name] = spec.source_columns
    for kind, spec in config.identifiers.items():
        if spec.source_columns:
            mapping[kind] = spec.source_columns
    if config.concern is not None:
        for name in ("type", "status", "opened", "closed"):
            spec = getattr(config.concern, name)
            if spec is not None and spec.source_columns:
                mapping[f"concern_{name}"] = spec.source_columns
    return mapping


def raw_values(
    con: duckdb.DuckDBPyConnection,
    context: ReviewContext,
    viewer: Viewer,
    records: list[dict[str, Any]],
) -> dict[str, dict[str, str]]:
    """record key -> field -> 'Column: value' as sent, where the warehouse still holds the
    very file the record came from (each agency's latest file, read from the archive)."""
    found: dict[str, dict[str, str]] = {}
    by_source: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_source.setdefault(record["source"], []).append(record)
    for source, held in by_source.items():
        config = context.source_configs.get(source)
        if config is None or not viewer.may_see_source(source):
            continue
        rows = _raw_rows(con, context, config, held)
        mapping = {
            name: columns
            for name, columns in raw_columns(config).items()
            if viewer.shows(source, name)
        }
        for record in held:
            row = rows.get(record["record_key"])
            if row is None:
                continue
            found[record["record_key"]] = {
                name: "; ".join(f"{column}: {row.get(column) or ''}" for column in columns)
                for name, columns in mapping.items()
                if any(column in row for column in columns)
            }
    return found


def _raw_rows(
    con: duckdb.DuckDBPyConnection,
    context: ReviewContext,
    config: SourceConfig,
    records: list[dict[str, Any]],
) -> dict[str, dict[str, Any]]:
    latest = fetch_one(
        con,
        "SELECT sha256 FROM source_night WHERE source = $source"
        " ORDER BY run_date DESC, run_id DESC LIMIT 1",
        {"source": config.source},
    )
    if latest is None or not latest[0]:
        return {}
    checksums = str(latest[0]).split(";")
    wanted = [
        r for r in records if r.get("file_sha256") in checksums and r.get("source_row_number")
    ]
    if not wanted:
        return {}
    rows = context.rows_as_sent(config, checksums, [r["source_row_number"] for r in wanted])
    by_row = {(row[ROW_NUMBER], str(row.get(config.record_id))): row for row in rows}
    return {
        r["record_key"]: by_row[(r["source_row_number"], r["source_record_id"])]
        for r in wanted
        if (r["source_row_number"], r["source_record_id"]) in by_row
    }
