"""A Parquet landing file -> rows of text, as the raw table holds every format.

Parquet columns are typed. A single-valued column is cast to the text a CSV export would
hold: a number as its digits, a date or timestamp in its date field's first configured
format (so the field reads it whatever style the config expects of text), a timestamp with
a time zone at the sender's local time (so a date of birth sent as a summer midnight stays
on its day, not on the day before in UTC). A nested column (list,
struct, map) has no such text: one the config maps holds the source, since every row
would be misread alike; one it does not map is carried as JSON text, so an extra column
never holds the source and a row's values as sent stay whole. A binary column is text in
the source's encoding when the config maps it: a value not valid in it is read in the
fallback encoding and its row flagged, or, undecodable, its row alone is quarantined, as
a CSV line would be (an unmapped one, a photo say, is carried as above).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from linkage.config import EXCEL_SERIAL, SourceConfig, column_key
from linkage.errors import SourceFileError
from linkage.extract.header import match_header
from linkage.extract.landing import compression_of, describe_not_text
from linkage.extract.rows import (
    BATCH_ROWS,
    ENCODING_FALLBACK,
    REJECT_EXCERPT_CHARS,
    FileRows,
    FlaggedRow,
    RejectedRow,
    Row,
)

CAST_ERRORS = (pa.ArrowInvalid, pa.ArrowNotImplementedError)


@contextmanager
def parquet_file(path: Path, config: SourceConfig) -> Iterator[FileRows]:
    """Open a Parquet landing file: its columns from its schema, its rows lazily.

    Not Parquet, unreadable, or a configured column that is nested: a SourceFileError."""
    _check_parquet_magic(path, config)
    try:
        parquet = pq.ParquetFile(path)
    except (OSError, pa.ArrowInvalid) as error:
        reason = f"not a readable Parquet file: {error}"
        raise SourceFileError(config.source, str(path), reason) from None
    with parquet:
        schema = parquet.schema_arrow
        flat = _reaches_into_structs(schema, config)
        if flat:
            schema = _flattened(schema.empty_table()).schema
        header = match_header(schema.names, config, str(path))
        configured = set(config.required_columns())
        _check_configured_types(schema, header.columns, configured, config.source, str(path))
        opened = FileRows(header.columns, header.unnamed)
        opened.rows = _parquet_rows(parquet, header.columns, configured, config, str(path), flat)
        yield opened


def _reaches_into_structs(schema: pa.Schema, config: SourceConfig) -> bool:
    """Whether a configured column names a field inside a struct column (`person.name`):
    then struct columns are flattened into one column per field, named with dots."""
    names = {column_key(name) for name in schema.names}
    return any(
        "." in column and column_key(column) not in names for column in config.required_columns()
    ) and any(pa.types.is_struct(field.type) for field in schema)


def _flattened(table: pa.Table) -> pa.Table:
    """A table's struct columns, at every depth, as one column per field (`a.b.c`)."""
    while any(pa.types.is_struct(field.type) for field in table.schema):
        table = table.flatten()
    return table


def date_formats(config: SourceConfig) -> dict[str, str]:
    """Column -> the text format its date field reads first: a typed date or timestamp in
    it is written that way, so the field reads it whatever style the config expects of
    text (a source moving from CSV to Parquet keeps its config)."""
    fields = [config.fields.date_of_birth]
    if config.concern is not None:
        fields += [config.concern.opened, config.concern.closed]
    formats = {}
    for spec in fields:
        given = [f for f in (spec.formats or ["%Y-%m-%d"]) if f != EXCEL_SERIAL] if spec else []
        if spec is not None and spec.column is not None and given:
            formats[spec.column] = given[0]
    return formats


def _check_parquet_magic(path: Path, config: SourceConfig) -> None:
    with path.open("rb") as handle:
        head = handle.read(4096)
    if not head.startswith(b"PAR1"):
        compression = compression_of(head)
        kind = f"{compression[0]}-compressed" if compression else describe_not_text(head)
        reason = f"not a Parquet file: it is {kind or 'text (CSV or JSON lines?)'}"
        raise SourceFileError(config.source, str(path), reason + " (check file.format)")


def _check_configured_types(
    schema: pa.Schema, columns: list[str], configured: set[str], source: str, path: str
) -> None:
    for column, arrow_field in zip(columns, schema, strict=True):
        if column in configured and pa.types.is_nested(arrow_field.type):
            reason = (
                f"column {arrow_field.name!r} holds {arrow_field.type} values, not one value"
                " per row: map a single-valued column, or ask the sender to flatten it"
            )
            raise SourceFileError(source, path, reason)


def _parquet_rows(
    parquet: pq.ParquetFile,
    columns: list[str],
    configured: set[str],
    config: SourceConfig,
    path: str,
    flat: bool = False,
) -> Iterator[Row]:
    formats = date_formats(config)
    encodings = (config.file.encoding, config.file.fallback_encoding)
    for batch in parquet.iter_batches(batch_size=BATCH_ROWS):
        arrays = _flattened(pa.Table.from_batches([batch])).columns if flat else batch.columns
        texts, damaged = [], []
        for column, values in zip(columns, arrays, strict=True):
            if column in configured and _is_binary(values.type):  # an extra one: JSON below
                decoded, read_as = _decoded_bytes(values, *encodings)
                texts.append(decoded)
                damaged += [(column, read_as)] if read_as else []
                continue
            try:
                texts.append(_column_texts(values, formats.get(column)))
            except CAST_ERRORS as error:
                if column in configured:
                    reason = f"column {column!r} ({values.type}) cannot be read as text: {error}"
                    raise SourceFileError(config.source, path, reason) from None
                texts.append(_json_texts(values))  # an extra column: carried, never in the way
        rows = zip(*texts, strict=True)
        if not damaged:
            yield from ((0, list(row)) for row in rows)
        else:
            for index, row in enumerate(rows):
                yield from _checked_row(index, list(row), damaged, path, encodings)


def _is_binary(arrow_type: pa.DataType) -> bool:
    return (
        pa.types.is_binary(arrow_type)
        or pa.types.is_large_binary(arrow_type)
        or pa.types.is_fixed_size_binary(arrow_type)
    )


def _decoded_bytes(
    values: pa.Array, encoding: str, fallback: str | None
) -> tuple[list[str | None], dict[int, str | None]]:
    """A binary column's values as text, and row index -> the fallback encoding a value
    was read in (None: in neither, replacement characters in its place)."""
    if encoding == "utf-8":  # Arrow checks a whole batch at once; values one by one only if bad
        try:
            return values.cast(pa.string()).to_pylist(), {}
        except CAST_ERRORS:
            pass
    texts: list[str | None] = []
    read_as: dict[int, str | None] = {}
    for index, raw in enumerate(values.to_pylist()):
        if raw is None:
            texts.append(None)
            continue
        try:
            texts.append(raw.decode(encoding))
            continue
        except UnicodeDecodeError:
            pass
        read_as[index] = None
        if fallback is not None and fallback != encoding:
            try:
                texts.append(raw.decode(fallback))
                read_as[index] = fallback
                continue
            except UnicodeDecodeError:
                pass
        texts.append(raw.decode(encoding, errors="replace"))
    return texts, read_as


def _checked_row(
    index: int,
    row: list[str | None],
    damaged: list[tuple[str, dict[int, str | None]]],
    path: str,
    encodings: tuple[str, str | None],
) -> Iterator[Row]:
    """A row of a batch with a binary value not valid in the source's encoding: rejected
    if a value was undecodable, else kept and flagged for each value read in the fallback."""
    notes = [(column, read_as[index]) for column, read_as in damaged if index in read_as]
    encoding, fallback = encodings
    undecodable = [column for column, read_in in notes if read_in is None]
    if undecodable:
        nor = f" (nor {fallback})" if fallback not in (None, encoding) else ""
        reason = f"bytes not valid {encoding}{nor} in column {undecodable[0]!r}"
        excerpt = repr(row)[:REJECT_EXCERPT_CHARS]
        yield RejectedRow(path, 0, 0, undecodable[0], reason, excerpt)
        return
    yield 0, row
    for column, read_in in notes:
        reason = f"not valid {encoding}; read as {read_in}"
        yield FlaggedRow(path, 0, 0, column, ENCODING_FALLBACK, reason)


def _column_texts(values: pa.Array, date_format: str | None = None) -> list[str | None]:
    """A single-valued column as text (a date or timestamp in `date_format`, when given);
    a nested one raises ArrowNotImplementedError."""
    if pa.types.is_timestamp(values.type) and values.type.tz is not None:
        values = pc.local_timestamp(values)  # the sender's wall-clock time, not UTC
    if date_format is not None and pa.types.is_date(values.type):
        values = values.cast(pa.timestamp("s"))
    if date_format is not None and pa.types.is_timestamp(values.type):
        return pc.strftime(values, format=date_format).to_pylist()
    return values.cast(pa.string()).to_pylist()


def _json_texts(values: pa.Array) -> list[str | None]:
    """Any column as JSON text (dates and bytes as Python writes them)."""
    return [
        None if value is None else json.dumps(value, ensure_ascii=False, default=str)
        for value in values.to_pylist()
    ]
