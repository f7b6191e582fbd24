"""The canonical person record: schemas/canonical_record.yaml plus the registry's identifiers."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

from linkage.errors import ConfigError
from linkage.identifiers import IdentifierRegistry, default_registry

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
def base_columns() -> tuple[Column, ...]:
    """The columns every canonical record has, whatever identifiers the project registers."""
    spec = yaml.safe_load(CANONICAL_SCHEMA_FILE.read_text(encoding="utf-8"))
    return tuple(Column(**column) for column in spec["columns"])


@cache
def _columns(registry: IdentifierRegistry) -> tuple[Column, ...]:
    base = base_columns()
    clashes = sorted({column.name for column in base} & set(registry.names))
    if clashes:
        raise ConfigError(
            f"{registry.path}: identifier type(s) {clashes} clash with canonical record columns"
        )
    identifiers = tuple(
        Column(kind.name, "VARCHAR", kind.label, pii=True, identifier=True)
        for kind in registry.types
    )
    return base + identifiers


def canonical_columns(registry: IdentifierRegistry | None = None) -> tuple[Column, ...]:
    """The canonical record's columns, in order: the base columns, then one per identifier."""
    return _columns(registry or default_registry())


def canonical_column_names(registry: IdentifierRegistry | None = None) -> list[str]:
    return [column.name for column in canonical_columns(registry)]


def identifier_columns(registry: IdentifierRegistry | None = None) -> list[str]:
    """Columns holding agency identifiers (CHI, SCN, police id, ...)."""
    return [column.name for column in canonical_columns(registry) if column.identifier]


def canonical_table_ddl(table: str, registry: IdentifierRegistry | None = None) -> str:
    """CREATE TABLE statement for a table in the canonical shape."""
    columns = ",\n  ".join(f'"{c.name}" {c.type}' for c in canonical_columns(registry))
    return f'CREATE TABLE IF NOT EXISTS "{table}" (\n  {columns}\n)'
