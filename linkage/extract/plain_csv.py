"""The fast path for plain CSV files: DuckDB's reader, where it reads what rows.py would.

The careful reader in rows.py parses about 80,000 rows a second in Python; DuckDB's CSV
reader is more than ten times faster. Most nights' files are plain: one record per line,
one encoding DuckDB knows, no NULs, no blank lines, no repeated header. For those the two
readers agree, and this module proves it for each file before it writes a row:

- the bytes: not compressed, no byte-order mark but UTF-8's, no NUL, CR only in CRLF;
- DuckDB parses every line after the header as exactly one row of the header's width
  (rows = lines - 1; any error, a short or long row or an invalid byte gives up);
- no row might be a blank line or a repeated header (a generous SQL test gives up);
- where a line holds the quote character, DuckDB's values, quoted back, give the line
  again; the few lines that do not are parsed by Python's csv module and compared.

Any doubt returns None, having written nothing, and the careful reader reads the file, so
its rejects and flags are exactly what they always were.
"""

from __future__ import annotations

import codecs
import csv
from dataclasses import dataclass
from pathlib import Path

import duckdb

from linkage.config import SourceConfig
from linkage.extract.header import LINE_NUMBER, ROW_NUMBER, quote_identifier
from linkage.extract.landing import BOMS, compression_of

# The configurable encodings DuckDB reads without an extension (not cp1252).
DUCKDB_ENCODINGS = {"utf-8", "latin-1"}
UTF8_BOM = b"\xef\xbb\xbf"
SCAN_BLOCK = 1 << 24
# Lines whose quoting DuckDB's values do not give back are compared in Python; past this
# many the careful reader is about as quick.
MAX_PYTHON_CHECKED = 50_000
# Python's str.split() whitespace among ASCII characters (column_key collapses it).
ASCII_SPACE = r"[\t\n\x0b\x0c\r \x1c-\x1f]"


@dataclass(frozen=True)
class PlainBytes:
    """What a scan of a file's bytes found."""

    encoding: str  # DuckDB's name
    lines: int
    has_quote: bool


def load_plain_csv(
    con: duckdb.DuckDBPyConnection,
    table: str,
    config: SourceConfig,
    path: Path,
    columns: list[str],
    header_keys: set[str],
    row_offset: int,
) -> int | None:
    """Load a plain CSV file's rows into `table`; the rows loaded, or None (nothing
    written) when the file needs the careful reader."""
    scanned = scan_bytes(path, config)
    if scanned is None or scanned.lines < 2:
        return None
    try:
        rows = _read_values(con, path, config, scanned.encoding, len(columns))
        if rows != scanned.lines - 1 or _doubtful_rows(con, config, columns, header_keys):
            return None
        if scanned.has_quote and not _quoting_agrees(con, path, config, scanned, len(columns)):
            return None
        _insert(con, table, columns, row_offset)
        return rows
    except duckdb.Error:
        return None
    finally:
        con.execute("DROP TABLE IF EXISTS plain_csv_value")
        con.execute("DROP TABLE IF EXISTS plain_csv_line")


def scan_bytes(path: Path, config: SourceConfig) -> PlainBytes | None:
    """Line count and quote presence of a file whose bytes DuckDB reads as Python would."""
    spec = config.file
    encoding: str | None = spec.encoding if spec.encoding in DUCKDB_ENCODINGS else None
    quote = spec.quote.encode()
    newlines = returns = crlf = quotes = 0
    previous = b""
    utf8 = codecs.getincrementaldecoder("utf-8")()
    with path.open("rb") as handle:
        head = handle.read(8)
        if compression_of(head) is not None:
            return None
        if any(head.startswith(bom) for bom, _ in BOMS):
            if not head.startswith(UTF8_BOM):
                return None
            encoding = "utf-8"  # a byte-order mark overrides the config, as in rows.py
        if encoding is None:
            return None
        handle.seek(0)
        for block in iter(lambda: handle.read(SCAN_BLOCK), b""):
            if b"\0" in block:
                return None
            if encoding == "utf-8" and not _valid_utf8(utf8, block):
                return None
            newlines += block.count(b"\n")
            returns += block.count(b"\r")
            crlf += block.count(b"\r\n") + (previous == b"\r" and block[:1] == b"\n")
            quotes += block.count(quote)
            previous = block[-1:]
    if returns not in (0, crlf) or (crlf and crlf != newlines):
        return None  # a CR alone ends a line for Python, or line ends are mixed
    lines = newlines + (previous not in (b"", b"\n"))
    return PlainBytes(encoding, lines, quotes > 0)


def _csv_options(config: SourceConfig, encoding: str) -> str:
    spec = config.file
    return (
        f"header = false, delim = {_literal(spec.delimiter)}, quote = {_literal(spec.quote)},"
        f" escape = {_literal(spec.quote)}, comment = '', auto_detect = false,"
        f" encoding = '{encoding}'"
    )


def _read_values(
    con: duckdb.DuckDBPyConnection, path: Path, config: SourceConfig, encoding: str, width: int
) -> int:
    """The data rows, one VARCHAR per column (c0, c1, ...), in file order."""
    names = ", ".join(f"'c{i}': 'VARCHAR'" for i in range(width))
    con.execute(
        "CREATE TEMP TABLE plain_csv_value AS SELECT * FROM read_csv($path,"
        f" columns = {{{names}}}, skip = 1, strict_mode = true, null_padding = false,"
        f" {_csv_options(config, encoding)})",
        {"path": str(path)},
    )
    return _count(con, "SELECT count(*) FROM plain_csv_value")


def _doubtful_rows(
    con: duckdb.DuckDBPyConnection, config: SourceConfig, columns: list[str], header_keys: set[str]
) -> bool:
    """Whether any row might be one the careful reader treats apart: a line of empty
    values (not a row there) or the header repeated (rejected there)."""
    values = [f"c{i}" for i in range(len(columns))]
    record_id = values[columns.index(config.record_id)]
    no_letters = " AND ".join(
        f"NOT regexp_matches(coalesce({v}, ''), '[0-9A-Za-z]')" for v in values
    )
    keys = [key for key in (_squeezed(k) for k in header_keys) if key.isascii()]
    squeezed_id = f"lower(regexp_replace({record_id}, '{ASCII_SPACE}', '', 'g'))"
    return (
        _count(
            con,
            f"""
            SELECT count(*) FROM plain_csv_value
            WHERE (coalesce(c0, '') = '' AND {no_letters})
               OR strlen({record_id}) != length({record_id})
               OR list_contains($keys::VARCHAR[], {squeezed_id})
            """,
            {"keys": keys},
        )
        > 0
    )


def _quoting_agrees(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    config: SourceConfig,
    scanned: PlainBytes,
    width: int,
) -> bool:
    """Whether every line holding the quote character is what its values say.

    A line is given back by its values quoted only where they must be, all quoted, or each
    bare or quoted; the few others (a quote inside a value, say) are parsed by Python's
    csv module, as the careful reader would, and must give the same values.
    """
    spec = config.file
    con.execute(
        "CREATE TEMP TABLE plain_csv_line AS SELECT * FROM read_csv($path,"
        " columns = {'line': 'VARCHAR'}, header = false, delim = '', quote = '', escape = '',"
        f" comment = '', auto_detect = false, encoding = '{scanned.encoding}')",
        {"path": str(path)},
    )
    q, d = _literal(spec.quote), _literal(spec.delimiter)
    quoted = [f"{q} || replace(coalesce(c{i}, ''), {q}, {q} || {q}) || {q}" for i in range(width)]
    bare = [
        f"CASE WHEN c{i} IS NULL THEN ''"
        f" WHEN c{i} = '' OR contains(c{i}, {d}) OR contains(c{i}, {q}) THEN {quoted[i]}"
        f" ELSE c{i} END"
        for i in range(width)
    ]
    # each field as sent, when no quoted value holds the delimiter: bare or quoted, field
    # by field (R's write.csv quotes text and not numbers)
    each_field = " AND ".join(
        f"(field[{i + 1}] = coalesce(c{i}, '') OR field[{i + 1}] = {quoted[i]})"
        for i in range(width)
    )
    unmatched = con.execute(
        f"""
        SELECT rowid, line, {", ".join(f"c{i}" for i in range(width))}
        FROM (
            SELECT value.rowid, value.*, line.line, string_split(line.line, {d}) AS field
            FROM plain_csv_value AS value
            JOIN plain_csv_line AS line ON line.rowid = value.rowid + 1
            WHERE contains(line.line, {q})
        )
        WHERE line != concat_ws({d}, {", ".join(bare)})
          AND line != concat_ws({d}, {", ".join(quoted)})
          AND NOT (len(field) = {width} AND {each_field})
        LIMIT {MAX_PYTHON_CHECKED + 1}
        """
    ).fetchall()
    if len(unmatched) > MAX_PYTHON_CHECKED:
        return False
    for _, line, *values in unmatched:
        try:
            [parsed] = csv.reader(
                [line], delimiter=spec.delimiter, quotechar=spec.quote, strict=True
            )
        except (csv.Error, ValueError):
            return False
        if [v or None for v in parsed] != [v or None for v in values]:
            return False
    return True


def _insert(
    con: duckdb.DuckDBPyConnection, table: str, columns: list[str], row_offset: int
) -> None:
    """The rows into the raw table, numbered as the careful reader numbers them: rows from
    1 across the night's files, lines from 2 (the header is line 1)."""
    targets = ", ".join(quote_identifier(c) for c in [*columns, ROW_NUMBER, LINE_NUMBER])
    values = ", ".join(f"nullif(c{i}, '')" for i in range(len(columns)))
    con.execute(
        f"INSERT INTO {quote_identifier(table)} ({targets})"
        f" SELECT {values}, rowid + 1 + {int(row_offset)}, rowid + 2"
        " FROM plain_csv_value ORDER BY rowid"
    )


def _valid_utf8(decoder: codecs.IncrementalDecoder, block: bytes) -> bool:
    """Python's verdict, not DuckDB's: the careful reader flags or rejects a bad line."""
    try:
        decoder.decode(block)
    except UnicodeDecodeError:
        return False
    return True


def _squeezed(key: str) -> str:
    return "".join(key.split()).lower()


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _count(con: duckdb.DuckDBPyConnection, sql: str, params: dict | None = None) -> int:
    # fetchall, not fetchone: duckdb 2 keeps a result open until it is fully fetched
    # (linkage.warehouse.fetch_one, which this module below it cannot import)
    return int(con.execute(sql, params or {}).fetchall()[0][0])
