"""DuckDB's fast CSV path loads exactly what the careful reader loads, or declines.

Every file is extracted twice into a real DuckDB, once as the night does (fast path first)
and once with the careful reader only, and the raw tables, rejects and flags must be the
same. Plain files must take the fast path; damaged ones may only be declined.
"""

from __future__ import annotations

import random
import textwrap
from datetime import date
from pathlib import Path

import duckdb
import pytest
import yaml

from linkage.config import SourceConfig
from linkage.extract import extract_source
from linkage.extract.header import quote_identifier
from linkage.extract.plain_csv import MAX_PYTHON_CHECKED, load_plain_csv
from linkage.extract.rows import open_rows

NIGHT = date(2026, 11, 1)
HEADER = "id,first,last,dob,address\n"
CONFIG = """
source: clinic
file: {pattern: "{run_date}/clinic*.csv", delimiter: "%s", encoding: %s}
record_id: id
fields:
  forename: first
  surname: last
  date_of_birth: {column: dob, formats: ["%%d/%%m/%%Y"]}
  address: address
"""


def source_config(delimiter: str = ",", encoding: str = "utf-8") -> SourceConfig:
    return SourceConfig.model_validate(
        yaml.safe_load(textwrap.dedent(CONFIG % (delimiter, encoding)))
    )


def extracted(root: Path, content: bytes, config: SourceConfig, fast: bool) -> tuple:
    """(raw rows in row order, rows read, rejects, flags, blank lines) of one extract."""
    landing = root / "landing"
    path = landing / NIGHT.isoformat() / "clinic.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    con = duckdb.connect()
    [result] = extract_source(con, config, landing, root / "archive", NIGHT, fast=fast)
    columns = ", ".join(quote_identifier(c) for c in result.columns)
    rows = con.execute(
        f"SELECT {columns}, _row_number, _line_number FROM raw_clinic ORDER BY _row_number"
    ).fetchall()
    con.close()
    return rows, result.rows_read, result.rejected, result.flagged, result.blank_lines


def fast_path_taken(root: Path, content: bytes, config: SourceConfig) -> bool:
    path = root / "probe.csv"
    path.write_bytes(content)
    con = duckdb.connect()
    with open_rows(path, config) as opened:
        con.execute(
            "CREATE TABLE raw_probe ("
            + "".join(f"{quote_identifier(c)} VARCHAR, " for c in opened.columns)
            + "_row_number BIGINT, _line_number BIGINT)"
        )
        loaded = load_plain_csv(
            con, "raw_probe", config, path, opened.columns, opened.header_keys, 0
        )
    return loaded is not None


def assert_same(root: Path, content: bytes, config: SourceConfig) -> None:
    fast = extracted(root, content, config, fast=True)
    careful = extracted(root, content, config, fast=False)
    assert fast == careful


PLAIN = {
    "simple": HEADER + "1,Ann,Reid,01/02/2003,1 High St\n2,Bob,Kerr,02/03/2004,\n",
    "quoted commas": HEADER + '1,Ann,Reid,01/02/2003,"1 High St, Perth"\n',
    "all quoted": '"id","first","last","dob","address"\n"1","Ann","Reid","01/02/2003",""\n',
    "doubled quote": HEADER + '1,Ann,"O""Neil",01/02/2003,x\n',
    "quote inside a bare value": HEADER + '1,Ann,O"Neil,01/02/2003,x\n',
    "crlf": HEADER.replace("\n", "\r\n") + "1,Ann,Reid,01/02/2003,x\r\n2,B,K,,\r\n",
    "no final line end": HEADER + "1,Ann,Reid,01/02/2003,x",
    "spaces kept": HEADER + "1, Ann ,Reid  ,01/02/2003,  \n",
    "utf-8 names and byte-order mark": "\ufeff" + HEADER + "1,Siân,Mac Aoidh,01/02/2003,x\n",
    "empty first value": HEADER + ",Ann,Reid,01/02/2003,x\n",
    "text quoted, numbers bare (R's write.csv)": '"id","first","last","dob","address"\n'
    + '1,"Ann","Reid","01/02/2003",NA\n2,"Bob","O""Neil","02/03/2004","1 High St, Perth"\n',
}

DAMAGED = {
    "space before a quote": HEADER + '1,Ann, "Reid",01/02/2003,x\n',
    "text after a closing quote": HEADER + '1,Ann,"Reid"x,01/02/2003,x\n2,B,K,,\n',
    "blank line": HEADER + "1,Ann,Reid,01/02/2003,x\n\n2,B,K,,\n",
    "delimiters only": HEADER + "1,Ann,Reid,01/02/2003,x\n,,,,\n",
    "whitespace only": HEADER + "1,Ann,Reid,01/02/2003,x\n,\t, , ,\n",
    "whitespace first": HEADER + "1,Ann,Reid,01/02/2003,x\n ,\t, , ,\n",
    "short row": HEADER + "1,Ann,Reid\n2,B,K,,\n",
    "long row": HEADER + "1,Ann,Reid,01/02/2003,x,y\n2,B,K,,\n",
    "trailing delimiter": HEADER + "1,Ann,Reid,01/02/2003,x,\n2,B,K,,,\n3,C,K,,,,\n",
    "quoted line break": HEADER + '1,Ann,Reid,01/02/2003,"1 High St\nPerth"\n2,B,K,,\n',
    "quote never closed": HEADER + '1,Ann,"Reid,01/02/2003,x\n2,B,K,,\n',
    "repeated header": HEADER + "1,Ann,Reid,01/02/2003,x\n" + HEADER + "2,B,K,,\n",
    "repeated header, other case": HEADER + "1,A,R,,\nID , First,LAST,dob,address\n",
    "lone carriage return": HEADER + "1,Ann,Reid,01/02/2003,x\r2,B,K,,\n",
    "mixed line ends": HEADER + "1,Ann,Reid,01/02/2003,x\r\n2,B,K,,\n",
    "blank line before the header": "\n" + HEADER + "1,Ann,Reid,01/02/2003,x\n",
    "blank last line": HEADER + "1,Ann,Reid,01/02/2003,x\n\n",
    "header only": HEADER,
}


@pytest.mark.parametrize("name", PLAIN)
def test_plain_files_take_the_fast_path_and_load_what_the_careful_reader_loads(
    tmp_path: Path, name: str
) -> None:
    content = PLAIN[name].encode()
    assert fast_path_taken(tmp_path, content, source_config())
    assert_same(tmp_path, content, source_config())


@pytest.mark.parametrize("name", DAMAGED)
def test_damaged_files_load_what_the_careful_reader_loads(tmp_path: Path, name: str) -> None:
    """The fast path never rejects or flags a row, so a file the careful reader rejects,
    flags or skips a line of must have been left to it."""
    content = DAMAGED[name].encode()
    assert_same(tmp_path, content, source_config())


@pytest.mark.parametrize(
    ("content", "encoding", "fast"),
    [
        ("1,Siân,Reid,,x\n".encode("latin-1"), "latin-1", True),
        (b"1,Si\xe2n,Reid,,x\n", "utf-8", False),  # not UTF-8: the careful reader flags it
        (b"1,Ann,Re\x00id,,x\n", "utf-8", False),  # NUL bytes are removed and flagged
        ("1,Ann,Reid,,x\n".encode("cp1252"), "cp1252", False),  # DuckDB has no cp1252
    ],
)
def test_encodings(tmp_path: Path, content: bytes, encoding: str, fast: bool) -> None:
    content = HEADER.encode() + content
    config = source_config(encoding=encoding)
    assert fast_path_taken(tmp_path, content, config) is fast
    assert_same(tmp_path, content, config)


def test_other_delimiters(tmp_path: Path) -> None:
    content = (HEADER + '1,Ann,"Reid|x",01/02/2003,"a, b"\n').replace(",", "|").encode()
    config = source_config(delimiter="|")
    assert fast_path_taken(tmp_path, content, config)
    assert_same(tmp_path, content, config)


def test_gzipped_file_is_left_to_the_careful_reader(tmp_path: Path) -> None:
    import gzip

    content = gzip.compress((HEADER + "1,Ann,Reid,01/02/2003,x\n").encode())
    assert not fast_path_taken(tmp_path, content, source_config())
    assert_same(tmp_path, content, source_config())


FRAGMENTS = ['"', '""', ",", " ", "\t", "\r\n", "\n", "\r", "a", "Ann", "id", "ID", "é", "\x00"]


def random_file(seed: int) -> bytes:
    """Thirty rows, one or two of them damaged with quotes, delimiters, spaces, line ends
    or names; some rows quoted throughout."""
    rng = random.Random(seed)
    damaged = set(rng.sample(range(1, 31), rng.randint(1, 2)))
    lines = [HEADER]
    for number in range(1, 31):
        fields = [str(number), "Ann", "Reid", "01/02/2003", "x"]
        if number in damaged:
            position = rng.randrange(len(fields))
            damage = "".join(rng.choice(FRAGMENTS) for _ in range(rng.randint(1, 3)))
            fields[position] = rng.choice([damage + fields[position], fields[position] + damage])
        if rng.random() < 0.2:
            fields = [f'"{field}"' for field in fields]
        lines.append(",".join(fields) + "\n")
    return "".join(lines).encode()


@pytest.mark.parametrize("seed", range(80))
def test_random_damage_loads_what_the_careful_reader_loads(tmp_path: Path, seed: int) -> None:
    """Whatever the fast path accepts, it loads exactly as the careful reader."""
    assert_same(tmp_path, random_file(seed), source_config())


def test_random_damage_is_not_all_declined(tmp_path: Path) -> None:
    """The random files above test the fast path only if it takes some of them."""
    taken = sum(fast_path_taken(tmp_path, random_file(seed), source_config()) for seed in range(80))
    assert 10 <= taken <= 70


def test_a_big_plain_file_keeps_its_order_and_numbering(tmp_path: Path) -> None:
    """DuckDB reads in parallel: rows must still be numbered in file order."""
    rows = [f'{n},F{n % 97},"S{n % 89}, x",01/02/2003,{n}\n' for n in range(1, 300_001)]
    content = (HEADER + "".join(rows)).encode()
    assert fast_path_taken(tmp_path, content, source_config())
    fast = extracted(tmp_path, content, source_config(), fast=True)
    table = fast[0]
    assert len(table) == 300_000
    assert all(row[0] == str(row[5]) and row[6] == row[5] + 1 for row in table)


def test_quoting_field_by_field_is_checked_in_sql_not_python(tmp_path: Path) -> None:
    """More rows than Python compares, quoted as R writes them (text quoted, numbers not):
    still the fast path, so the check is in SQL."""
    rows = [f'{n},"F{n}","S{n}","01/02/2003",{n}\n' for n in range(1, MAX_PYTHON_CHECKED + 100)]
    content = ('"id","first","last","dob","address"\n' + "".join(rows)).encode()
    assert fast_path_taken(tmp_path, content, source_config())
