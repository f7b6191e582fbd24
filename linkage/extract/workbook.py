"""A workbook landing file (xlsx, xlsm, xlsb, xls, ods) -> rows of text, read by fastexcel.

Every cell is read as the text the workbook shows for it (fastexcel's string dtype, so no
column's type is guessed from its first rows and no later value is lost to a guess): a
number as its digits (an id typed as 1 is "1", not "1.0"), a date cell as its ISO date,
which a date field then reads in its first configured format, as a typed Parquet date is
(a source moving from CSV to a workbook keeps its config). A cell of text is as typed.

People put a title, a date or blank rows above the header: the header is the first of the
sheet's first HEADER_SEARCH_ROWS rows that holds every configured column (else the first
row that is not blank, whose missing columns then hold the source, as a CSV's would). A
row's line number is its row in the sheet, as the sender sees it; blank rows are not rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import fastexcel
import pyarrow as pa
import pyarrow.compute as pc

from linkage.config import SourceConfig, column_key
from linkage.errors import SourceFileError
from linkage.extract.header import match_header
from linkage.extract.landing import describe_not_text
from linkage.extract.parquet import date_formats
from linkage.extract.rows import FileRows, Row

# a zip (xlsx, xlsm, xlsb, ods) or an OLE compound file (xls)
WORKBOOK_MAGIC = (b"PK\x03\x04", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1")
HEADER_SEARCH_ROWS = 20  # rows that are not blank, searched for the header
LEADING_ROWS = 200  # rows read for it: blank rows above a header are few
# a date cell as fastexcel writes it, with the time of day a datetime cell adds
ISO_DATE_CELL = r"^\d{4}-\d{2}-\d{2}( \d{2}:\d{2}:\d{2}(\.\d+)?)?$"


@contextmanager
def workbook_file(path: Path, config: SourceConfig) -> Iterator[FileRows]:
    """Open a workbook landing file: its configured sheet's header, then its rows."""
    cells = _sheet_cells(path, config)
    leading = [values.slice(0, LEADING_ROWS).to_pylist() for values in cells]
    names = [[_cell(value) for value in row] for row in zip(*leading, strict=True)]
    start = _header_row(names, config, str(path))
    header = match_header([name or "" for name in names[start]], config, str(path))
    opened = FileRows(header.columns, header.unnamed)
    opened.rows = _workbook_rows(cells, start, header.columns, config, opened)
    yield opened


def _sheet_cells(path: Path, config: SourceConfig) -> list[pa.Array]:
    """The sheet's columns as text, header rows included (none taken as the header yet)."""
    with path.open("rb") as handle:
        head = handle.read(8)
    if not head.startswith(WORKBOOK_MAGIC):
        kind = describe_not_text(head) or "text (CSV or JSON lines?)"
        reason = f"not a workbook: it is {kind} (check file.format)"
        raise SourceFileError(config.source, str(path), reason)
    sheet = 0 if config.file.sheet is None else config.file.sheet
    try:
        reader = fastexcel.read_excel(str(path))
    except (fastexcel.FastExcelError, OSError) as error:
        reason = f"not a readable workbook: {error}"
        raise SourceFileError(config.source, str(path), reason) from None
    if isinstance(sheet, str) and sheet not in reader.sheet_names:
        reason = f"no sheet {sheet!r}; the workbook has {', '.join(map(repr, reader.sheet_names))}"
        raise SourceFileError(config.source, str(path), reason)
    if isinstance(sheet, int) and sheet >= len(reader.sheet_names):
        reason = f"no sheet {sheet} (counted from 0); it has {len(reader.sheet_names)}"
        raise SourceFileError(config.source, str(path), reason)
    try:
        loaded = reader.load_sheet(sheet, header_row=None, dtypes="string", eager=True)
    except fastexcel.FastExcelError as error:
        reason = f"sheet {sheet!r} is unreadable: {error}"
        raise SourceFileError(config.source, str(path), reason) from None
    return list(loaded.columns)


def _cell(text: str | None) -> str | None:
    return text if text is None or text.strip() else None


def _header_row(rows: list[list[str | None]], config: SourceConfig, path: str) -> int:
    """The first of the first rows that names every configured column, else the first
    row that is not blank (its missing columns hold the source, naming them)."""
    wanted = {column_key(column) for column in config.required_columns()}
    filled = [i for i, row in enumerate(rows) if any(row)]
    if not filled:
        reason = f"no header: the sheet's first {LEADING_ROWS} rows are blank"
        raise SourceFileError(config.source, path, reason)
    for i in filled[:HEADER_SEARCH_ROWS]:
        if wanted <= {column_key(name) for name in rows[i] if name}:
            return i
    return filled[0]


def _workbook_rows(
    cells: list[pa.Array],
    header_row: int,
    columns: list[str],
    config: SourceConfig,
    opened: FileRows,
) -> Iterator[Row]:
    formats = date_formats(config)
    texts = []
    for column, values in zip(columns, cells, strict=True):
        values = values.slice(header_row + 1)
        if column in formats:
            values = _dates_in_format(values, formats[column])
        texts.append(values.to_pylist())
    for offset, row in enumerate(zip(*texts, strict=True)):
        if not any(value is not None and value.strip() for value in row):
            opened.blank_lines += 1
            continue
        yield header_row + offset + 2, list(row)  # the sheet's row number, from 1


def _dates_in_format(values: pa.Array, date_format: str) -> pa.Array:
    """Date cells (ISO text) written in the date field's first format; other text as is."""
    is_date = pc.fill_null(pc.match_substring_regex(values, ISO_DATE_CELL), False)
    days = pc.strptime(pc.utf8_slice_codeunits(values, 0, 10), "%Y-%m-%d", "s", error_is_null=True)
    return pc.if_else(is_date, pc.strftime(days, format=date_format), values)
