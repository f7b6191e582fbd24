"""A file's header as people write it -> the column names of the raw table.

Headers typed by hand or exported by another tool differ from the source config in ways
that do not change their meaning: case, stray or doubled spaces, a byte-order mark, an
empty name after a trailing delimiter, a name used twice. A file column whose name matches
a configured column (`column_key`) takes the configured name, so everything downstream
(stage.py quotes config names) reads it; every other column is kept as an extra column
under a name unique in the raw table, since DuckDB names ignore case.
"""

from __future__ import annotations

from dataclasses import dataclass

from linkage.config import SourceConfig, column_key
from linkage.errors import SourceFileError

# The raw table's own columns: a file column of the same name is renamed.
ROW_NUMBER, LINE_NUMBER = "_row_number", "_line_number"


@dataclass(frozen=True)
class Header:
    """A file's columns as the raw table names them, in file order."""

    columns: list[str]
    keys: list[str]  # each column's name as written, matched form ('' when unnamed)
    unnamed: list[str]  # columns with an empty name, named by position (column_8)

    @property
    def named_width(self) -> int:
        """Columns up to the last named one: a row may leave off the unnamed ones after it."""
        return max((i + 1 for i, key in enumerate(self.keys) if key), default=0)


def match_header(names: list[str], config: SourceConfig, path: str) -> Header:
    """Name a file's columns: configured names where they match, unique names elsewhere.

    Two file columns matching one configured column is a SourceFileError naming both.
    """
    keys = [column_key(name) for name in names]
    columns: list[str | None] = [None] * len(names)
    claimed: dict[str, int] = {}  # configured column -> its position in the file
    configured = {column_key(column): column for column in config.required_columns()}
    for position, key in enumerate(keys):
        target = configured.get(key)
        if target is None:
            continue
        if target in claimed:
            first = claimed[target]
            raise SourceFileError(
                config.source,
                path,
                f"columns {names[first]!r} (column {first + 1}) and {names[position]!r}"
                f" (column {position + 1}) both match the configured column {target!r}:"
                " rename or remove one",
            )
        claimed[target] = position
        columns[position] = target
    taken = {column_key(name) for name in (*claimed, ROW_NUMBER, LINE_NUMBER)}
    unnamed = []
    for position, name in enumerate(names):
        if columns[position] is not None:
            continue
        written = " ".join(name.replace("\ufeff", "").split())
        column = _unique(written or f"column_{position + 1}", taken)
        taken.add(column_key(column))
        columns[position] = column
        if not written:
            unnamed.append(column)
    return Header([c for c in columns if c is not None], keys, unnamed)


def quote_identifier(name: str) -> str:
    """Quote a column name from a config or file header for use in SQL."""
    return '"' + name.replace('"', '""') + '"'


def _unique(name: str, taken: set[str]) -> str:
    """`name`, or `name_2`, `name_3`... : the first whose matched form is not taken."""
    candidate, suffix = name, 1
    while column_key(candidate) in taken:
        suffix += 1
        candidate = f"{name}_{suffix}"
    return candidate


def delimiter_hint(header_text: str, delimiter: str) -> str:
    """A hint for a header the configured delimiter does not split: the other common
    delimiter it holds, if any ('' when none)."""
    others = [d for d in ",|;\t" if d != delimiter and d in header_text]
    if not others:
        return ""
    return (
        f" (the header contains {others[0]!r}: is the file delimited by it"
        f" rather than the configured {delimiter!r}?)"
    )
