"""Alerts: linked people with open concerns, told to the agencies that should know.

Each night, the rules in schemas/alerts.yaml are matched against the concerns held on
the records of each linked person. A rule's conditions must each be met by a record of a
different agency; the alert fires only when every link between those records clears the
rule's confidence (the weakest edge on the strongest path between them), otherwise the
pair goes to `alert_review`. Alerts have stable ids: a condition that persists is
`ongoing`, one that clears is `resolved`, and person-id merges carry alerts along.

Every step is a SQL statement over all persons at once: matching in linkage/alert_match.py,
the lifecycle in linkage/alert_lifecycle.py; this module loads the warehouse's tables into
them, publishes and delivers, and offers the same matching over data frames (the truth).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from linkage import alert_match
from linkage.alert_lifecycle import next_alert_number, next_alerts
from linkage.config import AlertRule, ProjectConfig, load_alert_rules
from linkage.export import write_safe_csv
from linkage.staged import stage_until_commit
from linkage.warehouse import PUBLISHED_TABLES, transaction

log = logging.getLogger(__name__)
BELOW_CONFIDENCE = "link below rule confidence"


@dataclass(frozen=True)
class RuleMatch:
    """A person meeting a rule, the records relied on, and the weakest link between them."""

    rule_id: str
    person_id: str
    record_keys: tuple[str, ...]  # one per condition, in condition order
    holders: tuple[str, ...]  # agencies of those records
    confidence: float


# --- which concerns count tonight, from the warehouse -----------------------------------

CONCERNS_SQL = """
INSERT INTO alert_concern
WITH concern_records AS (
    SELECT li.person_id, c.record_key, c.source, c.source_record_id, c.concern_type,
           c.concern_status, c.concern_opened, c.concern_closed
    FROM canonical_record c JOIN linked_index li USING (record_key)
    WHERE c.concern_type IS NOT NULL
),
with_end AS (
    -- when the concern stopped counting: its closing date (whatever the status says, as
    -- linkage/concerns.py reads it), or an event's expiry. A concern closed with no date
    -- at all ended at an unknown time: counted as long closed, not as open for ever.
    SELECT r.*,
        CASE
            WHEN r.concern_status = 'closed'
                THEN coalesce(r.concern_closed, r.concern_opened, DATE '1900-01-01')
            WHEN e.open_for_days IS NOT NULL THEN least(
                r.concern_closed,
                r.concern_opened + to_days(CAST(e.open_for_days AS INTEGER)))
            ELSE r.concern_closed
        END AS ends_on
    FROM concern_records r LEFT JOIN event_sources e USING (source)
)
SELECT person_id, record_key, source, concern_type,
       concern_opened AS opened, CAST(ends_on AS DATE) AS ends_on
FROM with_end
"""

PERSON_AGES_SQL = """
INSERT INTO alert_person_age
SELECT person_id,
       date_diff('year', date_of_birth, $night)
       - CASE WHEN strftime(date_of_birth, '%m%d') > strftime($night, '%m%d') THEN 1 ELSE 0 END
FROM person
WHERE date_of_birth IS NOT NULL AND person_id IN (SELECT person_id FROM alert_concern)
"""

PERSON_RECORDS_SQL = """
INSERT INTO alert_person_record
SELECT person_id, record_key, source, source_record_id
FROM linked_index
WHERE person_id IN (SELECT person_id FROM alert_candidate)
"""

PERSON_LINKS_SQL = """
INSERT INTO alert_link
SELECT e.record_key_l, e.record_key_r, e.match_probability
FROM edge e
JOIN alert_person_record l ON l.record_key = e.record_key_l
JOIN alert_person_record r ON r.record_key = e.record_key_r
WHERE e.linked AND l.person_id = r.person_id
"""


def load_concerns(con: duckdb.DuckDBPyConnection, project: ProjectConfig) -> None:
    """`alert_concern`: every linked record carrying a concern, with when it stops counting."""
    events = pd.DataFrame(
        list(project.event_concern_days().items()), columns=["source", "open_for_days"]
    )
    con.execute(alert_match.CONCERN_DDL)
    con.register("event_sources", events)
    try:
        con.execute(CONCERNS_SQL)
    finally:
        con.unregister("event_sources")


def load_person_ages(con: duckdb.DuckDBPyConnection, run_date: date) -> None:
    """`alert_person_age`: the best-known age on the night of each person with a concern."""
    con.execute(alert_match.PERSON_AGE_DDL)
    con.execute(PERSON_AGES_SQL, {"night": run_date})


def load_person_records(con: duckdb.DuckDBPyConnection) -> None:
    """`alert_person_record` and `alert_link`: the records of every person with candidate
    concerns, and the linked edges between them."""
    con.execute(alert_match.PERSON_RECORD_DDL)
    con.execute(PERSON_RECORDS_SQL)
    con.execute(alert_match.LINK_DDL)
    con.execute(PERSON_LINKS_SQL)


# --- matching rules, for data frames (the generator's truth, tests) -----------------------


def match_rules(
    rules: list[AlertRule],
    concerns: pd.DataFrame,
    ages: dict[str, int],
    confidence: LinkConfidence | CertainLinks,
    run_date: date,
) -> list[RuleMatch]:
    """Every (rule, person) the concerns satisfy, with the strongest-linked records.

    The same set-based steps as the nightly run, over an in-memory database; `concerns`
    has person_id, record_key, source, concern_type, opened and ends_on.
    """
    with duckdb.connect() as con:
        con.execute(alert_match.CONCERN_DDL)
        con.execute(alert_match.PERSON_AGE_DDL)
        con.register("concern_frame", concerns)
        con.register("age_frame", pd.DataFrame({"person_id": list(ages),
                                                "age": list(ages.values())}))  # fmt: skip
        con.execute(
            "INSERT INTO alert_concern SELECT person_id, record_key, source, concern_type,"
            " CAST(opened AS DATE), CAST(ends_on AS DATE) FROM concern_frame"
        )
        con.execute("INSERT INTO alert_person_age SELECT person_id, age FROM age_frame")
        alert_match.load_rules(con, rules)
        alert_match.find_candidates(con, run_date)
        if isinstance(confidence, LinkConfidence):
            confidence.load_links(con)
        alert_match.find_bottlenecks(con, certain=isinstance(confidence, CertainLinks))
        alert_match.best_assignments(con, rules)
        rows = con.execute(
            "SELECT rule_id, person_id, record_keys, holders, confidence"
            " FROM alert_match JOIN alert_rule USING (rule_id)"
            " ORDER BY rule_position, person_id"
        ).fetchall()
    return [
        RuleMatch(rule_id, str(person_id), tuple(keys), tuple(holders), float(weakest))
        for rule_id, person_id, keys, holders, weakest in rows
    ]


class LinkConfidence:
    """The weakest edge on the strongest path between two records of one person.

    From a person's linked edges (person_id, record_key_l, record_key_r,
    match_probability); computed as the nightly run does (alert_match.find_bottlenecks).
    """

    def __init__(self, edges: pd.DataFrame) -> None:
        self.edges = edges

    def load_links(self, con: duckdb.DuckDBPyConnection) -> None:
        """The edges as `alert_link` in `con`."""
        con.execute(alert_match.LINK_DDL)
        con.register("link_frame", self.edges)
        try:
            con.execute(
                "INSERT INTO alert_link"
                " SELECT record_key_l, record_key_r, match_probability FROM link_frame"
            )
        finally:
            con.unregister("link_frame")

    def between(self, a: str, b: str) -> float:
        if a == b:
            return 1.0
        with duckdb.connect() as con:
            self.load_links(con)
            con.execute("CREATE TEMP TABLE alert_source AS SELECT $a AS record_key", {"a": a})
            alert_match.find_bottlenecks(con)
            rows = con.execute(
                "SELECT width FROM alert_bottleneck WHERE record_key = $b", {"b": b}
            ).fetchall()
        return float(rows[0][0]) if rows else 0.0


class CertainLinks:
    """Every pair is surely one person: for matching rules against the truth."""

    def between(self, a: str, b: str) -> float:
        return 1.0


# --- tonight's run ------------------------------------------------------------------------

ALERT_COLUMNS = [
    "alert_id", "rule_id", "person_id", "recipient", "status", "confidence", "record_keys",
    "holders", "recipient_record_ids", "first_run_id", "first_run_date", "last_run_id",
    "last_run_date", "resolved_run_id", "note",
]  # fmt: skip


@dataclass
class AlertOutcome:
    by_rule_and_status: dict[str, int]
    delivered_by_recipient: dict[str, int]
    review_items: int
    files: list[str]


def run_alerts(
    con: duckdb.DuckDBPyConnection, project: ProjectConfig, run_id: str, run_date: date
) -> AlertOutcome | None:
    """Match tonight's rules, update the alert table, deliver per-agency files.

    Every step is a set operation over all persons (linkage/alert_match.py,
    linkage/alert_lifecycle.py); the working tables are temporary and dropped after.
    """
    if project.alert_rules is None:
        return None
    rules = load_alert_rules(project.alert_rules).rules
    out_dir = project.output_dir / "runs" / run_id / "alerts"
    # The alert table and the files agencies are sent, all or nothing (in a night, one
    # transaction with its index); a rollback drops the working tables too.
    with transaction(con):
        alert_match.load_rules(con, rules)
        load_concerns(con, project)
        load_person_ages(con, run_date)
        alert_match.find_candidates(con, run_date)
        load_person_records(con)
        alert_match.find_bottlenecks(con)
        alert_match.best_assignments(con, rules)
        alert_match.address_alerts(con)
        next_alerts(con, ALERT_COLUMNS, run_id, run_date, next_alert_number(con))
        review_items = _publish_alerts(con, run_id)
        delivered = _delivered_tonight(con, run_id, run_date)
        counts = con.execute("SELECT rule_id || ' ' || status, count(*) FROM alert GROUP BY ALL")
        by_rule_and_status = {str(key): int(n) for key, n in sorted(counts.fetchall())}
        alert_match.drop_match_tables(con)
        con.execute("DROP TABLE temp.alert_next")
        staged_files = _deliver(delivered, stage_until_commit(con, out_dir))
    files = [out_dir / path.name for path in staged_files]
    delivered_by_recipient = {recipient: len(rows) for recipient, rows in delivered.items()}
    log.info(
        "run %s: %d alerts delivered, %d for review",
        run_id, sum(delivered_by_recipient.values()), review_items,
    )  # fmt: skip
    return AlertOutcome(
        by_rule_and_status=by_rule_and_status,
        delivered_by_recipient=delivered_by_recipient,
        review_items=review_items,
        files=[str(path) for path in files],
    )


def _update_lifecycle(
    previous: pd.DataFrame,
    current: pd.DataFrame,
    merged_into: dict[str, str],
    run_id: str,
    run_date: date,
    next_number: int,
) -> pd.DataFrame:
    """All alerts after tonight, for data frames: the nightly statement over an in-memory
    database holding `previous` as the alert table, `current` as tonight's firing alerts."""
    with duckdb.connect() as con:
        con.execute(PUBLISHED_TABLES["alert"])
        con.execute(PUBLISHED_TABLES["person_id_history"])
        con.execute(alert_match.TONIGHT_DDL)
        con.register("previous_frame", previous)
        con.register("current_frame", current)
        merges = pd.DataFrame(list(merged_into.items()), columns=["person_id", "related"])
        con.register("merge_frame", merges)
        con.execute(f"INSERT INTO alert SELECT {', '.join(ALERT_COLUMNS)} FROM previous_frame")
        tonight = ", ".join(["rule_id", "person_id", "recipient", "confidence", "record_keys",
                             "holders", "recipient_record_ids"])  # fmt: skip
        con.execute(f"INSERT INTO alert_tonight SELECT {tonight} FROM current_frame")
        con.execute(
            "INSERT INTO person_id_history (person_id, event, related_person_id)"
            " SELECT person_id, 'merged', related FROM merge_frame"
        )
        next_alerts(con, ALERT_COLUMNS, run_id, run_date, next_number)
        return con.execute("SELECT * FROM alert_next ORDER BY alert_id").df()


def _publish_alerts(con: duckdb.DuckDBPyConnection, run_id: str) -> int:
    """Replace `alert` with tonight's alerts and `alert_review` with tonight's doubtful
    matches; returns how many were doubtful."""
    con.execute("DELETE FROM alert")
    con.execute(f"INSERT INTO alert SELECT {', '.join(ALERT_COLUMNS)} FROM alert_next")
    con.execute("DELETE FROM alert_review")
    con.execute(
        "INSERT INTO alert_review"
        " SELECT $run_id, m.rule_id, m.person_id, m.record_keys, m.confidence, $reason"
        " FROM alert_match m JOIN alert_rule r USING (rule_id)"
        " WHERE m.confidence < r.min_confidence",
        {"run_id": run_id, "reason": BELOW_CONFIDENCE},
    )
    return int(con.execute("SELECT count(*) FROM alert_review").fetchall()[0][0])


# --- delivery ----------------------------------------------------------------------------

# What a receiving agency is told of each alert, in file order: the minimum necessary.
DELIVERED_FIELDS = {
    "alert_id": "alert_id",
    "status": "status",
    "night": "strftime($night, '%Y-%m-%d')",
    "rule_id": "rule_id",
    "rule": "rule",
    "person_id": "person_id",
    "agencies_holding_concerns": "holders",
    "your_record_ids": "recipient_record_ids",
    "confidence": "confidence",
}
DELIVERED_COLUMNS = list(DELIVERED_FIELDS)

DELIVERED_SQL = """
WITH delivered AS (
    -- tonight's new alerts and those resolved tonight; ongoing ones are not repeated
    SELECT a.*, coalesce(r.description, a.rule_id) AS rule
    FROM alert a LEFT JOIN alert_rule r USING (rule_id)
    WHERE (a.status = 'new' AND a.first_run_date = $night)
       OR (a.status = 'resolved' AND a.resolved_run_id = $run_id)
)
SELECT recipient, list({{{fields}}} ORDER BY alert_id) AS alerts
FROM delivered
GROUP BY recipient
ORDER BY recipient
"""


def _delivered_tonight(
    con: duckdb.DuckDBPyConnection, run_id: str, run_date: date
) -> dict[str, list[dict[str, Any]]]:
    """Per receiving agency, what it is told tonight, one dict per alert."""
    fields = ", ".join(f"'{name}': {value}" for name, value in DELIVERED_FIELDS.items())
    rows = con.execute(
        DELIVERED_SQL.format(fields=fields), {"night": run_date, "run_id": run_id}
    ).fetchall()
    return dict(rows)


def _deliver(delivered: dict[str, list[dict[str, Any]]], out_dir: Path) -> list[Path]:
    """Per receiving agency: <agency>.jsonl and <agency>.csv with the minimum necessary."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for recipient, rows in delivered.items():
        jsonl = out_dir / f"{recipient}.jsonl"
        jsonl.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
        flat = pd.DataFrame(rows, columns=DELIVERED_COLUMNS)
        for column in ["agencies_holding_concerns", "your_record_ids"]:
            flat[column] = flat[column].str.join(";")
        csv_path = out_dir / f"{recipient}.csv"
        write_safe_csv(flat, csv_path)
        paths += [jsonl, csv_path]
    return paths


# --- measured against the generator's truth ---------------------------------------------


@dataclass(frozen=True)
class AlertEvaluation:
    alerts: int  # (rule, person) pairs alerted tonight
    true_alerts: int  # (rule, true person) pairs the truth's concerns call for
    precision: float
    recall: float
    wrong_person_alerts: int  # alerts relying on records of two or more true people


def evaluate_alerts(
    con: duckdb.DuckDBPyConnection, project: ProjectConfig, truth_dir: Path, run_date: date
) -> AlertEvaluation:
    """Open alerts of the night against the same rules applied to the true concerns."""
    assert project.alert_rules is not None
    rules = load_alert_rules(project.alert_rules).rules
    night = run_date.isoformat()
    records = pd.read_csv(truth_dir / "records.csv", dtype=str)
    records = records[records["night"] == night]
    true_person = dict(zip(records["source"] + ":" + records["source_record_id"],
                           records["person_id"], strict=True))  # fmt: skip
    truth_matches = match_rules(
        rules, _true_concerns(project, truth_dir, night), _true_ages(truth_dir, run_date),
        CertainLinks(), run_date,
    )  # fmt: skip
    expected = {(m.rule_id, m.person_id) for m in truth_matches}
    alerted, wrong = set(), 0
    open_alerts = con.execute(
        "SELECT DISTINCT rule_id, person_id, record_keys FROM alert"
        " WHERE status IN ('new', 'ongoing')"
    ).fetchall()
    for rule_id, _, record_keys in open_alerts:
        people = {true_person.get(key) for key in record_keys}
        if len(people) > 1:
            wrong += 1
        alerted |= {(rule_id, person) for person in people}
    hits = len(alerted & expected)
    return AlertEvaluation(
        alerts=len(alerted),
        true_alerts=len(expected),
        precision=hits / len(alerted) if alerted else 1.0,
        recall=hits / len(expected) if expected else 1.0,
        wrong_person_alerts=wrong,
    )


def _true_concerns(project: ProjectConfig, truth_dir: Path, night: str) -> pd.DataFrame:
    truth = pd.read_csv(truth_dir / "concerns.csv", dtype=str)
    truth = truth[truth["night"] == night]
    open_for = project.event_concern_days()
    opened = pd.to_datetime(truth["opened"])
    closed = pd.to_datetime(truth["closed"])
    expiry = opened + pd.to_timedelta(truth["agency"].map(open_for), unit="D")
    ends_on = closed.where(truth["status"] == "closed", expiry.where(truth["status"] == "open"))
    return pd.DataFrame(
        {
            "person_id": truth["person_id"],
            "record_key": truth["agency"] + ":" + truth["source_record_id"],
            "source": truth["agency"],
            "concern_type": truth["concern_type"],
            "opened": opened,
            "ends_on": ends_on,
        }
    ).sort_values(["person_id", "record_key"], ignore_index=True)


def _true_ages(truth_dir: Path, run_date: date) -> dict[str, int]:
    people = pd.read_csv(truth_dir / "people.csv", dtype=str)
    born = pd.to_datetime(people["date_of_birth"])
    night = pd.Timestamp(run_date)
    before_birthday = (born.dt.month > night.month) | (
        (born.dt.month == night.month) & (born.dt.day > night.day)
    )
    ages = night.year - born.dt.year - before_birthday.astype(int)
    return dict(zip(people["person_id"], ages.astype(int), strict=True))
