"""`linkage profile`: a new agency's extract measured before its first night, writing nothing."""

from __future__ import annotations

import csv
import json
import tempfile
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from linkage.cli import app
from linkage.config import load_project
from linkage.profile import SourceProfile, profile_source
from tests.conftest import SAMPLE_DIR, sample_project

HEALTH_NIGHT = "2026-11-03"
HEALTH_FILE = SAMPLE_DIR / "landing" / HEALTH_NIGHT / "health_patients.csv"


@pytest.fixture(scope="module")
def health_profile(tmp_path_factory: pytest.TempPathFactory) -> tuple[SourceProfile, Path]:
    """The sample's health source profiled on its newest night, and the project root."""
    root = tmp_path_factory.mktemp("profile")
    profile = profile_source(load_project(sample_project(root)), "health")
    return profile, root


def _field(profile: SourceProfile, name: str):  # noqa: ANN202
    return next(field for field in profile.fields if field.name == name)


def test_newest_night_is_the_default(health_profile: tuple[SourceProfile, Path]) -> None:
    profile, _ = health_profile
    assert profile.night == date.fromisoformat(HEALTH_NIGHT)


def test_fill_rates_match_a_direct_count_of_the_landing_file(
    health_profile: tuple[SourceProfile, Path],
) -> None:
    profile, _ = health_profile
    with HEALTH_FILE.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    filled = sum(1 for row in rows if row["Postcode"].strip())
    postcode = _field(profile, "postcode")
    assert postcode.rows == len(rows) == profile.rows_parsed
    assert postcode.raw_fill_rate == pytest.approx(filled / len(rows))
    for field in profile.fields:
        assert 0 <= field.usable_rate <= field.raw_fill_rate <= 1, field.name


def test_health_carries_chi_a_hard_constraint_the_model_compares(
    health_profile: tuple[SourceProfile, Path],
) -> None:
    profile, _ = health_profile
    chi = next(use for use in profile.identifiers if use.name == "chi")
    assert (chi.hard_constraint, chi.compared, chi.in_model) == (True, True, True)
    assert chi.source_columns == ["CHI_Number"]
    assert {"forename", "surname", "date_of_birth", "chi"} <= set(profile.comparisons)
    assert "Exact match" in profile.comparisons["date_of_birth"]
    assert "scn" in profile.left_out  # health sends no SCN


def test_profile_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # where the archive copy goes
    project = load_project(sample_project(tmp_path))
    profile_source(project, "police", date(2026, 11, 1))
    assert not project.warehouse.exists()
    assert not project.warehouse.parent.exists()
    assert not project.archive_dir.exists()
    assert list(scratch.iterdir()) == []  # the temporary archive was removed


# --- a damaged copy of the health extract ------------------------------------------------

DAMAGED_ROWS = 20


def _damaged_health(root: Path, drop_column: str | None = None) -> Path:
    """A project whose health file is the sample's first rows, damaged at known rows:
    rows 3 and 5 have ISO dates of birth, row 7 a CHI with a bad check digit, row 10 is
    truncated, row 12 a postcode that is not a UK one, row 14 an unmapped sex code;
    `drop_column` removes a column from the header and every row."""
    with HEALTH_FILE.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        rows = [next(reader) for _ in range(DAMAGED_ROWS)]
    dob, chi = header.index("Date_Of_Birth"), header.index("CHI_Number")
    for row_number in (3, 5):
        day, month, year = rows[row_number - 1][dob].split("/")
        rows[row_number - 1][dob] = f"{year}-{month}-{day}"
    bad = rows[6][chi]
    rows[6][chi] = bad[:9] + str((int(bad[9]) + 1) % 10)
    rows[11][header.index("Postcode")] = "G12 QQ8"
    rows[13][header.index("Gender")] = "X"
    rows[15][header.index("Town")] = "Glasgow " * 40
    rows[16][header.index("Forename")] = "Lu\u2028cy"
    rows[17][chi] = "1" * 250
    if drop_column is not None:
        position = header.index(drop_column)
        header = header[:position] + header[position + 1 :]
        rows = [row[:position] + row[position + 1 :] for row in rows]
    rows[9] = rows[9][:5]
    night = root / "landing" / HEALTH_NIGHT
    night.mkdir(parents=True)
    with (night / "health_patients.csv").open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([header, *rows])
    config = root / "project.yaml"
    config.write_text(
        f"landing_dir: landing\nsources: {SAMPLE_DIR.parent / 'schemas/sources'}/health.yaml\n"
        "warehouse: warehouse/w.duckdb\noutput_dir: output\narchive_dir: archive\n"
    )
    return config


@pytest.fixture(scope="module")
def damaged_profile(tmp_path_factory: pytest.TempPathFactory) -> SourceProfile:
    config = _damaged_health(tmp_path_factory.mktemp("damaged"))
    return profile_source(load_project(config), "health")


@pytest.mark.parametrize(
    ("field", "reason", "row_numbers"),
    [
        ("date_of_birth", "not a date in the configured formats (%d/%m/%Y)", [3, 5]),
        ("chi", "check digit fails", [7]),
        ("postcode", "not a UK postcode", [12]),
        ("sex", "unknown code 'X'", [14]),
        ("town", "longer than 200 characters (row quarantined)", [16]),
        ("forename", "control or invisible characters removed", [17]),
        ("chi", "longer than 200 characters (value nulled)", [18]),
    ],
)
def test_damaged_values_are_named_with_reason_and_rows(
    damaged_profile: SourceProfile, field: str, reason: str, row_numbers: list[int]
) -> None:
    issues = {issue.reason: issue for issue in _field(damaged_profile, field).issues}
    assert reason in issues, issues
    assert issues[reason].row_numbers == row_numbers
    assert issues[reason].rows == len(row_numbers)


def test_truncated_row_is_a_parse_reject_with_its_line(damaged_profile: SourceProfile) -> None:
    assert damaged_profile.rows_read == DAMAGED_ROWS
    assert damaged_profile.rows_parsed == DAMAGED_ROWS - 1
    [reject] = damaged_profile.rejected
    assert (reject.row_number, reject.line_number) == (10, 11)
    assert "truncated row" in reject.reason
    text = damaged_profile.to_text()
    assert "rejected row 10 (line 11)" in text
    assert "check digit fails: 1 row(s) (7)" in text


def test_rows_repaired_on_reading_and_blank_lines_are_named(tmp_path: Path) -> None:
    """A name typed on Windows (cp1252 in a UTF-8 file) and a blank line: the profile says
    which rows were read in the fallback encoding, so the agency can fix its export."""
    config = _damaged_health(tmp_path)
    path = tmp_path / "landing" / HEALTH_NIGHT / "health_patients.csv"
    lines = path.read_bytes().split(b"\r\n")
    cells = lines[3].split(b",")  # data row 3
    cells[2] += b"\xe9"  # its forename, with cp1252's e-acute
    lines[3] = b",".join(cells)
    lines.insert(5, b"")
    path.write_bytes(b"\r\n".join(lines))
    profile = profile_source(load_project(config), "health")
    assert profile.rows_read == DAMAGED_ROWS and profile.blank_lines == 1
    [repaired] = profile.repaired
    assert (repaired.reason, repaired.rows, repaired.row_numbers) == (
        "not valid utf-8; read as cp1252",
        1,
        [3],
    )
    assert "kept and flagged: not valid utf-8; read as cp1252: 1 row(s) (3)" in profile.to_text()


@pytest.mark.parametrize(
    ("dropped", "profiled"),
    [
        ("Town", True),  # the rest of the file is still profiled
        ("Patient_ID", False),  # no record id: nothing can be keyed
    ],
)
def test_missing_required_column_is_a_clear_message(
    tmp_path: Path, dropped: str, profiled: bool
) -> None:
    config = _damaged_health(tmp_path, drop_column=dropped)
    profile = profile_source(load_project(config), "health")
    assert list(profile.missing_columns.values()) == [[dropped]]
    assert not profile.usable_tonight
    text = profile.to_text()
    assert f"REQUIRED COLUMNS MISSING from {profile.files[0]}: {dropped}" in text
    assert bool(profile.fields) == profiled
    if profiled:
        assert _field(profile, "town").missing_columns == ["Town"]
        assert _field(profile, "surname").rows == DAMAGED_ROWS - 1


# --- the command --------------------------------------------------------------------------


def test_cli_profile_runs(tmp_path: Path) -> None:
    config = sample_project(tmp_path)
    result = CliRunner().invoke(
        app, ["profile", "--config", str(config), "--source", "health", "--examples", "0"]
    )
    assert result.exit_code == 0, result.output
    assert "chi (CHI number) <- CHI_Number: hard constraint" in result.output
    assert "e.g." not in result.output
    as_json = CliRunner().invoke(
        app, ["profile", "--config", str(config), "--source", "education", "--json"]
    )
    assert as_json.exit_code == 0, as_json.output
    data = json.loads(as_json.stdout)
    assert data["source"] == "education" and data["night"] == HEALTH_NIGHT


def test_cli_missing_column_exits_1_without_a_traceback(tmp_path: Path) -> None:
    config = _damaged_health(tmp_path, drop_column="Town")
    result = CliRunner().invoke(app, ["profile", "--config", str(config), "--source", "health"])
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)
    assert "REQUIRED COLUMNS MISSING" in result.output and "Town" in result.output


def test_a_wrongly_mapped_column_does_not_flood_the_text() -> None:
    """Names mapped as sex codes fail for as many reasons as there are names: show ten."""
    from linkage.profile import FieldIssue, FieldProfile

    issues = [FieldIssue(f"unknown code 'NAME{n}'", 1, [n]) for n in range(1, 13)]
    sex = FieldProfile("sex", "field", ["Forename"], rows=12, raw_filled=12, issues=issues)
    profile = SourceProfile("clinic", date(2026, 11, 1), ["clinic.csv"], 12, 12, fields=[sex])
    text = profile.to_text()
    assert "unknown code 'NAME10'" in text and "unknown code 'NAME11'" not in text
    assert "! 2 more reason(s): 2 row(s) (see --json)" in text
