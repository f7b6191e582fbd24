"""Incremental nights: the index kept night by night equals a full rebuild's persons."""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
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


def test_an_incremental_nights_block_counts_equal_a_count_of_every_record(linked_sample):
    """An incremental night counts each block from the published counts and what changed;
    the counts it publishes are those a count over every current record gives."""
    from linkage.index import PUBLISHED_RUN_SQL
    from linkage.link.blocking import PairCounter

    assert linked_sample.reports[-1].stages["linkage"]["linked"] == "incremental"
    with duckdb.connect(str(linked_sample.warehouse), read_only=True) as con:
        published = con.execute(
            f"SELECT rule, pairs FROM blocking_rule_run WHERE run_id = ({PUBLISHED_RUN_SQL})"
        ).fetchall()
        blocks = {block.name: block for block in _counted_blocks(con)}
        count = PairCounter(con, "canonical_record", "every_record")
        recounted = {rule: count(blocks[rule]) for rule, _ in published}
    assert dict(published) == recounted
    assert any(blocks[rule].crossed for rule, _ in published), "a crossed block is counted"


def _counted_blocks(con: duckdb.DuckDBPyConnection) -> list:
    """Every block a link counts on this warehouse: the model's and their tightenings."""
    from linkage.identifiers import default_registry
    from linkage.link.blocking import _tightenings
    from linkage.link.model import ModelShape, prediction_blocks
    from linkage.link.train import filled_input_columns

    registry = default_registry()
    shape = ModelShape(filled_input_columns(con, registry), registry)
    blocks = prediction_blocks(shape)
    tighter = [
        block.tightened(*keys)
        for block in blocks
        for alternatives in _tightenings(block, shape)
        for keys in alternatives
    ]
    return blocks + tighter


def test_a_warehouse_without_its_link_state_links_every_record_once_and_says_why(
    linked_sample, tmp_path
):
    """A warehouse linked before the block keys and components were kept (or with them
    lost) is linked in full once, with the reason; the night after is incremental."""
    project = load_project(linked_sample.config)
    copy = tmp_path / "older.duckdb"
    shutil.copy(project.warehouse, copy)
    beside = project.model_copy(update={"warehouse": copy, "models_dir": project.model_dir})
    with duckdb.connect(str(copy), read_only=True) as con:
        run_date = con.execute("SELECT max(run_date) FROM canonical_record").fetchall()[0][0]
    con = open_warehouse(copy, project.identifier_registry())
    try:
        linked = []
        for night, damage in enumerate(
            [
                "DELETE FROM link_component",
                'ALTER TABLE link_input DROP COLUMN "date_of_birth + surname_metaphone"',
                "UPDATE link_review SET identifiers_agree = NULL",  # as opened from before it
                None,
            ]
        ):
            if damage:
                con.execute(damage)
            with transaction(con):
                linked.append(link_warehouse(con, beside, f"n{night}", run_date).linked)
    finally:
        con.close()
    assert linked == [
        "no record of the published index's components",
        "the published index has no count of the block date_of_birth + surname_metaphone",
        "review items published before they kept whether identifiers agree",
        "incremental",
    ]


def test_the_journal_finds_the_changes_a_comparison_of_every_record_finds(linked_sample, tmp_path):
    """An intake journals the records it writes, so an incremental link hashes only those:
    after a night with a changed, a removed and a new record (and a source that sent
    nothing), the journal gives the changes hashing every record gives, and the night
    linked from it equals a full rebuild."""
    from linkage import night as stages
    from linkage.link import incremental
    from linkage.link.train import input_columns
    from tests.conftest import NIGHTS, SAMPLE_DIR, sample_project

    landing = tmp_path / "landing" / "2026-11-04"
    shutil.copytree(SAMPLE_DIR / "landing" / NIGHTS[-1], landing)
    (landing / "police_incidents.csv").unlink()  # police send nothing tonight
    health = landing / "health_patients.csv"
    header, removed, renamed, *rest = health.read_text(encoding="utf-8").splitlines()
    new_record = "HPNEW00001" + rest[0][rest[0].index(",") :]
    renamed = renamed.replace(renamed.split(",")[3], "Marchbanks", 1)
    health.write_text("\n".join([header, renamed, *rest, new_record]) + "\n", encoding="utf-8")
    config = sample_project(tmp_path, "j")
    config.write_text(config.read_text().replace(str(SAMPLE_DIR / "landing"), str(landing.parent)))
    shutil.copytree(linked_sample.warehouse.parent, tmp_path / "j")
    project = load_project(config)

    night = stages.start_night(project, date(2026, 11, 4))
    try:
        intakes = [stages.intake_source(night, source) for source in project.source_configs()]
        intakes = stages.standardise_night(night, intakes)
        stages.publish_night(night, [stages.validate_source(night, i) for i in intakes])
        columns = input_columns(night.con, project.identifier_registry())
        assert incremental.journal_covers(night.con, columns)
        found = [incremental.record_changes(night.con, columns)]
        night.con.execute("DELETE FROM link_input_column")  # as a warehouse older than it
        assert not incremental.journal_covers(night.con, columns)
        found.append(incremental.record_changes(night.con, columns))
        night.con.execute(
            "INSERT INTO link_input_column SELECT generate_subscripts($c, 1), unnest($c)",
            {"c": columns},
        )
        outcome = stages.link_night(night)
        assert outcome is not None and outcome.linked == "incremental"
        # rows deleted by hand, outside an intake: no journal saw them, the counts do
        night.con.execute("CREATE TEMP TABLE by_hand AS SELECT record_key FROM linked_index")
        night.con.execute(
            "DELETE FROM canonical_record WHERE record_key IN"
            " (SELECT record_key FROM by_hand ORDER BY record_key LIMIT 2)"
        )
        by_hand = incremental.record_changes(night.con, columns)
        assert incremental.journal_covers(night.con, columns)
    finally:
        night.con.close()
    assert len(by_hand.removed) == 2 and not by_hand.changed
    assert found[0] == found[1]
    removed_key = "health:" + removed.split(",")[0]
    assert found[0].removed == [removed_key]
    assert {"health:" + renamed.split(",")[0], "health:HPNEW00001"} <= set(found[0].changed)
    assert not [key for key in found[0].changed if key.startswith("police:")]
    kept, rebuilt = rebuilt_alongside(config, tmp_path, "journal")
    drift = index_drift(kept, rebuilt)
    assert drift.differing_persons == 0, drift


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


def test_the_records_a_change_reaches_are_whole_components_of_the_whole_graph(
    linked_sample, tmp_path
):
    """The records an incremental link re-clusters are looked up from the components it
    keeps. Connected components over every record and every tie tonight (stored and new
    edges, reviewed pairs, published persons) check them: they hold every record a change
    reaches, and whole components only (what they re-cluster, a full link would cluster
    alike). They may hold more: a component a changed record left keeps its old members."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    from linkage.index import _published_blocking, resolve_model
    from linkage.link import incremental
    from linkage.link.blocking import DeltaPairCounter, plan_blocking
    from linkage.link.model import ModelShape
    from linkage.link.train import filled_input_columns, input_columns
    from linkage.review import load_decisions

    project = load_project(linked_sample.config)
    copy = tmp_path / "changed.duckdb"
    shutil.copy(project.warehouse, copy)
    registry = project.identifier_registry()
    con = open_warehouse(copy, registry)
    try:
        # a few records move house, a few leave (journaled, as an intake journals them)
        con.execute(
            "INSERT INTO canonical_change SELECT record_key FROM canonical_record"
            " WHERE hash(record_key) % 40 = 1 OR hash(record_key) % 200 = 3"
        )
        con.execute("UPDATE canonical_record SET postcode = NULL WHERE hash(record_key) % 40 = 1")
        con.execute("DELETE FROM canonical_record WHERE hash(record_key) % 200 = 3")
        shape = ModelShape(filled_input_columns(con, registry), registry)
        changes = incremental.record_changes(con, input_columns(con, registry))
        assert changes.changed and changes.removed
        counts = _published_blocking(con)[1]
        delta = DeltaPairCounter(con, counts, incremental.INPUT_TABLE, incremental.CHANGED)
        budget = project.linkage.max_pairs_per_record
        blocks = plan_blocking(con, "canonical_record", shape, budget, count_pairs=delta).blocks
        decisions = load_decisions(con)
        found = incremental.increment(
            con,
            registry,
            changes,
            resolve_model(project),
            project.linkage.edge_floor,
            blocks,
            decisions,
        )
        keys = [
            row[0]
            for row in con.execute("SELECT record_key FROM canonical_record ORDER BY 1").fetchall()
        ]
        code = {key: position for position, key in enumerate(keys)}
        gone = set(changes.changed) | set(changes.removed)
        stored = con.execute("SELECT record_key_l, record_key_r FROM edge").fetchall()
        persons = con.execute("SELECT person_id, record_key FROM linked_index").fetchall()
    finally:
        con.close()
    ties = [(a, b) for a, b in stored if a not in gone and b not in gone]
    ties += list(zip(found.edges["record_key_l"], found.edges["record_key_r"], strict=True))
    ties += sorted(decisions.matches)
    first_of: dict[str, str] = {}
    for person, key in persons:
        if key in code:
            ties.append((first_of.setdefault(person, key), key))
    ties = [(a, b) for a, b in ties if a in code and b in code]
    ends = np.array([[code[a], code[b]] for a, b in ties], dtype=np.int64).reshape(-1, 2)
    graph = coo_matrix((np.ones(len(ends)), (ends[:, 0], ends[:, 1])), shape=(len(keys),) * 2)
    label = connected_components(graph, directed=False)[1]
    gone_persons = {person for person, key in persons if key in gone}
    seeds = set(changes.changed) | {
        k for pair in decisions.matches | decisions.non_matches for k in pair
    }
    seeds |= {key for person, key in persons if person in gone_persons}
    reached = {label[code[key]] for key in seeds if key in code}
    reached_keys = {key for key in keys if label[code[key]] in reached}
    relinked = set(found.records["record_key"])
    assert reached_keys <= relinked
    whole = {key for key in keys if label[code[key]] in {label[code[k]] for k in relinked}}
    assert relinked == whole, "whole components only"
    assert set(found.touched["record_key"].to_pylist()) == relinked | set(changes.removed)
    assert len(reached_keys) > len(changes.changed)  # the changes reached their persons
    assert len(relinked) < 2 * len(reached_keys)


def test_splinks_recorded_scoring_statements_score_as_splink_does(linked_sample, tmp_path):
    """An incremental night runs the statements Splink ran when the last full link
    recorded them (Splink's Python costs more than its scoring of a night's few records):
    they must give exactly Splink's pairs and scores, a full link must record the ones
    incremental nights look up, and a new model, floor or blocks must be scored afresh."""
    from linkage.index import resolve_model
    from linkage.link.incremental import SCORING_TABLE, stored_term_frequencies
    from linkage.link.model import term_frequency_columns
    from linkage.link.predict import CompiledScoring, score_pairs, scoring_key
    from linkage.link.train import model_input

    project = load_project(linked_sample.config)
    model_path = resolve_model(project)
    with duckdb.connect(str(linked_sample.warehouse), read_only=True) as con:
        records = model_input(con, project.identifier_registry())
        columns = term_frequency_columns(json.loads(model_path.read_text(encoding="utf-8")))
        term_frequencies = stored_term_frequencies(con, columns)
        kept = con.execute(f"SELECT DISTINCT key FROM {SCORING_TABLE}").fetchall()
    rebuilt_alongside(linked_sample.config, tmp_path, "compiled")
    with duckdb.connect(str(tmp_path / "rebuild-compiled.duckdb"), read_only=True) as con:
        recorded = con.execute(f"SELECT DISTINCT key FROM {SCORING_TABLE}").fetchall()
    assert len(kept) == 1 and recorded == kept  # the nights found the full link's
    scoring = (records, model_path, 0.01, None, term_frequencies)
    compiled = CompiledScoring("test")
    by_splink = score_pairs(*scoring, compiled=compiled)
    assert compiled.statements and len(by_splink) > 100
    replayed = score_pairs(*scoring, compiled=compiled)
    pair = ["record_key_l", "record_key_r"]  # pairs come in no set order
    assert replayed.sort_values(pair, ignore_index=True).equals(
        by_splink.sort_values(pair, ignore_index=True)
    )
    # a different floor drops pairs, and needs statements of its own
    key = scoring_key(records, model_path, 0.01, [], term_frequencies, None)
    assert key != scoring_key(records, model_path, 0.5, [], term_frequencies, None)
    assert key != scoring_key(
        records.drop(columns="sex"), model_path, 0.01, [], term_frequencies, None
    )
