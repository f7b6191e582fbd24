"""Landing area -> immutable archived copy -> raw rows in DuckDB (table raw_<source>).

Each night's file is checksummed and copied read-only into the archive before it is
read, so any run can be reproduced from exactly the bytes it saw. The readers (rows.py)
return rows they cannot use as rejects with their line numbers and repairs they made as
flags, never dropping a row; the loader numbers rows across the night's files and writes
the parsed ones in columnar batches.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from linkage.config import SourceConfig, column_key
from linkage.errors import SourceFileError
from linkage.extract.header import LINE_NUMBER, ROW_NUMBER, delimiter_hint, quote_identifier
from linkage.extract.landing import compression_of
from linkage.extract.plain_csv import load_plain_csv
from linkage.extract.rows import BATCH_ROWS, FlaggedRow, RejectedRow, Row, open_rows


@dataclass
class ExtractedFile:
    """What was read for one source on one night."""

    source: str
    landing_path: Path
    archive_path: Path
    sha256: str
    size_bytes: int
    columns: list[str]
    rows_read: int = 0
    rows_parsed: int = 0
    rejected: list[RejectedRow] = field(default_factory=list)
    flagged: list[FlaggedRow] = field(default_factory=list)  # kept rows, repaired on reading
    extra_columns: list[str] = field(default_factory=list)
    unnamed_columns: list[str] = field(default_factory=list)  # empty header name: column_8
    blank_lines: int = 0  # lines with no values: not rows
    cut_short: str | None = None  # why the file looks cut off in transfer, if it does


def row_ranges(files: list[ExtractedFile]) -> list[tuple[int, int]]:
    """Each file's first and last row number: a night's rows are numbered from 1 across its
    files, in order (load_files)."""
    ranges, first_row = [], 1
    for extracted in files:
        ranges.append((first_row, first_row + extracted.rows_read - 1))
        first_row += extracted.rows_read
    return ranges


def raw_table_name(source: str) -> str:
    return f"raw_{source}"


def find_night_files(config: SourceConfig, landing_dir: Path, run_date: date) -> list[Path]:
    """The night's files for a source; a missing file is a SourceFileError."""
    pattern = config.file_pattern(run_date)
    matches = sorted(path for path in landing_dir.glob(pattern) if path.is_file())
    if not matches:
        raise SourceFileError(
            config.source, str(landing_dir / pattern), "no file matches the configured pattern"
        )
    return matches


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def archive_file(path: Path, archive_dir: Path, source: str, run_date: date) -> tuple[Path, str]:
    """Copy a landing file read-only into the archive, keyed by its checksum."""
    checksum = sha256_of(path)
    target_dir = archive_dir / run_date.isoformat() / source
    target = target_dir / f"{checksum[:12]}_{path.name}"
    if not target.exists():
        target_dir.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(target.suffix + ".partial")
        shutil.copyfile(path, partial)
        partial.chmod(0o444)
        partial.replace(target)
    return target, checksum


def extract_source(
    con: duckdb.DuckDBPyConnection,
    config: SourceConfig,
    landing_dir: Path,
    archive_dir: Path,
    run_date: date,
    fast: bool = True,
) -> list[ExtractedFile]:
    """Archive and load a source's night files into the temporary table raw_<source>.

    A plain CSV file is read by DuckDB (plain_csv.py); `fast=False` reads every file with
    the careful reader, which is how the tests show the two agree."""
    files = []
    for landing_path in find_night_files(config, landing_dir, run_date):
        archive_path, checksum = archive_file(landing_path, archive_dir, config.source, run_date)
        files.append(archived_file(config.source, archive_path, checksum, landing_path))
    return load_files(con, config, files, fast)


def archived_file(
    source: str, archive_path: Path, checksum: str, landing_path: Path | None = None
) -> ExtractedFile:
    """A file in the archive, ready to load (its landing path, when known)."""
    return ExtractedFile(
        source=source,
        landing_path=landing_path or archive_path,
        archive_path=archive_path,
        sha256=checksum,
        size_bytes=archive_path.stat().st_size,
        columns=[],
    )


def load_files(
    con: duckdb.DuckDBPyConnection,
    config: SourceConfig,
    files: list[ExtractedFile],
    fast: bool = True,
) -> list[ExtractedFile]:
    """Load archived files, rows numbered across them, into the temporary raw_<source>.

    Temporary: it is scratch for the night (a third of the cost of writing a million rows
    into the warehouse file); the archive keeps the bytes, and the review application
    loads a record's file from there to show its values as sent."""
    table = raw_table_name(config.source)
    database = con.execute("SELECT current_database()").fetchall()[0][0]
    con.execute(f"DROP TABLE IF EXISTS temp.main.{quote_identifier(table)}")
    # older warehouses kept it in the file
    con.execute(f"DROP TABLE IF EXISTS {quote_identifier(database)}.main.{quote_identifier(table)}")
    row_offset = 0
    for result in files:
        _load_file(con, table, config, result, row_offset, fast)
        row_offset += result.rows_read
    _check_parts_share_no_record(con, table, config, files)
    _drop_unfilled_unnamed_columns(con, table, files)
    return files


def _check_parts_share_no_record(
    con: duckdb.DuckDBPyConnection, table: str, config: SourceConfig, files: list[ExtractedFile]
) -> None:
    """Several files matching a source's pattern are the parts of one extract, and parts
    never share a record: a record id in two of them means one file is a stale or repeated
    copy (last night's file left beside tonight's), whose rows would bring back removed
    records and cost changed ones their update. The source is held, naming the files."""
    if len(files) < 2:
        return
    part_of = " ".join(
        f"WHEN {ROW_NUMBER} <= {last} THEN {part}"
        for part, (_, last) in enumerate(row_ranges(files))
    )
    record_id = quote_identifier(config.record_id)
    shared = con.execute(
        f"SELECT count(*) FROM (SELECT trim({record_id}) AS id FROM {quote_identifier(table)}"
        f" WHERE nullif(trim({record_id}), '') IS NOT NULL"
        f" GROUP BY id HAVING count(DISTINCT CASE {part_of} END) > 1)"
    ).fetchall()[0][0]
    if shared:
        names = ", ".join(extracted.landing_path.name for extracted in files)
        raise SourceFileError(
            config.source,
            str(files[0].landing_path.parent),
            f"{len(files)} files match the pattern ({names}) and {shared:,} record ids are in"
            " more than one of them: the parts of an extract never share a record, so one"
            " file is likely a stale or repeated copy; remove it and run the night again",
        )


def file_columns(config: SourceConfig, path: Path) -> list[str]:
    """The columns a landing file declares, read without loading its rows.

    For a check before extract (linkage profile): which required columns a file lacks.
    A JSON-lines file has no header, so its columns are the ones the config asks for.
    """
    with open_rows(path, config) as opened:
        return opened.columns


def _load_file(
    con: duckdb.DuckDBPyConnection,
    table: str,
    config: SourceConfig,
    result: ExtractedFile,
    row_offset: int,
    fast: bool,
) -> None:
    path = result.archive_path
    if result.size_bytes == 0:
        raise SourceFileError(config.source, str(path), "file is empty (0 bytes)")
    with open_rows(path, config) as opened:
        result.columns, result.unnamed_columns = opened.columns, opened.unnamed_columns
        _check_required_columns(config, result)
        _create_raw_table(con, table, result.columns)
        if fast and opened.plain_header and not result.unnamed_columns:
            loaded = load_plain_csv(
                con, table, config, path, result.columns, opened.header_keys, row_offset
            )
            if loaded is not None:
                result.rows_read = result.rows_parsed = loaded
                return
        insert = _insert_sql(table, result.columns)
        for batch in _batches(opened.rows, row_offset, result):
            con.register("extract_batch", batch)
            con.execute(insert)
            con.unregister("extract_batch")
        result.blank_lines = opened.blank_lines
    if config.file.format != "parquet":
        result.cut_short = _cut_short(result, row_offset)


def _cut_short(result: ExtractedFile, row_offset: int) -> str | None:
    """Why a text file looks cut off in transfer (a copy still being written, a full
    disk): its last row cannot be read and no line end follows it. A readable last row
    without a line end is common, and not taken for a cut."""
    last = result.rejected[-1] if result.rejected else None
    if last is None or last.row_number != row_offset + result.rows_read:
        return None
    if _ends_with_line_end(result.archive_path):
        return None
    return (
        f"the file ends mid-row (line {last.line_number}: {last.reason}, and no line end"
        " after it): it looks cut short in transfer; send it again"
    )


def _ends_with_line_end(path: Path) -> bool:
    """Whether a file's last byte (past NUL padding: UTF-16 or UTF-32) ends a line; a
    compressed file is taken as whole (a cut stream is caught while it is read)."""
    with path.open("rb") as handle:
        if compression_of(handle.read(16)) is not None:
            return True
        handle.seek(max(path.stat().st_size - 16, 0))
        tail = handle.read().rstrip(b"\x00")
    return tail.endswith((b"\n", b"\r"))


def _create_raw_table(con: duckdb.DuckDBPyConnection, table: str, columns: list[str]) -> None:
    """raw_<source> with every column as text; a night's later file may add columns."""
    con.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS {quote_identifier(table)} ("
        + "".join(f"{quote_identifier(c)} VARCHAR, " for c in columns)
        + f"{ROW_NUMBER} BIGINT, {LINE_NUMBER} BIGINT)"
    )
    for column in columns:
        con.execute(
            f"ALTER TABLE {quote_identifier(table)}"
            f" ADD COLUMN IF NOT EXISTS {quote_identifier(column)} VARCHAR"
        )


def _insert_sql(table: str, columns: list[str]) -> str:
    """Insert a batch whose columns are c0, c1, ... (any header name is safe) and whose
    empty texts are NULL."""
    targets = ", ".join(quote_identifier(c) for c in [*columns, ROW_NUMBER, LINE_NUMBER])
    values = [f"nullif(c{i}, '')" for i in range(len(columns))]
    return (
        f"INSERT INTO {quote_identifier(table)} ({targets})"
        f" SELECT {', '.join([*values, 'row_number', 'line_number'])} FROM extract_batch"
    )


def _batches(rows: Iterable[Row], row_offset: int, result: ExtractedFile) -> Iterator[pa.Table]:
    """Columnar batches of parsed rows, numbered across the night's files; rejects and
    flags are collected on the result (a flag follows the row it is about)."""
    width = len(result.columns)
    # One flat list of texts per batch, not a list per row: the rows are freed at once,
    # which keeps the garbage collector from walking 100,000 live lists again and again.
    texts: list[str | None] = []
    row_numbers: list[int] = []
    line_numbers: list[int] = []
    read = rejected = 0
    try:
        for item in rows:
            if isinstance(item, tuple):
                read += 1
                line_number, values = item
                texts.extend(values)
                row_numbers.append(row_offset + read)
                line_numbers.append(line_number)
                if len(row_numbers) >= BATCH_ROWS:
                    yield _arrow_batch(texts, width, row_numbers, line_numbers)
                    texts, row_numbers, line_numbers = [], [], []
            elif isinstance(item, RejectedRow):
                read += 1
                rejected += 1
                result.rejected.append(item.numbered(row_offset + read))
            elif isinstance(item, FlaggedRow):
                result.flagged.append(item.numbered(row_offset + read))
        if row_numbers:
            yield _arrow_batch(texts, width, row_numbers, line_numbers)
    finally:
        result.rows_read, result.rows_parsed = read, read - rejected


def _arrow_batch(
    texts: list[str | None], width: int, row_numbers: list[int], line_numbers: list[int]
) -> pa.Table:
    """Row-major texts -> one array per column (c0, c1, ...), row and line numbers."""
    rows = pa.FixedSizeListArray.from_arrays(pa.array(texts, type=pa.string()), width)
    arrays = [pc.list_element(rows, i) for i in range(width)]
    arrays += [pa.array(row_numbers, type=pa.int64()), pa.array(line_numbers, type=pa.int64())]
    names = [f"c{i}" for i in range(width)] + ["row_number", "line_number"]
    return pa.Table.from_arrays(arrays, names=names)


def _check_required_columns(config: SourceConfig, result: ExtractedFile) -> None:
    missing = [column for column in config.required_columns() if column not in result.columns]
    if missing:
        hint = delimiter_hint("".join(result.columns), config.file.delimiter)
        if not hint and len(result.columns) == 1 and config.file.delimiter != "\t":
            # tabs in a header name are read as spaces (header.match_header)
            words = {column_key(word) for word in result.columns[0].split()}
            if {column_key(column) for column in missing} <= words:
                hint = " (the header's names are apart by spaces or tabs: is it tab-delimited?)"
        raise SourceFileError(
            config.source,
            str(result.archive_path),
            f"missing required column(s) {', '.join(missing)}{hint}",
        )
    result.extra_columns = [c for c in result.columns if c not in config.required_columns()]


def _drop_unfilled_unnamed_columns(
    con: duckdb.DuckDBPyConnection, table: str, files: list[ExtractedFile]
) -> None:
    """An unnamed column no row fills (a trailing delimiter on every line) is no column."""
    unnamed = sorted({c for extracted in files for c in extracted.unnamed_columns})
    for column in unnamed:
        quoted = quote_identifier(column)
        filled = con.execute(f"SELECT count({quoted}) FROM {quote_identifier(table)}").fetchone()
        if filled is None or filled[0] > 0:
            continue
        con.execute(f"ALTER TABLE {quote_identifier(table)} DROP COLUMN {quoted}")
        for extracted in files:
            extracted.columns = [c for c in extracted.columns if c != column]
            extracted.extra_columns = [c for c in extracted.extra_columns if c != column]
            extracted.unnamed_columns = [c for c in extracted.unnamed_columns if c != column]
