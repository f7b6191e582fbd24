"""Alerts: linked people with open concerns, told to the agencies that should know.

Each night, the rules in schemas/alerts.yaml are matched against the concerns held on
the records of each linked person. A rule's conditions must each be met by a record of a
different agency; the alert fires only when every link between those records clears the
rule's confidence (the weakest edge on the strongest path between them), otherwise the
pair goes to `alert_review`. Alerts have stable ids: a condition that persists is
`ongoing`, one that clears is `resolved`, and person-id merges carry alerts along.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections import Counter
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pandas as pd

from linkage.config import AlertRule, ConcernCondition, ProjectConfig, load_alert_rules
from linkage.export import write_safe_csv
from linkage.warehouse import transaction

log = logging.getLogger(__name__)
ALERT_ID_PREFIX = "A"
BELOW_CONFIDENCE = "link below rule confidence"


@dataclass(frozen=True)
class RuleMatch:
    """A person meeting a rule, the records relied on, and the weakest link between them."""

    rule_id: str
    person_id: str
    record_keys: tuple[str, ...]  # one per condition, in condition order
    holders: tuple[str, ...]  # agencies of those records
    confidence: float


# --- which concerns are active tonight ------------------------------------------------

CONCERNS_SQL = """
WITH concern_records AS (
    SELECT li.person_id, c.record_key, c.source, c.source_record_id, c.concern_type,
           c.concern_status, c.concern_opened, c.concern_closed
    FROM canonical_record c JOIN linked_index li USING (record_key)
    WHERE c.concern_type IS NOT NULL
),
with_end AS (
    -- when the concern stopped counting: its closing date, or an event's expiry
    SELECT r.*,
        CASE
            WHEN r.concern_status = 'closed' THEN coalesce(r.concern_closed, r.concern_opened)
            WHEN e.open_for_days IS NOT NULL
                THEN r.concern_opened + to_days(CAST(e.open_for_days AS INTEGER))
        END AS ends_on
    FROM concern_records r LEFT JOIN event_sources e USING (source)
)
SELECT person_id, record_key, source, source_record_id, concern_type,
       concern_opened AS opened, CAST(ends_on AS DATE) AS ends_on
FROM with_end
ORDER BY person_id, record_key
"""


def concern_records(con: duckdb.DuckDBPyConnection, project: ProjectConfig) -> pd.DataFrame:
    """Every linked record carrying a concern, with when it stops counting (NULL: open)."""
    events = pd.DataFrame(
        list(project.event_concern_days().items()), columns=["source", "open_for_days"]
    )
    con.register("event_sources", events)
    try:
        return con.execute(CONCERNS_SQL).df()
    finally:
        con.unregister("event_sources")


def meets(condition: ConcernCondition, concerns: pd.DataFrame, run_date: date) -> pd.Series:
    """Rows of `concerns` that meet the condition on the night (agency aside for `other`)."""
    night = pd.Timestamp(run_date)
    ok = pd.Series(True, index=concerns.index)
    if isinstance(condition.agencies, list):
        ok &= concerns["source"].isin(condition.agencies)
    if isinstance(condition.types, list):
        ok &= concerns["concern_type"].isin(condition.types)
    ends_on = pd.to_datetime(concerns["ends_on"])
    ok &= ends_on.isna() | (ends_on >= night - timedelta(days=condition.closed_within_days))
    if condition.opened_within_days is not None:
        opened = pd.to_datetime(concerns["opened"])
        ok &= opened >= night - timedelta(days=condition.opened_within_days)
    return ok


# --- matching rules to persons -----------------------------------------------------------


def match_rules(
    rules: list[AlertRule],
    concerns: pd.DataFrame,
    ages: dict[str, int],
    confidence: LinkConfidence | CertainLinks,
    run_date: date,
) -> list[RuleMatch]:
    """Every (rule, person) the concerns satisfy, with the strongest-linked records."""
    matches = []
    concerns = concerns.reset_index(drop=True)
    for rule in rules:
        met = [meets(condition, concerns, run_date) for condition in rule.conditions]
        relevant = concerns[pd.concat(met, axis=1).any(axis=1)]
        for person_id, records in relevant.groupby("person_id", sort=True):
            if rule.max_age is not None and ages.get(person_id, rule.max_age + 1) > rule.max_age:
                continue
            candidates = [records[m[records.index]] for m in met]
            best = _best_assignment(candidates, confidence)
            if best is not None:
                keys, holders, weakest = best
                matches.append(RuleMatch(rule.id, str(person_id), keys, holders, weakest))
    return matches


def _best_assignment(
    candidates: list[pd.DataFrame], confidence: LinkConfidence | CertainLinks
) -> tuple[tuple[str, ...], tuple[str, ...], float] | None:
    """One record per condition, all of different agencies, as strongly linked as possible."""
    best = None
    options = [list(c[["record_key", "source"]].itertuples(index=False)) for c in candidates]
    for combination in itertools.product(*options):
        sources = [source for _, source in combination]
        if len(set(sources)) < len(sources):
            continue
        keys = tuple(key for key, _ in combination)
        weakest = min(
            (confidence.between(a, b) for a, b in itertools.combinations(keys, 2)), default=1.0
        )
        # records come sorted, so on a tie the first (smallest keys) combination stays
        if best is None or weakest > best[2]:
            best = (keys, tuple(sources), weakest)
    return best


class LinkConfidence:
    """The weakest edge on the strongest path between two records of one person.

    Built from a person's linked edges: merging them strongest first, two records are
    joined at the probability of the edge that first connects them.
    """

    def __init__(self, edges: pd.DataFrame) -> None:
        self._joined_at: dict[frozenset[str], float] = {}
        for _, person_edges in edges.groupby("person_id", sort=False):
            self._add_person(person_edges)

    def _add_person(self, edges: pd.DataFrame) -> None:
        members: dict[str, set[str]] = {}
        ordered = edges.sort_values("match_probability", ascending=False)
        for key_l, key_r, probability in ordered[
            ["record_key_l", "record_key_r", "match_probability"]
        ].itertuples(index=False):
            left = members.setdefault(key_l, {key_l})
            right = members.setdefault(key_r, {key_r})
            if left is right:
                continue
            for a, b in itertools.product(left, right):
                self._joined_at[frozenset((a, b))] = float(probability)
            merged = left | right
            for key in merged:
                members[key] = merged

    def between(self, a: str, b: str) -> float:
        return 1.0 if a == b else self._joined_at.get(frozenset((a, b)), 0.0)


class CertainLinks:
    """Every pair is surely one person: for matching rules against the truth."""

    def between(self, a: str, b: str) -> float:
        return 1.0


def person_edges(con: duckdb.DuckDBPyConnection, person_ids: list[str]) -> pd.DataFrame:
    """Linked edges inside the given persons."""
    con.register("wanted_person", pd.DataFrame({"person_id": person_ids}))
    try:
        return con.execute(
            """
            SELECT l.person_id, e.record_key_l, e.record_key_r, e.match_probability
            FROM edge e
            JOIN linked_index l ON l.record_key = e.record_key_l
            JOIN linked_index r ON r.record_key = e.record_key_r
            WHERE e.linked AND l.person_id = r.person_id
              AND l.person_id IN (SELECT person_id FROM wanted_person)
            """
        ).df()
    finally:
        con.unregister("wanted_person")


def person_ages(con: duckdb.DuckDBPyConnection, run_date: date) -> dict[str, int]:
    rows = con.execute(
        "SELECT person_id, date_diff('year', date_of_birth, $night)"
        " - CASE WHEN strftime(date_of_birth, '%m%d') > strftime($night, '%m%d') THEN 1"
        " ELSE 0 END FROM person WHERE date_of_birth IS NOT NULL",
        {"night": run_date},
    ).fetchall()
    return {person_id: int(age) for person_id, age in rows}


# --- lifecycle: new, ongoing, resolved ----------------------------------------------------

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
    """Match tonight's rules, update the alert table, deliver per-agency files."""
    if project.alert_rules is None:
        return None
    rules = load_alert_rules(project.alert_rules).rules
    concerns = concern_records(con, project)
    confidence = LinkConfidence(person_edges(con, sorted(concerns["person_id"].unique())))
    matches = match_rules(rules, concerns, person_ages(con, run_date), confidence, run_date)
    by_rule = {rule.id: rule for rule in rules}
    firing = [m for m in matches if m.confidence >= by_rule[m.rule_id].min_confidence]
    doubtful = [m for m in matches if m.confidence < by_rule[m.rule_id].min_confidence]
    current = _current_alerts(con, firing, by_rule, confidence)
    previous = con.execute("SELECT * FROM alert ORDER BY alert_id").df()
    alerts = _update_lifecycle(
        previous, current, _merged_into(con), run_id, run_date, _next_alert_number(previous)
    )
    _publish_alerts(con, alerts, doubtful, run_id)
    delivered = _delivered_tonight(alerts, run_id, run_date)
    files = _deliver(delivered, by_rule, project.output_dir / "runs" / run_id / "alerts", run_date)
    outcome = AlertOutcome(
        by_rule_and_status=dict(
            sorted(Counter(alerts["rule_id"] + " " + alerts["status"]).items())
        ),
        delivered_by_recipient=dict(sorted(Counter(delivered["recipient"]).items())),
        review_items=len(doubtful),
        files=[str(path) for path in files],
    )
    log.info("run %s: %d alerts delivered, %d for review", run_id, len(delivered), len(doubtful))
    return outcome


def _current_alerts(
    con: duckdb.DuckDBPyConnection,
    firing: list[RuleMatch],
    rules: dict[str, AlertRule],
    confidence: LinkConfidence,
) -> pd.DataFrame:
    """One row per (rule, person, recipient) firing tonight."""
    records = con.execute(
        "SELECT person_id, record_key, source, source_record_id FROM linked_index"
        " WHERE person_id IN (SELECT unnest($ids))",
        {"ids": sorted({m.person_id for m in firing})},
    ).df()
    by_person = dict(tuple(records.groupby("person_id")))
    rows = []
    for match in firing:
        rule = rules[match.rule_id]
        recipients = match.holders if rule.notify == "holders" else rule.notify
        for recipient in sorted(set(recipients)):
            own = by_person[match.person_id]
            own = own[own["source"] == recipient]
            # only the recipient's records confidently linked to what the alert relies on
            ids = sorted(
                row.source_record_id
                for row in own.itertuples(index=False)
                if max(confidence.between(row.record_key, k) for k in match.record_keys)
                >= rule.min_confidence
            )
            if ids:
                rows.append(
                    {
                        "rule_id": match.rule_id,
                        "person_id": match.person_id,
                        "recipient": recipient,
                        "confidence": round(match.confidence, 6),
                        "record_keys": list(match.record_keys),
                        "holders": sorted(set(match.holders)),
                        "recipient_record_ids": ids,
                    }
                )
    return pd.DataFrame(rows, columns=[*KEY, "confidence", "record_keys", "holders",
                                       "recipient_record_ids"])  # fmt: skip


KEY = ["rule_id", "person_id", "recipient"]


def _merged_into(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """Person ids merged into another, latest first, so alerts can follow them."""
    rows = con.execute(
        "SELECT person_id, related_person_id FROM person_id_history WHERE event = 'merged'"
        " ORDER BY run_date, run_id"
    ).fetchall()
    return {old: new for old, new in rows}


def _follow(person_id: str, merged_into: dict[str, str]) -> str:
    seen = set()
    while person_id in merged_into and person_id not in seen:
        seen.add(person_id)
        person_id = merged_into[person_id]
    return person_id


def _next_alert_number(previous: pd.DataFrame) -> int:
    if previous.empty:
        return 1
    return int(previous["alert_id"].str.removeprefix(ALERT_ID_PREFIX).astype(int).max()) + 1


def _update_lifecycle(
    previous: pd.DataFrame,
    current: pd.DataFrame,
    merged_into: dict[str, str],
    run_id: str,
    run_date: date,
    next_number: int,
) -> pd.DataFrame:
    """All alerts after tonight: continuing ones updated, new ones minted, gone ones resolved."""
    closed = previous[~previous["status"].isin(["new", "ongoing"])]
    open_ = previous[previous["status"].isin(["new", "ongoing"])].copy()
    open_["person_id"] = open_["person_id"].map(lambda pid: _follow(pid, merged_into))
    tonight = {tuple(row[k] for k in KEY): row for row in current.to_dict("records")}
    rows: list[dict] = []
    continued: set[tuple] = set()
    for alert in open_.sort_values("alert_id").to_dict("records"):
        key = tuple(alert[k] for k in KEY)
        if key in tonight and key not in continued:
            continued.add(key)
            rerun = alert["status"] == "new" and alert["last_run_date"] == pd.Timestamp(run_date)
            rows.append(
                alert
                | tonight[key]
                | {"status": "new" if rerun else "ongoing", "last_run_id": run_id}
                | {"last_run_date": run_date}
            )
        else:
            note = "merged with another alert" if key in continued else "condition cleared"
            rows.append(alert | {"status": "resolved", "resolved_run_id": run_id, "note": note})
    for key, alert in sorted(tonight.items()):
        if key in continued:
            continue
        rows.append(
            alert
            | {"alert_id": f"{ALERT_ID_PREFIX}{next_number:010d}", "status": "new"}
            | {"first_run_id": run_id, "first_run_date": run_date, "last_run_id": run_id}
            | {"last_run_date": run_date, "resolved_run_id": None, "note": None}
        )
        next_number += 1
    updated = pd.DataFrame(rows, columns=ALERT_COLUMNS)
    return pd.concat([closed, updated], ignore_index=True).sort_values("alert_id")


def _publish_alerts(
    con: duckdb.DuckDBPyConnection,
    alerts: pd.DataFrame,
    doubtful: list[RuleMatch],
    run_id: str,
) -> None:
    review = pd.DataFrame(
        [
            (m.rule_id, m.person_id, list(m.record_keys), m.confidence, BELOW_CONFIDENCE)
            for m in doubtful
        ],
        columns=["rule_id", "person_id", "record_keys", "confidence", "reason"],
    )
    con.register("new_alert", alerts)
    con.register("new_alert_review", review)
    try:
        with transaction(con):
            con.execute("DELETE FROM alert")
            con.execute(f"INSERT INTO alert SELECT {', '.join(ALERT_COLUMNS)} FROM new_alert")
            con.execute("DELETE FROM alert_review")
            con.execute(
                "INSERT INTO alert_review SELECT $run_id, rule_id, person_id, record_keys,"
                " confidence, reason FROM new_alert_review",
                {"run_id": run_id},
            )
    finally:
        con.unregister("new_alert")
        con.unregister("new_alert_review")


# --- delivery ----------------------------------------------------------------------------

DELIVERED_COLUMNS = [
    "alert_id", "status", "night", "rule_id", "rule", "person_id",
    "agencies_holding_concerns", "your_record_ids", "confidence",
]  # fmt: skip


def _delivered_tonight(alerts: pd.DataFrame, run_id: str, run_date: date) -> pd.DataFrame:
    """New alerts of tonight and those resolved tonight; ongoing ones are not repeated."""
    night = pd.Timestamp(run_date)
    new = (alerts["status"] == "new") & (pd.to_datetime(alerts["first_run_date"]) == night)
    resolved = (alerts["status"] == "resolved") & (alerts["resolved_run_id"] == run_id)
    return alerts[new | resolved]


def _deliver(
    delivered: pd.DataFrame, rules: dict[str, AlertRule], out_dir: Path, run_date: date
) -> list[Path]:
    """Per receiving agency: <agency>.jsonl and <agency>.csv with the minimum necessary."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for recipient, alerts in delivered.groupby("recipient", sort=True):
        rows = [
            {
                "alert_id": a.alert_id,
                "status": a.status,
                "night": run_date.isoformat(),
                "rule_id": a.rule_id,
                "rule": rules[a.rule_id].description if a.rule_id in rules else a.rule_id,
                "person_id": a.person_id,
                "agencies_holding_concerns": list(a.holders),
                "your_record_ids": list(a.recipient_record_ids),
                "confidence": float(a.confidence),
            }
            for a in alerts.itertuples(index=False)
        ]
        jsonl = out_dir / f"{recipient}.jsonl"
        jsonl.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
        flat = [
            row
            | {
                "agencies_holding_concerns": ";".join(row["agencies_holding_concerns"]),
                "your_record_ids": ";".join(row["your_record_ids"]),
            }
            for row in rows
        ]
        csv_path = out_dir / f"{recipient}.csv"
        write_safe_csv(pd.DataFrame(flat, columns=DELIVERED_COLUMNS), csv_path)
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
