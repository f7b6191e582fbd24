"""The review queue as a reviewer sees it, and the search for a person or a record.

"To decide" lists first the decisions in force whose records have changed at source since
(re-queued, with the change), then the latest link stage's queued pairs that nobody has
decided, most at stake first; "not sure" lists the pairs a reviewer marked not sure. Only
pairs whose two records the reviewer may see are listed. The queue reads `link_review`
(thousands of rows whatever the index's size) and joins the records of one page only, so
it stays quick on a million-record warehouse.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

import duckdb

from linkage.review import DECISION_LABELS, ChangedDecision, FieldChange, changed_decisions
from linkage.review_app.permissions import Viewer, source_of
from linkage.warehouse import canonical_by_keys_sql, execute

Status = Literal["todo", "unsure"]
CHANGED_REASON = "changed since decided"
PERSON_ID = re.compile(r"P\d+", re.IGNORECASE)


@dataclass(frozen=True)
class QueueFilters:
    reason: str | None = None  # a reason as the reviewer sees it
    agency: str | None = None  # one of the pair's records is this agency's
    status: Status = "todo"

    def query(self) -> dict[str, str]:
        """The filters as URL query parameters (only those set)."""
        params = {"reason": self.reason, "agency": self.agency}
        shown = {key: value for key, value in params.items() if value}
        return shown | ({"status": self.status} if self.status != "todo" else {})


@dataclass
class QueueItem:
    position: int  # 0-based, in the filtered queue
    kind: Literal["changed", "pending", "unsure"]
    record_key_l: str
    record_key_r: str
    person_id_l: str | None
    person_id_r: str | None
    priority: int | None
    stake: str | None
    reasons: list[str]
    match_probability: float | None
    note: str | None = None  # a "not sure" decision's note, with who
    changes: list[FieldChange] = field(default_factory=list)
    summary_l: str = ""
    summary_r: str = ""


@dataclass
class QueuePage:
    items: list[QueueItem]
    total: int
    page: int
    pages: int
    reasons: list[str]  # filter choices, as the reviewer sees them
    filters: QueueFilters


def queue_page(
    con: duckdb.DuckDBPyConnection,
    viewer: Viewer,
    filters: QueueFilters,
    page: int = 1,
    page_size: int = 50,
    changed: list[ChangedDecision] | None = None,
) -> QueuePage:
    """One page of the filtered queue, with its records summarised; `changed`: the changed
    decisions if the caller has them (else they are read)."""
    reasons_by_label = _reasons_by_label(con, viewer)
    changed = changed_decisions(con) if changed is None else changed
    offset = (page - 1) * page_size
    total, items = _slice(con, viewer, filters, reasons_by_label, changed, offset, page_size)
    _summarise(con, items)
    pages = max(1, -(-total // page_size))
    return QueuePage(items, total, page, pages, sorted(reasons_by_label), filters)


def queue_item(
    con: duckdb.DuckDBPyConnection,
    viewer: Viewer,
    filters: QueueFilters,
    position: int,
    changed: list[ChangedDecision] | None = None,
) -> QueueItem | None:
    """The item at a position of the filtered queue (next and previous, after a decision)."""
    if position < 0:
        return None
    reasons = _reasons_by_label(con, viewer)
    changed = changed_decisions(con) if changed is None else changed
    _, items = _slice(con, viewer, filters, reasons, changed, position, 1)
    return items[0] if items else None


def _reasons_by_label(con: duckdb.DuckDBPyConnection, viewer: Viewer) -> dict[str, list[str]]:
    """Reason as the reviewer sees it -> the stored reasons it stands for."""
    rows = con.execute(
        "SELECT DISTINCT reason, record_key_l, record_key_r FROM link_review WHERE queued"
    ).fetchall()
    labels: dict[str, list[str]] = {CHANGED_REASON: []}
    for reason, key_l, key_r in rows:
        if viewer.may_see_pair(key_l, key_r):
            stored = labels.setdefault(viewer.visible_reason(reason), [])
            if reason not in stored:
                stored.append(reason)
    return labels


def _slice(
    con: duckdb.DuckDBPyConnection,
    viewer: Viewer,
    filters: QueueFilters,
    reasons_by_label: dict[str, list[str]],
    changed_in_force: list[ChangedDecision],
    offset: int,
    limit: int,
) -> tuple[int, list[QueueItem]]:
    """(items in the filtered queue, the items from offset to offset + limit)."""
    if filters.status == "unsure":
        return _unsure(con, viewer, filters, reasons_by_label, offset, limit)
    changed = [
        _changed_item(decision, viewer)
        for decision in changed_in_force
        if _wanted(decision.decision.record_key_l, decision.decision.record_key_r, viewer, filters)
        and filters.reason in (None, CHANGED_REASON)
    ]
    first = changed[offset : offset + limit]
    pending: list[QueueItem] = []
    if filters.reason == CHANGED_REASON:
        pending_total = 0
    else:
        stored = None if filters.reason is None else reasons_by_label.get(filters.reason, [])
        sql_offset = max(0, offset - len(changed))
        sql_limit = limit - len(first)
        pending_total, pending = _undecided(con, viewer, filters, stored, sql_offset, sql_limit)
    items = first + pending
    for position, item in enumerate(items, start=offset):
        item.position = position
    return len(changed) + pending_total, items


def _wanted(key_l: str, key_r: str, viewer: Viewer, filters: QueueFilters) -> bool:
    if not viewer.may_see_pair(key_l, key_r):
        return False
    return filters.agency is None or filters.agency in (source_of(key_l), source_of(key_r))


def _changed_item(decision: ChangedDecision, viewer: Viewer) -> QueueItem:
    d = decision.decision
    when = d.decided_at.strftime("%Y-%m-%d")
    return QueueItem(
        position=0,
        kind="changed",
        record_key_l=d.record_key_l,
        record_key_r=d.record_key_r,
        person_id_l=None,
        person_id_r=None,
        priority=None,
        stake=None,
        reasons=[f"{CHANGED_REASON}: {d.label} by {d.decided_by or 'unknown'} on {when}"],
        match_probability=None,
        changes=[c for c in decision.changes if viewer.may_see_change(c.record_key, c.field)],
    )


# The queued pairs the viewer may see that nobody has decided, one row per pair (a pair
# may be queued for several reasons).
UNDECIDED_CTES = """
WITH visible AS (
    SELECT *
    FROM link_review
    WHERE queued
      AND split_part(record_key_l, ':', 1) IN (SELECT unnest($agencies))
      AND split_part(record_key_r, ':', 1) IN (SELECT unnest($agencies))
      AND ($agency IS NULL
           OR $agency IN (split_part(record_key_l, ':', 1), split_part(record_key_r, ':', 1)))
),
pairs AS (
    SELECT record_key_l, record_key_r,
           any_value(person_id_l) AS person_id_l, any_value(person_id_r) AS person_id_r,
           min(priority) AS priority, arg_min(stake, priority) AS stake,
           max(match_probability) AS match_probability, list_sort(list(reason)) AS reasons
    FROM visible
    GROUP BY record_key_l, record_key_r
),
undecided AS (
    SELECT p.*
    FROM pairs p
    ANTI JOIN review_decision d USING (record_key_l, record_key_r)
    WHERE $reasons IS NULL OR len(list_intersect(p.reasons, $reasons)) > 0
)
"""
# ...most at stake first, then most probable.
UNDECIDED_SQL = (
    UNDECIDED_CTES
    + """
SELECT *, count(*) OVER () AS total
FROM undecided
ORDER BY priority, match_probability DESC, record_key_l, record_key_r
LIMIT $limit OFFSET $offset
"""
)
UNDECIDED_COUNT_SQL = UNDECIDED_CTES + "SELECT count(*) FROM undecided"


def _undecided(
    con: duckdb.DuckDBPyConnection,
    viewer: Viewer,
    filters: QueueFilters,
    reasons: list[str] | None,
    offset: int,
    limit: int,
) -> tuple[int, list[QueueItem]]:
    params = {
        "agencies": viewer.sorted_agencies,
        "agency": filters.agency,
        "reasons": reasons,
        "offset": offset,
        "limit": max(limit, 1),  # one row at least, to read the total
    }
    rows = con.execute(UNDECIDED_SQL, params).fetchall()
    total = int(rows[0][-1]) if rows else _count_undecided(con, params)
    items = [
        QueueItem(
            position=0,
            kind="pending",
            record_key_l=row[0],
            record_key_r=row[1],
            person_id_l=row[2],
            person_id_r=row[3],
            priority=row[4],
            stake=viewer.visible_stake(row[5]),
            reasons=sorted({viewer.visible_reason(reason) for reason in row[7]}),
            match_probability=float(row[6]),
        )
        for row in rows
    ]
    return total, items[:limit]


def _count_undecided(con: duckdb.DuckDBPyConnection, params: dict) -> int:
    """The total, when the page asked for is past the end."""
    counted = execute(con, UNDECIDED_COUNT_SQL, params).fetchall()
    return int(counted[0][0])


UNSURE_SQL = """
WITH unsure AS (
    SELECT record_key_l, record_key_r, decided_by, decided_at, note
    FROM review_decision
    WHERE decision = 'unsure'
      AND split_part(record_key_l, ':', 1) IN (SELECT unnest($agencies))
      AND split_part(record_key_r, ':', 1) IN (SELECT unnest($agencies))
      AND ($agency IS NULL
           OR $agency IN (split_part(record_key_l, ':', 1), split_part(record_key_r, ':', 1)))
),
items AS (
    SELECT u.record_key_l, u.record_key_r, any_value(q.person_id_l) AS person_id_l,
           any_value(q.person_id_r) AS person_id_r, min(q.priority) AS priority,
           arg_min(q.stake, q.priority) AS stake, max(q.match_probability) AS match_probability,
           list_sort(list(q.reason) FILTER (q.reason IS NOT NULL)) AS reasons,
           any_value(u.decided_by) AS decided_by, any_value(u.decided_at) AS decided_at,
           any_value(u.note) AS note
    FROM unsure u
    LEFT JOIN link_review q USING (record_key_l, record_key_r)
    GROUP BY u.record_key_l, u.record_key_r
)
SELECT *, count(*) OVER () AS total
FROM items
WHERE $reasons IS NULL OR len(list_intersect(reasons, $reasons)) > 0
ORDER BY decided_at, record_key_l, record_key_r
LIMIT $limit OFFSET $offset
"""


def _unsure(
    con: duckdb.DuckDBPyConnection,
    viewer: Viewer,
    filters: QueueFilters,
    reasons_by_label: dict[str, list[str]],
    offset: int,
    limit: int,
) -> tuple[int, list[QueueItem]]:
    reasons = None if filters.reason is None else reasons_by_label.get(filters.reason, [])
    params = {
        "agencies": viewer.sorted_agencies,
        "agency": filters.agency,
        "reasons": reasons,
        "offset": offset,
        "limit": limit,
    }
    rows = con.execute(UNSURE_SQL, params).fetchall()
    items = []
    for position, row in enumerate(rows, start=offset):
        key_l, key_r, person_l, person_r, priority, stake, probability, stored = row[:8]
        decided_by, decided_at, note = row[8:11]
        by = f"{DECISION_LABELS['unsure']}: {decided_by or 'unknown'}, {decided_at:%Y-%m-%d}"
        items.append(
            QueueItem(
                position=position,
                kind="unsure",
                record_key_l=key_l,
                record_key_r=key_r,
                person_id_l=person_l,
                person_id_r=person_r,
                priority=priority,
                stake=viewer.visible_stake(stake),
                reasons=sorted({viewer.visible_reason(reason) for reason in stored or []}),
                match_probability=None if probability is None else float(probability),
                note=f"{by}: {note}" if note else by,
            )
        )
    total = int(rows[0][-1]) if rows else 0
    return total, items


def _summarise(con: duckdb.DuckDBPyConnection, items: list[QueueItem]) -> None:
    """Each item's two records in a few words, and their persons (one query for the page)."""
    keys = sorted({key for item in items for key in (item.record_key_l, item.record_key_r)})
    if not keys:
        return
    columns = "record_key, forename, surname, date_of_birth"
    rows = con.execute(canonical_by_keys_sql(columns), {"keys": keys}).fetchall()
    found = {row[0]: row[1:] for row in rows}
    for item in items:
        for side in ("l", "r"):
            key = getattr(item, f"record_key_{side}")
            forename, surname, born, person_id = found.get(key, (None, None, None, None))
            words = " ".join(w for w in (surname, forename) if w) or "(no name)"
            summary = f"{words}, born {born.isoformat()}" if born else words
            setattr(item, f"summary_{side}", summary if key in found else "no longer held")
            if getattr(item, f"person_id_{side}") is None:
                setattr(item, f"person_id_{side}", person_id)


# ---------------------------------------------------------------------------------------
# Search
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Found:
    record_key: str
    person_id: str
    source: str
    source_record_id: str


def search(con: duckdb.DuckDBPyConnection, viewer: Viewer, text: str) -> list[Found]:
    """Records of a person id, or with a record key or source record id, that the viewer
    may see (at most 50)."""
    text = text.strip()
    if not text:
        return []
    if PERSON_ID.fullmatch(text):
        sql = "SELECT record_key, person_id, source, source_record_id FROM linked_index"
        sql += " WHERE person_id = $text"
        text = text.upper()
    else:
        sql = "SELECT record_key, person_id, source, source_record_id FROM linked_index"
        sql += " WHERE record_key = $text OR source_record_id = $text"
    rows = con.execute(
        sql + " AND source IN (SELECT unnest($agencies)) ORDER BY record_key LIMIT 50",
        {"text": text, "agencies": viewer.sorted_agencies},
    ).fetchall()
    return [Found(*row) for row in rows if viewer.may_see_record(row[0])]
