"""Alerts as set operations: the SQL steps keep the per-person semantics they replaced."""

from __future__ import annotations

from datetime import date

import duckdb
import pandas as pd
import pytest

from linkage import alert_match
from linkage.alerts import CertainLinks, LinkConfidence, _update_lifecycle, match_rules
from linkage.config import AlertRule, ConcernCondition

NIGHT = date(2026, 11, 3)
EDGE_COLUMNS = ["person_id", "record_key_l", "record_key_r", "match_probability"]


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("a", "d", 0.99),  # a-b-c-d, weakest 0.99, beats the direct 0.9
        ("b", "d", 0.995),
        ("d", "b", 0.995),  # either way round
        ("c", "e", 0.0),  # another person: no path
        ("a", "a", 1.0),
    ],
)
def test_bottleneck_over_several_hops(a: str, b: str, expected: float) -> None:
    edges = pd.DataFrame(
        [("P1", "a", "b", 0.99), ("P1", "b", "c", 0.995), ("P1", "c", "d", 0.999),
         ("P1", "a", "d", 0.9), ("P2", "e", "f", 0.999)],
        columns=EDGE_COLUMNS,
    )  # fmt: skip
    assert LinkConfidence(edges).between(a, b) == pytest.approx(expected)


def test_on_a_tie_the_smallest_record_keys_win_in_condition_order() -> None:
    rule = AlertRule(
        id="two",
        description="Open concerns at two agencies.",
        conditions=[ConcernCondition(agencies=["socialwork", "police"]),
                    ConcernCondition(agencies="other")],
    )  # fmt: skip
    concerns = pd.DataFrame(
        [("P1", key, key.split(":")[0], "X", pd.Timestamp("2026-10-01"), pd.NaT)
         for key in ["health:9", "police:2", "police:1", "socialwork:5"]],
        columns=["person_id", "record_key", "source", "concern_type", "opened", "ends_on"],
    )  # fmt: skip
    (match,) = match_rules([rule], concerns, {}, CertainLinks(), NIGHT)
    assert match.record_keys == ("police:1", "health:9")
    edges = pd.DataFrame(
        [("P1", "police:1", "health:9", 0.991), ("P1", "socialwork:5", "health:9", 0.999),
         ("P1", "police:2", "police:1", 0.9999)],
        columns=EDGE_COLUMNS,
    )  # fmt: skip
    (strongest,) = match_rules([rule], concerns, {}, LinkConfidence(edges), NIGHT)
    assert strongest.record_keys == ("socialwork:5", "health:9")
    assert strongest.confidence == pytest.approx(0.999)


@pytest.mark.parametrize("weakest", [0.0078125, 0.9921875, 0.99999949999, 0.9999995000001])
def test_alert_confidence_is_rounded_as_python_rounds(weakest: float) -> None:
    rule = AlertRule(id="one", description="One concern.", conditions=[ConcernCondition()],
                     min_confidence=0.001)  # fmt: skip
    with duckdb.connect() as con:
        alert_match.load_rules(con, [rule])
        con.execute(alert_match.MATCH_DDL)
        con.execute("INSERT INTO alert_match VALUES ('one', 'P1', ['police:1'], ['police'], $w)",
                    {"w": weakest})  # fmt: skip
        con.execute(alert_match.PERSON_RECORD_DDL)
        con.execute("INSERT INTO alert_person_record VALUES ('P1', 'police:1', 'police', '1')")
        con.execute("CREATE TEMP TABLE alert_bottleneck (source_key VARCHAR, record_key VARCHAR,"
                    " width DOUBLE)")  # fmt: skip
        alert_match.address_alerts(con)
        rows = con.execute("SELECT confidence, recipient_record_ids FROM alert_tonight").fetchall()
    assert rows == [(round(weakest, 6), ["1"])]  # exactly: duckdb's round() differs at halves


def alert(alert_id: str, person: str) -> dict:
    return {
        "alert_id": alert_id, "rule_id": "r", "person_id": person, "recipient": "police",
        "status": "ongoing", "confidence": 0.999, "record_keys": ["a"], "holders": ["police"],
        "recipient_record_ids": ["1"], "first_run_id": "run1",
        "first_run_date": pd.Timestamp("2026-11-01"), "last_run_id": "run1",
        "last_run_date": pd.Timestamp("2026-11-01"), "resolved_run_id": None, "note": None,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("merged_into", "followed"),
    [
        ({"P1": "P2", "P2": "P3"}, "P3"),  # a chain of merges
        ({"P1": "P2", "P2": "P1"}, "P1"),  # a cycle stops where it repeats
        ({"P9": "P1"}, "P1"),
    ],
)
def test_an_open_alert_follows_merges(merged_into: dict[str, str], followed: str) -> None:
    previous = pd.DataFrame([alert("A0000000001", "P1")])
    tonight = pd.DataFrame(
        [{"rule_id": "r", "person_id": followed, "recipient": "police", "confidence": 0.999,
          "record_keys": ["a"], "holders": ["police"], "recipient_record_ids": ["1"]}]
    )  # fmt: skip
    after = _update_lifecycle(previous, tonight, merged_into, "run2", date(2026, 11, 2), 2)
    assert after[["alert_id", "person_id", "status"]].values.tolist() == [
        ["A0000000001", followed, "ongoing"]
    ]
