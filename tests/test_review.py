"""Analysts' decisions outrank the model: in clustering, in the nightly index, in training."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from typer.testing import CliRunner

from linkage.cli import app
from linkage.concerns import open_concern_records
from linkage.config import load_project
from linkage.link.cluster import Decisions, cluster_records
from linkage.review import (
    Shown,
    changed_decisions,
    load_decisions,
    review_queue,
    save_decision,
)
from linkage.warehouse import open_warehouse
from tests.conftest import read_table, sample_project
from tests.test_cluster import SETTINGS, edge, edges, persons, reasons, records


def test_a_reviewed_match_links_what_the_twin_guard_would_hold_apart() -> None:
    pair = records(("h:1", "health", None, None), ("h:2", "health", None, None))
    scored = edges(edge("h:1", "h:2", 0.999, forename=0))
    assert persons(cluster_records(pair, scored, SETTINGS)) == [["h:1"], ["h:2"]]
    reviewed = Decisions(matches=frozenset({("h:1", "h:2")}))
    assert persons(cluster_records(pair, scored, SETTINGS, reviewed)) == [["h:1", "h:2"]]


def test_a_reviewed_non_match_is_never_chained_together() -> None:
    three = records(*[(k, "health", None, None) for k in ("h:1", "h:2", "h:3")])
    scored = edges(("h:1", "h:2", 0.9999), ("h:2", "h:3", 0.999), ("h:1", "h:3", 0.998))
    reviewed = Decisions(non_matches=frozenset({("h:1", "h:3")}))
    result = cluster_records(three, scored, SETTINGS, reviewed)
    assert persons(result) == [["h:1", "h:2"], ["h:3"]]
    assert "refused: reviewed apart" in reasons(result)


@pytest.fixture()
def project_copy(linked_sample, tmp_path: Path) -> Path:
    """The linked sample's warehouse and model, copied so decisions stay in this test."""
    config = sample_project(tmp_path, "copy")
    (tmp_path / "copy" / "models").mkdir(parents=True)
    shutil.copy(linked_sample.warehouse, tmp_path / "copy" / "linkage.duckdb")
    shutil.copy(linked_sample.model_path, tmp_path / "copy" / "models")
    return config


@pytest.mark.usefixtures("prefect_api")
def test_decisions_through_the_cli_change_the_next_index(project_copy: Path) -> None:
    from flows.link import relink

    warehouse = project_copy.parent / "copy" / "linkage.duckdb"
    queue = read_table(warehouse, "link_review")
    twins = queue[queue.reason == "possible twins"].iloc[0]
    index = read_table(warehouse, "linked_index").set_index("record_key").person_id
    linked = read_table(warehouse, "edge").query("linked").iloc[0]
    runner = CliRunner()
    for a, b, flag in [
        (twins.record_key_l, twins.record_key_r, "--match"),
        (linked.record_key_l, linked.record_key_r, "--no-match"),
    ]:
        result = runner.invoke(app, ["decide", "-c", str(project_copy), a, b, flag, "--note", "t"])
        assert result.exit_code == 0, result.output
    assert index[twins.record_key_l] != index[twins.record_key_r]
    assert index[linked.record_key_l] == index[linked.record_key_r]

    relink(project_copy)
    after = read_table(warehouse, "linked_index").set_index("record_key").person_id
    assert after[twins.record_key_l] == after[twins.record_key_r]
    assert after[linked.record_key_l] != after[linked.record_key_r]
    listed = runner.invoke(app, ["review", "-c", str(project_copy), "--limit", "5"])
    assert listed.exit_code == 0 and "reason" in listed.output


def test_a_decision_on_an_unknown_record_is_a_clear_error(project_copy: Path) -> None:
    result = CliRunner().invoke(
        app, ["decide", "-c", str(project_copy), "health:NOPE", "police:NOPE", "--match"]
    )
    assert result.exit_code == 2 and "health:NOPE" in result.output


def test_training_also_learns_m_from_enough_reviewed_matches(linked_sample) -> None:
    from linkage.link.train import MIN_LABELLED_MATCHES, load_model_input, train_model

    records = load_model_input(linked_sample.warehouse)
    pairs = read_table(linked_sample.warehouse, "edge").query("linked")
    labels = pairs[["record_key_l", "record_key_r"]].head(MIN_LABELLED_MATCHES)
    assert len(labels) == MIN_LABELLED_MATCHES
    plain = train_model(records, seed=7)[0].misc.save_model_to_json()
    labelled = train_model(records, seed=7, labelled_matches=labels)[0].misc.save_model_to_json()
    assert plain["comparisons"] != labelled["comparisons"]


def test_the_queue_is_ranked_by_what_is_at_stake_and_capped(linked_sample) -> None:
    """Priority 1: open concerns at two or more agencies across the pair's persons; 2: an
    open concern; 3: the rest; possible twins with nothing at stake are recorded only."""
    queue = read_table(linked_sample.warehouse, "link_review")
    with duckdb.connect(str(linked_sample.warehouse), read_only=True) as con:
        night = con.execute("SELECT max(run_date) FROM canonical_record").fetchall()[0][0]
        open_concern_records(con, load_project(linked_sample.config), night, "open_concern")
        concerned = dict(
            con.execute(
                "SELECT li.person_id, list(DISTINCT c.source) FROM open_concern c"
                " JOIN linked_index li USING (record_key) GROUP BY 1"
            ).fetchall()
        )
    for item in queue.itertuples():
        agencies = set(concerned.get(item.person_id_l, [])) | set(
            concerned.get(item.person_id_r, [])
        )
        if pd.isna(item.priority):
            assert "possible twins" in item.reason and not agencies and not item.queued
        elif item.priority == 1:
            assert len(agencies) >= 2 and item.stake.startswith("open concerns at ")
        elif item.priority == 3:
            assert not agencies
    assert set(queue.priority.dropna()) >= {2, 3}, "the sample has concerns at stake and not"
    assert queue.queued.sum() == queue.priority.notna().sum(), "under the cap: all queued"
    counts = linked_sample.reports[-1].stages["linkage"]["review_queue"]
    assert counts["queued"] == queue.queued.sum() and counts["past_cap"] == 0
    assert counts["recorded_only"] == queue.priority.isna().sum()

    with duckdb.connect(str(linked_sample.warehouse), read_only=True) as con:
        listed = review_queue(con, limit=10_000)
    assert len(listed) == queue.queued.sum(), "every queued item is listed (none decided yet)"
    assert list(listed.priority) == sorted(listed.priority)


@pytest.mark.usefixtures("prefect_api")
def test_past_the_nightly_cap_items_are_counted_not_queued(project_copy: Path) -> None:
    from flows.link import relink

    project_copy.write_text(project_copy.read_text() + "linkage: {review_cap: 3}\n")
    report = relink(project_copy)
    counts = report.stages["linkage"]["review_queue"]
    queue = read_table(project_copy.parent / "copy" / "linkage.duckdb", "link_review")
    assert counts["queued"] == 3 == queue.queued.sum()
    assert counts["past_cap"] == queue.priority.notna().sum() - 3 > 0
    assert sum(counts["past_cap_by_reason"].values()) == counts["past_cap"]
    first = queue[queue.queued].sort_values(["priority", "match_probability"])
    assert (first.priority == queue.priority.min()).all(), "the most at stake are queued"


def test_a_decision_keeps_who_what_was_shown_and_the_records_then(tmp_path: Path) -> None:
    """A decision is re-queued when one of its records changes at source; "not sure"
    changes nothing in the index; every decision stays in the log."""
    with open_warehouse(tmp_path / "w.duckdb") as con:
        for key, surname in [("health:1", "SMITH"), ("police:2", "SMITH")]:
            con.execute(
                "INSERT INTO canonical_record (record_key, source, source_record_id, forename,"
                " surname, date_of_birth, chi) VALUES (?, ?, ?, 'ANNA', ?, DATE '2010-01-02', ?)",
                [key, *key.split(":"), surname, "0201101234" if key.startswith("h") else None],
            )
        shown = Shown('{"pair": ["health:1", "police:2"]}', "run1")
        save_decision(con, "police:2", "health:1", "unsure", "ask police", decided_by="ana",
                      via="browser", shown=shown)  # fmt: skip
        assert load_decisions(con).matches == frozenset() == load_decisions(con).non_matches
        save_decision(con, "health:1", "police:2", "match", "same", decided_by="bo", via="browser",
                      shown=shown)  # fmt: skip
        assert load_decisions(con).matches == {("health:1", "police:2")}
        assert changed_decisions(con) == []
        row = con.execute(
            "SELECT decided_by, via, link_run_id, evidence, evidence_sha256, record_values"
            " FROM review_decision"
        ).fetchall()
        assert row[0][:4] == ("bo", "browser", "run1", shown.evidence)
        assert row[0][4] == shown.sha256
        assert json.loads(row[0][5])["health:1"] == {
            "chi": "0201101234",
            "date_of_birth": "2010-01-02",
            "forename": "ANNA",
            "surname": "SMITH",
        }
        log = con.execute("SELECT decision, decided_by FROM review_decision_log ORDER BY ALL")
        assert log.fetchall() == [("match", "bo"), ("unsure", "ana")]

        con.execute("UPDATE canonical_record SET surname = 'SMYTH' WHERE record_key = 'police:2'")
        (changed,) = changed_decisions(con)
        assert changed.decision.decided_by == "bo"
        assert [(c.record_key, c.field, c.before, c.after) for c in changed.changes] == [
            ("police:2", "surname", "SMITH", "SMYTH")
        ]
        con.execute("DELETE FROM canonical_record WHERE record_key = 'health:1'")
        assert changed_decisions(con) == [], "moot while a record is not sent"


def test_decide_from_the_cli_says_who_decided(project_copy: Path) -> None:
    warehouse = project_copy.parent / "copy" / "linkage.duckdb"
    linked = read_table(warehouse, "edge").query("linked").iloc[0]
    result = CliRunner().invoke(
        app,
        ["decide", "-c", str(project_copy), linked.record_key_l, linked.record_key_r,
         "--no-match", "--by", "dana"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    decisions = read_table(warehouse, "review_decision")
    assert list(decisions[["decided_by", "via"]].iloc[0]) == ["dana", "cli"]
    assert decisions.fingerprint_l.iloc[0] and decisions.evidence.isna().all()
