"""The nightly flow end to end on the committed sample: four agencies, three nights."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import duckdb
import pytest

from flows.nightly import nightly
from linkage.config import load_project
from tests.conftest import NIGHTS, SAMPLE_DIR, sample_project

pytestmark = pytest.mark.usefixtures("prefect_api")


@pytest.fixture(scope="module")
def sample_runs(linked_sample) -> tuple[Path, list]:
    """All sample nights run once (training after the first), into a warehouse of their own."""
    return linked_sample.config, linked_sample.reports


def test_every_sample_night_completes_and_conserves_rows(sample_runs) -> None:
    _, reports = sample_runs
    assert len(reports) >= 3
    for report in reports[1:]:
        assert report.status == "complete"
        assert {s.source for s in report.sources} == {"education", "health", "police", "socialwork"}
        for source in report.sources:
            assert source.rows_read > 0
            assert source.rows_read == source.rows_accepted + source.rows_quarantined
    assert reports[0].status == "complete" and "linkage" in reports[0].stages


def test_a_night_without_a_trained_model_is_unlinked_and_says_why(linked_sample) -> None:
    report = linked_sample.unlinked_first_night
    assert report.status == "unlinked"
    assert "linkage train" in report.stages["linkage"]["skipped"]
    assert all(source.status == "used" for source in report.sources)


def test_canonical_records_match_the_last_night_and_truth(sample_runs) -> None:
    config, reports = sample_runs
    project = load_project(config)
    truth = SAMPLE_DIR / "truth" / "records.csv"
    with duckdb.connect(str(project.warehouse), read_only=True) as con:
        counts = dict(
            con.execute("SELECT source, count(*) FROM canonical_record GROUP BY 1").fetchall()
        )
        expected = dict(
            con.execute(
                "SELECT source, count(*) FROM read_csv($truth, all_varchar=true)"
                " WHERE night = $night GROUP BY 1",
                {"truth": str(truth), "night": NIGHTS[-1]},
            ).fetchall()
        )
        quarantined = dict(
            con.execute(
                "SELECT source, count(DISTINCT source_row_number) FROM quarantine q"
                " JOIN run USING (run_id) WHERE run.run_id = $run_id GROUP BY 1",
                {"run_id": reports[-1].run_id},
            ).fetchall()
        )
        unexplained = con.execute(
            "SELECT count(*) FROM quarantine WHERE reason IS NULL OR reason = ''"
        ).fetchall()
    for source, n in expected.items():
        assert counts[source] + quarantined.get(source, 0) == n
    assert unexplained == [(0,)]


def test_reports_never_contain_personal_data(sample_runs) -> None:
    config, reports = sample_runs
    project = load_project(config)
    report_text = (project.output_dir / "runs" / reports[0].run_id / "report.md").read_text()
    report_text += (project.output_dir / "runs" / reports[0].run_id / "report.json").read_text()
    report_text += (project.output_dir / "runs" / reports[0].run_id / "report.html").read_text()
    people = (SAMPLE_DIR / "truth" / "people.csv").read_text().splitlines()[1:200]
    for line in people:
        fields = line.split(",")
        surname, chi = fields[6], fields[8]
        assert not (surname and f" {surname.upper()} " in report_text.upper())
        assert not (chi and chi in report_text)


def test_same_extract_gives_identical_canonical_records(tmp_path: Path) -> None:
    rows = []
    for attempt in range(2):
        config = sample_project(tmp_path, f"p{attempt}")
        nightly(config, date.fromisoformat(NIGHTS[0]))
        with duckdb.connect(
            str(tmp_path / f"p{attempt}" / "linkage.duckdb"), read_only=True
        ) as con:
            rows.append(
                con.execute(
                    "SELECT * EXCLUDE (source_file) FROM canonical_record ORDER BY record_key"
                ).fetchall()
            )
        shutil.rmtree(tmp_path / f"p{attempt}" / "archive")
    assert rows[0] == rows[1] and len(rows[0]) > 1000
