"""Landing area -> immutable archived copy -> raw rows in DuckDB.

Each night's file is checksummed and copied read-only into the archive before it is
read, so any run can be reproduced from exactly the bytes it saw. Rows the parser
cannot use (bad encoding, wrong field count, unterminated quotes) are returned as
rejects with their line number, never dropped.
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path

import duckdb
import pyarrow as pa

from linkage.config import SourceConfig
from linkage.errors import SourceFileError

BATCH_ROWS = 100_000
REJECT_EXCERPT_CHARS = 500
ROW_NUMBER, LINE_NUMBER = "_row_number", "_line_number"

csv.field_size_limit(64 * 1024 * 1024)


@dataclass(frozen=True)
class RejectedRow:
    """A row the parser could not turn into fields; it goes to quarantine."""

    source_file: str
    row_number: int
    line_number: int
    field: str | None
    reason: str
    excerpt: str


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
    extra_columns: list[str] = field(default_factory=list)


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
) -> list[ExtractedFile]:
    """Archive and load a source's night files into table raw_<source>."""
    table = raw_table_name(config.source)
    con.execute(f'DROP TABLE IF EXISTS "{table}"')
    extracted = []
    row_offset = 0
    for landing_path in find_night_files(config, landing_dir, run_date):
        archive_path, checksum = archive_file(landing_path, archive_dir, config.source, run_date)
        result = ExtractedFile(
            source=config.source,
            landing_path=landing_path,
            archive_path=archive_path,
            sha256=checksum,
            size_bytes=archive_path.stat().st_size,
            columns=[],
        )
        _load_file(con, table, config, result, row_offset)
        row_offset += result.rows_read
        extracted.append(result)
    return extracted


def file_columns(config: SourceConfig, path: Path) -> list[str]:
    """The columns a landing file declares, read without loading its rows.

    For a check before extract (linkage profile): which required columns a file lacks.
    A JSON-lines file has no header, so its columns are the ones the config asks for.
    """
    result = ExtractedFile(config.source, path, path, "", path.stat().st_size, [])
    reader = {"csv": _read_csv, "jsonl": _read_jsonl, "parquet": _read_parquet}[config.file.format]
    reader(path, config, result)  # reads the header only: the rows come lazily
    return result.columns


def _load_file(
    con: duckdb.DuckDBPyConnection,
    table: str,
    config: SourceConfig,
    result: ExtractedFile,
    row_offset: int,
) -> None:
    path = result.archive_path
    if result.size_bytes == 0:
        raise SourceFileError(config.source, str(path), "file is empty (0 bytes)")
    reader = {"csv": _read_csv, "jsonl": _read_jsonl, "parquet": _read_parquet}[config.file.format]
    rows = reader(path, config, result)
    _check_required_columns(config, result)
    columns = result.columns + [ROW_NUMBER, LINE_NUMBER]
    con.execute(
        f'CREATE TABLE IF NOT EXISTS "{table}" ('
        + ", ".join(f"{quote_identifier(c)} VARCHAR" for c in result.columns)
        + f", {ROW_NUMBER} BIGINT, {LINE_NUMBER} BIGINT)"
    )
    for batch in _batches(rows, row_offset, result):
        arrays = [
            pa.array(values, type=_arrow_type(name))
            for name, values in zip(columns, batch, strict=True)
        ]
        arrow_batch = pa.table(dict(zip(columns, arrays, strict=True)))
        con.register("extract_batch", arrow_batch)
        column_list = ", ".join(quote_identifier(c) for c in columns)
        con.execute(
            f'INSERT INTO "{table}" ({column_list}) SELECT {column_list} FROM extract_batch'
        )
        con.unregister("extract_batch")


def _arrow_type(name: str) -> pa.DataType:
    return pa.int64() if name in (ROW_NUMBER, LINE_NUMBER) else pa.string()


def quote_identifier(name: str) -> str:
    """Quote a column name from a config or file header for use in SQL."""
    return '"' + name.replace('"', '""') + '"'


ParsedRow = tuple[int, list[str | None]]  # (line number, values)


def _batches(
    rows: Iterable[ParsedRow | RejectedRow], row_offset: int, result: ExtractedFile
) -> Iterator[list[list]]:
    """Columnar batches of parsed rows; rejects are collected on the result."""
    width = len(result.columns)
    batch: list[list] = [[] for _ in range(width + 2)]
    for item in rows:
        result.rows_read += 1
        if isinstance(item, RejectedRow):
            # number rows across all of the night's files, like parsed rows
            result.rejected.append(replace(item, row_number=row_offset + result.rows_read))
            continue
        line_number, values = item
        for index in range(width):
            batch[index].append(values[index])
        batch[width].append(row_offset + result.rows_read)
        batch[width + 1].append(line_number)
        result.rows_parsed += 1
        if len(batch[0]) >= BATCH_ROWS:
            yield batch
            batch = [[] for _ in range(width + 2)]
    if batch[width]:
        yield batch


def _check_required_columns(config: SourceConfig, result: ExtractedFile) -> None:
    missing = [column for column in config.required_columns() if column not in result.columns]
    if missing:
        hint = ""
        header = "".join(result.columns)
        other_delimiters = [d for d in ",|;\t" if d != config.file.delimiter and d in header]
        if other_delimiters:
            hint = (
                f" (the header contains {other_delimiters[0]!r}: is the file delimited by it"
                f" rather than the configured {config.file.delimiter!r}?)"
            )
        raise SourceFileError(
            config.source,
            str(result.archive_path),
            f"missing required column(s) {', '.join(missing)}{hint}",
        )
    if len(set(result.columns)) != len(result.columns):
        raise SourceFileError(config.source, str(result.archive_path), "duplicate column names")
    result.extra_columns = [c for c in result.columns if c not in config.required_columns()]


def _decoded_lines(path: Path, encoding: str, bad_lines: set[int]) -> Iterator[str]:
    """Decode line by line so one bad byte costs one row, not the file."""
    with path.open("rb") as handle:
        for line_number, raw_line in enumerate(handle, start=1):
            try:
                yield raw_line.decode(encoding)
            except UnicodeDecodeError:
                bad_lines.add(line_number)
                yield raw_line.decode(encoding, errors="replace")


def _read_csv(
    path: Path, config: SourceConfig, result: ExtractedFile
) -> Iterator[ParsedRow | RejectedRow]:
    spec = config.file
    bad_lines: set[int] = set()
    lines = _decoded_lines(path, spec.encoding, bad_lines)
    reader = csv.reader(lines, delimiter=spec.delimiter, quotechar=spec.quote, strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise SourceFileError(config.source, str(path), "file has no header line") from None
    except csv.Error as error:
        raise SourceFileError(config.source, str(path), f"header unreadable: {error}") from None
    result.columns = [name.strip().lstrip("\ufeff") for name in header]
    if bad_lines:
        raise SourceFileError(
            config.source, str(path), f"header is not valid {spec.encoding}: check the encoding"
        )
    return _csv_rows(reader, path, result, bad_lines, spec.encoding)


def _csv_rows(
    reader: Iterator[list[str]],
    path: Path,
    result: ExtractedFile,
    bad_lines: set[int],
    encoding: str,
) -> Iterator[ParsedRow | RejectedRow]:
    width = len(result.columns)
    row_number = 0
    line_number = reader.line_num + 1  # type: ignore[attr-defined]
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            row_number += 1
            yield RejectedRow(
                str(path),
                row_number,
                line_number,
                None,
                f"unreadable CSV from line {line_number}: {error}",
                "",
            )
            return
        row_number += 1
        end_line = reader.line_num  # type: ignore[attr-defined]
        bad = [n for n in range(line_number, end_line + 1) if n in bad_lines]
        if bad:
            field_name = next(
                (c for c, v in zip(result.columns, values, strict=False) if "\ufffd" in v), None
            )
            yield RejectedRow(
                str(path),
                row_number,
                line_number,
                field_name,
                f"bytes not valid {encoding} on line {bad[0]} (is the file in another encoding?)",
                _excerpt(values),
            )
        elif len(values) != width:
            yield RejectedRow(
                str(path),
                row_number,
                line_number,
                None,
                f"expected {width} fields, found {len(values)}"
                + (" (truncated row?)" if len(values) < width else ""),
                _excerpt(values),
            )
        else:
            yield line_number, [value if value != "" else None for value in values]
        line_number = end_line + 1


def _excerpt(values: list[str]) -> str:
    return "|".join(values)[:REJECT_EXCERPT_CHARS]


def _read_jsonl(
    path: Path, config: SourceConfig, result: ExtractedFile
) -> Iterator[ParsedRow | RejectedRow]:
    result.columns = config.required_columns()

    def rows() -> Iterator[ParsedRow | RejectedRow]:
        bad_lines: set[int] = set()
        for line_number, line in enumerate(
            _decoded_lines(path, config.file.encoding, bad_lines), start=1
        ):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                if not isinstance(record, dict):
                    raise ValueError("not a JSON object")
            except ValueError as error:
                yield RejectedRow(
                    str(path),
                    line_number,
                    line_number,
                    None,
                    f"line is not a JSON object: {error}",
                    line[:REJECT_EXCERPT_CHARS],
                )
                continue
            yield line_number, [_json_text(record.get(c)) for c in result.columns]

    return rows()


def _json_text(value: object) -> str | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else json.dumps(value)


def _read_parquet(
    path: Path, config: SourceConfig, result: ExtractedFile
) -> Iterator[ParsedRow | RejectedRow]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except (OSError, pa.ArrowInvalid) as error:
        reason = f"not a readable Parquet file: {error}"
        raise SourceFileError(config.source, str(path), reason) from None
    result.columns = parquet.schema_arrow.names

    def rows() -> Iterator[ParsedRow | RejectedRow]:
        for batch in parquet.iter_batches(batch_size=BATCH_ROWS):
            columns = [column.cast(pa.string()).to_pylist() for column in batch.columns]
            for values in zip(*columns, strict=True):
                yield 0, [v if v != "" else None for v in values]

    return rows()
