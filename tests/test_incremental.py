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
