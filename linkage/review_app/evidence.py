"""The evidence a reviewer sees: records side by side, the match weight comparison by
comparison, the cluster around a pair, the person-id history, earlier decisions.

Everything is read from the published tables (never written) and filtered through the
reviewer's `Viewer`: records of agencies outside their role are left out before anything
is drawn, and never-shared columns are withheld. `PairEvidence.snapshot()` is what a
decision records as "what was shown".
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Any

import duckdb

from linkage.config import PersonFields, SourceConfig
from linkage.extract import quote_identifier
from linkage.extract.header import ROW_NUMBER
from linkage.index import published_link_run
from linkage.review import (
    FieldChange,
    RecordedDecision,
    changes_since_decided,
    current_decision,
    identifier_columns,
)
from linkage.review_app.context import ReviewContext
from linkage.review_app.graph import Graph, layout
from linkage.review_app.permissions import Viewer
from linkage.review_app.weights import WeightRow, match_probability
from linkage.warehouse import fetch_one

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
MAX_PERSON_RECORDS = 200  # a larger person's page lists its first records (by key)


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
class FieldRow:
    field: str
    label: str
    left: str | None
    right: str | None
    left_raw: str | None
    right_raw: str | None
    state: str  # same | differs | missing (one side empty)


@dataclass(frozen=True)
class Scored:
    """The pair's stored score and its parts."""

    match_weight: float  # as the link stage stored it
    match_probability: float
    linked: bool
    prior_weight: float | None  # None when the model file is gone
    rows: list[WeightRow]

    @property
    def parts_total(self) -> float | None:
        if self.prior_weight is None:
            return None
        return self.prior_weight + sum(row.total for row in self.rows)

    @property
    def parts_probability(self) -> float | None:
        total = self.parts_total
        return None if total is None else match_probability(total)


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


@dataclass(frozen=True)
class LoggedDecision:
    decided_at: str
    decided_by: str | None
    decision: str
    note: str | None
    via: str | None


@dataclass
class PairEvidence:
    left: RecordView
    right: RecordView
    fields: list[FieldRow]
    scored: Scored | None  # None: the two were never scored together
    reviews: list[ReviewRow]
    graph: Graph
    history: list[HistoryRow]
    link_run_id: str | None
    decision: RecordedDecision | None
    decisions: list[LoggedDecision]
    changes: list[FieldChange] = field(default_factory=list)  # since the decision

    def snapshot(self) -> str:
        """What the reviewer was shown, as canonical JSON (a decision stores it)."""
        shown = {
            "pair": [self.left.record_key, self.right.record_key],
            "link_run_id": self.link_run_id,
            "records": [asdict(self.left), asdict(self.right)],
            "scored": None
            if self.scored is None
            else {
                "match_weight": self.scored.match_weight,
                "match_probability": self.scored.match_probability,
                "linked": self.scored.linked,
                "prior_weight": self.scored.prior_weight,
                "comparisons": [asdict(row) for row in self.scored.rows],
            },
            "review": [asdict(row) for row in self.reviews],
            "graph": {
                "records": [node.record_key for node in self.graph.nodes],
                "links": [
                    [link.key_l, link.key_r, link.match_probability, link.linked]
                    for link in self.graph.links
                ],
            },
            "history": [asdict(row) for row in self.history],
            "decision": None
            if self.decision is None
            else [self.decision.decision, self.decision.decided_by, str(self.decision.decided_at)],
            "changes": [asdict(change) for change in self.changes],
        }
        return json.dumps(shown, sort_keys=True, separators=(",", ":"), default=str)


@dataclass
class EdgeRow:
    record_key_l: str
    record_key_r: str
    match_weight: float
    match_probability: float
    linked: bool


@dataclass
class PersonEvidence:
    person_id: str
    records: list[RecordView]
    columns: list[tuple[str, str]]  # the fields any shown record holds: (field, label)
    edges: list[EdgeRow]
    graph: Graph
    history: list[HistoryRow]
    reviews: list[tuple[str, str, ReviewRow]]  # key_l, key_r, item
    more_records: int  # beyond MAX_PERSON_RECORDS


# ---------------------------------------------------------------------------------------
# A pair
# ---------------------------------------------------------------------------------------


def pair_evidence(
    con: duckdb.DuckDBPyConnection, context: ReviewContext, viewer: Viewer, key_a: str, key_b: str
) -> PairEvidence | None:
    """The evidence on two records, or None if either is unknown or not the viewer's to see."""
    if key_a == key_b or not viewer.may_see_pair(key_a, key_b):
        return None
    left_key, right_key = sorted((key_a, key_b))
    records = _records(con, [left_key, right_key])
    if len(records) != 2:
        return None
    identifiers = identifier_columns(con)
    raw = _raw_values(con, context, viewer, list(records.values()))
    left, right = (
        _record_view(records[key], raw.get(key, {}), viewer, identifiers)
        for key in (left_key, right_key)
    )
    run = published_link_run(con)
    decision = current_decision(con, left_key, right_key)
    in_force = decision is not None and decision.decision in ("match", "non-match")
    changes = changes_since_decided(con, left_key, right_key) if in_force else []
    return PairEvidence(
        left=left,
        right=right,
        fields=_field_rows(left, right, identifiers),
        scored=_scored(con, context, run.model_path if run else None, records, left_key, right_key),
        reviews=_pair_reviews(con, viewer, left_key, right_key),
        graph=_graph(
            con,
            context,
            viewer,
            [p for p in (left.person_id, right.person_id) if p],
            (left_key, right_key),
        ),
        history=_history(con, [p for p in {left.person_id, right.person_id} if p]),
        link_run_id=run.run_id if run else None,
        decision=decision,
        decisions=_logged_decisions(con, left_key, right_key),
        changes=[c for c in changes if viewer.may_see_change(c.record_key, c.field)],
    )


def _records(con: duckdb.DuckDBPyConnection, keys: list[str]) -> dict[str, dict[str, Any]]:
    """Canonical records (every column) with their person, by record key."""
    result = con.execute(
        """
        SELECT c.*, li.person_id
        FROM canonical_record c
        LEFT JOIN linked_index li USING (record_key)
        WHERE c.record_key IN (SELECT unnest($keys))
        ORDER BY c.record_key
        """,
        {"keys": keys},
    )
    columns = [d[0] for d in result.description]
    return {row[0]: dict(zip(columns, row, strict=True)) for row in result.fetchall()}


def _record_view(
    record: dict[str, Any], raw: dict[str, str], viewer: Viewer, identifiers: list[str]
) -> RecordView:
    source = record["source"]
    fields = [name for name, _ in PERSON_FIELDS] + identifiers + [n for n, _ in CONCERN_FIELDS]
    # a never-shared column is left out as if empty: "withheld" would tell that it is set
    values = {
        name: _shown(record.get(name))
        for name in fields
        if viewer.shows(source, name) and _shown(record.get(name)) is not None
    }
    return RecordView(
        record_key=record["record_key"],
        source=source,
        source_record_id=record["source_record_id"],
        person_id=record.get("person_id"),
        run_date=_shown(record.get("run_date")),
        values=values,
        raw={name: text for name, text in raw.items() if viewer.shows(source, name)},
    )


def _shown(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list):
        return ", ".join(str(item) for item in value) or None
    return str(value)


def _field_rows(left: RecordView, right: RecordView, identifiers: list[str]) -> list[FieldRow]:
    labels = PERSON_FIELDS + [(name, name) for name in identifiers] + CONCERN_FIELDS
    rows = []
    for name, label in labels:
        a, b = left.values.get(name), right.values.get(name)
        if a is None and b is None:
            continue
        if a is None or b is None:
            state = "missing"
        else:
            state = "same" if a == b else "differs"
        rows.append(FieldRow(name, label, a, b, left.raw.get(name), right.raw.get(name), state))
    return rows


def _scored(
    con: duckdb.DuckDBPyConnection,
    context: ReviewContext,
    model_path: Any,
    records: dict[str, dict[str, Any]],
    left_key: str,
    right_key: str,
) -> Scored | None:
    result = con.execute(
        "SELECT * FROM edge WHERE record_key_l = $l AND record_key_r = $r",
        {"l": left_key, "r": right_key},
    )
    columns = [d[0] for d in result.description]
    rows = result.fetchall()
    if not rows:
        return None
    edge = dict(zip(columns, rows[0], strict=True))
    gammas = {
        name.removeprefix("gamma_"): value
        for name, value in edge.items()
        if name.startswith("gamma_")
    }
    weights = context.model_weights(model_path) if model_path is not None else None
    parts: list[WeightRow] = []
    prior = None
    if weights is not None:
        frequencies = _term_frequencies(
            con, weights.tf_values_needed(gammas), records[left_key], records[right_key]
        )
        parts, prior = weights.waterfall(gammas, frequencies), weights.prior_weight
    return Scored(
        match_weight=float(edge["match_weight"]),
        match_probability=float(edge["match_probability"]),
        linked=bool(edge["linked"]),
        prior_weight=prior,
        rows=parts,
    )


def _term_frequencies(
    con: duckdb.DuckDBPyConnection,
    columns: list[str],
    left: dict[str, Any],
    right: dict[str, Any],
) -> dict[str, tuple[float | None, float | None]]:
    """column -> the share of records holding the left and the right value (one scan)."""
    if not columns:
        return {}
    selects, params = [], {}
    for position, column in enumerate(columns):
        quoted = quote_identifier(column)
        params[f"l{position}"], params[f"r{position}"] = left.get(column), right.get(column)
        selects += [
            f"count(*) FILTER (WHERE {quoted} = $l{position})",
            f"count(*) FILTER (WHERE {quoted} = $r{position})",
            f"count({quoted})",
        ]
    row = fetch_one(con, f"SELECT {', '.join(selects)} FROM canonical_record", params)
    assert row is not None
    frequencies = {}
    for position, column in enumerate(columns):
        held_l, held_r, filled = row[3 * position : 3 * position + 3]
        frequencies[column] = (
            held_l / filled if filled and left.get(column) is not None else None,
            held_r / filled if filled and right.get(column) is not None else None,
        )
    return frequencies


def _pair_reviews(
    con: duckdb.DuckDBPyConnection, viewer: Viewer, left_key: str, right_key: str
) -> list[ReviewRow]:
    rows = con.execute(
        "SELECT reason, priority, stake, match_probability, queued FROM link_review"
        " WHERE record_key_l = $l AND record_key_r = $r ORDER BY priority NULLS LAST, reason",
        {"l": left_key, "r": right_key},
    ).fetchall()
    return [_review_row(viewer, *row) for row in rows]


def _review_row(
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


def _graph(
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


def _history(con: duckdb.DuckDBPyConnection, person_ids: list[str]) -> list[HistoryRow]:
    """The ids' own events, and those of ids merged into them or split from them."""
    rows = con.execute(
        """
        SELECT DISTINCT run_date, event, person_id, related_person_id, reason
        FROM person_id_history
        WHERE person_id IN (SELECT unnest($persons))
           OR related_person_id IN (SELECT unnest($persons))
        ORDER BY run_date, person_id, event
        """,
        {"persons": sorted(person_ids)},
    ).fetchall()
    return [HistoryRow(_shown(d) or "", e, p, r, why) for d, e, p, r, why in rows]


def _logged_decisions(
    con: duckdb.DuckDBPyConnection, left_key: str, right_key: str
) -> list[LoggedDecision]:
    rows = con.execute(
        "SELECT decided_at, decided_by, decision, note, via FROM review_decision_log"
        " WHERE record_key_l = $l AND record_key_r = $r ORDER BY decided_at",
        {"l": left_key, "r": right_key},
    ).fetchall()
    return [
        LoggedDecision(_shown(at) or "", by, decision, note, via)
        for at, by, decision, note, via in rows
    ]


# ---------------------------------------------------------------------------------------
# Raw values, as the agency sent them
# ---------------------------------------------------------------------------------------


def raw_columns(config: SourceConfig) -> dict[str, list[str]]:
    """canonical field -> the columns of the agency's file it is made from."""
    mapping: dict[str, list[str]] = {}
    for name in PersonFields.model_fields:
        spec = getattr(config.fields, name)
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


def _raw_values(
    con: duckdb.DuckDBPyConnection,
    context: ReviewContext,
    viewer: Viewer,
    records: list[dict[str, Any]],
) -> dict[str, dict[str, str]]:
    """record key -> field -> 'Column: value' as sent, where the warehouse still holds the
    very file the record came from (raw_<source> keeps each agency's latest file only)."""
    found: dict[str, dict[str, str]] = {}
    by_source: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_source.setdefault(record["source"], []).append(record)
    for source, held in by_source.items():
        config = context.source_configs.get(source)
        if config is None or not viewer.may_see_source(source):
            continue
        rows = _raw_rows(con, config, held)
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
    con: duckdb.DuckDBPyConnection, config: SourceConfig, records: list[dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    table = f"raw_{config.source}"
    present = fetch_one(
        con, "SELECT 1 FROM duckdb_tables() WHERE table_name = $table", {"table": table}
    )
    latest = fetch_one(
        con,
        "SELECT sha256 FROM source_night WHERE source = $source"
        " ORDER BY run_date DESC, run_id DESC LIMIT 1",
        {"source": config.source},
    )
    if present is None or latest is None or not latest[0]:
        return {}
    files = set(str(latest[0]).split(";"))
    wanted = [r for r in records if r.get("file_sha256") in files and r.get("source_row_number")]
    columns = [row[0] for row in con.execute(f"DESCRIBE {quote_identifier(table)}").fetchall()]
    if not wanted or config.record_id not in columns:
        return {}
    result = con.execute(
        f"SELECT * FROM {quote_identifier(table)}"
        f" WHERE {quote_identifier(ROW_NUMBER)} IN (SELECT unnest($rows))",
        {"rows": [r["source_row_number"] for r in wanted]},
    )
    names = [d[0] for d in result.description]
    by_row = {}
    for values in result.fetchall():
        row = dict(zip(names, values, strict=True))
        by_row[(row[ROW_NUMBER], str(row[config.record_id]))] = row
    return {
        r["record_key"]: by_row[(r["source_row_number"], r["source_record_id"])]
        for r in wanted
        if (r["source_row_number"], r["source_record_id"]) in by_row
    }


# ---------------------------------------------------------------------------------------
# A person
# ---------------------------------------------------------------------------------------


def person_evidence(
    con: duckdb.DuckDBPyConnection, context: ReviewContext, viewer: Viewer, person_id: str
) -> PersonEvidence | None:
    """A person's records the viewer may see, the edges between them, the graph and the
    history; None if the person holds no record the viewer may see."""
    keys = [
        key
        for (key,) in con.execute(
            "SELECT record_key FROM linked_index WHERE person_id = $p ORDER BY record_key",
            {"p": person_id},
        ).fetchall()
        if viewer.may_see_record(key)
    ]
    if not keys:
        return None
    shown_keys = keys[:MAX_PERSON_RECORDS]
    records = _records(con, shown_keys)
    identifiers = identifier_columns(con)
    raw = _raw_values(con, context, viewer, list(records.values()))
    views = [_record_view(records[k], raw.get(k, {}), viewer, identifiers) for k in shown_keys]
    labels = PERSON_FIELDS + [(name, name) for name in identifiers] + CONCERN_FIELDS
    columns = [(name, label) for name, label in labels if any(name in v.values for v in views)]
    edges = [
        EdgeRow(key_l, key_r, float(w), float(p), bool(linked))
        for key_l, key_r, w, p, linked in con.execute(
            """
            SELECT record_key_l, record_key_r, match_weight, match_probability, linked
            FROM edge
            WHERE record_key_l IN (SELECT unnest($keys)) AND record_key_r IN (SELECT unnest($keys))
            ORDER BY match_weight DESC, record_key_l, record_key_r
            """,
            {"keys": shown_keys},
        ).fetchall()
    ]
    reviews = [
        (key_l, key_r, _review_row(viewer, reason, priority, stake, p, queued))
        for key_l, key_r, reason, priority, stake, p, queued in con.execute(
            """
            SELECT record_key_l, record_key_r, reason, priority, stake, match_probability, queued
            FROM link_review
            WHERE $p IN (person_id_l, person_id_r)
            ORDER BY priority NULLS LAST, match_probability DESC, record_key_l, record_key_r
            """,
            {"p": person_id},
        ).fetchall()
        if viewer.may_see_pair(key_l, key_r)
    ]
    return PersonEvidence(
        person_id=person_id,
        records=views,
        columns=columns,
        edges=edges,
        graph=_graph(con, context, viewer, [person_id], None),
        history=_history(con, [person_id]),
        reviews=reviews,
        more_records=len(keys) - len(shown_keys),
    )


def person_fate(con: duckdb.DuckDBPyConnection, person_id: str) -> HistoryRow | None:
    """The last id event of a person id no longer in the index (merged, retired)."""
    row = fetch_one(
        con,
        "SELECT run_date, event, person_id, related_person_id, reason FROM person_id_history"
        " WHERE person_id = $p ORDER BY run_date DESC, run_id DESC LIMIT 1",
        {"p": person_id},
    )
    return None if row is None else HistoryRow(_shown(row[0]) or "", *row[1:])
