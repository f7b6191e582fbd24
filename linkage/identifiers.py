"""The identifier registry (schemas/identifiers.yaml): identifier types declared as data.

Which identifiers exist, how a value is checked, and what equal or different values prove
are read here and nowhere else. The canonical record's identifier columns, validation,
the model, blocking, hard constraints, `person`, explanations and exports derive from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from linkage.errors import ConfigError
from linkage.yaml_file import read_yaml

DEFAULT_REGISTRY_FILE = Path(__file__).resolve().parent.parent / "schemas" / "identifiers.yaml"

CheckKind = Literal["chi", "nhs_number", "scn", "regex", "none"]
# Checks that fix a value's length: their values are that many digits.
IMPLIED_LENGTH: dict[str, int] = {"chi": 10, "nhs_number": 10, "scn": 9}


class IdentifierType(BaseModel):
    """One kind of identifier: how its values are checked and what they prove."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    label: str
    check: CheckKind = "none"
    pattern: str | None = None  # check: regex
    # regex and none types whose values are this many digits: leading zeros a spreadsheet
    # dropped are put back (chi, nhs_number and scn imply theirs)
    length: int | None = Field(default=None, ge=2, le=64)
    distinct_values_differ: bool = False  # hard constraint
    equal_values_match: bool = False  # compared, blocked on and trained on by the model

    @model_validator(mode="after")
    def _pattern_for_regex(self) -> IdentifierType:
        if (self.check == "regex") != (self.pattern is not None):
            raise ValueError("give `pattern` exactly when check is regex")
        return self

    @model_validator(mode="after")
    def _length_for_regex_or_none(self) -> IdentifierType:
        if self.length is not None and self.check in IMPLIED_LENGTH:
            raise ValueError(
                f"check {self.check} values are {IMPLIED_LENGTH[self.check]} digits;"
                " give `length` only for regex and none types"
            )
        return self

    @property
    def fixed_length(self) -> int | None:
        """How many digits every value has, if the type says: its leading zeros can be restored."""
        return self.length or IMPLIED_LENGTH.get(self.check)


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


# --- SQL: the kept value, why a value is nulled or doubtful, whether zeros were restored ----
# {v} is the value to check; {dob} and {sex} the record's checked date of birth and sex;
# {pattern} the bound parameter holding a regex check's pattern.
CHECK_SQL: dict[str, tuple[str, str]] = {
    "chi": ("valid_chi({v})", "chi_issue({v}, {dob}, {sex})"),
    "nhs_number": ("valid_nhs_number({v})", "nhs_number_issue({v})"),
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
# What a check ignores in a value as sent (after upper-casing and removing spaces):
# CHI and NHS numbers are often written with dashes.
GIVEN_SQL: dict[str, str] = {
    "chi": "replace({v}, '-', '')",
    "nhs_number": "replace({v}, '-', '')",
}


@dataclass(frozen=True)
class IdentifierSql:
    """One type's SQL, in two steps so each value is checked once.

    `given` and `restored` are computed first, over the staged row, into two columns;
    `value`, `issue` and `is_restored` are then read over those two columns.
    """

    given: str  # the value as sent: upper case, no spaces, in the check's form
    restored: str  # the value with its dropped leading zeros put back when that passes, or NULL
    value: str  # the value kept (the restored one if any), or NULL
    issue: str  # why the value was nulled or is doubtful, or NULL
    is_restored: str  # true when the value kept had its leading zeros put back


def check_sql(
    kind: IdentifierType,
    raw: str,
    params: dict[str, str],
    columns: tuple[str, str],
) -> IdentifierSql:
    """The SQL of kind's check over the staged value `raw`.

    params names the bound parameters: `dob`, `sex` (expressions), `pattern` and `length`
    (placeholders bound to the type's pattern and fixed length); columns are the names the
    caller gives the `given` and `restored` steps' results. A value of digits only, not
    starting with 0 and shorter than the type's fixed length, is what a spreadsheet leaves
    of a number with leading zeros: padded with zeros, it is kept if it then passes.
    """
    value_sql, issue_sql = CHECK_SQL[kind.check]
    given_column, restored_column = columns

    def checked(template: str, value: str) -> str:
        return template.format(
            v=value, dob=params["dob"], sex=params["sex"], pattern=params["pattern"]
        )

    given = GIVEN_SQL.get(kind.check, "{v}").format(v=f"compact_id({raw})")
    if kind.fixed_length is None:
        return IdentifierSql(
            given=given,
            restored="NULL::VARCHAR",
            value=checked(value_sql, given_column),
            issue=checked(issue_sql, given_column),
            is_restored="false",
        )
    padded = f"with_leading_zeros({given_column}, {params['length']})"
    candidate = f"coalesce({restored_column}, {given_column})"
    return IdentifierSql(
        given=f"integer_digits({given})",  # 1201011234.0, as a spreadsheet writes a number
        restored=checked(value_sql, padded),
        value=checked(value_sql, candidate),
        issue=checked(issue_sql, candidate),
        is_restored=f"{restored_column} IS NOT NULL",
    )
