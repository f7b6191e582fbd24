"""The scheduled path against a real local Prefect server: serve, register, trigger, run."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from tests.conftest import CLINIC_HEADER, REPO, make_project

PREFECT = [sys.executable, "-m", "prefect"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(check, seconds: float, what: str) -> None:  # noqa: ANN001
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(1)
    raise AssertionError(f"timed out after {seconds:.0f} s waiting for {what}")


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture
def prefect_server(tmp_path: Path) -> Iterator[dict[str, str]]:
    """`prefect server start` with its own home and port; yields the env to reach it."""
    port = free_port()
    env = os.environ | {
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PYTHONPATH": str(REPO),
    }
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(
        [*PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: healthy(env["PREFECT_API_URL"]), 180, "the Prefect server")
        yield env
    finally:
        server.terminate()
        server.wait(timeout=60)
        log.close()


def test_the_nightly_deployment_is_served_triggered_and_runs(
    prefect_server: dict[str, str], tmp_path: Path
) -> None:
    env = prefect_server
    config = make_project(
        tmp_path / "project",
        {"2026-11-01/clinic.csv": CLINIC_HEADER + "1,Ann,Lee,01/02/2010,F,AB1 2CD,\n"},
    )
    serving = subprocess.Popen(
        [sys.executable, "-m", "linkage.cli", "schedule", "--config", str(config)],
        env=env,
        cwd=REPO,
        stdout=(tmp_path / "serve.log").open("w"),
        stderr=subprocess.STDOUT,
    )
    try:
        inspect = [*PREFECT, "deployment", "inspect", "nightly/nightly"]
        registered = lambda: subprocess.run(inspect, env=env, capture_output=True).returncode == 0  # noqa: E731
        wait_for(registered, 120, "the deployment to register")
        shown = subprocess.run(inspect, env=env, capture_output=True, text=True).stdout
        assert "0 2 * * *" in shown and "Europe/London" in shown
        limit = re.search(r"'global_concurrency_limit': \{.*?'limit': (\d+)", shown, re.DOTALL)
        assert limit and limit[1] == "1", shown

        run = subprocess.run(
            [*PREFECT, "deployment", "run", "nightly/nightly", "--param", 'run_date="2026-11-01"']
            + ["--watch", "--watch-timeout", "300"],
            env=env,
            capture_output=True,
            text=True,
            timeout=400,
        )
        assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
        assert "Completed" in run.stdout
    finally:
        serving.terminate()
        serving.wait(timeout=60)

    warehouse = tmp_path / "project" / "warehouse" / "w.duckdb"
    with duckdb.connect(str(warehouse), read_only=True) as con:
        [(night, status, report_path)] = con.execute(
            "SELECT run_date, status, report_path FROM run"
        ).fetchall()
    assert str(night) == "2026-11-01" and status == "unlinked"  # no model yet: intake only
    assert Path(report_path).with_name("report.html").exists()
