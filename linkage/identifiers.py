"""The identifier registry (schemas/identifiers.yaml): identifier types declared as data.

Which identifiers exist, how a value is checked, and what equal or different values prove
are read here and nowhere else. The canonical record's identifier columns, validation,
the model, blocking, hard constraints, `person`, explanations and exports derive from it.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from linkage.errors import ConfigError
from linkage.yaml_file import read_yaml

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
    entries = read_yaml(path).get("identifiers")
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


# --- SQL: one value expression and one issue expression per check ---------------------
# {v} is the staged value, upper-cased with spaces removed; {dob} and {sex} the record's
# checked date of birth and sex; {pattern} the bound parameter holding a regex check's pattern.
CHECK_SQL: dict[str, tuple[str, str]] = {
    "chi": (
        "valid_chi(replace({v}, '-', ''))",
        "chi_issue(replace({v}, '-', ''), {dob}, {sex})",
    ),
    "nhs_number": (
        "valid_nhs_number(replace({v}, '-', ''))",
        "nhs_number_issue(replace({v}, '-', ''))",
    ),
    "scn": (
        "CASE WHEN regexp_full_match({v}, '[0-9]{{9}}') THEN {v} END",
        "CASE WHEN NOT regexp_full_match({v}, '[0-9]{{9}}') THEN 'not 9 digits' END",
    ),
    "regex": (
        "CASE WHEN regexp_full_match({v}, {pattern}) THEN {v} END",
        "CASE WHEN NOT regexp_full_match({v}, {pattern})"
        " THEN 'does not have the registered format' END",
    ),
    "none": ("{v}", "NULL::VARCHAR"),
}


def check_sql(
    kind: IdentifierType, raw: str, dob: str, sex: str, pattern_param: str
) -> tuple[str, str]:
    """(the valid value or NULL, why a value was nulled or is doubtful or NULL) as SQL."""
    value, issue = CHECK_SQL[kind.check]
    parts = {"v": f"compact_id({raw})", "dob": dob, "sex": sex, "pattern": pattern_param}
    return value.format(**parts), issue.format(**parts)
