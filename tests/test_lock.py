"""One run at a time: the warehouse lock, its holder, stale locks, and the CLI's exit code."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import pytest
from typer.testing import CliRunner

from linkage.cli import app
from linkage.lock import (
    LOCKED_EXIT_CODE,
    LockHolder,
    WarehouseLocked,
    _process_start,
    acquire,
    lock_path_of,
    read_holder,
    release,
    warehouse_lock,
)
from tests.conftest import CLINIC_HEADER, make_project


@pytest.fixture
def live_process() -> Iterator[subprocess.Popen]:
    """Another process on this host, alive for the test."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield process
    process.kill()
    process.wait()


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def write_lock(path: Path, pid: int, run_id: str = "20261101-020000-abcdef") -> LockHolder:
    holder = LockHolder(run_id, socket.gethostname(), pid, "2026-11-01T02:00:00+00:00")
    holder = LockHolder(**(asdict(holder) | {"process_start": _process_start(pid)}))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(holder)))
    return holder


def test_a_second_run_is_refused_naming_the_holder(tmp_path: Path) -> None:
    warehouse = tmp_path / "w.duckdb"
    with warehouse_lock(warehouse, "run-one") as holder:
        assert read_holder(lock_path_of(warehouse)) == holder
        with pytest.raises(WarehouseLocked) as refused:
            acquire(lock_path_of(warehouse), "run-two")
        message = str(refused.value)
        assert "run run-one" in message and f"pid {os.getpid()}" in message
        assert socket.gethostname() in message and holder.started_at in message
    assert not lock_path_of(warehouse).exists()  # released on the way out
    with warehouse_lock(warehouse, "run-three"):
        pass


def test_the_lock_is_released_when_the_run_fails(tmp_path: Path) -> None:
    warehouse = tmp_path / "w.duckdb"
    with pytest.raises(RuntimeError), warehouse_lock(warehouse, "run-one"):
        raise RuntimeError("the night failed")
    assert not lock_path_of(warehouse).exists()


def test_a_lock_left_by_a_dead_process_is_cleared(tmp_path: Path) -> None:
    path = lock_path_of(tmp_path / "w.duckdb")
    write_lock(path, dead_pid())
    holder = acquire(path, "run-after-crash")
    assert read_holder(path) == holder and holder.run_id == "run-after-crash"


def test_a_reused_pid_does_not_keep_a_stale_lock(tmp_path: Path, live_process) -> None:
    path = lock_path_of(tmp_path / "w.duckdb")
    stale = write_lock(path, live_process.pid)
    path.write_text(json.dumps(asdict(stale) | {"process_start": 1}))  # another process's
    assert acquire(path, "run-next").run_id == "run-next"


def test_a_live_holder_or_another_host_keeps_the_lock(tmp_path: Path, live_process) -> None:
    path = lock_path_of(tmp_path / "w.duckdb")
    holder = write_lock(path, live_process.pid)
    with pytest.raises(WarehouseLocked):
        acquire(path, "run-two")
    elsewhere = LockHolder(holder.run_id, "another-host", dead_pid(), holder.started_at)
    path.write_text(json.dumps(asdict(elsewhere)))
    with pytest.raises(WarehouseLocked, match="another-host"):
        acquire(path, "run-two")
    release(path, LockHolder("run-two", "h", 1, "t"))  # never removes another run's lock
    assert read_holder(path) == elsewhere


def test_an_unreadable_lock_is_reported_not_cleared(tmp_path: Path) -> None:
    path = lock_path_of(tmp_path / "w.duckdb")
    path.write_text("{not json")
    with pytest.raises(WarehouseLocked, match="unreadable lock"):
        acquire(path, "run-two")
    assert path.read_text() == "{not json"


def test_the_nightly_command_exits_with_the_locked_code(
    prefect_api, tmp_path: Path, live_process
) -> None:
    config = make_project(
        tmp_path, {"2026-11-01/clinic.csv": CLINIC_HEADER + "1,Ann,Lee,01/02/2010,F,AB1 2CD,\n"}
    )
    warehouse = tmp_path / "warehouse" / "w.duckdb"
    write_lock(lock_path_of(warehouse), live_process.pid, run_id="20261101-020000-feed01")
    result = CliRunner().invoke(
        app, ["nightly", "--config", str(config), "--run-date", "2026-11-01"]
    )
    assert result.exit_code == LOCKED_EXIT_CODE
    assert "20261101-020000-feed01" in result.output and str(live_process.pid) in result.output
    assert not warehouse.exists()  # nothing touched

    live_process.kill()
    live_process.wait()  # the holder died: its lock is stale, the night runs
    result = CliRunner().invoke(
        app, ["nightly", "--config", str(config), "--run-date", "2026-11-01"]
    )
    assert result.exit_code == 0, result.output
    assert warehouse.exists() and not lock_path_of(warehouse).exists()
