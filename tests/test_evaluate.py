"""Truth-based measures on small hand-made indexes whose answers are worked out by hand."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from linkage.evaluate import evaluate

# P1 has three records, P2 two, P3 one; P2 and P3 are twins.
TRUTH = {"a:1": "P1", "a:2": "P1", "a:3": "P1", "a:4": "P2", "a:5": "P2", "a:6": "P3"}


@pytest.fixture
def truth_dir(tmp_path: Path) -> Path:
    rows = "".join(
        f"2026-11-01,{key.split(':')[0]},{key.split(':')[1]},{person},\n"
        for key, person in TRUTH.items()
    )
    (tmp_path / "records.csv").write_text(
        "night,source,source_record_id,person_id,corruptions\n" + rows
    )
    (tmp_path / "people.csv").write_text("person_id,hard_cases\nP1,\nP2,twin:P3\nP3,twin:P2\n")
    return tmp_path


def run(truth_dir: Path, clusters: dict[str, str]):
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE linked AS SELECT * FROM (VALUES ('x', 'y')) t(record_key, person_id) LIMIT 0"
    )
    con.executemany("INSERT INTO linked VALUES (?, ?)", list(clusters.items()))
    return evaluate(con, "linked", truth_dir, "2026-11-01")


def test_perfect_index(truth_dir: Path) -> None:
    result = run(truth_dir, TRUTH)
    assert (result.pairwise_precision, result.pairwise_recall, result.pairwise_f1) == (1, 1, 1)
    assert (result.wrong_person_merges, result.split_persons, result.twins_merged) == (0, 0, 0)
    assert result.predicted_persons == result.true_persons == 3


def test_one_split_and_one_wrong_merge(truth_dir: Path) -> None:
    # C1 = {1, 2}; C2 = {3, 4, 5} mixes P1 and P2; C3 = {6}
    clusters = {"a:1": "C1", "a:2": "C1", "a:3": "C2", "a:4": "C2", "a:5": "C2", "a:6": "C3"}
    result = run(truth_dir, clusters)
    # true positives: (1,2) and (4,5); predicted pairs 1 + 3; true pairs 3 + 1
    assert result.pairwise_precision == pytest.approx(0.5)
    assert result.pairwise_recall == pytest.approx(0.5)
    # B-cubed: (4/2 + 1/3 + 4/3 + 1) / 6 both ways
    assert result.bcubed_precision == pytest.approx(14 / 18)
    assert result.bcubed_recall == pytest.approx(14 / 18)
    assert (result.wrong_person_merges, result.split_persons, result.twins_merged) == (1, 1, 0)


def test_everything_merged_merges_the_twins(truth_dir: Path) -> None:
    result = run(truth_dir, {key: "C" for key in TRUTH})
    assert result.pairwise_precision == pytest.approx(4 / 15)
    assert result.pairwise_recall == pytest.approx(1.0)
    assert (result.wrong_person_merges, result.twins_merged) == (1, 1)
