"""Incremental nights: the index kept night by night equals a full rebuild's persons."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import duckdb
import pytest

from flows.link import relink
from flows.nightly import nightly
from flows.train import train
from linkage.config import load_project
from linkage.index import link_warehouse
from linkage.rebuild import index_drift
from linkage.warehouse import open_warehouse, transaction

pytestmark = pytest.mark.usefixtures("prefect_api")


def rebuilt_alongside(config: Path, tmp_path: Path, label: str) -> tuple:
    """(the published index, a full link of a copy of the warehouse), as (record, person)."""
    project = load_project(config)
    copy = tmp_path / f"rebuild-{label}.duckdb"
    shutil.copy(project.warehouse, copy)
    with duckdb.connect(str(project.warehouse), read_only=True) as con:
        kept = con.sql("SELECT record_key, person_id FROM linked_index").to_arrow_table()
        run_date = con.execute("SELECT max(run_date) FROM canonical_record").fetchall()[0][0]
    beside = project.model_copy(update={"warehouse": copy, "models_dir": project.model_dir})
    con = open_warehouse(copy, project.identifier_registry())
    try:
        with transaction(con):
            link_warehouse(con, beside, "rebuild", run_date, "test")
        rebuilt = con.sql("SELECT record_key, person_id FROM linked_index").to_arrow_table()
    finally:
        con.close()
    return kept, rebuilt


def test_sample_nights_linked_incrementally_equal_a_full_rebuild(linked_sample, tmp_path):
    for report in linked_sample.reports[1:]:
        linkage = report.stages["linkage"]
        assert linkage["linked"] == "incremental"
        assert 0 < linkage["records_relinked"] < linkage["records"]
    kept, rebuilt = rebuilt_alongside(linked_sample.config, tmp_path, "sample")
    drift = index_drift(kept, rebuilt)
    assert drift.differing_persons == 0, drift
    assert drift.records_only_incremental == drift.records_only_rebuilt == 0


def test_incremental_nights_publish_each_record_and_each_person_once(linked_sample):
    """The published tables hold no key index (a cost at 1M): construction keeps them unique."""
    with duckdb.connect(str(linked_sample.warehouse), read_only=True) as con:
        records = con.execute(
            "SELECT count(*), count(DISTINCT record_key),"
            " (SELECT count(*) FROM canonical_record) FROM linked_index"
        ).fetchall()[0]
        persons = con.execute(
            "SELECT count(*), count(DISTINCT person_id),"
            " (SELECT count(DISTINCT person_id) FROM linked_index) FROM person"
        ).fetchall()[0]
    assert records[0] == records[1] == records[2] > 0
    assert persons[0] == persons[1] == persons[2] > 0


@pytest.mark.slow
def test_a_generated_population_over_several_nights_equals_a_full_rebuild(tmp_path):
    """10,000 people, five nights of moves, marriages, new, changed and removed records."""
    from linkage.generate import generate_population

    generate_population(tmp_path / "population", people=10_000, seed=5, nights=5)
    config = tmp_path / "population" / "config" / "project.yaml"
    nights = sorted(p.name for p in (tmp_path / "population" / "landing").iterdir())
    nightly(config, date.fromisoformat(nights[0]))
    train(config, seed=7)
    relink(config)  # night 1 linked in full, as `linkage demo` does
    for night in nights[1:]:
        report = nightly(config, date.fromisoformat(night))
        assert report.stages["linkage"]["linked"] == "incremental"
        kept, rebuilt = rebuilt_alongside(config, tmp_path, night)
        drift = index_drift(kept, rebuilt)
        assert drift.differing_persons == 0, (night, drift)


def test_a_rebuild_links_every_record_and_reports_no_drift_after_incremental_nights(
    linked_sample, tmp_path
):
    from flows.link import rebuild
    from flows.nightly import FULL_REBUILD
    from tests.conftest import sample_project

    config = sample_project(tmp_path, "r")
    shutil.copytree(linked_sample.warehouse.parent, tmp_path / "r")
    report = rebuild(config)
    linkage = report.stages["linkage"]
    assert linkage["linked"] == FULL_REBUILD
    assert linkage["records_relinked"] == linkage["records"]
    assert set(linkage["drift"]["persons"]) == {"same"}
    assert "Against the index it replaced, persons: same" in report.to_markdown()
    # the night after a rebuild is incremental again
    with duckdb.connect(str(tmp_path / "r" / "linkage.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM link_input").fetchall()[0][0] > 0


def test_reaching_a_change_step_by_step_finds_what_whole_graph_components_find(
    linked_sample, tmp_path, monkeypatch
):
    """The records an incremental link re-clusters are found from the changes outward,
    step by step; a component too wide for MAX_REACH_STEPS falls back to connected
    components over every record. Both give the same records."""
    from linkage.index import resolve_model
    from linkage.link import incremental
    from linkage.link.blocking import plan_blocking
    from linkage.link.model import ModelShape
    from linkage.link.train import filled_input_columns, input_columns
    from linkage.review import load_decisions

    project = load_project(linked_sample.config)
    copy = tmp_path / "changed.duckdb"
    shutil.copy(project.warehouse, copy)
    registry = project.identifier_registry()
    con = open_warehouse(copy, registry)
    try:
        # a few records move house, a few leave
        con.execute("UPDATE canonical_record SET postcode = NULL WHERE hash(record_key) % 40 = 1")
        con.execute("DELETE FROM canonical_record WHERE hash(record_key) % 200 = 3")
        shape = ModelShape(filled_input_columns(con, registry), registry)
        budget = project.linkage.max_pairs_per_record
        rules = plan_blocking(con, "canonical_record", shape, budget).rules()
        incremental.hash_model_inputs(con, input_columns(con, registry))
        changes = incremental.record_changes(con)
        assert changes.changed and changes.removed

        def reach() -> tuple[list, list]:
            found = incremental.increment(
                con,
                registry,
                changes,
                resolve_model(project),
                project.linkage.edge_floor,
                rules,
                load_decisions(con),
            )
            return sorted(found.records["record_key"]), sorted(
                found.touched["record_key"].to_pylist()
            )

        by_steps = reach()
        monkeypatch.setattr(incremental, "MAX_REACH_STEPS", 1)
        by_components = reach()
    finally:
        con.close()
    assert by_steps == by_components
    assert len(by_steps[0]) > len(changes.changed)  # the changes reached their persons
