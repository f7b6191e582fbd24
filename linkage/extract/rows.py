"""The rows of a landing file: the CSV and JSON-lines readers (Parquet's is parquet.py).

A reader yields, in file order, each row it parsed as (line number, one text per column),
a RejectedRow for a row it cannot use (it goes to quarantine), and, after a row it kept,
a FlaggedRow for each repair it made to it (it goes to record_issue). The loader numbers
rows as it counts them, so every row read is accepted or quarantined; lines with no values
are not rows and are only counted.

The happy path is one csv.reader step and three cheap tests per row (its width, its record
id against the header's names, any damaged line noted); everything else (trailing
delimiters, repeated headers, encodings, NULs, stray quotes) is looked at only then.
"""

from __future__ import annotations

import csv
import json
import re
from bisect import bisect_right
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import accumulate, chain
from pathlib import Path
from typing import cast

from linkage.config import SourceConfig, column_key
from linkage.errors import SourceFileError
from linkage.extract.header import Header, delimiter_hint, match_header
from linkage.extract.landing import LineDamage, TextLines, open_text_lines

BATCH_ROWS = 100_000
REJECT_EXCERPT_CHARS = 500
# A quoted field may hold line breaks (an address typed on several lines); one running on
# for more lines than this is a quote never closed, and its first line is rejected.
MAX_RECORD_LINES = 100
ENCODING_FALLBACK, NUL_BYTES = "encoding_fallback", "nul_bytes"
REPEATED_KEY = "duplicate_key"  # a JSON key given twice, with different values
REPEATED_HEADER = "repeated header row (two extracts concatenated?)"
NON_ASCII = ""  # for _first_field: the first value that is not ASCII

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

    def numbered(self, row_number: int) -> RejectedRow:
        return RejectedRow(
            self.source_file, row_number, self.line_number, self.field, self.reason, self.excerpt
        )


@dataclass(frozen=True)
class FlaggedRow:
    """A row kept after a repair worth knowing of; it goes to record_issue."""

    source_file: str
    row_number: int
    line_number: int
    field: str | None  # the column the repair shows in, when there is one
    check: str  # encoding_fallback | nul_bytes | duplicate_key
    reason: str

    def numbered(self, row_number: int) -> FlaggedRow:
        # not dataclasses.replace: a file in the wrong encoding flags every row
        return FlaggedRow(
            self.source_file, row_number, self.line_number, self.field, self.check, self.reason
        )


ParsedRow = tuple[int, Sequence[str | None]]  # (line number, values)
Row = ParsedRow | RejectedRow | FlaggedRow


@dataclass
class FileRows:
    """A landing file open for reading: its columns, then its rows (iterate once)."""

    columns: list[str]
    unnamed_columns: list[str] = field(default_factory=list)  # kept only if a row fills them
    rows: Iterator[Row] = field(default_factory=lambda: iter(()))
    blank_lines: int = 0  # lines with no values (not rows), counted as rows are read
    header_keys: set[str] = field(default_factory=set)  # the header's names, matched form
    plain_header: bool = False  # a CSV header that is the file's first line, and only it


@contextmanager
def open_rows(path: Path, config: SourceConfig) -> Iterator[FileRows]:
    """Open a landing file in its configured format; its header is read, its rows lazily."""
    if config.file.format == "parquet":
        # imported when asked for: pyarrow.parquet is slow to import, and parquet.py
        # builds on this module's rows
        from linkage.extract.parquet import parquet_file

        reader = parquet_file
    elif config.file.format == "workbook":
        from linkage.extract.workbook import workbook_file  # fastexcel: only when asked for

        reader = workbook_file
    else:
        reader = _jsonl_file if config.file.format == "jsonl" else _csv_file
    with reader(path, config) as opened:
        yield opened


def _excerpt(text: str) -> str:
    return text.rstrip("\r\n")[:REJECT_EXCERPT_CHARS]


def _first_field(columns: list[str], values: Sequence[str | None], mark: str) -> str | None:
    """The first column whose value holds `mark` (where a repair or a fault shows);
    mark "" asks for the first value that is not ASCII."""
    for column, value in zip(columns, values, strict=True):
        if value and (mark in value if mark else not value.isascii()):
            return column
    return None


def _undecodable(text: TextLines, line_number: int) -> str:
    nor = f" (nor {text.fallback})" if text.fallback not in (None, text.encoding) else ""
    return (
        f"bytes not valid {text.encoding}{nor} on line {line_number}"
        " (is the file in another encoding?)"
    )


# --- CSV --------------------------------------------------------------------------------


class _RecordTooLong(Exception):
    """A record ran on past MAX_RECORD_LINES lines (raised through csv.reader)."""


class _RecordLines:
    """Lines for csv.reader, numbered, keeping the current record's lines so that a record
    that cannot be parsed costs only its first line: the lines after it are read again."""

    def __init__(self, lines: Iterator[str]) -> None:
        self._lines = lines
        self._recent: deque[str] = deque(maxlen=2 * MAX_RECORD_LINES + 2)
        self._replay: list[tuple[int, str]] = []  # lines to read again, next one last
        self.lines_read = 0  # lines taken from the file
        self.line_number = 0  # the line last handed to the csv reader
        self.record_start = 1  # the first line of the record being read

    def __iter__(self) -> _RecordLines:
        return self

    def __next__(self) -> str:
        if self._replay:
            self.line_number, text = self._replay.pop()
        else:
            text = next(self._lines)
            self.lines_read += 1
            self.line_number = self.lines_read
            self._recent.append(text)
        if self.line_number - self.record_start >= MAX_RECORD_LINES:
            raise _RecordTooLong
        return text

    def next_record(self) -> int:
        """Start a record at the next line; returns its line number."""
        self.record_start = self.line_number + 1
        return self.record_start

    def give_up_record(self) -> str:
        """Drop the current record's first line (returned) and read the others again."""
        start, end = self.record_start, self.line_number
        oldest = self.lines_read - len(self._recent) + 1
        lines = [(n, self._recent[n - oldest]) for n in range(start, end + 1)]
        self._replay.extend(reversed(lines[1:]))
        self.line_number = start
        return lines[0][1]


@contextmanager
def _csv_file(path: Path, config: SourceConfig) -> Iterator[FileRows]:
    spec = config.file
    with open_text_lines(path, config.source, spec.encoding, spec.fallback_encoding) as text:
        lines = _RecordLines(text.lines)
        reader = csv.reader(lines, delimiter=spec.delimiter, quotechar=spec.quote, strict=True)
        opened = FileRows(columns=[])
        header = match_header(
            _csv_header(reader, lines, text, config, path, opened), config, str(path)
        )
        opened.columns, opened.unnamed_columns = header.columns, header.unnamed
        opened.header_keys = {key for key in header.keys if key}
        opened.plain_header = lines.line_number == 1
        if config.record_id in header.columns:  # else the loader stops at the missing column
            opened.rows = _CsvRows(reader, lines, text, header, config, path, opened).rows()
        yield opened


def _csv_header(
    reader: Iterator[list[str]],
    lines: _RecordLines,
    text: TextLines,
    config: SourceConfig,
    path: Path,
    opened: FileRows,
) -> list[str]:
    """The first line with values; blank lines before it are counted and skipped."""
    while True:
        start = lines.next_record()
        try:
            names = next(reader)
        except StopIteration:
            raise SourceFileError(config.source, str(path), "file has no header line") from None
        except (csv.Error, _RecordTooLong) as error:
            problem = str(error)
            if isinstance(error, _RecordTooLong):
                problem = f"a quote runs on past {MAX_RECORD_LINES} lines"
            elif problem == "unexpected end of data":
                problem = "a quote never closes"
            hint = delimiter_hint(lines.give_up_record(), config.file.delimiter)
            reason = f"header unreadable (line {start}): {problem}{hint}"
            raise SourceFileError(config.source, str(path), reason) from None
        damage = [
            text.damage.pop(n) for n in range(start, lines.line_number + 1) if n in text.damage
        ]
        if any(note.undecodable for note in damage):
            raise SourceFileError(
                config.source, str(path), f"header is not valid {text.encoding}: check the encoding"
            )
        if names and "".join(names).strip():
            return [name.replace("\0", "") for name in names]
        opened.blank_lines += 1


# An object's key per configured column (None: absent), or a path of keys into nested
# objects for a column named with dots (linkage/extract/rows.py, _json_plan).
KeyPlan = list[str | tuple[str, ...] | None]


# Ctrl-Z (SUB): the end-of-file mark DOS-era exports still append, on a line of its own
END_OF_FILE_MARK = "\x1a"


def _is_blank(text: str) -> bool:
    """A line with no values: empty, whitespace, or the DOS end-of-file mark."""
    return not text.replace(END_OF_FILE_MARK, "").strip()


class _CsvRows:
    """The data rows of a CSV file whose header has been read."""

    def __init__(
        self,
        reader: Iterator[list[str]],
        lines: _RecordLines,
        text: TextLines,
        header: Header,
        config: SourceConfig,
        path: Path,
        opened: FileRows,
    ) -> None:
        self.reader, self.lines, self.text, self.header = reader, lines, text, header
        self.opened = opened
        self.source_file = str(path)
        self.width = len(header.columns)
        self.id_position = header.columns.index(config.record_id)
        self.header_keys = opened.header_keys

    def rows(self) -> Iterator[Row]:
        reader, lines, damage = self.reader, self.lines, self.text.damage
        width, id_position, header_keys = self.width, self.id_position, self.header_keys
        while True:
            start = lines.next_record()
            try:
                values = next(reader)
            except StopIteration:
                return
            except (csv.Error, _RecordTooLong) as error:
                yield self._unreadable(start, error)
                continue
            if len(values) != width or not values[0]:
                if _is_blank("".join(values)):  # no values: a blank line, not a row
                    self._pop_damage(start)
                    self.opened.blank_lines += 1
                    continue
                fitted = self._fit(values)
                if fitted is None:
                    yield self._misfit(start, values)
                    continue
                values = fitted
            if column_key(values[id_position]) in header_keys and self._is_header(values):
                self._pop_damage(start)
                yield self._reject(start, None, REPEATED_HEADER, values)
                continue
            if damage:
                repaired = self._repair(start, values)
                if isinstance(repaired, RejectedRow):
                    yield repaired
                    continue
                values, flags = repaired
                yield start, values
                yield from flags
                continue
            yield start, values

    def _reject(
        self, start: int, column: str | None, reason: str, values: list[str]
    ) -> RejectedRow:
        return RejectedRow(self.source_file, 0, start, column, reason, _excerpt("|".join(values)))

    def _fit(self, values: list[str]) -> list[str] | None:
        """A row of another width made to fit the header when only empty fields differ:
        a trailing delimiter, or unnamed columns left off at the end."""
        if len(values) > self.width:
            return None if "".join(values[self.width :]).strip() else values[: self.width]
        if len(values) >= self.header.named_width:
            return values + [""] * (self.width - len(values))
        return None

    def _misfit(self, start: int, values: list[str]) -> RejectedRow:
        found = f"expected {self.width} fields, found {len(values)}"
        end = self.lines.line_number
        if end > start:  # a record over several lines that does not fit: a stray quote?
            return self._unreadable(start, f"{found} across lines {start}-{end} (a stray quote?)")
        self._pop_damage(start)
        short = " (truncated row?)" if len(values) < self.width else ""
        return self._reject(start, None, found + short, values)

    def _unreadable(self, start: int, problem: Exception | str) -> RejectedRow:
        """Reject the record's first line; the lines after it are read again."""
        end = self.lines.line_number
        first_line = self.lines.give_up_record()
        self._pop_damage(start)
        if isinstance(problem, _RecordTooLong):
            reason = (
                f"a quoted field opened on line {start} runs on past {MAX_RECORD_LINES} lines"
                " (a stray quote?)"
            )
        elif str(problem) == "unexpected end of data":  # csv's words for EOF inside quotes
            reason = f"a quoted field opened on line {start} is never closed (a stray quote?)"
        elif isinstance(problem, csv.Error):
            reason = f"unreadable CSV on line {start}: {problem}"
            reason += f" (read on to line {end}: a stray quote?)" if end > start else ""
        else:
            reason = str(problem)
        if end > start:
            reason += "; the lines after it are read again"
        return RejectedRow(self.source_file, 0, start, None, reason, _excerpt(first_line))

    def _is_header(self, values: list[str]) -> bool:
        """At least half the row's non-empty values are names of the header's columns."""
        filled = [key for key in map(column_key, values) if key]
        return 2 * sum(key in self.header_keys for key in filled) >= len(filled)

    def _pop_damage(self, start: int) -> list[tuple[int, LineDamage]]:
        """The damage noted on the current record's lines, taken off the file's notes."""
        damage = self.text.damage
        end = self.lines.line_number
        return [(n, damage.pop(n)) for n in range(start, end + 1) if n in damage]

    def _repair(
        self, start: int, values: list[str]
    ) -> RejectedRow | tuple[list[str], list[FlaggedRow]]:
        """The row as its damaged lines allow: a line no encoding reads rejects it; NULs
        removed or a line read in the fallback encoding keep it, flagged."""
        notes = self._pop_damage(start)
        columns, flags = self.header.columns, []
        undecodable = [n for n, note in notes if note.undecodable]
        if undecodable:
            column = _first_field(columns, values, "\ufffd")
            return self._reject(start, column, _undecodable(self.text, undecodable[0]), values)
        if any(note.nul for _, note in notes):
            removed = sum(value.count("\0") for value in values)
            column = _first_field(columns, values, "\0")
            values = [value.replace("\0", "") for value in values]
            reason = f"{removed} NUL byte(s) removed"
            flags.append(FlaggedRow(self.source_file, 0, start, column, NUL_BYTES, reason))
        read_as = next((note.read_as for _, note in notes if note.read_as), None)
        if read_as is not None:
            column = _first_field(columns, values, NON_ASCII)
            reason = f"not valid {self.text.encoding}; read as {read_as}"
            flags.append(FlaggedRow(self.source_file, 0, start, column, ENCODING_FALLBACK, reason))
        return values, flags


# --- JSON lines ---------------------------------------------------------------------------


@contextmanager
def _jsonl_file(path: Path, config: SourceConfig) -> Iterator[FileRows]:
    """A JSON-lines file has no header: its columns are the ones the config asks for,
    found in each object by their matched names."""
    spec = config.file
    with open_text_lines(path, config.source, spec.encoding, spec.fallback_encoding) as text:
        opened = FileRows(columns=config.required_columns())
        opened.rows = _jsonl_rows(text, opened, str(path))
        yield opened


def _jsonl_rows(text: TextLines, opened: FileRows, source_file: str) -> Iterator[Row]:
    columns, damage = opened.columns, text.damage
    plans: dict[tuple[str, ...], KeyPlan | str] = {}  # an object's keys -> plan
    for line_number, line in enumerate(text.lines, start=1):
        notes = damage.pop(line_number, None) if damage else None
        if _is_blank(line):
            opened.blank_lines += 1
            continue
        if line.lstrip().startswith("[") and line_number - opened.blank_lines == 1:
            lines = chain([line], text.lines)  # a JSON array, not lines: read it as one
            yield from _json_array_rows(lines, line_number, text, opened, source_file, plans)
            return
        if notes is not None and notes.nul:
            line = line.replace("\0", "")  # JSON text cannot hold them raw
        try:
            if notes is not None and notes.undecodable:
                raise _UnusableLine(_undecodable(text, line_number))
            record = _json_object(line)
            values = _json_values(record, columns, plans)
        except _UnusableLine as unusable:
            reason, column = unusable.args
            yield RejectedRow(source_file, 0, line_number, column, reason, _excerpt(line))
            continue
        damaged = [] if notes is None else [notes]
        yield from _json_row(record, values, damaged, text, columns, source_file, line_number)


def _json_array_rows(
    lines: Iterable[str],
    first_line: int,
    text: TextLines,
    opened: FileRows,
    source_file: str,
    plans: dict[tuple[str, ...], KeyPlan | str],
) -> Iterator[Row]:
    """The objects of a file that is one JSON array (an export's `[{...}, {...}]`, often
    one object per line or pretty-printed), each a row numbered by the line it starts on.
    An element that is not an object, or text that is no JSON, costs only its own lines:
    reading goes on at the next line that starts an object. A closing bracket before the
    end is passed over, so what follows it is still read: nothing after it is lost."""
    kept = [line.replace("\0", "") for line in lines]  # NULs are flagged from the damage notes
    starts = list(accumulate(map(len, kept), initial=0))  # where each line begins in `whole`
    whole = "".join(kept)
    position = whole.index("[") + 1
    while True:
        position = _next_element(whole, position)
        if position >= len(whole):
            return
        line_number = first_line + bisect_right(starts, position) - 1
        try:
            record, end = _JSON_DECODER.raw_decode(whole, position)
        except (ValueError, RecursionError) as error:
            reason = f"array element is not JSON: {getattr(error, 'msg', 'nested too deeply')}"
            excerpt = _excerpt(whole[position : position + REJECT_EXCERPT_CHARS])
            yield RejectedRow(source_file, 0, line_number, None, reason, excerpt)
            position = _next_object_line(whole, position)
            continue
        last_line = first_line + bisect_right(starts, end - 1) - 1
        notes = [text.damage.pop(n) for n in range(line_number, last_line + 1) if n in text.damage]
        try:
            if not isinstance(record, dict):
                kind = JSON_KINDS.get(type(record), "null")
                raise _UnusableLine(f"array element is not a JSON object but a JSON {kind}")
            if any(note.undecodable for note in notes):
                raise _UnusableLine(_undecodable(text, line_number))
            values = _json_values(record, opened.columns, plans)
        except _UnusableLine as unusable:
            reason, column = unusable.args
            excerpt = _excerpt(whole[position:end])
            yield RejectedRow(source_file, 0, line_number, column, reason, excerpt)
        else:
            columns = opened.columns
            yield from _json_row(record, values, notes, text, columns, source_file, line_number)
        position = end


def _json_row(
    record: dict[str, object],
    values: list[str | None],
    notes: list[LineDamage],
    text: TextLines,
    columns: list[str],
    source_file: str,
    line_number: int,
) -> Iterator[Row]:
    """An object read as a row, then its flags: keys repeated, and its lines' damage."""
    yield line_number, values
    if isinstance(record, _RepeatedKeys):
        yield from _repeated_key_flags(record, columns, source_file, line_number)
    for note in notes:
        yield from _json_flags(note, text, columns, values, source_file, line_number)


def _next_element(whole: str, position: int) -> int:
    """Past the whitespace, commas and closing brackets between array elements."""
    while position < len(whole) and (whole[position].isspace() or whole[position] in ",]"):
        position += 1
    return position


_OBJECT_LINE = re.compile(r"\n[ \t]*\{")


def _next_object_line(whole: str, position: int) -> int:
    """Where the next line that starts an object begins (the end if none does). Searched
    from `position` in place: a slice would copy the rest of the file at every bad element."""
    found = _OBJECT_LINE.search(whole, position)
    return len(whole) if found is None else found.end() - 1


class _UnusableLine(Exception):
    """Why a JSON line is rejected, and the configured column it shows in (or None)."""

    def __init__(self, reason: str, column: str | None = None) -> None:
        super().__init__(reason, column)


class _RepeatedKeys(dict[str, object]):
    """A JSON object with a key given twice: the last value is kept, as JSON parsers do,
    and the keys given again with another value are noted for the row's flags."""

    def __init__(self, pairs: list[tuple[str, object]]) -> None:
        super().__init__(pairs)
        self.repeated = {key for key, value in pairs if self[key] != value}


def _object_of_pairs(pairs: list[tuple[str, object]]) -> dict[str, object]:
    record = dict(pairs)
    return record if len(record) == len(pairs) else _RepeatedKeys(pairs)


# Seeing the key-value pairs costs about 0.5 µs a line (json.loads alone loses them).
_JSON_DECODER = json.JSONDecoder(object_pairs_hook=_object_of_pairs)
JSON_KINDS = {list: "array", str: "string", int: "number", float: "number", bool: "boolean"}


def _json_object(line: str) -> dict[str, object]:
    """A line's JSON object; any other line raises _UnusableLine saying what it is."""
    try:
        record = _JSON_DECODER.decode(line)
    except ValueError as error:
        raise _UnusableLine(f"line is not a JSON object: {error}") from None
    except RecursionError:  # json's C parser recurses per [ or {: the depth is the stack's
        raise _UnusableLine("line is not a JSON object: nested too deeply") from None
    if not isinstance(record, dict):
        kind = JSON_KINDS.get(type(record), "null")
        raise _UnusableLine(f"line is not a JSON object but a JSON {kind}")
    return record


def _json_values(
    record: dict[str, object],
    columns: list[str],
    plans: dict[tuple[str, ...], KeyPlan | str],
) -> list[str | None]:
    """One text per configured column from a JSON object; raises _UnusableLine when the
    object's keys are ambiguous or a configured column holds an object or array."""
    keys = tuple(record)
    plan = plans.get(keys)
    if plan is None:
        if len(plans) > 1000:  # objects with ever new keys: do not hoard plans
            plans.clear()
        plan = plans[keys] = _json_plan(keys, columns)
    if isinstance(plan, str):
        raise _UnusableLine(plan)
    if isinstance(plan, _PathPlan):
        return _nested_values(record, plan, columns)
    flat = cast(list[str | None], plan)  # keys only: the fast path
    try:
        return [_json_text(record[key]) if key is not None else None for key in flat]
    except _NestedValue:
        raise _nested_value(record, flat, columns) from None


def _json_plan(keys: tuple[str, ...], columns: list[str]) -> KeyPlan | str:
    """Which key of an object holds each configured column, or why that is ambiguous. A
    column named with dots that no key matches whole (`person.name.given`) is a path into
    nested objects: its first part matched here, the rest in each object."""
    by_key: dict[str, list[str]] = {}
    for key in keys:
        by_key.setdefault(column_key(key), []).append(key)
    plan: KeyPlan = []
    for column in columns:
        found = by_key.get(column_key(column), [])
        path: tuple[str, ...] = ()
        if not found and "." in column:
            first, *rest = column.split(".")
            found, path = by_key.get(column_key(first), []), tuple(rest)
        if len(found) > 1:
            return f"keys {found[0]!r} and {found[1]!r} both match the configured column {column!r}"
        plan.append(None if not found else (found[0], *path) if path else found[0])
    return _PathPlan(plan) if any(isinstance(key, tuple) for key in plan) else plan


class _PathPlan(list[str | tuple[str, ...] | None]):
    """A plan where some column is a path into nested objects: told apart once per plan,
    not per row (a scan of the plan costs ~0.8 s a million rows)."""


def _nested_values(
    record: dict[str, object], plan: KeyPlan, columns: list[str]
) -> list[str | None]:
    """_json_values' texts where some columns are paths into nested objects (a part that is
    missing, or not an object, gives no value; a key matches whatever its case)."""
    texts: list[str | None] = []
    for column, key in zip(columns, plan, strict=True):
        if key is None:
            texts.append(None)
            continue
        first, *rest = (key,) if isinstance(key, str) else key
        value = record[first]
        for part in rest:
            value = _key_of(value, part) if isinstance(value, dict) else None
        if isinstance(value, dict | list):
            raise _not_one_value(".".join([first, *rest]), value, column)
        texts.append(_json_text(value))
    return texts


def _key_of(values: dict[str, object], part: str) -> object:
    if part in values:
        return values[part]
    wanted = column_key(part)
    return next((value for key, value in values.items() if column_key(key) == wanted), None)


class _NestedValue(Exception):
    """A configured column's value is a JSON object or array."""


def _json_text(value: object) -> str | None:
    """A value as text: a number or boolean as JSON writes it. An object or array is no
    single value (its text would be read as names: {"given": "Lexi"} as GIVEN LEXI)."""
    if isinstance(value, str):
        return value or None
    if isinstance(value, dict | list):
        raise _NestedValue
    return None if value is None else json.dumps(value)


def _nested_value(
    record: dict[str, object], plan: list[str | None], columns: list[str]
) -> _UnusableLine:
    column, key = next(
        (column, key)
        for column, key in zip(columns, plan, strict=True)
        if key is not None and isinstance(record[key], dict | list)
    )
    return _not_one_value(key, record[key], column)


def _not_one_value(where: str, value: object, column: str) -> _UnusableLine:
    kind = "object" if isinstance(value, dict) else "array"
    return _UnusableLine(f"{where!r} holds a JSON {kind}, not a single value", column)


def _repeated_key_flags(
    record: _RepeatedKeys, columns: list[str], source_file: str, line_number: int
) -> Iterator[FlaggedRow]:
    repeated = {column_key(key): key for key in record.repeated}
    for column in columns:
        key = repeated.get(column_key(column))
        if key is not None:
            reason = f"key {key!r} is repeated with another value; the last one is used"
            yield FlaggedRow(source_file, 0, line_number, column, REPEATED_KEY, reason)


def _json_flags(
    notes: LineDamage,
    text: TextLines,
    columns: list[str],
    values: list[str | None],
    source_file: str,
    line_number: int,
) -> Iterator[FlaggedRow]:
    if notes.nul:
        yield FlaggedRow(source_file, 0, line_number, None, NUL_BYTES, "NUL byte(s) removed")
    if notes.read_as:
        column = _first_field(columns, values, NON_ASCII)
        reason = f"not valid {text.encoding}; read as {notes.read_as}"
        yield FlaggedRow(source_file, 0, line_number, column, ENCODING_FALLBACK, reason)
