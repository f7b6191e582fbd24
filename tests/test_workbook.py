"""Workbook extracts (format: workbook, or xlsx), written by openpyxl and read through the
real nightly flow: cells as the sheet shows them, the header under a title, rows numbered
as in the sheet, and a wrong file or sheet holding only its source."""

from __future__ import annotations

import io
from datetime import date, datetime
from pathlib import Path

import openpyxl
import pytest

from tests.conftest import CLINIC_CONFIG, NIGHT_1, make_project
from tests.test_ingest import clinic, query, run

pytestmark = pytest.mark.usefixtures("prefect_api")

WORKBOOK_CONFIG = CLINIC_CONFIG.replace(
    'pattern: "{run_date}/clinic*.csv"', 'pattern: "{run_date}/clinic*.xlsx"\n  format: FORMAT'
).replace('  delimiter: ","\n', "")


def workbook(sheets: dict[str, list[list[object]]]) -> bytes:
    book = openpyxl.Workbook()
    book.remove(book.active)
    for title, rows in sheets.items():
        sheet = book.create_sheet(title)
        for row in rows:
            sheet.append(row)
    content = io.BytesIO()
    book.save(content)
    return content.getvalue()


HEADER = ["ID", "First", "Last", "DOB", "Sex", "Postcode", "CHI"]
PEOPLE = [
    ["Clinic list, November"],  # a title and a blank row above the header
    [],
    HEADER,
    [1, "John", "Smith", datetime(2001, 2, 1), "M", "G12 8QQ", None],  # typed date cell
    [2.0, "Mary", "Brown", "15/06/1985", "F", "EH3 9DR", None],  # id typed as 2.0; text date
    [],  # a blank row in the middle
    ["3", "Seonaid", "MacDonald", date(2010, 3, 3), "F", "AB10 1XG", None],
    [4, "Ann", "Reid", "not a date", "F", "G4 4DD", None],
]


def project(tmp_path: Path, content: bytes, fmt: str = "workbook", sheet: str = "") -> Path:
    """The clinic project with a workbook landing file; `sheet` names the sheet to read."""
    config = WORKBOOK_CONFIG.replace("FORMAT", fmt + (f"\n  sheet: {sheet}" if sheet else ""))
    return make_project(tmp_path, {f"{NIGHT_1}/clinic.xlsx": content}, config)


def test_a_workbook_loads_as_the_sheet_shows_it(tmp_path: Path) -> None:
    config = project(tmp_path, workbook({"People": PEOPLE}))
    source = clinic(run(config))
    assert source.status == "used", source.error
    assert (source.rows_read, source.rows_accepted) == (4, 4)
    rows = query(
        config,
        "SELECT source_record_id, forename, date_of_birth, source_line_number"
        " FROM canonical_record ORDER BY 1",
    )
    assert rows == [
        ("1", "JOHN", date(2001, 2, 1), 4),  # the date cell, in the config's format
        ("2", "MARY", date(1985, 6, 15), 5),  # 2.0 is the id 2, as the sheet shows it
        ("3", "SEONAID", date(2010, 3, 3), 7),  # line numbers are the sheet's rows
        ("4", "ANN", None, 8),
    ]
    issues = query(config, "SELECT source_record_id, field FROM record_issue ORDER BY 1")
    assert issues == [("4", "dob")]  # the text that is no date, flagged


def test_a_sheet_is_chosen_by_name_and_xlsx_names_the_format(tmp_path: Path) -> None:
    content = workbook({"Notes": [["nothing here"]], "People": PEOPLE})
    config = project(tmp_path, content, fmt="xlsx", sheet="People")
    source = clinic(run(config))
    assert (source.status, source.rows_accepted) == ("used", 4)


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"ID,First\n1,John\n", ["not a workbook", "check file.format"]),
        (b"PK\x03\x04 but no more of a zip", ["not a readable workbook"]),
    ],
)
def test_a_file_that_is_no_workbook_holds_only_its_source(
    tmp_path: Path, content: bytes, words: list[str]
) -> None:
    source = clinic(run(project(tmp_path, content)))
    assert source.status == "failed"
    assert all(word in source.error for word in words), source.error


def test_a_missing_sheet_names_the_sheets_there_are(tmp_path: Path) -> None:
    config = project(tmp_path, workbook({"People": PEOPLE}), sheet="Clients")
    source = clinic(run(config))
    assert source.status == "failed"
    assert "no sheet 'Clients'" in source.error and "'People'" in source.error


def test_a_sheet_without_the_configured_columns_names_them(tmp_path: Path) -> None:
    rows = [["Reference", "Name"], [1, "John Smith"]]
    source = clinic(run(project(tmp_path, workbook({"People": rows}))))
    assert source.status == "failed" and "missing required column(s) id" in source.error


def test_linkage_profile_reads_a_workbook(tmp_path: Path) -> None:
    from linkage.config import load_project
    from linkage.profile import profile_source

    profile = profile_source(
        load_project(project(tmp_path, workbook({"People": PEOPLE}))), "clinic"
    )
    fields = {field.name: field for field in profile.fields}
    assert profile.rows_read == 4
    assert (fields["forename"].usable, fields["date_of_birth"].usable) == (4, 3)
