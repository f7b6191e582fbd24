"""The canonical person record, declared once in schemas/canonical_record.yaml."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

SCHEMAS_DIR = Path(__file__).resolve().parent.parent / "schemas"
CANONICAL_SCHEMA_FILE = SCHEMAS_DIR / "canonical_record.yaml"


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    description: str
    pii: bool = False
    identifier: bool = False


@cache
def canonical_columns() -> tuple[Column, ...]:
    """The canonical record's columns, in order."""
    spec = yaml.safe_load(CANONICAL_SCHEMA_FILE.read_text(encoding="utf-8"))
    return tuple(Column(**column) for column in spec["columns"])


def canonical_column_names() -> list[str]:
    return [column.name for column in canonical_columns()]


def identifier_columns() -> list[str]:
    """Columns holding agency identifiers (CHI, SCN, police id, ...)."""
    return [column.name for column in canonical_columns() if column.identifier]


def canonical_table_ddl(table: str) -> str:
    """CREATE TABLE statement for a table in the canonical shape."""
    columns = ",\n  ".join(f'"{c.name}" {c.type}' for c in canonical_columns())
    return f'CREATE TABLE IF NOT EXISTS "{table}" (\n  {columns}\n)'
