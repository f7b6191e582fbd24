"""Analysts' review of doubtful links: the queue, and decisions that outrank the model.

A decision on a pair of records is kept in `review_decision` and read by every later link
stage (a reviewed match always links, a reviewed non-match never does) and by training
(reviewed matches are labels for m). "Not sure" is recorded too, and changes nothing in the
index. Every decision says who made it and how (the browser or the CLI), what they were
shown, and the two records' values at the time: a decision whose records have changed at
source since is re-queued with the change (`changed_decisions`). `review_decision_log`
keeps every decision, replaced ones included.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Literal

import duckdb
import pandas as pd

from linkage.errors import LinkageError
from linkage.extract import quote_identifier
from linkage.link.cluster import Decisions
from linkage.schema import base_columns
from linkage.warehouse import (
    REVIEW_DECISION_ADDED,
    canonical_by_keys_sql,
    fetch_one,
    transaction,
)

Decision = Literal["match", "non-match", "unsure"]
DECISIONS: tuple[Decision, ...] = ("match", "non-match", "unsure")
DECISION_LABELS: dict[str, str] = {
    "match": "same person",
    "non-match": "different people",
    "unsure": "not sure",
}
# The values a decision is about: a change to one of these at source re-queues it. Derived
# columns (phonetic codes, the street parsed from the address) follow from these, and the
# record's history columns grow only when these change.
FINGERPRINT_COLUMNS = [
    "forename",
    "middle_names",
    "preferred_forename",
    "surname",
    "date_of_birth",
    "sex",
    "address_line",
    "town",
    "postcode",
]


class UnknownRecordError(LinkageError):
    """A decision names a record the warehouse does not hold."""


@dataclass(frozen=True)
class Shown:
    """What a reviewer was shown when deciding: the evidence as JSON, and its index's run."""

    evidence: str
    link_run_id: str | None

    @property
    def sha256(self) -> str:
        return evidence_sha256(self.evidence)


@dataclass(frozen=True)
class RecordedDecision:
    """A pair's current decision, as `review_decision` holds it."""

    record_key_l: str
    record_key_r: str
    decision: str
    note: str
    decided_at: datetime
    decided_by: str | None
    via: str | None

    @property
    def label(self) -> str:
        return DECISION_LABELS.get(self.decision, self.decision)


@dataclass(frozen=True)
class FieldChange:
    """One value of a decided record that differs now from when it was decided."""

    record_key: str
    field: str  # a FINGERPRINT_COLUMNS column or an identifier
    before: Any
    after: Any


@dataclass(frozen=True)
class ChangedDecision:
    """A decision in force whose records have changed at source since it was made."""

    decision: RecordedDecision
    changes: list[FieldChange]


def evidence_sha256(evidence: str) -> str:
    return hashlib.sha256(evidence.encode("utf-8")).hexdigest()


def record_decision(
    con: duckdb.DuckDBPyConnection,
    key_a: str,
    key_b: str,
    is_match: bool,
    note: str = "",
    decided_by: str | None = None,
) -> None:
    """Record (or replace) an analyst's match or non-match decision, from the CLI."""
    decision: Decision = "match" if is_match else "non-match"
    save_decision(con, key_a, key_b, decision, note, decided_by=decided_by, via="cli")


def save_decision(
    con: duckdb.DuckDBPyConnection,
    key_a: str,
    key_b: str,
    decision: Decision,
    note: str = "",
    *,
    decided_by: str | None,
    via: str,
    shown: Shown | None = None,
) -> None:
    """Record (or replace) a decision on a pair of records, with who, how and what was shown.

    The pair's previous decision is replaced in `review_decision`; both stay in
    `review_decision_log`.
    """
    if decision not in DECISIONS:
        raise LinkageError(f"a decision is one of {', '.join(DECISIONS)}, not {decision!r}")
    if key_a == key_b:
        raise LinkageError("a decision needs two different records")
    values = record_values(con, [key_a, key_b])
    for key in (key_a, key_b):
        if key not in values:
            raise UnknownRecordError(f"no record {key!r} in the warehouse (use source:record_id)")
    left, right = sorted((key_a, key_b))
    row = {
        "l": left,
        "r": right,
        "decision": decision,
        "note": note,
        "at": datetime.now(UTC).replace(tzinfo=None),
        "decided_by": decided_by,
        "via": via,
        "link_run_id": shown.link_run_id if shown else None,
        "evidence": shown.evidence if shown else None,
        "evidence_sha256": shown.sha256 if shown else None,
        "record_values": json.dumps({left: values[left], right: values[right]}, sort_keys=True),
        "fingerprint_l": fingerprint(values[left]),
        "fingerprint_r": fingerprint(values[right]),
    }
    with transaction(con):
        con.execute(
            "DELETE FROM review_decision WHERE record_key_l = $l AND record_key_r = $r",
            {"l": left, "r": right},
        )
        for table in ("review_decision", "review_decision_log"):
            con.execute(_INSERT_DECISION_SQL.format(table=table), row)


_INSERT_DECISION_SQL = (
    "INSERT INTO {table} (record_key_l, record_key_r, decision, note, decided_at, "
    + ", ".join(name for name, _ in REVIEW_DECISION_ADDED)
    + ") VALUES ($l, $r, $decision, $note, $at, "
    + ", ".join(f"${name}" for name, _ in REVIEW_DECISION_ADDED)
    + ")"
)


def load_decisions(con: duckdb.DuckDBPyConnection) -> Decisions:
    """The decisions the link stage obeys: matches and non-matches ("not sure" is neither)."""
    rows = con.execute(
        "SELECT record_key_l, record_key_r, decision FROM review_decision"
    ).fetchall()
    return Decisions(
        matches=frozenset((left, right) for left, right, d in rows if d == "match"),
        non_matches=frozenset((left, right) for left, right, d in rows if d == "non-match"),
    )


def current_decision(
    con: duckdb.DuckDBPyConnection, key_a: str, key_b: str
) -> RecordedDecision | None:
    left, right = sorted((key_a, key_b))
    row = fetch_one(
        con,
        f"SELECT {_DECISION_FIELDS} FROM review_decision"
        " WHERE record_key_l = $l AND record_key_r = $r",
        {"l": left, "r": right},
    )
    return None if row is None else RecordedDecision(*row)


_DECISION_FIELDS = "record_key_l, record_key_r, decision, note, decided_at, decided_by, via"


def review_queue(con: duckdb.DuckDBPyConnection, limit: int = 50) -> pd.DataFrame:
    """The latest link stage's queued pairs not yet decided (a "not sure" is still open):
    most at stake first (an alert, then an open concern), then most probable."""
    return con.execute(
        """
        SELECT q.priority, q.stake, q.reason, q.match_probability, q.record_key_l,
               q.person_id_l, q.record_key_r, q.person_id_r
        FROM link_review q
        LEFT JOIN review_decision d USING (record_key_l, record_key_r)
        WHERE (d.decision IS NULL OR d.decision = 'unsure') AND q.queued
        ORDER BY q.priority, q.match_probability DESC, q.record_key_l, q.record_key_r, q.reason
        LIMIT $limit
        """,
        {"limit": limit},
    ).df()


# ---------------------------------------------------------------------------------------
# Records changed since a decision
# ---------------------------------------------------------------------------------------


def identifier_columns(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The canonical record's identifier columns: those beyond the base columns (one per
    registered type, whatever the registry was when the warehouse was made)."""
    base = {column.name for column in base_columns()}
    present = [row[0] for row in con.execute("DESCRIBE canonical_record").fetchall()]
    return [name for name in present if name not in base]


def record_values(con: duckdb.DuckDBPyConnection, keys: list[str]) -> dict[str, dict[str, Any]]:
    """record key -> its fingerprinted values (empty ones left out), for the records held."""
    columns = FINGERPRINT_COLUMNS + identifier_columns(con)
    selected = ", ".join(quote_identifier(column) for column in ["record_key", *columns])
    sql = canonical_by_keys_sql(selected, with_person=False)
    rows = con.execute(sql, {"keys": sorted(set(keys))}).fetchall()
    return {
        row[0]: {
            column: _plain(value)
            for column, value in zip(columns, row[1:], strict=True)
            if value is not None
        }
        for row in rows
    }


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date) else value


def fingerprint(values: dict[str, Any]) -> str:
    """A record's values as one hash; an empty column (e.g. a newly registered identifier)
    does not change it."""
    text = json.dumps(values, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def changed_decisions(con: duckdb.DuckDBPyConnection) -> list[ChangedDecision]:
    """Decisions in force (match, non-match) whose records changed at source since: a value
    differs from when the decision was made.

    A decision on a record no longer sent is left alone: it changes nothing while the record
    is away, and is checked again if the record comes back.
    """
    rows = con.execute(
        f"SELECT {_DECISION_FIELDS}, record_values, fingerprint_l, fingerprint_r"
        " FROM review_decision WHERE decision IN ('match', 'non-match')"
        " AND record_values IS NOT NULL ORDER BY decided_at, record_key_l, record_key_r"
    ).fetchall()
    current = record_values(con, [key for row in rows for key in row[:2]])
    changed = [ChangedDecision(RecordedDecision(*row[:7]), _changes(row, current)) for row in rows]
    return [decision for decision in changed if decision.changes]


def decisions_state(con: duckdb.DuckDBPyConnection) -> tuple:
    """What `changed_decisions` depends on, cheaply: the nights published (canonical records
    change only in a night's publish, which writes `source_night` in the same transaction)
    and the decisions recorded. Equal states give equal changed decisions."""
    row = fetch_one(
        con,
        "SELECT (SELECT count(*) FROM source_night), (SELECT max(run_id) FROM source_night),"
        " (SELECT count(*) FROM review_decision_log), (SELECT count(*) FROM review_decision),"
        " (SELECT max(decided_at) FROM review_decision)",
    )
    return tuple(row or ())


def changes_since_decided(
    con: duckdb.DuckDBPyConnection, key_a: str, key_b: str
) -> list[FieldChange]:
    """What changed in a decided pair's records since its decision (empty: nothing)."""
    left, right = sorted((key_a, key_b))
    row = fetch_one(
        con,
        f"SELECT {_DECISION_FIELDS}, record_values, fingerprint_l, fingerprint_r"
        " FROM review_decision WHERE record_key_l = $l AND record_key_r = $r"
        " AND record_values IS NOT NULL",
        {"l": left, "r": right},
    )
    return [] if row is None else _changes(row, record_values(con, [left, right]))


def _changes(row: tuple, current: dict[str, dict[str, Any]]) -> list[FieldChange]:
    """A decision row's changes against the records' current values (none while one of
    its records is not held)."""
    then = json.loads(row[7])
    if row[0] not in current or row[1] not in current:
        return []
    changes = []
    for key, recorded in ((row[0], row[8]), (row[1], row[9])):
        if fingerprint(current[key]) != recorded:
            changes += _differences(key, then.get(key, {}), current[key])
    return changes


def _differences(key: str, before: dict[str, Any], after: dict[str, Any]) -> list[FieldChange]:
    fields = [f for f in FINGERPRINT_COLUMNS if f in before or f in after]
    fields += sorted((set(before) | set(after)) - set(FINGERPRINT_COLUMNS))
    return [
        FieldChange(key, field, before.get(field), after.get(field))
        for field in fields
        if before.get(field) != after.get(field)
    ]
