"""Alerts: rules matched on linked concerns, link safety, lifecycle, delivery, truth."""

from __future__ import annotations

import csv
import json
from datetime import date

import duckdb
import pandas as pd
import pytest

from linkage.alerts import (
    DELIVERED_COLUMNS,
    CertainLinks,
    LinkConfidence,
    _update_lifecycle,
    evaluate_alerts,
    load_concerns,
    match_rules,
)
from linkage.config import AlertRule, ConcernCondition, load_project
from tests.conftest import NIGHTS, SAMPLE_DIR, read_table

NIGHT = date(2026, 11, 3)
CP_POLICE = AlertRule(
    id="cp_police",
    description="A child on the CP register in a police concern report.",
    conditions=[
        ConcernCondition(
            agencies=["socialwork"], types=["CHILD_PROTECTION"], closed_within_days=365
        ),
        ConcernCondition(
            agencies=["police"], types=["POLICE_CHILD_CONCERN"], opened_within_days=90
        ),
    ],
    max_age=17,
    min_confidence=0.99,
)


def concern(
    person: str, key: str, source: str, kind: str, opened: str | None, ends_on=None
) -> dict:
    return {
        "person_id": person,
        "record_key": key,
        "source": source,
        "concern_type": kind,
        "opened": pd.Timestamp(opened),
        "ends_on": pd.Timestamp(ends_on) if ends_on else pd.NaT,
    }


def concerns(*rows: dict) -> pd.DataFrame:
    return pd.DataFrame(list(rows))


@pytest.mark.parametrize(
    ("case", "rows", "ages", "expected"),
    [
        (
            "open case and recent incident",
            [
                concern("P1", "sw:1", "socialwork", "CHILD_PROTECTION", "2025-01-01"),
                concern("P1", "po:1", "police", "POLICE_CHILD_CONCERN", "2026-10-20"),
            ],
            {"P1": 9},
            [("cp_police", "P1", ("sw:1", "po:1"))],
        ),
        (
            "case closed within the year still counts",
            [
                concern("P1", "sw:1", "socialwork", "CHILD_PROTECTION", "2024-01-01", "2026-02-01"),
                concern("P1", "po:1", "police", "POLICE_CHILD_CONCERN", "2026-10-20"),
            ],
            {"P1": 9},
            [("cp_police", "P1", ("sw:1", "po:1"))],
        ),
        (
            "case closed over a year ago does not",
            [
                concern("P1", "sw:1", "socialwork", "CHILD_PROTECTION", "2023-01-01", "2025-06-01"),
                concern("P1", "po:1", "police", "POLICE_CHILD_CONCERN", "2026-10-20"),
            ],
            {"P1": 9},
            [],
        ),
        (
            "incident too old",
            [
                concern("P1", "sw:1", "socialwork", "CHILD_PROTECTION", "2025-01-01"),
                concern("P1", "po:1", "police", "POLICE_CHILD_CONCERN", "2026-05-01"),
            ],
            {"P1": 9},
            [],
        ),
        (
            "an incident whose date could not be read counts as recent",
            [
                concern("P1", "sw:1", "socialwork", "CHILD_PROTECTION", "2025-01-01"),
                concern("P1", "po:1", "police", "POLICE_CHILD_CONCERN", None),
            ],
            {"P1": 9},
            [("cp_police", "P1", ("sw:1", "po:1"))],
        ),
        (
            "an adult is not a child",
            [
                concern("P1", "sw:1", "socialwork", "CHILD_PROTECTION", "2025-01-01"),
                concern("P1", "po:1", "police", "POLICE_CHILD_CONCERN", "2026-10-20"),
            ],
            {"P1": 30},
            [],
        ),
        (
            "concerns of two different persons never combine",
            [
                concern("P1", "sw:1", "socialwork", "CHILD_PROTECTION", "2025-01-01"),
                concern("P2", "po:1", "police", "POLICE_CHILD_CONCERN", "2026-10-20"),
            ],
            {"P1": 9, "P2": 9},
            [],
        ),
    ],
)
def test_rule_conditions(case, rows, ages, expected) -> None:  # noqa: ANN001
    matches = match_rules([CP_POLICE], concerns(*rows), ages, CertainLinks(), NIGHT)
    assert [(m.rule_id, m.person_id, m.record_keys) for m in matches] == expected, case


@pytest.mark.parametrize(
    ("case", "source", "status", "opened", "closed", "ends_on"),
    [
        ("open case", "socialwork", "open", "2025-01-01", None, None),
        ("closed case", "socialwork", "closed", "2025-01-01", "2026-02-01", "2026-02-01"),
        ("closed, no closing date", "socialwork", "closed", "2025-01-01", None, "2025-01-01"),
        ("closed, no dates at all: long closed", "socialwork", "closed", None, None, "1900-01-01"),
        ("a closing date ends it, status not updated", "socialwork", "open", "2025-01-01",
         "2026-03-01", "2026-03-01"),
        ("an incident expires after open_for_days", "police", None, "2026-10-20", None,
         "2027-10-20"),
        ("an incident closed before it expires", "police", None, "2026-10-20", "2026-10-25",
         "2026-10-25"),
        ("an incident with no readable date stays counted", "police", None, None, None, None),
    ],
)  # fmt: skip
def test_when_a_warehouse_concern_stops_counting(
    case,
    source,
    status,
    opened,
    closed,
    ends_on,  # noqa: ANN001
) -> None:
    project = load_project(SAMPLE_DIR / "project.yaml")
    with duckdb.connect() as con:
        con.execute(
            "CREATE TABLE canonical_record AS SELECT $key AS record_key, $source AS source,"
            " '1' AS source_record_id, 'CHILD_PROTECTION' AS concern_type,"
            " CAST($status AS VARCHAR) AS concern_status, CAST($opened AS DATE) AS concern_opened,"
            " CAST($closed AS DATE) AS concern_closed",
            {
                "key": f"{source}:1",
                "source": source,
                "status": status,
                "opened": opened,
                "closed": closed,
            },  # fmt: skip
        )
        con.execute("CREATE TABLE linked_index AS SELECT 'P1' AS person_id, $key AS record_key",
                    {"key": f"{source}:1"})  # fmt: skip
        load_concerns(con, project)
        found = con.execute("SELECT CAST(ends_on AS VARCHAR) FROM alert_concern").fetchall()
    assert found == [(ends_on,)], case


def test_two_agencies_rule_needs_two_different_agencies() -> None:
    rule = AlertRule(
        id="two",
        description="Open concerns at two agencies.",
        conditions=[ConcernCondition(), ConcernCondition(agencies="other")],
    )
    same_agency = concerns(
        concern("P1", "po:1", "police", "POLICE_DOMESTIC_ABUSE", "2026-10-01"),
        concern("P1", "po:2", "police", "POLICE_CHILD_CONCERN", "2026-10-02"),
    )
    assert match_rules([rule], same_agency, {}, CertainLinks(), NIGHT) == []
    two = pd.concat(
        [
            same_agency,
            concerns(concern("P1", "ed:1", "education", "MISSING_FROM_EDUCATION", "2026-09-01")),
        ]
    )
    (match,) = match_rules([rule], two, {}, CertainLinks(), NIGHT)
    assert set(match.holders) == {"education", "police"}


def test_confidence_is_the_weakest_link_on_the_strongest_path() -> None:
    edges = pd.DataFrame(
        [("P1", "a", "b", 0.999), ("P1", "b", "c", 0.95), ("P1", "a", "c", 0.97)],
        columns=["person_id", "record_key_l", "record_key_r", "match_probability"],
    )
    links = LinkConfidence(edges)
    assert links.between("a", "b") == pytest.approx(0.999)
    assert links.between("b", "c") == pytest.approx(0.97)  # via a, not the direct 0.95
    assert links.between("a", "zz") == 0.0


def test_a_doubtful_link_gives_a_weak_match_that_does_not_fire() -> None:
    rows = concerns(
        concern("P1", "sw:1", "socialwork", "CHILD_PROTECTION", "2025-01-01"),
        concern("P1", "po:1", "police", "POLICE_CHILD_CONCERN", "2026-10-20"),
    )
    edges = pd.DataFrame(
        [("P1", "po:1", "sw:1", 0.96)],
        columns=["person_id", "record_key_l", "record_key_r", "match_probability"],
    )
    (match,) = match_rules([CP_POLICE], rows, {"P1": 9}, LinkConfidence(edges), NIGHT)
    assert match.confidence == pytest.approx(0.96)
    assert match.confidence < CP_POLICE.min_confidence


def alert(alert_id: str, person: str, status: str = "new", night: str = "2026-11-01") -> dict:
    return {
        "alert_id": alert_id, "rule_id": "r", "person_id": person, "recipient": "police",
        "status": status, "confidence": 0.999, "record_keys": ["a"], "holders": ["police"],
        "recipient_record_ids": ["1"], "first_run_id": "run1",
        "first_run_date": pd.Timestamp(night), "last_run_id": "run1",
        "last_run_date": pd.Timestamp(night), "resolved_run_id": None, "note": None,
    }  # fmt: skip


def firing(*persons: str) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"rule_id": "r", "person_id": p, "recipient": "police", "confidence": 0.999,
             "record_keys": ["a"], "holders": ["police"], "recipient_record_ids": ["1"]}
            for p in persons
        ]
    )  # fmt: skip


def statuses(alerts: pd.DataFrame) -> dict[str, tuple[str, str]]:
    return {a.alert_id: (a.person_id, a.status) for a in alerts.itertuples()}


def test_lifecycle_ongoing_new_and_resolved() -> None:
    previous = pd.DataFrame([alert("A0000000001", "P1"), alert("A0000000002", "P2")])
    after = _update_lifecycle(previous, firing("P1", "P3"), {}, "run2", date(2026, 11, 2), 3)
    assert statuses(after) == {
        "A0000000001": ("P1", "ongoing"),
        "A0000000002": ("P2", "resolved"),
        "A0000000003": ("P3", "new"),
    }


def test_rerunning_a_night_creates_no_duplicates() -> None:
    night = date(2026, 11, 1)
    first = _update_lifecycle(pd.DataFrame([alert("A0000000001", "P1")]), firing("P1"), {},
                              "run1b", night, 2)  # fmt: skip
    assert statuses(first) == {"A0000000001": ("P1", "new")}


def test_alerts_follow_a_person_id_merge() -> None:
    previous = pd.DataFrame([alert("A0000000001", "P1"), alert("A0000000002", "P2")])
    after = _update_lifecycle(previous, firing("P1"), {"P2": "P1"}, "run2", date(2026, 11, 2), 3)
    assert statuses(after) == {
        "A0000000001": ("P1", "ongoing"),
        "A0000000002": ("P1", "resolved"),  # the same alert now, carried by A0000000001
    }


# --- end to end on the sample (alerts run inside the nightly flow) ------------------------


def test_sample_alerts_match_the_truth_and_never_join_two_people(linked_sample) -> None:
    project = load_project(linked_sample.config)
    with duckdb.connect(str(linked_sample.warehouse), read_only=True) as con:
        result = evaluate_alerts(con, project, SAMPLE_DIR / "truth", date.fromisoformat(NIGHTS[-1]))
    assert result.true_alerts > 0
    assert result.wrong_person_alerts == 0
    assert result.precision >= 0.95 and result.recall >= 0.8


def test_every_alert_relies_on_records_of_its_own_person_above_its_rule(linked_sample) -> None:
    alerts = read_table(linked_sample.warehouse, "alert")
    index = read_table(linked_sample.warehouse, "linked_index").set_index("record_key")
    assert not alerts.empty and alerts.alert_id.is_unique
    live = alerts[alerts.status.isin(["new", "ongoing"])]
    for row in live.itertuples():
        assert set(index.loc[list(row.record_keys), "person_id"]) == {row.person_id}
        assert row.confidence >= 0.99
    keys = live[["rule_id", "person_id", "recipient"]]
    assert not keys.duplicated().any()


def test_delivered_files_carry_only_the_minimum(linked_sample) -> None:
    project = load_project(linked_sample.config)
    last = linked_sample.reports[-1].run_id
    folder = project.output_dir / "runs" / last / "alerts"
    alerts = read_table(linked_sample.warehouse, "alert")
    for path in sorted(folder.glob("*.jsonl")):
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        assert all(list(row) == DELIVERED_COLUMNS for row in rows)
        assert all(row["status"] in {"new", "resolved"} for row in rows)  # ongoing not repeated
        with path.with_suffix(".csv").open(newline="") as handle:
            assert next(csv.reader(handle)) == DELIVERED_COLUMNS
        own = alerts[alerts.recipient == path.stem]
        assert {row["alert_id"] for row in rows} <= set(own.alert_id)


def test_later_nights_keep_alert_ids_and_do_not_repeat_ongoing_alerts(linked_sample) -> None:
    alerts = read_table(linked_sample.warehouse, "alert")
    first_night = pd.Timestamp(NIGHTS[0])
    carried = alerts[(alerts.first_run_date == first_night) & (alerts.status == "ongoing")]
    assert len(carried) > 0
    reports = linked_sample.reports
    delivered = {r.run_id: r.stages["alerts"]["delivered_by_recipient"] for r in reports}
    assert sum(delivered[reports[-1].run_id].values()) < sum(delivered[reports[0].run_id].values())


@pytest.mark.usefixtures("prefect_api")
def test_a_later_night_repeats_nothing_ongoing_raises_new_and_resolves_cleared(
    linked_sample, tmp_path
) -> None:
    """Night A hides person X's police records, night B hides person Y's instead."""
    import shutil

    from flows.nightly import nightly
    from tests.conftest import sample_project

    alerts = read_table(linked_sample.warehouse, "alert")
    index = read_table(linked_sample.warehouse, "linked_index")
    with_police = alerts[alerts.holders.map(lambda holders: "police" in holders)]
    person_x, person_y = sorted(with_police.person_id.unique())[:2]

    def police_ids(person: str) -> set[str]:
        rows = index[(index.person_id == person) & (index.source == "police")]
        return set(rows.source_record_id)

    landing = tmp_path / "landing"
    hidden_by_night = {"2026-11-01": police_ids(person_x), "2026-11-02": police_ids(person_y)}
    for night, hidden in hidden_by_night.items():
        folder = landing / night
        shutil.copytree(SAMPLE_DIR / "landing" / NIGHTS[0], folder)
        police = folder / "police_incidents.csv"
        lines = police.read_text(encoding="utf-8").splitlines(keepends=True)
        police.write_text(
            "".join(lines[:1] + [ln for ln in lines[1:] if ln.split(",")[0] not in hidden]),
            encoding="utf-8",
        )
    config = sample_project(tmp_path, "p")
    config.write_text(config.read_text().replace(str(SAMPLE_DIR / "landing"), str(landing)))
    models = tmp_path / "p" / "models"
    models.mkdir(parents=True)
    shutil.copy(linked_sample.model_path, models / linked_sample.model_path.name)

    nightly(config, date(2026, 11, 1))
    night_a = read_table(tmp_path / "p" / "linkage.duckdb", "alert")
    second = nightly(config, date(2026, 11, 2))
    night_b = read_table(tmp_path / "p" / "linkage.duckdb", "alert")

    def alert_of(table: pd.DataFrame, police: set[str]) -> pd.DataFrame:
        keys = {f"police:{record_id}" for record_id in police}
        return table[table.record_keys.map(lambda relied_on: bool(keys & set(relied_on)))]

    # police is told about Y on night A; on night B police no longer holds Y: resolved
    y_alerts = alert_of(night_a, police_ids(person_y))
    y_alerts = y_alerts[y_alerts.recipient == "police"]
    assert len(y_alerts) > 0 and set(y_alerts.status) == {"new"}
    resolved = night_b[night_b.alert_id.isin(y_alerts.alert_id)]
    assert set(resolved.status) == {"resolved"}
    # X's police records appear on night B: new alerts to police, with new ids
    x_alerts = alert_of(night_b, police_ids(person_x))
    x_alerts = x_alerts[x_alerts.recipient == "police"]
    assert len(x_alerts) > 0 and set(x_alerts.status) == {"new"}
    assert not x_alerts.alert_id.isin(night_a.alert_id).any()
    # everyone else's alerts carry on, unrepeated (X's and Y's may rest on other records now)
    touched = {
        f"{row.source}:{row.source_record_id}"
        for row in index[index.person_id.isin([person_x, person_y])].itertuples()
    }
    untouched = night_a[
        ~night_a.person_id.isin(y_alerts.person_id)
        & ~night_a.record_keys.map(lambda relied_on: bool(touched & set(relied_on)))
    ]
    carried = night_b[night_b.alert_id.isin(untouched.alert_id)]
    assert len(carried) == len(untouched) > 0 and set(carried.status) == {"ongoing"}

    delivered = {}
    for path in (tmp_path / "p" / "output" / "runs" / second.run_id / "alerts").glob("*.jsonl"):
        delivered |= {json.loads(line)["alert_id"]: json.loads(line)["status"]
                      for line in path.read_text().splitlines()}  # fmt: skip
    assert set(x_alerts.alert_id) | set(resolved.alert_id) <= set(delivered)
    assert not set(carried.alert_id) & set(delivered)
