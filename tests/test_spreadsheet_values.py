"""What a spreadsheet does to an agency's extract, and what the pipeline makes of it.

A number column loses its leading zeros (a CHI born on the 1st-9th comes as 9 digits) or
comes as a float (1201011234.0); a date column comes as the spreadsheet's day number
(36923) or with a midnight time part (01/02/2001 00:00:00). Identifiers are restored and
kept but flagged apart from invalid values; dates are read as the config allows. First
through the real SQL on DuckDB, then through the real nightly flow.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pytest

from linkage.config import SourceConfig, load_project
from linkage.errors import ConfigError
from linkage.extract import LINE_NUMBER, ROW_NUMBER, ExtractedFile, raw_table_name
from linkage.identifiers import load_registry
from linkage.profile import profile_source
from linkage.stage import STAGED_COLUMNS, STAGED_TABLE, create_staged_table, stage_source
from linkage.standardise import standardise
from linkage.validate import row_checks
from tests.conftest import CLINIC_CONFIG, CLINIC_HEADER, NIGHT_1, make_project
from tests.test_ingest import chi_for, clinic, query, run
from tests.test_standardise import RUN_DATE, chi_check_digit, fetch_rows

pytestmark = pytest.mark.usefixtures("prefect_api")

# Every kind of check, with and without a fixed length.
REGISTRY = """
identifiers:
  chi: {label: CHI number, check: chi, distinct_values_differ: true, equal_values_match: true}
  nhs_number: {label: NHS number, check: nhs_number}
  scn: {label: Scottish Candidate Number, check: scn}
  school_ref: {label: School reference, check: regex, pattern: '0[1-9][0-9]{6}', length: 8}
  case_ref: {label: Case reference, check: none, length: 6}
  tenancy_ref: {label: Tenancy reference, check: none}
"""

BORN = date(2001, 2, 1)
CHI = chi_for("010201", "12", "3")  # male, born 01/02/2001: a leading zero to lose
CHI_BAD_PADDED = CHI[1:-1] + str((int(CHI[-1]) + 1) % 10)  # 9 digits; with a 0, check fails
NHS = "012345678" + str(chi_check_digit("012345678"))  # a valid NHS number starting with 0


@pytest.fixture
def registry_file(tmp_path: Path) -> Path:
    path = tmp_path / "identifiers.yaml"
    path.write_text(REGISTRY, encoding="utf-8")
    return path


# --- identifiers, through the standardisation SQL ---------------------------------------

# (case id, raw identifiers, date of birth, sex, expected standardised values)
IDENTIFIER_CASES: list[tuple[str, dict[str, str], date | None, str | None, dict[str, Any]]] = [
    (
        "chi_nine_digits_restored",
        {"chi": CHI[1:]},
        BORN,
        "M",
        {"chi": CHI, "chi_issue": None, "chi_restored": True},
    ),
    (
        "chi_restored_still_judged_against_date_of_birth",
        {"chi": CHI[1:]},
        date(2001, 2, 2),
        "M",
        {"chi": CHI, "chi_issue": "date part does not match date of birth", "chi_restored": True},
    ),
    (
        "chi_restored_padding_fails_check_digit",
        {"chi": CHI_BAD_PADDED},
        BORN,
        "M",
        {"chi": None, "chi_issue": "not 10 digits", "chi_restored": False},
    ),
    (
        "chi_nine_digit_float_restored",
        {"chi": CHI[1:] + ".0"},
        BORN,
        "M",
        {"chi": CHI, "chi_issue": None, "chi_restored": True},
    ),
    (
        "chi_ten_digit_float_is_not_a_restoration",
        {"chi": "1507902417.0"},
        None,
        None,
        {"chi": "1507902417", "chi_issue": None, "chi_restored": False},
    ),
    (
        "chi_short_starting_with_zero_was_not_cut_by_a_spreadsheet",
        {"chi": "020101123"},
        None,
        None,
        {"chi": None, "chi_issue": "not 10 digits", "chi_restored": False},
    ),
    (
        "chi_zero_is_an_empty_cell_not_an_identifier",
        {"chi": "0"},
        None,
        None,
        {"chi": None, "chi_issue": "not 10 digits", "chi_restored": False},
    ),
    (
        "chi_other_float_untouched",
        {"chi": CHI[1:] + ".5"},
        None,
        None,
        {"chi": None, "chi_issue": "not 10 digits", "chi_restored": False},
    ),
    (
        "chi_complete_untouched",
        {"chi": CHI},
        BORN,
        "M",
        {"chi": CHI, "chi_issue": None, "chi_restored": False},
    ),
    (
        "nhs_restored",
        {"nhs_number": NHS[1:]},
        None,
        None,
        {"nhs_number": NHS, "nhs_number_issue": None, "nhs_number_restored": True},
    ),
    (
        "nhs_padding_fails",
        {"nhs_number": "123456780"},
        None,
        None,
        {"nhs_number": None, "nhs_number_issue": "not 10 digits", "nhs_number_restored": False},
    ),
    (
        "scn_restored",
        {"scn": "12345678"},
        None,
        None,
        {"scn": "012345678", "scn_issue": None, "scn_restored": True},
    ),
    (
        "scn_float",
        {"scn": "123456789.0"},
        None,
        None,
        {"scn": "123456789", "scn_issue": None, "scn_restored": False},
    ),
    (
        "regex_length_8_restored",
        {"school_ref": "1234567"},
        None,
        None,
        {"school_ref": "01234567", "school_ref_issue": None, "school_ref_restored": True},
    ),
    (
        "regex_length_8_padding_fails_pattern",
        {"school_ref": "34567"},
        None,
        None,
        {
            "school_ref": None,
            "school_ref_issue": "does not have the registered format",
            "school_ref_restored": False,
        },
    ),
    (
        "none_with_length_restored",
        {"case_ref": "4321"},
        None,
        None,
        {"case_ref": "004321", "case_ref_issue": None, "case_ref_restored": True},
    ),
    (
        "none_with_length_keeps_other_values",
        {"case_ref": "ab12"},
        None,
        None,
        {"case_ref": "AB12", "case_ref_issue": None, "case_ref_restored": False},
    ),
    (
        "none_without_length_untouched",
        {"tenancy_ref": "4321"},
        None,
        None,
        {"tenancy_ref": "4321", "tenancy_ref_issue": None, "tenancy_ref_restored": False},
    ),
    (
        "none_without_length_float_untouched",
        {"tenancy_ref": "4321.0"},
        None,
        None,
        {"tenancy_ref": "4321.0", "tenancy_ref_restored": False},
    ),
    (
        "no_identifier",
        {},
        None,
        None,
        {"chi": None, "chi_issue": None, "chi_restored": False, "scn_restored": False},
    ),
]


@pytest.fixture(scope="module")
def identifiers_by_case(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    path = tmp_path_factory.mktemp("registry") / "identifiers.yaml"
    path.write_text(REGISTRY, encoding="utf-8")
    con = duckdb.connect()
    con.execute(f"CREATE TABLE staged_record ({STAGED_COLUMNS})")
    for row_number, (case_id, held, born, sex, _) in enumerate(IDENTIFIER_CASES, start=1):
        con.execute(
            "INSERT INTO staged_record (run_date, source, source_record_id, source_row_number,"
            " source_line_number, date_of_birth_raw, date_of_birth, sex_raw, sex,"
            " identifiers_raw) VALUES ($run_date, 'test', $id, $row, $row + 1, $dob_raw, $dob,"
            " $sex, $sex, map_from_entries($held)::MAP(VARCHAR, VARCHAR))",
            {
                "run_date": RUN_DATE,
                "id": case_id,
                "row": row_number,
                "dob_raw": born and born.isoformat(),
                "dob": born,
                "sex": sex,
                "held": [{"k": name, "v": value} for name, value in held.items()],
            },
        )
    standardise(con, registry=load_registry(path))
    rows = {row["source_record_id"]: row for row in fetch_rows(con, "standardised_record")}
    con.close()
    return rows


@pytest.mark.parametrize(
    ("case_id", "expected"), [pytest.param(c, e, id=c) for c, *_, e in IDENTIFIER_CASES]
)
def test_identifier_as_a_spreadsheet_left_it(
    identifiers_by_case: dict[str, dict[str, Any]], case_id: str, expected: dict[str, Any]
) -> None:
    row = identifiers_by_case[case_id]
    assert {column: row[column] for column in expected} == expected


def test_restored_and_failed_values_are_told_apart_in_the_standardised_columns(
    identifiers_by_case: dict[str, dict[str, Any]],
) -> None:
    """The contract drift measures read: failed = value NULL with an issue; restored = kept."""
    restored = identifiers_by_case["chi_nine_digits_restored"]
    failed = identifiers_by_case["chi_restored_padding_fails_check_digit"]
    assert (restored["chi"] is not None, restored["chi_issue"], restored["chi_restored"]) == (
        True,
        None,
        True,
    )
    assert (failed["chi"], failed["chi_issue"] is not None, failed["chi_restored"]) == (
        None,
        True,
        False,
    )


def test_validation_flags_restored_values_apart_from_invalid_ones(registry_file: Path) -> None:
    checks = {check.name: check for check in row_checks(load_registry(registry_file))}
    restored = {name for name in checks if name.endswith("_restored")}
    assert restored == {
        "chi_restored",
        "nhs_number_restored",
        "scn_restored",
        "school_ref_restored",
        "case_ref_restored",
    }  # tenancy_ref has no length: nothing to restore
    assert {"chi_valid", "school_ref_valid"} <= set(checks)
    assert "case_ref_valid" not in checks  # check: none never fails
    chi = checks["chi_restored"]
    assert (chi.severity, chi.failing_field, chi.reason) == (
        "flag",
        "chi",
        "CHI number: leading zero(s) restored",
    )


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("x: {label: X, check: chi, length: 10}", "give `length` only for regex and none"),
        ("x: {label: X, check: scn, length: 8}", "scn values are 9 digits"),
        ("x: {label: X, check: none, length: 1}", "length"),
    ],
)
def test_a_bad_length_is_named(tmp_path: Path, entry: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(f"identifiers:\n  {entry}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_registry(path)


def test_a_type_whose_columns_clash_with_another_types_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "clash.yaml"
    path.write_text(
        "identifiers:\n  ref: {label: Ref}\n  ref_restored: {label: Another}\n", encoding="utf-8"
    )
    con = duckdb.connect()
    con.execute(f"CREATE TABLE staged_record ({STAGED_COLUMNS})")
    with pytest.raises(ConfigError, match="ref_restored"):
        standardise(con, registry=load_registry(path))
    con.close()


# --- dates, through the real staging and standardisation SQL ----------------------------

SERIAL = ["%d/%m/%Y", "excel_serial"]
ISO = ["%Y-%m-%d"]

# (case id, raw date of birth, the config's formats, expected date of birth, dob_issue)
DATE_CASES: list[tuple[str, str, list[str] | None, date | None, str | None]] = [
    ("midnight_seconds", "01/02/2001 00:00:00", ["%d/%m/%Y"], BORN, None),
    ("midnight_minutes", "2001-02-01 00:00", ISO, BORN, None),
    ("iso_t_midnight", "2001-02-01T00:00:00", ISO, BORN, None),
    ("iso_t_utc_millis", "2001-02-01T00:00:00.000Z", None, BORN, None),
    ("midnight_am", "01/02/2001 12:00:00 am", ["%d/%m/%Y"], BORN, None),
    ("time_of_day_dropped", "01/02/2001 14:35:12", ["%d/%m/%Y"], BORN, None),
    ("not_a_time_stays_unparseable", "01/02/2001 25:00", ["%d/%m/%Y"], None, "unparseable"),
    ("a_listed_time_format_still_reads", "01.02.2001 14:35", ["%d.%m.%Y %H:%M"], BORN, None),
    ("serial", "36923", SERIAL, BORN, None),
    ("serial_float", "36923.0", SERIAL, BORN, None),
    ("serial_with_time_fraction", "36923.75", SERIAL, BORN, None),
    ("serial_2000_01_01", "36526", SERIAL, date(2000, 1, 1), None),
    ("serial_1906_01_01_first_read", "2193", SERIAL, date(1906, 1, 1), None),
    ("serial_2099_12_31_last_read", "73050", SERIAL, None, "in the future"),
    ("serial_past_2099_unparseable", "73051", SERIAL, None, "unparseable"),
    ("year_is_not_a_serial", "1985", SERIAL, None, "unparseable"),
    ("serial_not_allowed", "36923", ["%d/%m/%Y"], None, "unparseable"),
    ("serial_float_not_allowed", "36923.0", None, None, "unparseable"),
    ("serial_only", "36923", ["excel_serial"], BORN, None),
    ("serial_only_other_dates_unparseable", "01/02/2001", ["excel_serial"], None, "unparseable"),
    ("format_still_first_with_serial", "01/02/2001", SERIAL, BORN, None),
    # two-digit years: one that would fall after the night is a century earlier
    ("two_digit_year_2000s", "01/02/01", ["%d/%m/%y"], BORN, None),
    ("two_digit_year_1955_not_2055", "03/04/55", ["%d/%m/%y"], date(1955, 4, 3), None),
    ("two_digit_year_1985", "15/06/85", ["%d/%m/%y"], date(1985, 6, 15), None),
    ("two_digit_year_this_year", "01/10/26", ["%d/%m/%y"], date(2026, 10, 1), None),
    ("two_digit_year_after_the_night", "02/11/26", ["%d/%m/%y"], date(1926, 11, 2), None),
    ("two_digit_after_four_digit", "03/04/55", ["%d/%m/%Y", "%d/%m/%y"], date(1955, 4, 3), None),
    ("four_digit_before_two_digit", "03/04/1955", ["%d/%m/%Y", "%d/%m/%y"], date(1955, 4, 3), None),
    ("year_55_without_two_digit_format", "03/04/55", ["%d/%m/%Y"], None, "before 1900"),
    ("four_digit_future_is_kept", "03/04/2055", ["%d/%m/%Y", "%d/%m/%y"], None, "in the future"),
]


def _date_config(case_id: str, formats: list[str] | None) -> SourceConfig:
    dob: dict[str, Any] = {"column": "dob"} | ({"formats": formats} if formats else {})
    return SourceConfig(
        source=f"d_{case_id}",
        file={"pattern": "x.csv"},
        record_id="id",
        fields={"surname": "last", "date_of_birth": dob},
    )


@pytest.fixture(scope="module")
def dates_by_case() -> dict[str, dict[str, Any]]:
    """One source per case (each has its own formats), staged and standardised together."""
    con = duckdb.connect()
    create_staged_table(con)
    for case_id, raw, formats, _, _ in DATE_CASES:
        config = _date_config(case_id, formats)
        con.execute(
            f'CREATE TABLE "{raw_table_name(config.source)}" AS SELECT $id AS id,'
            f" 'Reid' AS last, $raw AS dob, 1 AS {ROW_NUMBER}, 2 AS {LINE_NUMBER}",
            {"id": case_id, "raw": raw},
        )
        extracted = ExtractedFile(
            config.source, Path("x.csv"), Path("x.csv"), "0" * 64, 1, ["id"], rows_read=1
        )
        stage_source(con, config, [extracted], RUN_DATE)
    standardise(con, STAGED_TABLE)
    rows = {row["source_record_id"]: row for row in fetch_rows(con, "standardised_record")}
    con.close()
    return rows


@pytest.mark.parametrize(
    ("case_id", "expected", "issue"),
    [pytest.param(c, expected, issue, id=c) for c, _, _, expected, issue in DATE_CASES],
)
def test_date_as_a_spreadsheet_left_it(
    dates_by_case: dict[str, dict[str, Any]], case_id: str, expected: date | None, issue: str | None
) -> None:
    row = dates_by_case[case_id]
    assert (row["date_of_birth"], row["dob_issue"]) == (expected, issue)


# --- through the real nightly flow --------------------------------------------------------

SHEET_CONFIG = CLINIC_CONFIG.replace(
    'formats: ["%d/%m/%Y"]', 'formats: ["%d/%m/%Y", "excel_serial"]'
).replace("  chi: chi\n", "  chi: chi\n  school_ref: school\n")
SHEET_HEADER = CLINIC_HEADER.replace("chi\n", "chi,school\n")
MARY_CHI = chi_for("150685", "41", "2")  # female, born 15/06/1985
SEONAID_CHI = chi_for("030310", "22", "4")  # female, born 03/03/2010


def sheet_project(root: Path, nights: dict[str, list[str]], config: str = SHEET_CONFIG) -> Path:
    """The clinic project with a school reference (8 digits) registered and mapped."""
    files = {
        f"{night}/clinic.csv": SHEET_HEADER + "".join(row + "\n" for row in rows)
        for night, rows in nights.items()
    }
    project = make_project(root, files, config)
    (root / "identifiers.yaml").write_text(REGISTRY, encoding="utf-8")
    with project.open("a") as handle:
        handle.write("identifiers: identifiers.yaml\n")
    return project


CLEAN_NIGHT = [
    f"1,John,Smith,01/02/2001,M,G12 8QQ,{CHI},01234567",
    f"2,Mary,Brown,15/06/1985,F,EH3 9DR,{MARY_CHI},",
    f"3,Seonaid,MacDonald,03/03/2010,F,AB10 1XG,{SEONAID_CHI},02345678",
]
# The same people after the extract went through a spreadsheet.
SPREADSHEET_NIGHT = [
    f"1,John,Smith,36923,M,G12 8QQ,{CHI[1:]},1234567",
    f"2,Mary,Brown,15/06/1985 00:00:00,F,EH3 9DR,{MARY_CHI}.0,",
    f"3,Seonaid,MacDonald,40240.0,F,AB10 1XG,{SEONAID_CHI[1:]}.0,2345678",
]


def test_a_spreadsheet_night_keeps_identifiers_and_dates_and_counts_restorations(
    tmp_path: Path,
) -> None:
    rows = [
        *SPREADSHEET_NIGHT,
        f"4,Iain,Ross,01/02/2001,M,G2 2BB,{CHI_BAD_PADDED},34567",  # padding fails both
    ]
    config = sheet_project(tmp_path, {NIGHT_1: rows})
    source = clinic(run(config))
    assert (source.rows_read, source.rows_accepted, source.rows_quarantined) == (4, 4, 0)
    # restorations are counted apart from values that fail their check and are nulled
    assert source.flag_reasons == {
        "chi_restored": 2,
        "school_ref_restored": 2,
        "chi_valid": 1,
        "school_ref_valid": 1,
    }
    assert source.rows_flagged == 3
    kept = query(
        config,
        "SELECT source_record_id, chi, school_ref, date_of_birth FROM canonical_record ORDER BY 1",
    )
    assert kept == [
        ("1", CHI, "01234567", BORN),
        ("2", MARY_CHI, None, date(1985, 6, 15)),
        ("3", SEONAID_CHI, "02345678", date(2010, 3, 3)),
        ("4", None, None, BORN),
    ]
    issues = query(
        config,
        "SELECT source_row_number, field, check_name, reason FROM record_issue ORDER BY 1, 3",
    )
    assert issues == [
        (1, "chi", "chi_restored", "CHI number: leading zero(s) restored"),
        (1, "school_ref", "school_ref_restored", "School reference: leading zero(s) restored"),
        (3, "chi", "chi_restored", "CHI number: leading zero(s) restored"),
        (3, "school_ref", "school_ref_restored", "School reference: leading zero(s) restored"),
        (4, "chi", "chi_valid", "CHI number: not 10 digits"),
        (
            4,
            "school_ref",
            "school_ref_valid",
            "School reference: does not have the registered format",
        ),
    ]
    # what the night's standardised rows say (kept for the next night to carry from)
    told = query(
        config,
        "SELECT source_record_id, chi IS NOT NULL, chi_issue, chi_restored"
        " FROM intake_keep ORDER BY 1",
    )
    assert told == [
        ("1", True, None, True),
        ("2", True, None, False),
        ("3", True, None, True),
        ("4", False, "not 10 digits", False),
    ]


def test_without_excel_serial_in_the_formats_a_day_number_stays_unparseable(
    tmp_path: Path,
) -> None:
    config = sheet_project(
        tmp_path,
        {NIGHT_1: ["1,John,Smith,36923,M,G12 8QQ,,", "2,Mary,Brown,15/06/1985 00:00,F,,,"]},
        SHEET_CONFIG.replace(', "excel_serial"', ""),
    )
    source = clinic(run(config))
    assert source.flag_reasons == {"date_of_birth_valid": 1}
    kept = query(config, "SELECT source_record_id, date_of_birth FROM canonical_record ORDER BY 1")
    assert kept == [("1", None), ("2", date(1985, 6, 15))]
    assert query(config, "SELECT reason FROM record_issue") == [("date of birth: unparseable",)]


def test_a_good_night_then_a_spreadsheet_night_keeps_every_record_as_it_was(
    tmp_path: Path,
) -> None:
    """Records keep their keys, identifiers and dates, so they link as they did."""
    config = sheet_project(tmp_path, {NIGHT_1: CLEAN_NIGHT, "2026-11-02": SPREADSHEET_NIGHT})
    compared = (
        "SELECT * EXCLUDE (run_date, source_file, file_sha256) FROM canonical_record ORDER BY ALL"
    )
    first = clinic(run(config))
    before = query(config, compared)
    second = clinic(run(config, "2026-11-02"))
    after = query(config, compared)
    assert (first.rows_accepted, second.rows_accepted) == (3, 3)
    assert first.flag_reasons == {}
    assert second.flag_reasons == {"chi_restored": 2, "school_ref_restored": 2}
    assert after == before
    assert [row[0] for row in after] == ["clinic:1", "clinic:2", "clinic:3"]


def test_profile_names_restored_values_apart_from_failing_ones(tmp_path: Path) -> None:
    rows = [
        *SPREADSHEET_NIGHT,
        f"4,Iain,Ross,01/02/2001,M,G2 2BB,{CHI_BAD_PADDED},",
        f"5,Ann,Reid,02/02/2001,F,G2 2BB,{CHI[1:]},",  # restored, but not Ann's date of birth
    ]
    config = sheet_project(tmp_path, {NIGHT_1: rows})
    profile = profile_source(load_project(config), "clinic")
    chi = next(field for field in profile.fields if field.name == "chi")
    assert {issue.reason: issue.row_numbers for issue in chi.issues} == {
        "leading zero(s) restored, value kept": [1, 3],
        "not 10 digits": [4],
        "date part does not match date of birth (leading zero(s) restored)": [5],
    }
    assert chi.usable == 4  # restored values are usable; the failing one is not
    dob = next(field for field in profile.fields if field.name == "date_of_birth")
    assert dob.issues == [] and dob.usable == 5
