"""Analysts' review of doubtful links: the queue, and decisions that outrank the model.

A decision on a pair of records is kept in `review_decision` and read by every later link
stage (a reviewed match always links, a reviewed non-match never does) and by training
(reviewed matches are labels for m).
"""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb
import pandas as pd

from linkage.errors import LinkageError
from linkage.link.cluster import Decisions
from linkage.warehouse import fetch_one


class UnknownRecordError(LinkageError):
    """A decision names a record the warehouse does not hold."""


def record_decision(
    con: duckdb.DuckDBPyConnection, key_a: str, key_b: str, is_match: bool, note: str = ""
) -> None:
    """Record (or replace) an analyst's decision on a pair of records."""
    for key in (key_a, key_b):
        found = fetch_one(con, "SELECT 1 FROM canonical_record WHERE record_key = $k", {"k": key})
        if found is None:
            raise UnknownRecordError(f"no record {key!r} in the warehouse (use source:record_id)")
    if key_a == key_b:
        raise LinkageError("a decision needs two different records")
    left, right = sorted((key_a, key_b))
    con.execute(
        "DELETE FROM review_decision WHERE record_key_l = $l AND record_key_r = $r",
        {"l": left, "r": right},
    )
    con.execute(
        "INSERT INTO review_decision VALUES ($l, $r, $decision, $note, $at)",
        {
            "l": left,
            "r": right,
            "decision": "match" if is_match else "non-match",
            "note": note,
            "at": datetime.now(UTC).replace(tzinfo=None),
        },
    )


def load_decisions(con: duckdb.DuckDBPyConnection) -> Decisions:
    rows = con.execute(
        "SELECT record_key_l, record_key_r, decision FROM review_decision"
    ).fetchall()
    return Decisions(
        matches=frozenset((left, right) for left, right, d in rows if d == "match"),
        non_matches=frozenset((left, right) for left, right, d in rows if d == "non-match"),
    )


def review_queue(con: duckdb.DuckDBPyConnection, limit: int = 50) -> pd.DataFrame:
    """The latest link stage's queued pairs not yet decided: most at stake first (an alert,
    then an open concern), then most probable."""
    return con.execute(
        """
        SELECT q.priority, q.stake, q.reason, q.match_probability, q.record_key_l,
               q.person_id_l, q.record_key_r, q.person_id_r
        FROM link_review q
        LEFT JOIN review_decision d USING (record_key_l, record_key_r)
        WHERE d.decision IS NULL AND q.queued
        ORDER BY q.priority, q.match_probability DESC, q.record_key_l, q.record_key_r, q.reason
        LIMIT $limit
        """,
        {"limit": limit},
    ).df()
