"""Extract files as people really send them, each through the real nightly flow.

A good night first, then the damaged file as the next night: what the damage costs (a row
taken in, flagged, quarantined, or the source held on its last good records) and that no
row is lost and the good rows are still accepted.
"""

from __future__ import annotations

import gzip
import io
import json
import zipfile
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import pytest

from tests.conftest import CLINIC_CONFIG, CLINIC_HEADER, NIGHT_1, make_project
from tests.test_ingest import (
    GOOD_CHI,
    GOOD_ROWS,
    JSONL_CONFIG,
    PARQUET_CONFIG,
    assert_conserved,
    chi_for,
    clinic,
    csv_text,
    query,
    run,
)

pytestmark = pytest.mark.usefixtures("prefect_api")

NIGHT_2 = "2026-11-02"
GOOD_IDS = {"1", "2", "3"}
TRAILING = "4,Ann,Reid,04/04/2004,F,G4 4DD,"  # a fourth good row, placed after the damage


def two_nights(
    root: Path,
    damaged: bytes | str,
    source_config: str = CLINIC_CONFIG,
    name: str = "clinic.csv",
    good: bytes | str | None = None,
):
    """Night 1 a good file, night 2 the damaged one; returns the project and night 2's source."""
    good = csv_text(*GOOD_ROWS) if good is None else good
    files = {f"{NIGHT_1}/{name}": good, f"{NIGHT_2}/{name}": damaged}
    config = make_project(root, files, source_config)
    assert clinic(run(config)).status == "used"
    return config, clinic(run(config, NIGHT_2))


def accepted(config: Path) -> dict[str, tuple]:
    """Tonight's records: source record id -> (forename, surname, row number, line number)."""
    rows = query(
        config,
        "SELECT source_record_id, forename, surname, source_row_number, source_line_number"
        " FROM canonical_record WHERE run_date = $night",
        {"night": date.fromisoformat(NIGHT_2)},
    )
    return {row[0]: row[1:] for row in rows}


def quarantined(config: Path) -> list[tuple]:
    """Tonight's quarantine: (row number, line number, field, check, reason), in row order."""
    return query(
        config,
        "SELECT source_row_number, source_line_number, field, check_name, reason"
        " FROM quarantine WHERE run_date = $night ORDER BY 1",
        {"night": date.fromisoformat(NIGHT_2)},
    )


def issues(config: Path, check: str) -> list[tuple]:
    """Tonight's record issues of one check: (row number, record id, field, reason)."""
    return query(
        config,
        "SELECT source_row_number, source_record_id, field, reason FROM record_issue"
        " WHERE run_date = $night AND check_name = $check ORDER BY 1",
        {"night": date.fromisoformat(NIGHT_2), "check": check},
    )


def assert_used_and_conserved(source, read: int, accepted_rows: int) -> None:
    assert source.status == "used", source.error
    assert (source.rows_read, source.rows_accepted) == (read, accepted_rows)
    assert_conserved(source)


def assert_held_on_last_good_night(config: Path, source, *words: str) -> None:
    assert source.status == "failed"
    assert all(word in source.error for word in words), source.error
    kept = query(config, "SELECT count(*), max(run_date) FROM canonical_record")
    assert kept == [(3, date.fromisoformat(NIGHT_1))]


# --- 1. headers as people write them ---------------------------------------------------------


def test_header_in_other_case_with_stray_spaces_and_a_bom_is_matched(tmp_path: Path) -> None:
    config_text = CLINIC_CONFIG.replace("column: dob", "column: Date Of Birth")
    header = "\ufeff ID ,First,  LAST,date   of\tbirth ,Sex,POSTCODE ,Chi\n"
    config, source = two_nights(
        tmp_path,
        (header + "".join(row + "\n" for row in GOOD_ROWS)).encode("utf-8"),
        config_text,
        good=csv_text(*GOOD_ROWS).replace("dob", "Date Of Birth"),
    )
    assert_used_and_conserved(source, 3, 3)
    assert source.files[0]["extra_columns"] == []
    kept = query(
        config, "SELECT date_of_birth, chi FROM canonical_record WHERE source_record_id='1'"
    )
    assert kept == [(date(2001, 2, 1), GOOD_CHI)]


def test_two_columns_matching_one_configured_column_hold_the_source(tmp_path: Path) -> None:
    header = CLINIC_HEADER.strip() + ",DOB\n"
    damaged = header + "".join(row + ",01/01/1999\n" for row in GOOD_ROWS)
    config, source = two_nights(tmp_path, damaged)
    assert_held_on_last_good_night(
        config, source, "'dob' (column 4)", "'DOB' (column 8)", "configured column 'dob'"
    )


def test_duplicate_header_names_not_configured_are_kept_as_extra_columns(tmp_path: Path) -> None:
    header = CLINIC_HEADER.strip() + ",note,Note , NOTE\n"
    damaged = header + "".join(row + ",a,b,c\n" for row in GOOD_ROWS)
    config, source = two_nights(tmp_path, damaged)
    assert_used_and_conserved(source, 3, 3)
    assert source.files[0]["extra_columns"] == ["note", "Note_2", "NOTE_3"]


def test_json_lines_keys_in_another_case_are_matched(tmp_path: Path) -> None:
    good = '{"id": "1", "first": "Ann", "last": "Reid", "dob": "1990-01-02"}\n'
    damaged = "\n".join(
        [
            '{"ID": "1", "First": "Ann", "LAST ": "Reid", "Dob": "1990-01-02"}',
            '{"id": "2", "first": "Bob", "last": "Ross", "dob": "1980-05-06", "Extra": 1}',
            '{"id": "3", "first": "Cat", "Last": "Lee", "last": "Lee", "dob": "1970-01-01"}',
            '{"Id": "4", "FIRST": "Se\xf2naid", "last": "Mac", "dob": "2000-01-01"}',  # cp1252
        ]
    )
    config, source = two_nights(
        tmp_path, damaged.encode("cp1252"), JSONL_CONFIG, "clinic.jsonl", good
    )
    assert_used_and_conserved(source, 4, 3)
    kept = accepted(config)
    assert {k: v[1] for k, v in kept.items()} == {"1": "REID", "2": "ROSS", "4": "MAC"}
    assert kept["4"][0] == "SEONAID"
    [(row, _, _, check, reason)] = quarantined(config)
    assert (row, check) == (3, "parse") and "'Last' and 'last' both match" in reason
    assert issues(config, "encoding_fallback") == [
        (4, "4", "first", "not valid utf-8; read as cp1252")
    ]


def test_parquet_column_names_with_spaces_and_case_are_matched(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    def parquet_bytes(names: list[str]) -> bytes:
        table = pa.table(
            dict(
                zip(
                    names,
                    [["1", "2"], ["Ann", "Bob"], ["Reid", "Ross"], ["1990-01-02", "1980-05-06"]],
                    strict=True,
                )
            )
        )
        sink = io.BytesIO()
        pq.write_table(table, sink)
        return sink.getvalue()

    config, source = two_nights(
        tmp_path,
        parquet_bytes([" Id", "FIRST", "last  ", "DOB"]),
        PARQUET_CONFIG,
        "clinic.parquet",
        parquet_bytes(["id", "first", "last", "dob"]),
    )
    assert_used_and_conserved(source, 2, 2)
    assert {k: v[1] for k, v in accepted(config).items()} == {"1": "REID", "2": "ROSS"}


# --- 2. empty unnamed columns, trailing delimiters -------------------------------------------


@pytest.mark.parametrize(
    ("header", "row_end", "extra_columns"),
    [
        (CLINIC_HEADER.strip() + ",", ",", []),  # on every line, header too: no column
        (CLINIC_HEADER.strip(), ",", []),  # on the data rows only
        (CLINIC_HEADER.strip() + ",", "", []),  # on the header only
        (CLINIC_HEADER.strip() + ",", ",x", ["column_8"]),  # an unnamed column with values
    ],
    ids=["every-line", "data-rows-only", "header-only", "unnamed-with-values"],
)
def test_trailing_delimiters_and_unnamed_columns(
    tmp_path: Path, header: str, row_end: str, extra_columns: list[str]
) -> None:
    damaged = header + "\n" + "".join(row + row_end + "\n" for row in GOOD_ROWS)
    config, source = two_nights(tmp_path, damaged)
    assert_used_and_conserved(source, 3, 3)
    assert source.files[0]["extra_columns"] == extra_columns
    assert set(accepted(config)) == GOOD_IDS


def test_extra_fields_with_values_are_still_a_reject(tmp_path: Path) -> None:
    damaged = csv_text(GOOD_ROWS[0], GOOD_ROWS[1] + ",,surprise", GOOD_ROWS[2])
    config, source = two_nights(tmp_path, damaged)
    assert_used_and_conserved(source, 3, 2)
    [(row, line, _, check, reason)] = quarantined(config)
    assert (row, line, check, reason) == (2, 3, "parse", "expected 7 fields, found 9")


# --- 3. a repeated header row ------------------------------------------------------------------


def test_repeated_header_row_is_quarantined_not_loaded_as_a_record(tmp_path: Path) -> None:
    second_header = "ID,First,Last,DOB,Sex,Postcode,CHI"  # the next extract's, in its own case
    damaged = csv_text(GOOD_ROWS[0], CLINIC_HEADER.strip(), GOOD_ROWS[1], second_header, TRAILING)
    config, source = two_nights(tmp_path, damaged)
    assert_used_and_conserved(source, 5, 3)
    assert source.quarantine_reasons == {"parse": 2}
    assert [row[:4] for row in quarantined(config)] == [
        (2, 3, None, "parse"),
        (4, 5, None, "parse"),
    ]
    assert {row[4] for row in quarantined(config)} == {
        "repeated header row (two extracts concatenated?)"
    }
    kept = accepted(config)
    assert set(kept) == {"1", "2", "4"}
    assert not query(config, "SELECT 1 FROM canonical_record WHERE lower(source_record_id) = 'id'")
    assert not query(config, "SELECT 1 FROM canonical_record WHERE surname = 'LAST'")


# --- 4. encodings ------------------------------------------------------------------------------


def test_cp1252_bytes_in_a_utf8_file_are_read_as_cp1252_and_flagged(tmp_path: Path) -> None:
    # One row edited on Windows: O’Brien with cp1252 right quote (0x92), Seònaid's ò (0xF2).
    rows = [*GOOD_ROWS, "5,Se\xf2naid,O\u2019Brien,05/05/2005,F,G5 5EE,"]
    damaged = CLINIC_HEADER.encode() + "\n".join(rows).encode("cp1252") + b"\n"
    config, source = two_nights(tmp_path, damaged)
    assert_used_and_conserved(source, 4, 4)
    assert source.flag_reasons == {"encoding_fallback": 1}
    assert source.rows_flagged == 1
    assert issues(config, "encoding_fallback") == [
        (4, "5", "first", "not valid utf-8; read as cp1252")
    ]
    assert accepted(config)["5"][:2] == ("SEONAID", "OBRIEN")
    assert quarantined(config) == []


def test_without_a_fallback_encoding_such_a_row_is_quarantined(tmp_path: Path) -> None:
    config_text = CLINIC_CONFIG.replace(
        "encoding: utf-8", "encoding: utf-8\n  fallback_encoding: null"
    )
    rows = [GOOD_ROWS[0], "5,Se\xf2naid,Mac,05/05/2005,F,G5 5EE,", *GOOD_ROWS[1:]]
    damaged = CLINIC_HEADER.encode() + "\n".join(rows).encode("cp1252") + b"\n"
    config, source = two_nights(tmp_path, damaged, config_text)
    assert_used_and_conserved(source, 4, 3)
    [(row, line, field, check, reason)] = quarantined(config)
    assert (row, line, field, check) == (2, 3, "first", "parse")
    assert reason == "bytes not valid utf-8 on line 3 (is the file in another encoding?)"
    assert set(accepted(config)) == GOOD_IDS


def test_bytes_neither_encoding_reads_are_quarantined(tmp_path: Path) -> None:
    # 0x81 is undefined in cp1252 as well as invalid in utf-8
    damaged = csv_text(GOOD_ROWS[0], "5,Se\x81naid,Mac,05/05/2005,F,G5 5EE,", *GOOD_ROWS[1:])
    config, source = two_nights(tmp_path, damaged.encode().replace("\x81".encode(), b"\x81"))
    assert_used_and_conserved(source, 4, 3)
    [(_, line, field, _, reason)] = quarantined(config)
    assert (line, field) == (3, "first") and "not valid utf-8 (nor cp1252) on line 3" in reason


@pytest.mark.parametrize(
    ("encoding", "declared"),
    [
        ("utf-16", "utf-8"),  # Excel's "Unicode text": UTF-16 LE with its byte-order mark
        ("utf-16", "cp1252"),
        ("utf-16-be-bom", "latin-1"),
        ("utf-8-sig", "cp1252"),  # Excel's "CSV UTF-8": a byte-order mark
    ],
)
def test_a_byte_order_mark_decides_the_encoding(
    tmp_path: Path, encoding: str, declared: str
) -> None:
    config_text = CLINIC_CONFIG.replace("encoding: utf-8", f"encoding: {declared}")
    text = csv_text(*GOOD_ROWS, "5,Seònaid,Ó Briain,05/05/2005,F,G5 5EE,").replace("\n", "\r\n")
    if encoding == "utf-16-be-bom":
        damaged = b"\xfe\xff" + text.encode("utf-16-be")
    else:
        damaged = text.encode(encoding)
    config, source = two_nights(tmp_path, damaged, config_text)
    assert_used_and_conserved(source, 4, 4)
    assert source.flag_reasons == {}
    assert accepted(config)["5"][:2] == ("SEONAID", "OBRIAIN")
    assert accepted(config)["1"][3] == 2  # line numbers as in the file


def test_nul_bytes_are_removed_and_flagged_and_reading_goes_on(tmp_path: Path) -> None:
    damaged = csv_text(GOOD_ROWS[0], "5,Ma\x00\x00ry,Brown,05/05/2005,F,G5 5EE,", *GOOD_ROWS[1:])
    config, source = two_nights(tmp_path, damaged)
    assert_used_and_conserved(source, 4, 4)
    assert issues(config, "nul_bytes") == [(2, "5", "first", "2 NUL byte(s) removed")]
    assert source.flag_reasons == {"nul_bytes": 1}
    assert accepted(config)["5"][0] == "MARY"
    assert set(accepted(config)) == GOOD_IDS | {"5"}


# --- 5. other damage ---------------------------------------------------------------------------


@pytest.mark.parametrize("rows_after", [3, 150], ids=["a-few-rows-after", "past-the-line-bound"])
def test_an_unterminated_quote_costs_its_line_only(tmp_path: Path, rows_after: int) -> None:
    after = [f"{n},Name{n},Surname{n},01/01/2000,F,G1 1AA," for n in range(10, 10 + rows_after)]
    damaged = csv_text(GOOD_ROWS[0], '5,"Anne,Smith,05/05/2005,F,G5 5EE,', *GOOD_ROWS[1:], *after)
    # night 1 as long, so the night is not held for growing (drift)
    config, source = two_nights(tmp_path, damaged, good=csv_text(*GOOD_ROWS, *after))
    assert_used_and_conserved(source, 4 + rows_after, 3 + rows_after)
    [(row, line, field, check, reason)] = quarantined(config)
    assert (row, line, field, check) == (2, 3, None, "parse")
    assert "a quoted field opened on line 3" in reason and "stray quote" in reason
    kept = accepted(config)
    assert set(kept) == GOOD_IDS | {a.split(",")[0] for a in after}
    assert kept["2"][2:] == (3, 4)  # row 3 on line 4: the numbering goes on


def test_a_stray_quote_before_another_quoted_field_costs_its_line_only(tmp_path: Path) -> None:
    damaged = csv_text(
        GOOD_ROWS[0], '5,"Anne,Smith,05/05/2005,F,G5 5EE,', GOOD_ROWS[1], '6,"Bo",Lee,,M,,'
    )
    config, source = two_nights(tmp_path, damaged)
    assert_used_and_conserved(source, 4, 3)
    assert [row[:2] for row in quarantined(config)] == [(2, 3)]
    assert set(accepted(config)) == {"1", "2", "6"}


def test_blank_lines_are_not_rows_and_line_numbers_stay_right(tmp_path: Path) -> None:
    lines = ["", CLINIC_HEADER.strip(), GOOD_ROWS[0], "", "   ", ",,,,,,", GOOD_ROWS[1], "\t"]
    lines += ["6,Trunc,Ated", GOOD_ROWS[2], "", ""]  # a truncated row, blank lines at the end
    damaged = "\n".join(lines)
    config, source = two_nights(tmp_path, damaged)
    assert_used_and_conserved(source, 4, 3)
    assert source.files[0]["blank_lines"] == 6
    kept = accepted(config)
    assert [kept[i][2:] for i in ("1", "2", "3")] == [(1, 3), (2, 7), (4, 10)]
    assert [row[:2] for row in quarantined(config)] == [(3, 9)]


def test_a_dos_end_of_file_mark_is_no_row(tmp_path: Path) -> None:
    """Ctrl-Z (0x1A) after the last line, as DOS-era exports append it: not a row to
    quarantine."""
    config, source = two_nights(tmp_path, csv_text(*GOOD_ROWS) + "\x1a")
    assert_used_and_conserved(source, 3, 3)
    assert source.files[0]["blank_lines"] == 1 and quarantined(config) == []


def test_cr_only_line_endings_are_lines(tmp_path: Path) -> None:
    damaged = csv_text(*GOOD_ROWS, '5,"Anne\rMarie",Reid,05/05/2005,F,G5 5EE,').replace("\n", "\r")
    config, source = two_nights(tmp_path, damaged)
    assert_used_and_conserved(source, 4, 4)
    kept = accepted(config)
    assert kept["3"][2:] == (3, 4) and kept["5"][:2] == ("ANNE", "REID")


def test_a_gzipped_file_under_the_configured_name_is_read(tmp_path: Path) -> None:
    config, source = two_nights(tmp_path, gzip.compress(csv_text(*GOOD_ROWS, TRAILING).encode()))
    assert_used_and_conserved(source, 4, 4)
    assert set(accepted(config)) == GOOD_IDS | {"4"}


def _workbook() -> bytes:
    sink = io.BytesIO()
    with zipfile.ZipFile(sink, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/workbook.xml", "<workbook/>")
        archive.writestr("xl/worksheets/sheet1.xml", "<worksheet/>")
    return sink.getvalue()


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (_workbook(), ["an Excel workbook (.xlsx)", "CSV"]),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(512), ["Excel 97-2003 workbook (.xls)"]),
        (gzip.compress(_workbook()), ["an Excel workbook (.xlsx)"]),
        (bytes(range(256)) * 8, ["binary data"]),
        (bytes(4096), ["mostly NUL bytes"]),  # a copy that never got its data
        (gzip.compress(csv_text(*GOOD_ROWS * 400).encode())[:-64], ["gzip", "cut short"]),
    ],
    ids=["xlsx", "xls", "gzipped-xlsx", "binary", "zero-filled", "truncated-gzip"],
)
def test_a_workbook_binary_or_broken_file_holds_the_source(
    tmp_path: Path, content: bytes, words: list[str]
) -> None:
    config, source = two_nights(tmp_path, content)
    assert_held_on_last_good_night(config, source, "clinic.csv", *words)


def test_several_kinds_of_damage_in_one_file_cost_only_their_rows(tmp_path: Path) -> None:
    """Several kinds of damage in one file: every good row is still taken in whole."""
    chi = chi_for("050505", "35", "2")
    rows = [
        GOOD_ROWS[0] + ",",  # trailing delimiter
        "",  # blank line
        "5,Se\xf2naid,Mac,05/05/2005,F,G5 5EE," + chi,  # cp1252 byte
        CLINIC_HEADER.strip(),  # repeated header
        '6,"Unclosed,Quote,06/06/2006,F,G6 6FF,',  # stray quote
        *GOOD_ROWS[1:],
    ]
    damaged = CLINIC_HEADER.encode() + "\r\n".join(rows).encode("cp1252") + b"\r\n"
    config, source = two_nights(tmp_path, gzip.compress(damaged))
    assert_used_and_conserved(source, 6, 4)
    assert source.flag_reasons == {"encoding_fallback": 1}
    assert query(config, "SELECT chi FROM canonical_record WHERE source_record_id = '5'") == [
        (chi,)
    ]
    assert set(accepted(config)) == GOOD_IDS | {"5"}


# --- 6. JSON lines that are not flat objects -----------------------------------------------------


def _json_line(record_id: str, first: object, last: str = "Reid", **extra: object) -> str:
    return json.dumps({"id": record_id, "first": first, "last": last, "dob": "1990-01-02", **extra})


JSON_GOOD = "".join(_json_line(str(n), name) + "\n" for n, name in [(1, "Ann"), (2, "Bob")])


def test_json_lines_that_are_not_objects_cost_only_their_line(tmp_path: Path) -> None:
    lines = [
        _json_line("1", "Ann"),
        "[" * 200_000,  # nested past any parser's depth
        "[1, 2]",
        "42",
        '"Ann Reid"',
        "null",
        _json_line("2", "Bob"),
    ]
    config, source = two_nights(
        tmp_path, "\n".join(lines) + "\n", JSONL_CONFIG, "clinic.jsonl", JSON_GOOD
    )
    assert_used_and_conserved(source, 7, 2)
    assert [(line, field, reason) for _, line, field, _, reason in quarantined(config)] == [
        (2, None, "line is not a JSON object: nested too deeply"),
        (3, None, "line is not a JSON object but a JSON array"),
        (4, None, "line is not a JSON object but a JSON number"),
        (5, None, "line is not a JSON object but a JSON string"),
        (6, None, "line is not a JSON object but a JSON null"),
    ]
    assert set(accepted(config)) == {"1", "2"}


def test_json_values_that_are_objects_or_lists_reject_their_row(tmp_path: Path) -> None:
    """A name sent as {"given": "Lexi"} is not read as the text of its keys; a nested value
    under a key the config does not map costs nothing; a key repeated with another value is
    read as JSON parsers do (the last value) and flagged."""
    lines = [
        _json_line("1", {"given": "Lexi"}),
        _json_line("2", ["Ann", "Marie"]),
        _json_line("3", "Cat", meta={"tags": [1, {"deep": None}]}),
        '{"id": "4", "first": "Dan", "last": "Old", "dob": "1990-01-02", "last": "New"}',
        '{"id": "5", "first": "Eve", "last": "Hart", "dob": "1990-01-02", "first": "Eve"}',
    ]
    config, source = two_nights(
        tmp_path, "\n".join(lines) + "\n", JSONL_CONFIG, "clinic.jsonl", JSON_GOOD
    )
    assert_used_and_conserved(source, 5, 3)
    assert [(line, field, reason) for _, line, field, _, reason in quarantined(config)] == [
        (1, "first", "'first' holds a JSON object, not a single value"),
        (2, "first", "'first' holds a JSON array, not a single value"),
    ]
    kept = accepted(config)
    assert {k: v[:2] for k, v in kept.items()} == {
        "3": ("CAT", "REID"),
        "4": ("DAN", "NEW"),
        "5": ("EVE", "HART"),
    }
    assert issues(config, "duplicate_key") == [
        (4, "4", "last", "key 'last' is repeated with another value; the last one is used")
    ]
    assert source.flag_reasons == {"duplicate_key": 1}


# --- 7. Parquet column types ---------------------------------------------------------------------


def _parquet(columns: dict[str, list], types: dict[str, object] | None = None) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    types = types or {}
    table = pa.table({name: pa.array(values, types.get(name)) for name, values in columns.items()})
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


PARQUET_GOOD = {
    "id": [1, 2, 3],
    "first": ["Ann", "Bob", "Cat"],
    "last": ["Reid", "Ross", "Lee"],
    "dob": [date(1990, 1, 2), date(1980, 5, 6), date(2001, 7, 1)],
}


PARQUET_BIRTHS = [("1", date(1990, 1, 2)), ("2", date(1980, 5, 6)), ("3", date(2001, 7, 1))]


def night_2_births(config: Path) -> list[tuple]:
    return query(
        config,
        "SELECT source_record_id, date_of_birth FROM canonical_record"
        " WHERE run_date = $night ORDER BY 1",
        {"night": date.fromisoformat(NIGHT_2)},
    )


def test_parquet_nested_columns_the_config_does_not_map_are_carried_as_json(
    tmp_path: Path,
) -> None:
    """Extra list and struct columns never hold the source; mapped integer, date and
    timestamp columns are read as the text the configured formats expect."""
    import pyarrow as pa

    from linkage.config import load_source
    from linkage.extract import extract_source

    # Dates of birth as local midnights (1 July is in summer time: 30 June 23:00 UTC).
    london = ZoneInfo("Europe/London")
    midnights = [datetime(d.year, d.month, d.day, tzinfo=london) for d in PARQUET_GOOD["dob"]]
    nested = {
        **PARQUET_GOOD,
        "dob": midnights,
        "Previous_GPs": [["Dr A", "Dr B"], [], None],
        "Meta": [{"batch": 7, "ok": True}, None, {"batch": 8, "ok": False}],
    }
    damaged = _parquet(nested, {"dob": pa.timestamp("us", tz="Europe/London")})
    config, source = two_nights(
        tmp_path, damaged, PARQUET_CONFIG, "clinic.parquet", _parquet(PARQUET_GOOD)
    )
    assert_used_and_conserved(source, 3, 3)
    assert source.files[0]["extra_columns"] == ["Previous_GPs", "Meta"]
    assert night_2_births(config) == PARQUET_BIRTHS

    con = duckdb.connect()
    source_config = load_source(config.parent / "sources" / "clinic.yaml")
    extract_source(con, source_config, config.parent / "landing", tmp_path / "a", date(2026, 11, 2))
    assert con.execute(
        'SELECT id, dob, "Previous_GPs", "Meta" FROM raw_clinic ORDER BY 1'
    ).fetchall() == [
        ("1", "1990-01-02", '["Dr A", "Dr B"]', '{"batch": 7, "ok": true}'),
        ("2", "1980-05-06", "[]", None),
        ("3", "2001-07-01", None, '{"batch": 8, "ok": false}'),
    ]


def test_typed_parquet_dates_are_read_whatever_text_style_the_config_expects(
    tmp_path: Path,
) -> None:
    """A source configured for d/m/Y text that sends a Parquet date column is read, not
    held as if its dates had switched style."""
    config_text = PARQUET_CONFIG.replace('["%Y-%m-%d"]', '["%d/%m/%Y"]')
    config, source = two_nights(
        tmp_path, _parquet(PARQUET_GOOD), config_text, "clinic.parquet", _parquet(PARQUET_GOOD)
    )
    assert_used_and_conserved(source, 3, 3)
    assert night_2_births(config) == PARQUET_BIRTHS


def test_a_mapped_nested_parquet_column_holds_the_source(tmp_path: Path) -> None:
    damaged = _parquet({**PARQUET_GOOD, "last": [["Reid"], ["Ross"], ["Lee", "Hay"]]})
    config, source = two_nights(
        tmp_path, damaged, PARQUET_CONFIG, "clinic.parquet", _parquet(PARQUET_GOOD)
    )
    assert_held_on_last_good_night(config, source, "clinic.parquet", "'last'", "list<")


def test_binary_parquet_name_bytes_are_decoded_flagged_or_cost_only_their_row(
    tmp_path: Path,
) -> None:
    """A mapped binary column is text in the source's encoding: a cp1252 name is read and
    flagged, bytes no encoding reads cost their row alone, and an unmapped binary column
    (a photo) is carried whatever its bytes."""
    import pyarrow as pa

    damaged = {
        **PARQUET_GOOD,
        "last": [b"Reid", "Rö".encode("cp1252") + b"ss", b"Le\x81"],
        "photo": [b"\x89PNG\x81\xff", None, b"\x00\x81"],
    }
    config, source = two_nights(
        tmp_path,
        _parquet(damaged, {"last": pa.binary(), "photo": pa.binary()}),
        PARQUET_CONFIG,
        "clinic.parquet",
        _parquet(PARQUET_GOOD),
    )
    assert_used_and_conserved(source, 3, 2)
    assert accepted(config)["2"][:2] == ("BOB", "ROSS")  # RÖSS, as names are compared
    assert issues(config, "encoding_fallback") == [
        (2, "2", "last", "not valid utf-8; read as cp1252")
    ]
    [(row, _, field, _, reason)] = quarantined(config)
    assert (row, field) == (3, "last")
    assert "not valid utf-8 (nor cp1252)" in reason


def test_a_json_array_file_is_read_element_by_element(tmp_path: Path) -> None:
    """An export's JSON array (pretty-printed, one object per line or not) under a
    JSON-lines config: each object a row numbered by its first line; an element that is no
    object, or broken JSON, costs only itself, and nothing after a stray ] is lost."""
    pretty = json.dumps(json.loads(_json_line("3", "Cal")), indent=2)  # lines 4-9
    text = "\n".join(
        [
            "[",
            _json_line("1", "Ann") + ",",
            _json_line("2", "Bob") + ",",
            pretty + ",",
            "42,",
            '{"id": "5", "first": "Dee", "last": ',  # broken: reading resumes on line 12
            _json_line("6", "Eve"),
            "]",
            _json_line("7", "Fay"),  # after the array: still read
        ]
    )
    config, source = two_nights(tmp_path, text + "\n", JSONL_CONFIG, "clinic.jsonl", JSON_GOOD)
    assert_used_and_conserved(source, 7, 5)
    kept = accepted(config)
    assert {key: (row[0], row[3]) for key, row in kept.items()} == {
        "1": ("ANN", 2),
        "2": ("BOB", 3),
        "3": ("CAL", 4),
        "6": ("EVE", 12),
        "7": ("FAY", 14),
    }
    assert [(line, reason.split(":")[0]) for _, line, _, _, reason in quarantined(config)] == [
        (10, "array element is not a JSON object but a JSON number"),
        (11, "array element is not JSON"),
    ]


NESTED_CONFIG = """
source: clinic
file: {pattern: "{run_date}/clinic*.jsonl", format: jsonl}
record_id: id
fields:
  forename: person.name.given
  surname: Person.Name.Family
  date_of_birth: {column: person.born, formats: ["%Y-%m-%d"]}
  postcode: address.postcode
"""


def test_json_paths_reach_into_nested_objects(tmp_path: Path) -> None:
    """A column named with dots is a path into nested objects (a key matches whatever its
    case): a missing part gives no value; an object where a value should be costs its row."""

    def line(record_id: str, name: object, **extra: object) -> str:
        person = {"name": name, "born": "1990-01-02"}
        return json.dumps({"id": record_id, "person": person, **extra})

    lines = [
        line("1", {"given": "Ann", "family": "Reid"}, address={"postcode": "G1 1AA"}),
        line("2", {"Given": "Bob", "FAMILY": "Ross"}),  # no address: no postcode
        line("3", {"given": {"first": "Cal"}, "family": "Hay"}),  # an object, not a name
        line("4", "Dee Lee"),  # the name is text, not an object: no forename or surname
        json.dumps({"id": "5", "person.name.given": "Eve", "person": {"name": {"family": "Fox"}}}),
    ]
    good = line("1", {"given": "Ann", "family": "Reid"}) + "\n"
    config, source = two_nights(
        tmp_path, "\n".join(lines) + "\n", NESTED_CONFIG, "clinic.jsonl", good
    )
    assert_used_and_conserved(source, 5, 4)
    kept = accepted(config)
    assert {key: row[:2] for key, row in kept.items()} == {
        "1": ("ANN", "REID"),
        "2": ("BOB", "ROSS"),
        "4": (None, None),
        "5": ("EVE", "FOX"),  # a key written with the dots wins
    }
    assert query(config, "SELECT postcode FROM canonical_record WHERE source_record_id = '1'") == [
        ("G1 1AA",)
    ]
    [(row, line_number, field, _, reason)] = quarantined(config)
    assert (line_number, field) == (3, "person.name.given")
    assert "'person.name.given' holds a JSON object" in reason


def test_parquet_struct_fields_are_read_through_dotted_paths(tmp_path: Path) -> None:
    """Struct columns (a Spark or BigQuery export) are flattened when the config names a
    field inside one: `person.name.given`, at any depth; a typed date inside keeps its day."""
    people = [
        {"name": {"given": "Ann", "family": "Reid"}, "born": date(1990, 1, 2)},
        {"name": {"given": "Bob", "family": "Ross"}, "born": date(1980, 5, 6)},
        {"name": None, "born": date(2001, 7, 1)},  # no name object: no names
    ]
    damaged = _parquet({"id": [1, 2, 3], "person": people, "note": [{"x": 1}] * 3})
    config = NESTED_CONFIG.replace("jsonl", "parquet").replace("  postcode: address.postcode\n", "")
    config, source = two_nights(
        tmp_path, damaged, config, "clinic.parquet", _parquet({"id": [1], "person": people[:1]})
    )
    assert_used_and_conserved(source, 3, 3)
    kept = accepted(config)
    assert {key: row[:2] for key, row in kept.items()} == {
        "1": ("ANN", "REID"),
        "2": ("BOB", "ROSS"),
        "3": (None, None),
    }
    assert night_2_births(config) == PARQUET_BIRTHS
