"""The identifier registry (schemas/identifiers.yaml): identifier types declared as data.

Which identifiers exist, how a value is checked, and what equal or different values prove
are read here and nowhere else. The canonical record's identifier columns, validation,
the model, blocking, hard constraints, `person`, explanations and exports derive from it.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from linkage.errors import ConfigError

DEFAULT_REGISTRY_FILE = Path(__file__).resolve().parent.parent / "schemas" / "identifiers.yaml"

CheckKind = Literal["chi", "nhs_number", "scn", "regex", "none"]


class IdentifierType(BaseModel):
    """One kind of identifier: how its values are checked and what they prove."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    label: str
    check: CheckKind = "none"
    pattern: str | None = None  # check: regex
    distinct_values_differ: bool = False  # hard constraint
    equal_values_match: bool = False  # compared, blocked on and trained on by the model

    @model_validator(mode="after")
    def _pattern_for_regex(self) -> IdentifierType:
        if (self.check == "regex") != (self.pattern is not None):
            raise ValueError("give `pattern` exactly when check is regex")
        return self


class IdentifierRegistry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    types: tuple[IdentifierType, ...]
    path: Path | None = None

    @property
    def names(self) -> list[str]:
        return [kind.name for kind in self.types]

    def get(self, name: str) -> IdentifierType:
        return next(kind for kind in self.types if kind.name == name)

    def hard_constraints(self) -> list[str]:
        """Types where two different valid values prove two different people."""
        return [kind.name for kind in self.types if kind.distinct_values_differ]

    def matching(self) -> list[str]:
        """Types whose equal values are near-proof of one person (the model compares them)."""
        return [kind.name for kind in self.types if kind.equal_values_match]


def load_registry(path: Path = DEFAULT_REGISTRY_FILE) -> IdentifierRegistry:
    """The registry in a file, checked, with errors naming the file and the entry."""
    return _load_registry(Path(path).resolve())


def default_registry() -> IdentifierRegistry:
    return load_registry(DEFAULT_REGISTRY_FILE)


@cache
def _load_registry(path: Path) -> IdentifierRegistry:
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: identifier registry not found") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    entries = loaded.get("identifiers") if isinstance(loaded, dict) else None
    if not isinstance(entries, dict):
        raise ConfigError(f"{path}: expected `identifiers:` mapping type names to entries")
    types = []
    for name, entry in entries.items():
        try:
            types.append(IdentifierType(name=name, **(entry or {})))
        except (ValidationError, TypeError) as error:
            raise ConfigError(f"{path}: identifiers.{name}: {_describe(error)}") from None
    return IdentifierRegistry(types=tuple(types), path=path)


def _describe(error: Exception) -> str:
    if isinstance(error, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in item['loc']) or 'entry'}: {item['msg']}"
            for item in error.errors()
        )
    return str(error)


# --- SQL: one value expression and one issue expression per type ----------------------
# `raw` is SQL for the staged value; `dob` and `sex` for the record's checked date of birth
# and sex. Patterns are bound as parameters by the caller (see standardise.runner).


def value_sql(kind: IdentifierType, raw: str, pattern_param: str) -> str:
    """The valid value (upper case, no spaces), or NULL."""
    compact = f"compact_id({raw})"
    if kind.check == "chi":
        return f"valid_chi(replace({compact}, '-', ''))"
    if kind.check == "nhs_number":
        return f"valid_nhs_number(replace({compact}, '-', ''))"
    if kind.check == "scn":
        return f"CASE WHEN regexp_full_match({compact}, '[0-9]{{9}}') THEN {compact} END"
    if kind.check == "regex":
        return f"CASE WHEN regexp_full_match({compact}, {pattern_param}) THEN {compact} END"
    return compact


def issue_sql(kind: IdentifierType, raw: str, dob: str, sex: str, pattern_param: str) -> str:
    """Why a value was nulled (or, for CHI, is doubtful); NULL when fine or absent."""
    compact = f"compact_id({raw})"
    if kind.check == "chi":
        return f"chi_issue(replace({compact}, '-', ''), {dob}, {sex})"
    if kind.check == "nhs_number":
        return f"nhs_number_issue(replace({compact}, '-', ''))"
    if kind.check == "scn":
        return f"CASE WHEN NOT regexp_full_match({compact}, '[0-9]{{9}}') THEN 'not 9 digits' END"
    if kind.check == "regex":
        return (
            f"CASE WHEN NOT regexp_full_match({compact}, {pattern_param})"
            " THEN 'does not have the registered format' END"
        )
    return "NULL::VARCHAR"
