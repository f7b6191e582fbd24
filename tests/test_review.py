"""Analysts' decisions outrank the model: in clustering, in the nightly index, in training."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from linkage.cli import app
from linkage.link.cluster import Decisions, cluster_records
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
