"""Bad input, each case through the real nightly flow: a clear error, nothing lost."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import pytest

from flows.nightly import nightly
from linkage.concerns import open_concern_records
from linkage.config import load_project
from tests.conftest import CLINIC_HEADER, NIGHT_1, make_project

pytestmark = pytest.mark.usefixtures("prefect_api")


def chi_for(dob_ddmmyy: str, serial: str, sex_digit: str) -> str:
    first9 = dob_ddmmyy + serial + sex_digit
    total = sum(int(d) * w for d, w in zip(first9, range(10, 1, -1), strict=True))
    check = (11 - total % 11) % 11
    assert check != 10, "pick another serial"
    return first9 + str(check)


GOOD_CHI = chi_for("010201", "12", "3")  # male, born 01/02/2001
GOOD_ROWS = [
    f"1,John,Smith,01/02/2001,M,G12 8QQ,{GOOD_CHI}",
    "2,Mary,Brown,15/06/1985,F,EH3 9DR,",
    "3,Seonaid,MacDonald,03/03/2010,F,AB10 1XG,",
]


def run(config: Path, night: str = NIGHT_1):
    return nightly(config, date.fromisoformat(night))


def query(config: Path, sql: str, params: dict | None = None) -> list[tuple]:
    with duckdb.connect(str(config.parent / "warehouse" / "w.duckdb"), read_only=True) as con:
        return con.execute(sql, params or {}).fetchall()


def clinic(report):
    (source,) = [s for s in report.sources if s.source == "clinic"]
    return source


def csv_text(*rows: str) -> str:
    return CLINIC_HEADER + "".join(row + "\n" for row in rows)


def assert_conserved(source) -> None:
    assert source.rows_read == source.rows_accepted + source.rows_quarantined


def test_good_file_loads_every_row(tmp_path: Path) -> None:
    config = make_project(tmp_path, {f"{NIGHT_1}/clinic.csv": csv_text(*GOOD_ROWS)})
    report = run(config)
    source = clinic(report)
    # every source used; no model has been trained for this tiny project, so not linked
    assert (report.status, source.rows_read, source.rows_accepted) == ("unlinked", 3, 3)
    rows = query(config, "SELECT record_key, chi, postcode FROM canonical_record ORDER BY 1")
    assert rows[0] == ("clinic:1", GOOD_CHI, "G12 8QQ")
    assert (tmp_path / "output" / "runs" / report.run_id / "validation.html").exists()
    archived = list((tmp_path / "archive" / NIGHT_1 / "clinic").iterdir())
    assert len(archived) == 1 and not archived[0].stat().st_mode & 0o222  # read-only copy


@pytest.mark.parametrize(
    ("content", "expected_error"),
    [
        (b"", "file is empty (0 bytes)"),
        (
            "id;first;last;dob;sex;postcode;chi\n1;A;B;01/01/2000;M;G1 1AA;\n",
            "is the file delimited by it rather than the configured ','",
        ),
        (
            '"id";"first";"last";"dob";"sex";"postcode";"chi"\n1;A;B;01/01/2000;M;G1 1AA;\n',
            "header unreadable (line 1): ',' expected after '\"' (the header contains ';'",
        ),
        (
            "id\tfirst\tlast\tdob\tsex\tpostcode\tchi\n1\tA\tB\t01/01/2000\tM\tG1 1AA\t\n",
            "(the header's names are apart by spaces or tabs: is it tab-delimited?)",
        ),
        (
            "id,first,dob,sex,postcode,chi\n1,A,01/01/2000,M,G1 1AA,\n",
            "missing required column(s) last",
        ),
    ],
    ids=["zero-bytes", "wrong-delimiter", "quoted-wrong-delimiter", "tabs", "missing-column"],
)
def test_unusable_file_skips_the_source_with_a_clear_error(
    tmp_path: Path, content: bytes | str, expected_error: str
) -> None:
    config = make_project(tmp_path, {f"{NIGHT_1}/clinic.csv": content})
    report = run(config)
    source = clinic(report)
    assert report.status == "partial" and source.status == "failed"
    assert expected_error in source.error and "clinic.csv" in source.error


def test_missing_file_names_the_pattern(tmp_path: Path) -> None:
    config = make_project(tmp_path, {f"{NIGHT_1}/other.csv": csv_text(*GOOD_ROWS)})
    source = clinic(run(config))
    assert source.status == "failed" and "no file matches" in source.error
    assert f"{NIGHT_1}/clinic*.csv" in source.error


def test_header_only_file_is_used_with_zero_rows(tmp_path: Path) -> None:
    config = make_project(tmp_path, {f"{NIGHT_1}/clinic.csv": CLINIC_HEADER})
    source = clinic(run(config))
    assert (source.status, source.rows_read, source.rows_accepted) == ("used", 0, 0)


def test_unknown_extra_columns_are_reported_not_fatal(tmp_path: Path) -> None:
    text = "id,first,last,dob,sex,postcode,chi,shoe_size\n1,A,B,01/01/2000,M,G1 1AA,,9\n"
    config = make_project(tmp_path, {f"{NIGHT_1}/clinic.csv": text})
    source = clinic(run(config))
    assert source.rows_accepted == 1 and source.files[0]["extra_columns"] == ["shoe_size"]


def test_row_level_problems_are_quarantined_or_flagged_with_reasons(tmp_path: Path) -> None:
    rows = [
        *GOOD_ROWS,
        "4,Se\xf2naid,Mac,01/01/2000,F,G1 1AA,",  # a cp1252 byte in a UTF-8 file: flagged
        '5,"Anne\nMarie","O""Neil",02/02/2002,F,G2 2BB,',  # embedded newline and quotes
        "6,Dup,One,01/01/1990,M,G3 3CC,",
        "6,Dup,Two,01/01/1990,M,G3 3CC,",
        "7,Bad,Date,31/02/2001,M,G4 4DD,",
        "8,\"O'Brien'); DROP TABLE canonical_record;--\",Evil,01/01/1980,M,G5 5EE,",
        "9," + "X" * 1_000_000 + ",Long,01/01/1970,F,G6 6FF,",
        f"10,Wrong,Chi,01/01/1970,F,G7 7GG,{GOOD_CHI[:-1]}{(int(GOOD_CHI[-1]) + 1) % 10}",
        "11,Trunc,Ated,01/01/1970",  # truncated last line (no newline)
    ]
    body = CLINIC_HEADER.encode() + "\n".join(rows).encode("utf-8").replace(
        "\xf2".encode(), b"\xf2"
    )
    config = make_project(tmp_path, {f"{NIGHT_1}/clinic.csv": body})
    source = clinic(run(config))
    assert_conserved(source)
    assert source.rows_read == 12
    quarantined = query(
        config,
        "SELECT source_row_number, source_line_number, field, check_name, reason"
        " FROM quarantine ORDER BY 1, 4",
    )
    by_row = {row[0]: row for row in quarantined}
    assert 4 not in by_row, "read in the fallback encoding and kept"
    assert {row[0] for row in quarantined if row[3] == "record_id_unique"} == {6, 7}
    assert by_row[10][3] == "forename_length"
    assert by_row[12][1] == 14 and "expected 7 fields, found 4 (truncated row?)" in by_row[12][4]
    assert all(row[4] for row in quarantined), "every quarantined row has a reason"
    issues = dict(query(config, "SELECT source_row_number, reason FROM record_issue"))
    assert issues[4] == "not valid utf-8; read as cp1252"
    assert issues[8] == "date of birth: unparseable"
    assert issues[11] == "CHI number: check digit fails"
    kept = dict(query(config, "SELECT source_record_id, surname FROM canonical_record"))
    assert kept["5"] == "ONEIL" and kept["8"] == "EVIL" and kept["7"] == "DATE"
    assert kept["4"] == "MAC"
    assert query(
        config, "SELECT date_of_birth FROM canonical_record WHERE source_record_id='7'"
    ) == [(None,)]


def test_failed_source_keeps_last_good_records(tmp_path: Path) -> None:
    config = make_project(
        tmp_path,
        {
            f"{NIGHT_1}/clinic.csv": csv_text(*GOOD_ROWS),
            "2026-11-02/clinic.csv": "id|first\n",  # broken night
            "2026-11-03/clinic.csv": csv_text(GOOD_ROWS[0]),  # implausible drop: 3 -> 1 rows
        },
    )
    run(config)
    second = run(config, "2026-11-02")
    assert second.status == "partial"
    kept = query(config, "SELECT count(*), max(run_date) FROM canonical_record")
    assert kept == [(3, date(2026, 11, 1))]
    third = clinic(run(config, "2026-11-03"))
    assert third.status == "failed" and "implausibly fewer" in third.error
    assert query(config, "SELECT count(*) FROM canonical_record") == [(3,)]


def test_a_lost_record_fails_the_run_loudly_and_publishes_nothing(tmp_path: Path) -> None:
    """Conservation: rows read must equal rows accepted + quarantined, or nothing lands."""
    from linkage import night as stages
    from linkage.config import load_project
    from linkage.errors import ConservationError

    config = make_project(tmp_path, {f"{NIGHT_1}/clinic.csv": csv_text(*GOOD_ROWS)})
    project = load_project(config)
    night = stages.start_night(project, date.fromisoformat(NIGHT_1))
    intakes = [stages.intake_source(night, source) for source in project.source_configs()]
    intakes = stages.standardise_night(night, intakes)
    intakes = [stages.validate_source(night, intake) for intake in intakes]
    night.con.execute("DELETE FROM standardised_record WHERE source_record_id = '2'")
    with pytest.raises(ConservationError, match="3 rows read but 2 accepted"):
        stages.publish_night(night, intakes)
    assert night.con.execute("SELECT count(*) FROM canonical_record").fetchall() == [(0,)]
    stages.fail_night(night)
    assert query(config, "SELECT status FROM run") == [("failed",)]


JSONL_CONFIG = """
source: clinic
file: {pattern: "{run_date}/clinic*.jsonl", format: jsonl}
record_id: id
fields:
  forename: first
  surname: last
  date_of_birth: {column: dob, formats: ["%Y-%m-%d"]}
"""

PARQUET_CONFIG = JSONL_CONFIG.replace("jsonl", "parquet")


def test_json_lines_extract_loads_and_quarantines_bad_lines(tmp_path: Path) -> None:
    lines = [
        '{"id": "1", "first": "Ann", "last": "Reid", "dob": "1990-01-02"}',
        "{not json",
        '{"id": 3, "first": "Iain", "last": "Ross", "dob": "2001-02-03", "extra": [1]}',
    ]
    config = make_project(
        tmp_path, {f"{NIGHT_1}/clinic.jsonl": "\n".join(lines) + "\n"}, JSONL_CONFIG
    )
    source = clinic(run(config))
    assert (source.rows_read, source.rows_accepted, source.rows_quarantined) == (3, 2, 1)
    assert query(config, "SELECT source_line_number, reason FROM quarantine")[0][0] == 2
    assert query(config, "SELECT source_record_id FROM canonical_record ORDER BY 1") == [
        ("1",),
        ("3",),
    ]


def test_parquet_extract_loads_through_config(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    config = make_project(tmp_path, {}, PARQUET_CONFIG)
    path = tmp_path / "landing" / NIGHT_1 / "clinic.parquet"
    path.parent.mkdir(parents=True)
    table = pa.table(
        {
            "id": [1, 2],
            "first": ["Ann", "Bob"],
            "last": ["Reid", "Ross"],
            "dob": ["1990-01-02", "1980-05-06"],
        }
    )
    pq.write_table(table, path)
    source = clinic(run(config))
    assert (source.rows_read, source.rows_accepted) == (2, 2)
    assert query(config, "SELECT surname, date_of_birth FROM canonical_record ORDER BY 1") == [
        ("REID", date(1990, 1, 2)),
        ("ROSS", date(1980, 5, 6)),
    ]


# --- concern dates ----------------------------------------------------------------------

CONCERN_CLINIC_CONFIG = """
source: clinic
file: {pattern: "{run_date}/clinic*.csv"}
record_id: id
fields:
  forename: first
  surname: last
  date_of_birth: {column: dob, formats: ["%d/%m/%Y"]}
concern:
  type: {column: flag, codes: {Y: CLINIC_CONCERN, N: null}}
  status: {constant: open}
  opened: {column: opened, formats: ["%d/%m/%Y"]}
  open_for_days: 365
"""


def test_a_concern_date_not_read_is_flagged_and_the_concern_still_counts_as_open(
    tmp_path: Path,
) -> None:
    """A two-digit year, an impossible date, another style, a date ahead: each flagged
    and nulled, never read as year 26 or dropped silently; the concern stays open."""
    sent = {
        "1": "12/03/2026",  # as configured
        "2": "12/03/26",  # two-digit year: %Y reads it as the year 26
        "3": "31/02/2026",  # no such day
        "4": "2026-03-12",  # another style
        "5": "01/01/2027",  # after the night
    }
    rows = [f"{key},ANNA,REID,0{key}/01/2015,Y,{opened}" for key, opened in sent.items()]
    config = make_project(
        tmp_path,
        {f"{NIGHT_1}/clinic.csv": "id,first,last,dob,flag,opened\n" + "\n".join(rows) + "\n"},
        CONCERN_CLINIC_CONFIG,
    )
    assert clinic(run(config)).rows_accepted == 5
    opened = dict(query(config, "SELECT source_record_id, concern_opened FROM canonical_record"))
    assert opened == {"1": date(2026, 3, 12), "2": None, "3": None, "4": None, "5": None}
    flags = query(
        config,
        "SELECT source_record_id, field, reason FROM record_issue"
        " WHERE check_name = 'concern_opened_valid' ORDER BY 1",
    )
    assert flags == [
        ("2", "concern_opened", "concern opened date: before 1900"),
        ("3", "concern_opened", "concern opened date: unparseable"),
        ("4", "concern_opened", "concern opened date: unparseable"),
        ("5", "concern_opened", "concern opened date: in the future"),
    ]
    project = load_project(config)
    with duckdb.connect(str(project.warehouse)) as con:
        open_concern_records(con, project, date.fromisoformat(NIGHT_1), "open_now")
        still_open = [row[0] for row in con.execute("SELECT record_key FROM open_now").fetchall()]
    # record 1 opened within its 365 days; the others' dates are unknown: open, not expired
    assert sorted(still_open) == [f"clinic:{key}" for key in sent]


# --- damaged text: values far too long, control characters inside names ----------------

TEXT_CLINIC_CONFIG = """
source: clinic
file: {pattern: "{run_date}/clinic*.csv"}
record_id: id
fields:
  forename: first
  surname: last
  other_surnames: previous
  date_of_birth: {column: dob, formats: ["%d/%m/%Y"]}
  town: town
identifiers:
  chi: chi
  police_id: ref
"""


def test_values_past_the_text_bound_are_quarantined_or_nulled_naming_the_field(
    tmp_path: Path,
) -> None:
    """A megabyte town, a 5 MB previous surname, a 1,000-character record id: the row
    quarantined naming the field; an absurd identifier: nulled and flagged, the row kept.
    No such value is stored, in full or in part, beyond its bound."""
    rows = [
        f"1,Lucy,Reid,,01/02/2001,Perth,{GOOD_CHI},P1",
        "2,Iain,Ross,,02/02/2002,Perth" + "x" * 1_000_002 + ",,",
        "3,Iain,Ross,Smith" + "Smith" * 1_000_000 + ",03/03/2003,Oban,,",
        "4,Anna,Kerr,,04/04/2004,Ayr,,R" + "9" * 299,
        "9" * 1000 + ",Mary,Ross,,05/05/2005,Ayr,,",
    ]
    text = "id,first,last,previous,dob,town,chi,ref\n" + "\n".join(rows) + "\n"
    config = make_project(tmp_path, {f"{NIGHT_1}/clinic.csv": text}, TEXT_CLINIC_CONFIG)
    source = clinic(run(config))
    assert_conserved(source)
    assert (source.rows_read, source.rows_accepted, source.rows_quarantined) == (5, 2, 3)
    quarantined = query(
        config,
        "SELECT source_row_number, field, check_name, reason, length(source_record_id)"
        " FROM quarantine ORDER BY 1",
    )
    assert quarantined == [
        (2, "town", "town_length", "town longer than 200 characters", 1),
        (
            3,
            "other_surnames",
            "other_surnames_length",
            "other surnames longer than 200 characters",
            1,
        ),
        (5, "record_id", "record_id_length", "record id longer than 200 characters", 201),
    ]
    assert source.quarantine_reasons == {
        "town_length": 1,
        "other_surnames_length": 1,
        "record_id_length": 1,
    }
    issues = query(config, "SELECT source_record_id, field, check_name, reason FROM record_issue")
    assert issues == [
        (
            "4",
            "police_id",
            "police_id_length",
            "Police nominal reference longer than 200 characters; not used",
        )
    ]
    kept = query(config, "SELECT source_record_id, police_id, chi FROM canonical_record ORDER BY 1")
    assert kept == [("1", "P1", GOOD_CHI), ("4", None, None)]
    assert longest_stored_value(config) < 1000, "no table holds the damaged values"


def test_a_megabyte_code_or_date_is_quarantined_and_stored_nowhere(tmp_path: Path) -> None:
    """A sex code or date of birth megabytes long: the row quarantined naming the field,
    and the value not kept anywhere, not even among the codes drift counts."""
    rows = [
        *GOOD_ROWS,
        "4,Bob,Reid,01/02/2001," + "M" * 5_000_000 + ",G12 8QQ,",
        "5,Cat,Reid," + "1" * 3_000_000 + ",F,G12 8QQ,",
    ]
    config = make_project(tmp_path, {f"{NIGHT_1}/clinic.csv": csv_text(*rows)})
    source = clinic(run(config))
    assert_conserved(source)
    assert query(
        config, "SELECT source_row_number, field, check_name FROM quarantine ORDER BY 1"
    ) == [
        (4, "sex", "sex_length"),
        (5, "date_of_birth", "date_of_birth_length"),
    ]
    assert query(config, "SELECT codes FROM field_night WHERE field = 'sex'") == [(["F", "M"],)]
    assert longest_stored_value(config) < 1000


def longest_stored_value(config: Path) -> int:
    """The longest value, as text, in any table of the warehouse."""
    with duckdb.connect(str(config.parent / "warehouse" / "w.duckdb"), read_only=True) as con:
        tables = [row[0] for row in con.execute("SHOW TABLES").fetchall()]
        return max(
            len(str(value))
            for table in tables
            for row in con.execute(f'SELECT * FROM "{table}"').fetchall()
            for value in row
        )


def test_control_characters_in_names_are_removed_and_flagged(tmp_path: Path) -> None:
    """Lu<U+2028>cy is LUCY, not LU with a middle name CY; the row is kept and flagged so the
    analyst sees the source sent damaged text. A normal name is not flagged."""
    rows = [
        "1,Lucy,Reid,,01/02/2001,Perth,,",
        "2,Lu\u2028cy,Reid,,01/02/2001,Perth,,",
        "3,Iain,Ro\u200bss,Mac\u200bLean,02/02/2002,Oban,,",
        "4,An\x0bna\x1e,Ke\x85rr,,03/03/2003,Ayr,,",
        "5,Mary\u00a0Ann,Reid,,04/04/2004,Ayr,,",
    ]
    text = "id,first,last,previous,dob,town,chi,ref\n" + "\n".join(rows) + "\n"
    config = make_project(tmp_path, {f"{NIGHT_1}/clinic.csv": text}, TEXT_CLINIC_CONFIG)
    source = clinic(run(config))
    assert_conserved(source)
    assert (source.rows_read, source.rows_accepted) == (5, 5)
    names = query(
        config,
        "SELECT source_record_id, forename, middle_names, surname, other_surnames"
        " FROM canonical_record ORDER BY 1",
    )
    assert names == [
        ("1", "LUCY", None, "REID", None),
        ("2", "LUCY", None, "REID", None),
        ("3", "IAIN", None, "ROSS", ["MACLEAN"]),
        ("4", "ANNA", None, "KERR", None),
        ("5", "MARY", "ANN", "REID", None),
    ]
    flags = query(
        config, "SELECT source_record_id, field, check_name, reason FROM record_issue ORDER BY 1"
    )
    reason = "control or invisible characters removed from a name: "
    assert flags == [
        ("2", "name", "name_control_characters", reason + "forename U+2028"),
        ("3", "name", "name_control_characters", reason + "surname U+200B; other_surnames U+200B"),
        ("4", "name", "name_control_characters", reason + "forename U+000B U+001E; surname U+0085"),
    ]
    assert source.flag_reasons == {"name_control_characters": 3}
