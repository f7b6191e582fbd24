"""Crash safety, proven: a night killed (SIGKILL) mid-way, then run again.

Night 1 of the sample is linked once (with the model `linked_sample` trained); night 2 is
then run uninterrupted for reference, and, on copies, killed at each point of
tests/kill_at.py in a process of its own, then run again. A night after a run that did not
finish links every record (linkage/index.py), so a re-run is compared with an uninterrupted
full night: an incremental one keeps its unchanged pairs' scores from night 1, whose term
frequencies differ in the tenth decimal.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import pytest
from prefect.settings import get_current_settings

from linkage.lock import lock_path_of
from linkage.status import warehouse_status
from tests.conftest import CLINIC_HEADER, NIGHTS, REPO, make_project, sample_project

ALERT_COLUMNS = "alert_id, rule_id, person_id, recipient, status, confidence, record_keys"


@dataclass(frozen=True)
class Published:
    """What people see of the warehouse: persons, alerts, what agencies were told."""

    index: list[tuple]
    alerts: list[tuple]
    told: list[tuple]


def published(warehouse: Path) -> Published:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return Published(
            con.execute("SELECT record_key, person_id FROM linked_index ORDER BY ALL").fetchall(),
            con.execute(f"SELECT {ALERT_COLUMNS} FROM alert ORDER BY ALL").fetchall(),
            con.execute(
                "SELECT agency, source_record_id, person_id, known_agencies FROM export_state"
                " ORDER BY ALL"
            ).fetchall(),
        )


def export_files(output: Path, run_id: str) -> dict[str, bytes]:
    """Every export file of a run but the manifests (they name the run and the time)."""
    root = output / "exports" / run_id
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.name != "manifest.json"
    }


@dataclass(frozen=True)
class Project:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / "w.yaml"

    @property
    def warehouse(self) -> Path:
        return self.root / "w" / "linkage.duckdb"

    @property
    def output(self) -> Path:
        return self.root / "w" / "output"

    def copy(self, to: Path) -> Project:
        shutil.copytree(self.root, to)
        return Project(to)


@pytest.fixture(scope="module")
def after_night_1(linked_sample, tmp_path_factory: pytest.TempPathFactory) -> Project:
    from flows.nightly import nightly

    root = tmp_path_factory.mktemp("crash") / "base"
    root.mkdir()
    config = sample_project(root, "w")
    with config.open("a") as handle:
        handle.write(f"linkage: {{model: {linked_sample.model_path}}}\n")
    nightly(config, date.fromisoformat(NIGHTS[0]))
    return Project(root)


@pytest.fixture(scope="module")
def uninterrupted(after_night_1, tmp_path_factory) -> tuple[Published, dict[str, bytes]]:
    from flows.nightly import nightly

    project = after_night_1.copy(tmp_path_factory.mktemp("crash") / "reference")
    report = nightly(project.config, date.fromisoformat(NIGHTS[1]))
    return published(project.warehouse), export_files(project.output, report.run_id)


@pytest.fixture(scope="module")
def uninterrupted_full(after_night_1, tmp_path_factory) -> tuple[Published, dict[str, bytes]]:
    from flows.nightly import nightly

    project = after_night_1.copy(tmp_path_factory.mktemp("crash") / "reference-full")
    report = nightly(project.config, date.fromisoformat(NIGHTS[1]), full=True)
    return published(project.warehouse), export_files(project.output, report.run_id)


@pytest.mark.parametrize("point", ["standardise", "link", "publish", "export"])
def test_a_killed_night_keeps_the_last_good_state_and_its_rerun_equals_an_uninterrupted_one(
    prefect_api, after_night_1, uninterrupted_full, tmp_path: Path, point: str
) -> None:
    from flows.nightly import nightly

    project = after_night_1.copy(tmp_path / "p")
    before = published(project.warehouse)
    killed = subprocess.run(
        [sys.executable, "-m", "tests.kill_at", point, "nightly", "--config", str(project.config)]
        + ["--run-date", NIGHTS[1]],
        cwd=REPO,
        env=os.environ | {"PREFECT_API_URL": str(get_current_settings().api.url)},
        capture_output=True,
        check=False,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()[-2000:]
    assert lock_path_of(project.warehouse).exists()  # left behind by the dead process

    assert published(project.warehouse) == before  # index, alerts and exports: all last good
    [interrupted, *_] = warehouse_status(project.warehouse).runs
    assert interrupted.status == "interrupted"
    assert not (project.output / "exports" / interrupted.run_id).exists()  # nobody sees it
    assert not (project.output / "runs" / interrupted.run_id / "alerts").exists()

    rerun = nightly(project.config, date.fromisoformat(NIGHTS[1]))  # clears the stale lock
    assert rerun.status == "complete"
    assert rerun.stages["linkage"]["linked"] == "the last run did not finish"
    expected, expected_files = uninterrupted_full
    assert published(project.warehouse) == expected
    assert export_files(project.output, rerun.run_id) == expected_files
    assert not list(project.output.rglob(".*.partial"))  # what the killed run staged: removed


def test_a_night_killed_between_its_commit_and_its_files_has_them_moved_in_by_the_next_run(
    prefect_api, after_night_1, uninterrupted, tmp_path: Path
) -> None:
    from flows.nightly import nightly

    project = after_night_1.copy(tmp_path / "p")
    killed = subprocess.run(
        [sys.executable, "-m", "tests.kill_at", "reveal", "nightly", "--config"]
        + [str(project.config), "--run-date", NIGHTS[1]],
        cwd=REPO,
        env=os.environ | {"PREFECT_API_URL": str(get_current_settings().api.url)},
        capture_output=True,
        check=False,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()[-2000:]
    expected, expected_files = uninterrupted
    assert published(project.warehouse) == expected  # committed: the night's index is out
    [interrupted, *_] = warehouse_status(project.warehouse).runs
    assert not (project.output / "exports" / interrupted.run_id).exists()

    nightly(project.config, date.fromisoformat(NIGHTS[1]))  # settles what the kill left
    assert export_files(project.output, interrupted.run_id) == expected_files
    assert (project.output / "runs" / interrupted.run_id / "alerts").is_dir()
    assert not list(project.output.rglob(".*.partial"))


def test_a_file_arriving_after_the_run_started_waits_for_the_next_run(
    prefect_api, tmp_path: Path, monkeypatch
) -> None:
    import linkage.night
    from flows.nightly import nightly

    config = make_project(
        tmp_path, {"2026-11-01/clinic_a.csv": CLINIC_HEADER + "1,Ann,Lee,01/02/2010,F,AB1 2CD,\n"}
    )
    late = tmp_path / "landing" / "2026-11-01" / "clinic_b.csv"
    standardise = linkage.night._standardise

    def arriving(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        late.write_text(CLINIC_HEADER + "2,Bob,Roy,03/04/2011,M,AB1 2CD,\n")
        return standardise(*args, **kwargs)

    monkeypatch.setattr(linkage.night, "_standardise", arriving)
    first = nightly(config, date(2026, 11, 1))
    monkeypatch.undo()
    assert [source.rows_read for source in first.sources] == [1]
    assert [f["file"].endswith("clinic_a.csv") for f in first.sources[0].files] == [True]
    again = nightly(config, date(2026, 11, 1))
    assert [source.rows_read for source in again.sources] == [2]


def test_a_warehouse_held_by_another_process_or_corrupt_is_a_clear_error(
    prefect_api, tmp_path: Path
) -> None:
    from flows.nightly import nightly
    from linkage.warehouse import WarehouseUnavailable

    config = make_project(
        tmp_path, {"2026-11-01/clinic.csv": CLINIC_HEADER + "1,Ann,Lee,01/02/2010,F,AB1 2CD,\n"}
    )
    warehouse = tmp_path / "warehouse" / "w.duckdb"
    warehouse.parent.mkdir(parents=True)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, time; c = duckdb.connect({str(warehouse)!r});"
            " print('open', flush=True); time.sleep(120)",
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"open"
        with pytest.raises(
            WarehouseUnavailable, match=f"open in another process.*pid {holder.pid}"
        ):
            nightly(config, date(2026, 11, 1))
    finally:
        holder.kill()
        holder.wait()
    assert not lock_path_of(warehouse).exists()

    garbage = b"not a database " * 1000
    warehouse.write_bytes(garbage)
    with pytest.raises(WarehouseUnavailable, match="not a DuckDB database"):
        nightly(config, date(2026, 11, 1))
    assert warehouse.read_bytes() == garbage  # left as it was
