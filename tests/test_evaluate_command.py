"""`linkage evaluate`: the published index of the sample's last night against its truth."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from linkage.cli import app
from linkage.config import load_project
from linkage.evaluate import RunEvaluation, evaluate_run
from tests.conftest import NIGHTS, SAMPLE_DIR

TRUTH_DIR = SAMPLE_DIR / "truth"
PROPORTIONS = [
    "pairwise_precision",
    "pairwise_recall",
    "pairwise_f1",
    "bcubed_precision",
    "bcubed_recall",
]


@pytest.fixture(scope="module")
def evaluated(linked_sample) -> RunEvaluation:
    return evaluate_run(load_project(linked_sample.config), TRUTH_DIR)


def saved_rows(warehouse: Path, run_id: str) -> list[dict]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        frame = con.execute(
            "SELECT * FROM evaluation WHERE run_id = $run_id ORDER BY evaluated_at",
            {"run_id": run_id},
        ).df()
    return frame.to_dict("records")


def test_evaluates_the_last_link_run_against_its_night(linked_sample, evaluated) -> None:
    index = linked_sample.index_by_night[NIGHTS[-1]]
    assert evaluated.run_id == linked_sample.reports[-1].run_id
    assert evaluated.run_id in set(index["run_id"])  # the records its link placed
    assert evaluated.night == NIGHTS[-1]
    assert evaluated.index_records == evaluated.evaluation.records == len(index)


def test_evaluation_is_saved_with_the_run(linked_sample, evaluated) -> None:
    project = load_project(linked_sample.config)
    assert evaluated.path == project.output_dir / "runs" / evaluated.run_id / "evaluation.json"
    saved = json.loads(evaluated.path.read_text())
    assert saved["run_id"] == evaluated.run_id and saved["night"] == NIGHTS[-1]
    assert saved["pairwise_precision"] == pytest.approx(evaluated.evaluation.pairwise_precision)
    row = saved_rows(linked_sample.warehouse, evaluated.run_id)[0]
    assert str(row["night"].date()) == NIGHTS[-1]
    for name, value in evaluated.evaluation.as_dict().items():
        assert row[name] == pytest.approx(value), name


@pytest.mark.parametrize("measure", PROPORTIONS)
def test_measures_are_proportions(evaluated, measure) -> None:
    assert 0.0 <= getattr(evaluated.evaluation, measure) <= 1.0


def test_published_index_meets_the_targets(evaluated) -> None:
    result = evaluated.evaluation
    assert result.pairwise_precision >= 0.995
    assert result.pairwise_recall >= 0.98
    assert result.twins_merged == 0


def test_cli_prints_the_measures_and_appends_a_row(linked_sample, evaluated) -> None:
    args = ["evaluate", "--config", str(linked_sample.config), "--truth", str(TRUTH_DIR)]
    result = CliRunner().invoke(app, [*args, "--night", NIGHTS[-1]])
    assert result.exit_code == 0, result.output
    assert "pairwise precision" in result.output and evaluated.run_id in result.output
    rows = saved_rows(linked_sample.warehouse, evaluated.run_id)
    assert len(rows) >= 2  # one per evaluation: history is appended, never rewritten
    assert rows[-1]["pairwise_recall"] == pytest.approx(evaluated.evaluation.pairwise_recall)


@pytest.mark.parametrize(
    ("truth", "night", "message"),
    [
        (TRUTH_DIR, "1999-01-01", "in the truth of night 1999-01-01"),
        (SAMPLE_DIR / "landing", None, "truth file not found"),
    ],
)
def test_nothing_to_compare_is_a_clear_error(linked_sample, truth, night, message) -> None:
    args = ["evaluate", "--config", str(linked_sample.config), "--truth", str(truth)]
    result = CliRunner().invoke(app, args + (["--night", night] if night else []))
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())  # the console wraps long lines


def test_a_warehouse_without_an_index_is_a_clear_error(tmp_path: Path) -> None:
    from linkage.evaluate import EvaluationError
    from linkage.warehouse import open_warehouse
    from tests.conftest import sample_project

    project = load_project(sample_project(tmp_path))
    open_warehouse(project.warehouse).close()
    with pytest.raises(EvaluationError, match="no published person index"):
        evaluate_run(project, TRUTH_DIR, date.fromisoformat(NIGHTS[0]))
