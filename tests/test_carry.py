"""Intake in proportion to change: carried rows give exactly what a full intake gives."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import pytest

from flows.nightly import nightly
from tests.conftest import CLINIC_HEADER, make_project

ANNA = "1,Anna,Smith,01/02/2010,F,G12 8QQ,0102101234\n"  # CHI fails its check: a flag
BEN = "2,Ben,Jones,03/04/2011,M,EH1 1AA,\n"
BEN_MOVED = "2,Ben,Jones,03/04/2011,M,EH1 1AB,\n"
NOTHING = "3,,,,,,\n"  # no name, no date, no identifier: quarantined
NOTHING_FIXED = "3,Ian,Wood,04/04/2004,M,G5 5EE,\n"
CARA = "4,Cara,Brown,31/13/2012,F,G1 1AA,\n"  # unparseable date of birth: a flag
DAN = "5,Dan,Grey,01/01/2015,M,G2 2BB,\n"
EVE = "6,Eve,Black,05/05/2016,F,G3 3CC,\n"
EVE_AGAIN = "6,Eva,Black,05/05/2016,F,G3 3CC,\n"  # the same id twice: both quarantined
FAY = "7,Fay,White,01/01/2027,F,G4 4DD,\n"  # born after the night: nulled, never carried
GUS = "8,Gus,Green,02/02/2002,M,G6 6FF,\n"

NIGHTS = {
    "2026-11-01": [ANNA, BEN, NOTHING, CARA, DAN, EVE, FAY],
    "2026-11-02": [ANNA, BEN_MOVED, NOTHING, CARA, EVE, EVE_AGAIN, FAY, GUS],
    "2026-11-03": [GUS, ANNA, BEN_MOVED, NOTHING_FIXED, CARA, DAN, EVE, FAY],
    "2026-11-04": [GUS, ANNA, BEN_MOVED, NOTHING_FIXED, CARA, DAN, EVE, FAY],
}

# Published intake tables, less what differs between two projects (run ids, archive paths).
COMPARED = {
    "canonical_record": "source_file",
    "quarantine": "run_id, source_file",
    "record_issue": "run_id, source_file",
    "source_night": "run_id, files",
    "field_night": "run_id",
}


def _project(root: Path) -> Path:
    files = {f"{night}/clinic.csv": CLINIC_HEADER + "".join(rows) for night, rows in NIGHTS.items()}
    return make_project(root, files)


@pytest.fixture(scope="module")
def carried_and_full(prefect_api, tmp_path_factory: pytest.TempPathFactory):
    """The same four nights, carried (the default) and each night in full."""
    carried = _project(tmp_path_factory.mktemp("carried"))
    full = _project(tmp_path_factory.mktemp("full"))
    reports = {}
    for night in NIGHTS:
        reports[night] = nightly(carried, date.fromisoformat(night))
        nightly(full, date.fromisoformat(night), full=True)
    return carried, full, reports


def _warehouse(config: Path) -> Path:
    return config.parent / "warehouse" / "w.duckdb"


@pytest.mark.parametrize("table", sorted(COMPARED))
def test_carried_nights_publish_what_full_nights_publish(carried_and_full, table):
    carried, full, _ = carried_and_full
    with duckdb.connect() as con:
        con.execute(f"ATTACH '{_warehouse(carried)}' AS carried (READ_ONLY)")
        con.execute(f"ATTACH '{_warehouse(full)}' AS full_intake (READ_ONLY)")
        select = f"SELECT * EXCLUDE ({COMPARED[table]})"
        differ = [
            con.execute(
                f"SELECT count(*) FROM ({select} FROM {a}.{table} EXCEPT ALL"
                f" {select} FROM {b}.{table})"
            ).fetchall()[0][0]
            for a, b in [("carried", "full_intake"), ("full_intake", "carried")]
        ]
        rows = con.execute(f"SELECT count(*) FROM carried.{table}").fetchall()[0][0]
    assert rows > 0
    assert differ == [0, 0]


def test_each_night_counts_carried_changed_new_and_removed(carried_and_full):
    _, _, reports = carried_and_full
    deltas = {night: report.sources[0].delta for night, report in reports.items()}
    assert deltas["2026-11-01"]["full"] == "no earlier night to carry from"
    assert deltas["2026-11-01"]["new"] == 7
    # night 2: Anna and Cara carried; Ben moved; Eve sent twice and Fay (born after the
    # night) go through again, as does the row quarantined last night; Gus is new; Dan gone
    assert {k: deltas["2026-11-02"][k] for k in ("carried", "changed", "new", "removed")} == {
        "carried": 2,
        "changed": 4,
        "new": 2,
        "removed": 1,
    }
    assert deltas["2026-11-02"]["full"] is None
    # night 4 repeats night 3: all but Fay carried
    assert deltas["2026-11-04"]["carried"] == 7
    assert deltas["2026-11-04"]["changed"] == 1
    # every row read is accepted or quarantined, carried or not
    for report in reports.values():
        source = report.sources[0]
        assert source.rows_read == source.rows_accepted + source.rows_quarantined


def test_carried_rows_keep_their_flags_with_tonights_row_numbers(carried_and_full):
    carried, _, reports = carried_and_full
    run_id = reports["2026-11-03"].run_id
    with duckdb.connect(str(_warehouse(carried)), read_only=True) as con:
        flags = con.execute(
            "SELECT source_record_id, source_row_number, check_name FROM record_issue"
            " WHERE run_id = $run_id ORDER BY ALL",
            {"run_id": run_id},
        ).fetchall()
    assert ("1", 2, "chi_valid") in flags  # Anna, carried: row 2 tonight (row 1 before)
    assert ("4", 5, "date_of_birth_valid") in flags  # Cara, carried


def test_a_changed_config_puts_every_row_through_the_whole_intake(prefect_api, tmp_path):
    config = _project(tmp_path)
    nightly(config, date(2026, 11, 1))
    source_config = tmp_path / "sources" / "clinic.yaml"
    source_config.write_text(source_config.read_text().replace("M: M, F: F", "M: M, F: F, U: U"))
    report = nightly(config, date(2026, 11, 2))
    delta = report.sources[0].delta
    assert delta["carried"] == 0
    assert "config" in delta["full"]
