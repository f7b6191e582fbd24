"""`linkage status` and `linkage backfill` over real runs of the real flow."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import duckdb
from typer.testing import CliRunner

from linkage.cli import app
from linkage.lock import LOCKED_EXIT_CODE, warehouse_lock
from linkage.status import warehouse_status
from tests.conftest import CLINIC_HEADER, make_project

ROWS = {
    "2026-11-01/clinic.csv": CLINIC_HEADER + "1,Ann,Lee,01/02/2010,F,AB1 2CD,\n",
    "2026-11-02/clinic.csv": CLINIC_HEADER
    + "1,Ann,Lee,01/02/2010,F,AB1 2CD,\n2,Bob,Roy,03/04/2011,M,AB1 2CD,\n",
}


def invoke(*args: str):  # noqa: ANN201
    return CliRunner().invoke(app, [*args])


def test_backfill_runs_missing_nights_in_order_and_status_shows_them(
    prefect_api, tmp_path: Path
) -> None:
    config = make_project(tmp_path, ROWS)
    warehouse = tmp_path / "warehouse" / "w.duckdb"
    assert "no runs yet" in invoke("status", "--config", str(config)).output

    result = invoke(
        "backfill", "--config", str(config), "--from", "2026-11-01", "--to", "2026-11-02"
    )
    assert result.exit_code == 0, result.output
    assert "2 nights to run, 0 already good" in result.output
    runs = warehouse_status(warehouse).runs
    assert [row.run_date.isoformat() for row in runs] == ["2026-11-02", "2026-11-01"]
    assert [row.rows_read for row in runs] == [2, 1]

    again = invoke(
        "backfill", "--config", str(config), "--from", "2026-11-01", "--to", "2026-11-02"
    )
    assert again.exit_code == 0 and "0 nights to run, 2 already good" in again.output

    # a run killed mid-way stays 'running' in the warehouse: status calls it interrupted
    with duckdb.connect(str(warehouse)) as con:
        con.execute("UPDATE run SET status = 'running' WHERE run_date = '2026-11-02'")
    shown = invoke("status", "--config", str(config)).output
    assert re.search(r"\| 2026-11-02 \| \S+ \| interrupted \|", shown)
    assert re.search(r"\| 2026-11-01 \| \S+ \| unlinked \| [\d.]+ \| 1/0 \| 1 \| 0 \|", shown)

    with warehouse_lock(warehouse, "20261103-020000-abc123"):
        busy = invoke("status", "--config", str(config))
        assert "a run is in progress: run 20261103-020000-abc123" in busy.output
        refused = invoke(
            "backfill", "--config", str(config), "--from", "2026-11-03", "--to", "2026-11-03"
        )
        assert refused.exit_code == LOCKED_EXIT_CODE


def test_status_names_the_last_good_night_and_backfill_never_goes_back(linked_sample) -> None:
    shown = invoke("status", "--config", str(linked_sample.config)).output
    last_night = linked_sample.reports[-1]
    assert f"last good night: {last_night.run_date} (run {last_night.run_id}" in shown
    result = invoke(
        "backfill",
        "--config",
        str(linked_sample.config),
        "--from",
        "2026-10-01",
        "--to",
        "2026-10-02",
    )
    assert (
        result.exit_code == 2 and f"the last good night is {last_night.run_date}" in result.output
    )


def test_the_report_compares_with_the_last_night_and_says_what_stands_out(
    prefect_api, tmp_path: Path
) -> None:
    from flows.nightly import nightly

    rows = [f"{n},Ann{n},Lee,01/02/2010,F,AB1 2CD,\n" for n in range(40)]
    config = make_project(
        tmp_path,
        {
            "2026-11-01/clinic.csv": CLINIC_HEADER + "".join(rows),
            "2026-11-02/clinic.csv": CLINIC_HEADER + "".join(rows[:25]),
        },
    )
    first = nightly(config, date(2026, 11, 1))
    second = nightly(config, date(2026, 11, 2))
    assert second.digest["previous_run_id"] == first.run_id
    [clinic] = second.digest["sources"]
    assert (clinic["rows_read"], clinic["previous_rows_read"]) == (25, 40)
    assert any(
        "25 rows read, 38% fewer than the last good night's 40" in w
        for w in second.digest["warnings"]
    )
    html = (tmp_path / "output" / "runs" / second.run_id / "report.html").read_text()
    assert "Stands out" in html and "38% fewer" in html and "-15 (-37.5%)" in html
    assert set(second.digest["versions"]) >= {"model", "project", "identifiers", "source clinic"}
    assert second.digest["seconds"]["intake"] > 0
