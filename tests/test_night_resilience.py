"""One agency's bad night never stops the others' or silently damages the index.

Each case runs through the real nightly flow against a warehouse holding a good previous
night: an unexpected error in one source fails only that source (its last good records
kept, the run `partial`); a source whose night is unlike its last good nights (drift) is
held the same way; a file that repeats its rows keeps every record once.
"""

from __future__ import annotations

import textwrap
from datetime import date
from pathlib import Path

import pytest

import linkage.night
from tests.conftest import CLINIC_HEADER, NIGHT_1, make_project
from tests.test_ingest import assert_conserved, chi_for, clinic, query, run

pytestmark = pytest.mark.usefixtures("prefect_api")

NIGHT_2 = "2026-11-02"
FORENAMES = ["JOHN", "MARY", "AILSA", "CALUM", "ISLA", "RORY", "MORAG", "EWAN"]
SURNAMES = ["SMITH", "BROWN", "MACLEOD", "REID", "ROSS", "WATT", "KERR"]

SCHOOL_CONFIG = """
source: school
file: {pattern: "{run_date}/school*.csv"}
record_id: pupil
fields:
  forename: first
  surname: last
  date_of_birth: {column: born, formats: ["%Y-%m-%d"]}
"""


def clinic_rows(count: int = 60, dob_format: str = "%d/%m/%Y", sex: tuple = ("M", "F")) -> list:
    """Plausible, varied clinic rows: every field valid."""
    rows = []
    for i in range(1, count + 1):
        born = date(1960 + i % 50, 1 + i % 12, 1 + i % 28)
        sex_code = sex[i % 2]
        chi = valid_chi(born, male=i % 2 == 0, start=i)
        rows.append(
            f"{i},{FORENAMES[i % 8]},{SURNAMES[i % 7]},{born.strftime(dob_format)},{sex_code},"
            f"G{i % 9 + 1} {i % 9 + 1}AB,{chi}"
        )
    return rows


def valid_chi(born: date, male: bool, start: int) -> str:
    """A CHI for the date and sex, the first serial from `start` with a usable check digit."""
    for serial in range(start, start + 11):
        try:
            return chi_for(born.strftime("%d%m%y"), f"{serial % 90 + 10}", "1" if male else "2")
        except AssertionError:
            continue
    raise AssertionError("no serial gives a check digit")


def school_text(count: int = 30) -> str:
    rows = [
        f"S{i},{FORENAMES[i % 8]},{SURNAMES[i % 7]},{2010 + i % 8}-0{1 + i % 9}-1{i % 9}"
        for i in range(1, count + 1)
    ]
    return "pupil,first,last,born\n" + "\n".join(rows) + "\n"


def clinic_text(rows: list[str]) -> str:
    return CLINIC_HEADER + "\n".join(rows) + "\n"


def two_agencies(tmp_path: Path, night_2_clinic: str | bytes) -> Path:
    """A clinic and a school, both good on night 1; the clinic's night 2 as given."""
    config = make_project(
        tmp_path,
        {
            f"{NIGHT_1}/clinic.csv": clinic_text(clinic_rows()),
            f"{NIGHT_1}/school.csv": school_text(),
            f"{NIGHT_2}/clinic.csv": night_2_clinic,
            f"{NIGHT_2}/school.csv": school_text(31),
        },
    )
    (tmp_path / "sources" / "school.yaml").write_text(textwrap.dedent(SCHOOL_CONFIG))
    assert run(config).status == "unlinked"  # both used; no model for this tiny project
    return config


def school(report):
    (source,) = [s for s in report.sources if s.source == "school"]
    return source


def assert_clinic_held(config: Path, report) -> None:
    """The clinic failed tonight, the school went on, the clinic's night-1 records stay."""
    assert report.status == "partial"
    assert clinic(report).status == "failed"
    assert (school(report).status, school(report).rows_accepted) == ("used", 31)
    kept = query(
        config,
        "SELECT count(*), max(run_date) FROM canonical_record WHERE source = 'clinic'",
    )
    assert kept == [(60, date.fromisoformat(NIGHT_1))]


# --- isolation: an unexpected error fails one source ----------------------------------


def test_an_error_while_reading_one_source_fails_only_that_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = two_agencies(tmp_path, clinic_text(clinic_rows()))
    real_stage = linkage.night.stage_source

    def stage_failing_for_clinic(con, source_config, files, run_date):  # noqa: ANN001, ANN202
        if source_config.source == "clinic":
            raise ZeroDivisionError("injected fault")
        return real_stage(con, source_config, files, run_date)

    monkeypatch.setattr(linkage.night, "stage_source", stage_failing_for_clinic)
    report = run(config, NIGHT_2)
    assert_clinic_held(config, report)
    assert "failed while reading: ZeroDivisionError: injected fault" in clinic(report).error
    errors = tmp_path / "output" / "runs" / report.run_id / "errors" / "clinic.txt"
    assert "Traceback" in errors.read_text()


def test_an_error_while_standardising_one_source_fails_only_that_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # one new row: rows unchanged since night 1 are carried, not standardised again
    config = two_agencies(tmp_path, clinic_text(clinic_rows(61)))
    real_standardise = linkage.night.standardise

    def standardise_failing_on_clinic(con, staged_table, *args, **kwargs):  # noqa: ANN001, ANN202
        clinic_rows = con.execute(
            f"SELECT count(*) FROM {staged_table} WHERE source = 'clinic'"
        ).fetchall()[0][0]
        if clinic_rows:
            raise RuntimeError("injected fault")
        return real_standardise(con, staged_table, *args, **kwargs)

    monkeypatch.setattr(linkage.night, "standardise", standardise_failing_on_clinic)
    report = run(config, NIGHT_2)
    assert_clinic_held(config, report)
    assert "failed while standardising: RuntimeError" in clinic(report).error


def test_an_error_while_validating_one_source_fails_only_that_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = two_agencies(tmp_path, clinic_text(clinic_rows()))
    real_measure = linkage.night.measure_source

    def measure_failing_for_clinic(con, source_config, *args):  # noqa: ANN001, ANN202
        if source_config.source == "clinic":
            raise KeyError("injected fault")
        return real_measure(con, source_config, *args)

    monkeypatch.setattr(linkage.night, "measure_source", measure_failing_for_clinic)
    report = run(config, NIGHT_2)
    assert_clinic_held(config, report)
    assert "failed while validating: KeyError" in clinic(report).error


# --- drift: a night unlike the last good ones is held ---------------------------------


def test_dates_switched_to_iso_hold_the_source_with_field_rates_and_row(tmp_path: Path) -> None:
    config = two_agencies(tmp_path, clinic_text(clinic_rows(dob_format="%Y-%m-%d")))
    report = run(config, NIGHT_2)
    assert_clinic_held(config, report)
    error = clinic(report).error
    assert "held for the night" in error
    assert "date_of_birth fails its check in 100.0% of rows tonight, at most 0.0%" in error
    assert "first at row 1" in error and "'%Y-%m-%d'" in error
    assert "chi" not in error, "CHIs judged against unparsed dates are not a second drift"


def test_a_column_emptied_holds_the_source(tmp_path: Path) -> None:
    rows = [",".join(row.split(",")[:5] + ["", row.split(",")[6]]) for row in clinic_rows()]
    report = run(two_agencies(tmp_path, clinic_text(rows)), NIGHT_2)
    assert clinic(report).status == "failed"
    assert "postcode filled in 0.0% of rows tonight, at least 100.0%" in clinic(report).error


def test_sex_recoded_holds_the_source(tmp_path: Path) -> None:
    config = two_agencies(tmp_path, clinic_text(clinic_rows(sex=("1", "2"))))
    report = run(config, NIGHT_2)
    assert_clinic_held(config, report)
    error = clinic(report).error
    assert "sex: 100.0% of rows tonight carry codes never seen" in error
    assert "sex: 2 code(s) on over 5% of rows last good night are absent tonight" in error


def test_a_night_like_the_last_is_not_held_and_small_damage_is_flagged_not_held(
    tmp_path: Path,
) -> None:
    rows = clinic_rows()
    rows[9] = rows[9].replace("/19", "/xx")  # two bad dates: flagged, far below the bounds
    rows[19] = rows[19].replace("/19", "/xx")
    report = run(two_agencies(tmp_path, clinic_text(rows)), NIGHT_2)
    assert (report.status, clinic(report).status, clinic(report).rows_accepted) == (
        "unlinked",
        "used",
        60,
    )
    assert clinic(report).flag_reasons["date_of_birth_valid"] == 2


def test_a_held_night_does_not_become_the_baseline(tmp_path: Path) -> None:
    """Night 2 is held; night 3 sends the same drift and is held again (compared with
    night 1, the last good one); night 4 is good again and used."""
    config = two_agencies(tmp_path, clinic_text(clinic_rows(dob_format="%Y-%m-%d")))
    for night, clinic_file in [
        ("2026-11-03", clinic_text(clinic_rows(dob_format="%Y-%m-%d"))),
        ("2026-11-04", clinic_text(clinic_rows())),
    ]:
        for name, content in [("clinic.csv", clinic_file), ("school.csv", school_text(31))]:
            path = tmp_path / "landing" / night / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
    statuses = [
        clinic(run(config, night)).status for night in (NIGHT_2, "2026-11-03", "2026-11-04")
    ]
    assert statuses == ["failed", "failed", "used"]


def test_drift_settings_come_from_config_and_ignore_an_intended_change(tmp_path: Path) -> None:
    config = two_agencies(tmp_path, clinic_text(clinic_rows(dob_format="%Y-%m-%d")))
    source_file = tmp_path / "sources" / "clinic.yaml"
    source_file.write_text(source_file.read_text() + "drift: {ignore: [date_of_birth]}\n")
    report = run(config, NIGHT_2)
    assert clinic(report).status == "used"
    assert clinic(report).flag_reasons["date_of_birth_valid"] == 60


def test_field_measures_are_kept_per_night(tmp_path: Path) -> None:
    config = two_agencies(tmp_path, clinic_text(clinic_rows()))
    run(config, NIGHT_2)
    measures = query(
        config,
        "SELECT run_date, field, rows, filled, failed, codes FROM field_night"
        " WHERE source = 'clinic' AND field IN ('date_of_birth', 'sex') ORDER BY ALL",
    )
    assert [row[:5] for row in measures] == [
        (date(2026, 11, 1), "date_of_birth", 60, 60, 0),
        (date(2026, 11, 1), "sex", 60, 60, 0),
        (date(2026, 11, 2), "date_of_birth", 60, 60, 0),
        (date(2026, 11, 2), "sex", 60, 60, 0),
    ]
    assert sorted(measures[1][5]) == ["F", "M"]


# --- repeated rows ---------------------------------------------------------------------


def test_a_file_sent_twice_keeps_every_record_once(tmp_path: Path) -> None:
    rows = clinic_rows()
    report = run(two_agencies(tmp_path, clinic_text(rows + rows)), NIGHT_2)
    source = clinic(report)
    assert_conserved(source)
    assert (source.status, source.rows_read, source.rows_accepted) == ("used", 120, 60)
    assert source.quarantine_reasons == {"duplicate_row": 60}


def test_two_different_extracts_concatenated_hold_the_source(tmp_path: Path) -> None:
    """Every record id twice with different content: each pair is ambiguous, so the
    record-id check would quarantine all of them; the quarantine share holds the night."""
    yesterday = clinic_rows()
    today = [row.replace("G", "H", 1) for row in clinic_rows()]  # every postcode moved
    config = two_agencies(tmp_path, clinic_text(yesterday + today))
    report = run(config, NIGHT_2)
    assert_clinic_held(config, report)
    assert "rows quarantined 100.0% of rows tonight" in clinic(report).error


def test_a_stale_copy_beside_tonights_file_holds_the_source_naming_both(tmp_path: Path) -> None:
    """Last night's file left beside tonight's, both matching the pattern: read together,
    its rows would bring back removed records and cost changed ones their update."""
    tonight = [row.replace("G", "H", 1) if row.startswith("1") else row for row in clinic_rows()]
    config = two_agencies(tmp_path, clinic_text(tonight[:-3]))
    stale = tmp_path / "landing" / NIGHT_2 / "clinic (1).csv"
    stale.write_text(clinic_text(clinic_rows()))
    report = run(config, NIGHT_2)
    assert_clinic_held(config, report)
    error = clinic(report).error
    assert "clinic (1).csv, clinic.csv" in error and "57 record ids" in error


@pytest.mark.parametrize("line_end", ["", "\n"], ids=["cut-off", "short-row-then-line-end"])
def test_a_file_cut_off_mid_row_holds_the_source(tmp_path: Path, line_end: str) -> None:
    """Cut in transfer: the records after the cut would read as removed. A short last row
    that ends its line is only that row's damage."""
    text = clinic_text(clinic_rows())
    cut = text[: text.index("\n40,") + 12] + line_end  # row 40 cut after a few fields
    config = two_agencies(tmp_path, cut)
    report = run(config, NIGHT_2)
    if line_end:
        source = clinic(report)
        assert_conserved(source)
        assert (source.status, source.rows_read, source.rows_quarantined) == ("used", 40, 1)
        return
    assert_clinic_held(config, report)
    assert "ends mid-row (line 41" in clinic(report).error


def test_the_parts_of_a_split_extract_are_read_together(tmp_path: Path) -> None:
    rows = clinic_rows()
    config = two_agencies(tmp_path, clinic_text(rows[:25]))
    (tmp_path / "landing" / NIGHT_2 / "clinic_part2.csv").write_text(clinic_text(rows[25:]))
    source = clinic(run(config, NIGHT_2))
    assert_conserved(source)
    assert (source.status, source.rows_read, source.rows_accepted) == ("used", 60, 60)


def test_far_more_rows_than_ever_hold_the_source(tmp_path: Path) -> None:
    """An agency sending its whole history instead of tonight's extract."""
    config = two_agencies(tmp_path, clinic_text(clinic_rows(200)))
    report = run(config, NIGHT_2)
    assert_clinic_held(config, report)
    assert "200 rows read tonight, over 3 times the most (60)" in clinic(report).error
