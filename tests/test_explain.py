"""Explanations, waterfall charts and dashboards over the real linked sample.

The sample's warehouse comes from the shared `linked_sample` fixture (three nights run,
trained and linked); the risk ordering and the error messages use tiny hand-made tables.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from linkage.cli import app
from linkage.config import load_project
from linkage.errors import LinkageError
from linkage.explain import (
    CLUSTER_STUDIO_FILE,
    COMPARISON_VIEWER_FILE,
    dashboards_for_run,
    explain_person,
    level_labels,
    read_warehouse,
    remote_resources,
    riskiest_persons,
    waterfall_chart_html,
    write_dashboards,
)
from linkage.link.model import EXACT_GAMMA
from linkage.warehouse import PUBLISHED_TABLES

COMPARISONS = ["forename", "surname", "date_of_birth", "address", "sex", "chi", "scn", "pnc_id"]


@pytest.fixture
def sample_con(linked_sample) -> Iterator[duckdb.DuckDBPyConnection]:
    with read_warehouse(linked_sample.warehouse) as con:
        yield con


def largest_person(con: duckdb.DuckDBPyConnection) -> str:
    return con.execute(
        "SELECT person_id FROM person ORDER BY records DESC, person_id LIMIT 1"
    ).fetchall()[0][0]


@pytest.mark.parametrize(
    ("comparison", "gamma", "label"),
    [
        ("forename", -1, "forename is NULL"),
        ("forename", EXACT_GAMMA["forename"], "Exact match"),
        ("forename", EXACT_GAMMA["forename"] - 1, "Nickname"),
        ("forename", 0, "All other comparisons"),
        ("surname", 3, "Forename and surname swapped"),
        ("date_of_birth", 3, "Day and month transposed"),
        ("address", 4, "Same postcode and house number"),
        ("address", 2, "One's earlier postcode is the other's"),
        ("chi", 1, "Exact match"),
        ("chi", 0, "All other comparisons"),
    ],
)
def test_gamma_values_read_as_the_models_level_labels(
    linked_sample, comparison: str, gamma: int, label: str
) -> None:
    assert level_labels(linked_sample.model_path)[comparison][gamma] == label


def test_a_multi_record_person_is_explained_by_its_records_and_edges(sample_con) -> None:
    person_id = largest_person(sample_con)
    explanation = explain_person(sample_con, person_id)

    records = sample_con.execute(
        "SELECT record_key FROM linked_index WHERE person_id = $p ORDER BY 1", {"p": person_id}
    ).fetchall()
    assert [record["record_key"] for record in explanation.records] == [r[0] for r in records]
    assert len(explanation.records) == explanation.summary["records"] >= 3
    keys = {record["record_key"] for record in explanation.records}
    inside = sample_con.execute(
        "SELECT count(*) FROM edge WHERE list_contains($k, record_key_l)"
        " AND list_contains($k, record_key_r)",
        {"k": sorted(keys)},
    ).fetchall()[0][0]
    assert len(explanation.edges) == inside >= len(keys) - 1  # at least a spanning tree
    assert any(edge.linked for edge in explanation.edges)
    for edge in explanation.edges:
        assert {edge.record_key_l, edge.record_key_r} <= keys
        assert list(edge.levels) == COMPARISONS
        assert all(label and not label.startswith("level ") for label in edge.levels.values())
    assert [e.match_weight for e in explanation.edges] == sorted(
        (e.match_weight for e in explanation.edges), reverse=True
    )
    assert explanation.history[0]["event"] == "created"
    assert explanation.run.model_path == linked_sample_model(sample_con)

    markdown = explanation.to_markdown()
    assert markdown.startswith(f"# Person {person_id}")
    assert all(key in markdown for key in keys)
    assert "| Exact match |" in markdown


def linked_sample_model(con: duckdb.DuckDBPyConnection) -> Path:
    return Path(con.execute("SELECT any_value(model_path) FROM link_run").fetchall()[0][0])


def test_a_flagged_person_shows_its_review_items(sample_con) -> None:
    person_id = sample_con.execute(
        "SELECT person_id_l FROM link_review ORDER BY person_id_l LIMIT 1"
    ).fetchall()[0][0]
    explanation = explain_person(sample_con, person_id)
    assert explanation.summary["needs_review"]
    assert explanation.review
    assert all(person_id in (r["person_id_l"], r["person_id_r"]) for r in explanation.review)
    assert explanation.review[0]["reason"] in explanation.to_markdown()


def test_the_waterfall_of_an_edge_is_offline_and_scores_as_the_link_run_did(
    linked_sample, sample_con
) -> None:
    edge = explain_person(sample_con, largest_person(sample_con)).edges[0]
    html = waterfall_chart_html(
        sample_con, linked_sample.model_path, edge.record_key_l, edge.record_key_r
    )
    assert remote_resources(html) == []
    assert not re.search(r"<script[^>]*\bsrc=", html)
    for comparison in COMPARISONS:
        assert f'"column_name": "{comparison}"' in html
    # term frequencies come from the whole population, as in the link run
    assert '"column_name": "tf_surname"' in html
    final = re.search(r'"column_name": "Final score"[^}]*"log2_bayes_factor": ([-0-9.e]+)', html)
    assert final is not None
    assert float(final.group(1)) == pytest.approx(edge.match_weight, abs=1e-6)


def test_dashboards_show_the_riskiest_persons_offline(linked_sample, sample_con, tmp_path) -> None:
    paths = write_dashboards(sample_con, linked_sample.model_path, tmp_path, max_clusters=6)
    assert paths == [tmp_path / COMPARISON_VIEWER_FILE, tmp_path / CLUSTER_STUDIO_FILE]
    chosen = riskiest_persons(sample_con, 6)
    assert {"flagged for review", "weakest link", "largest"} <= {p.reason for p in chosen}
    studio = paths[1].read_text()
    assert all(person.person_id in studio for person in chosen)
    for path in paths:
        html = path.read_text()
        assert remote_resources(html) == [] and "fonts.googleapis" not in html


def test_the_nightly_hook_writes_dashboards_only_for_the_run_that_published(
    linked_sample,
) -> None:
    project = load_project(linked_sample.config)
    assert dashboards_for_run(project, linked_sample.unlinked_first_night.run_id) == []
    published = linked_sample.reports[-1].run_id
    paths = dashboards_for_run(project, published)
    assert [p.parent for p in paths] == [project.output_dir / "runs" / published / "dashboards"] * 2


def test_explain_command_prints_and_writes_one_waterfall_per_edge(linked_sample, tmp_path) -> None:
    with read_warehouse(linked_sample.warehouse) as con:
        person_id = con.execute(
            "SELECT person_id FROM person WHERE records = 2 ORDER BY person_id LIMIT 1"
        ).fetchall()[0][0]
    args = ["explain", "--config", str(linked_sample.config), "--person-id", person_id]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert person_id in result.output
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == ["explanation.md", "waterfall-1.html"]
    assert "[chart](waterfall-1.html)" in (tmp_path / "explanation.md").read_text()


def test_explain_command_names_an_unknown_person(linked_sample) -> None:
    args = ["explain", "--config", str(linked_sample.config), "--person-id", "P9999999999"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert "P9999999999" in result.output


# Hand-made indexes: the risk order and the errors, worked out by hand.


@pytest.fixture
def small_index() -> Iterator[duckdb.DuckDBPyConnection]:
    con = duckdb.connect()
    for table in ("person", "link_review", "person_id_history"):
        con.execute(PUBLISHED_TABLES[table])
    yield con
    con.close()


def add_person(
    con: duckdb.DuckDBPyConnection,
    person_id: str,
    records: int,
    confidence: float | None,
    flagged: bool = False,
    chis: tuple[str, ...] = (),
) -> None:
    con.execute(
        "INSERT INTO person (person_id, identifiers, conflicting_identifiers, records,"
        " min_link_confidence, needs_review)"
        " VALUES ($p, MAP {'chi': $chis}, $conflicting, $n, $c, $f)",
        {
            "p": person_id,
            "chis": list(chis),
            "conflicting": ["chi"] if len(chis) > 1 else [],
            "n": records,
            "c": confidence,
            "f": flagged,
        },
    )


def test_risky_persons_are_taken_round_robin_then_their_review_partners(small_index) -> None:
    add_person(small_index, "PA", 2, 0.999, chis=("1111111111", "2222222222"))
    add_person(small_index, "PB", 2, 0.97, flagged=True)
    add_person(small_index, "PC", 1, None, flagged=True)
    add_person(small_index, "PD", 5, 0.9999)
    add_person(small_index, "PE", 2, 0.96)
    add_person(small_index, "PF", 3, 0.98)
    add_person(small_index, "PG", 1, None)
    add_person(small_index, "PH", 1, None, flagged=True)
    small_index.execute(
        "INSERT INTO link_review (record_key_l, record_key_r, person_id_l, person_id_r,"
        " match_probability, reason, run_id)"
        " VALUES ('c:1', 'h:1', 'PC', 'PH', 0.8, 'possible twins', 'r')"
    )
    chosen = [(p.person_id, p.reason) for p in riskiest_persons(small_index, max_clusters=6)]
    # turn 1: conflicting PA, flagged PB, weakest PE, largest PD; turn 2: no more
    # conflicting, flagged PC, weakest PF (PB, next in that list, is already in): six.
    # Then PC's review partner PH. PG (one record, not flagged) is never at risk.
    assert chosen == [
        ("PA", "conflicting identifiers"),
        ("PB", "flagged for review"),
        ("PE", "weakest link"),
        ("PD", "largest"),
        ("PC", "flagged for review"),
        ("PF", "weakest link"),
        ("PH", "review partner"),
    ]


@pytest.mark.parametrize(
    ("history", "message"),
    [
        ([], "'P0000000009' is not in the person index and never was"),
        (
            [("merged", "P0000000001", "records joined another person")],
            "P0000000009 is no longer in the person index: merged into P0000000001",
        ),
    ],
)
def test_an_unknown_person_id_is_a_clear_error(
    small_index, history: list[tuple[str, str, str]], message: str
) -> None:
    for event, related, reason in history:
        small_index.execute(
            "INSERT INTO person_id_history VALUES"
            " ('r2', DATE '2026-11-02', 'P0000000009', $event, $related, 2, $reason)",
            {"event": event, "related": related, "reason": reason},
        )
    with pytest.raises(LinkageError, match=re.escape(message)):
        explain_person(small_index, "P0000000009")


def test_a_few_records_read_for_scoring_keep_their_text_columns_as_text(sample_con) -> None:
    """Records none of which hold an identifier still give Splink a text column for it
    (an all-empty object column would reach DuckDB typeless and break its comparisons)."""
    from linkage.link.train import model_input

    keys = [
        row[0]
        for row in sample_con.execute(
            "SELECT record_key FROM canonical_record WHERE scn IS NULL ORDER BY 1 LIMIT 3"
        ).fetchall()
    ]
    few = model_input(sample_con, record_keys=keys)
    everyone = model_input(sample_con)
    assert list(few["record_key"]) == keys
    assert few["scn"].isna().all()
    assert few["scn"].dtype == everyone["scn"].dtype == "string"
    assert list(few.columns) == list(everyone.columns)
