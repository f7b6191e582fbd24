"""A person as a reviewer sees them: their records, the scored pairs between them, review
items, the graph and the id history (the records of agencies outside the role left out)."""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from linkage.review import identifier_columns
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
from linkage.warehouse import fetch_one

MAX_PERSON_RECORDS = 200  # a larger person's page lists its first records (by key)


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
    records = records_by_key(con, shown_keys)
    identifiers = identifier_columns(con)
    raw = raw_values(con, context, viewer, list(records.values()))
    views = [record_view(records[k], raw.get(k, {}), viewer, identifiers) for k in shown_keys]
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
        (key_l, key_r, review_row(viewer, reason, priority, stake, p, queued))
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
        graph=cluster_graph(con, context, viewer, [person_id], None),
        history=id_history(con, [person_id]),
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
    return None if row is None else HistoryRow(shown_value(row[0]) or "", *row[1:])
