"""The evidence on a pair of records: side by side, the match weight comparison by
comparison, the cluster around them, their persons' id history, earlier decisions.

Read from the published tables (never written) through the reviewer's `Viewer` (see
records.py). `PairEvidence.snapshot()` is what a decision records as "what was shown".
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import duckdb

from linkage.extract import quote_identifier
from linkage.index import published_link_run
from linkage.review import (
    FieldChange,
    RecordedDecision,
    changes_since_decided,
    current_decision,
    identifier_columns,
)
from linkage.review_app.context import ReviewContext
from linkage.review_app.graph import Graph
from linkage.review_app.permissions import Viewer
from linkage.review_app.records import (
    CONCERN_FIELDS,
    PERSON_FIELDS,
    HistoryRow,
    RecordView,
    ReviewRow,
    cluster_graph,
    id_history,
    raw_values,
    record_view,
    records_by_key,
    review_row,
    shown_value,
)
from linkage.review_app.weights import WeightRow, match_probability
from linkage.warehouse import fetch_one


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
    records = records_by_key(con, [left_key, right_key])
    if len(records) != 2:
        return None
    identifiers = identifier_columns(con)
    raw = raw_values(con, context, viewer, list(records.values()))
    left, right = (
        record_view(records[key], raw.get(key, {}), viewer, identifiers)
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
        graph=cluster_graph(
            con,
            context,
            viewer,
            [p for p in (left.person_id, right.person_id) if p],
            (left_key, right_key),
        ),
        history=id_history(con, [p for p in {left.person_id, right.person_id} if p]),
        link_run_id=run.run_id if run else None,
        decision=decision,
        decisions=_logged_decisions(con, left_key, right_key),
        changes=[c for c in changes if viewer.may_see_change(c.record_key, c.field)],
    )


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
    """column -> the share of records holding the left and the right value: the snapshot
    the published scores used (linkage/link/incremental.py), else one scan of the records."""
    if not columns:
        return {}
    stored = _stored_frequencies(con, columns, left, right)
    if stored is not None:
        return stored
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
    return [review_row(viewer, *row) for row in rows]


def _logged_decisions(
    con: duckdb.DuckDBPyConnection, left_key: str, right_key: str
) -> list[LoggedDecision]:
    rows = con.execute(
        "SELECT decided_at, decided_by, decision, note, via FROM review_decision_log"
        " WHERE record_key_l = $l AND record_key_r = $r ORDER BY decided_at",
        {"l": left_key, "r": right_key},
    ).fetchall()
    return [
        LoggedDecision(shown_value(at) or "", by, decision, note, via)
        for at, by, decision, note, via in rows
    ]


def _stored_frequencies(
    con: duckdb.DuckDBPyConnection,
    columns: list[str],
    left: dict[str, Any],
    right: dict[str, Any],
) -> dict[str, tuple[float | None, float | None]] | None:
    known = fetch_one(
        con,
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'link_term_frequency'",
    )
    if known in (None, (0,)) or fetch_one(con, "SELECT count(*) FROM link_term_frequency") in (
        None,
        (0,),
    ):
        return None
    frequencies: dict[str, tuple[float | None, float | None]] = {}
    for column in columns:
        sides = []
        for record in (left, right):
            value = record.get(column)
            row = None
            if value is not None:
                row = fetch_one(
                    con,
                    "SELECT tf FROM link_term_frequency WHERE column_name = $column"
                    " AND value = CAST($value AS VARCHAR)",
                    {"column": column, "value": value},
                )
            sides.append(None if row is None else float(row[0]))
        frequencies[column] = (sides[0], sides[1])
    return frequencies
