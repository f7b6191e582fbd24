"""schemas/validation.yaml, read and checked in one place: the row checks and the text bound.

Kept apart from linkage/validate.py (which builds great-expectations suites from these)
so that standardisation can read the bound on text values without importing
great-expectations: it cuts overlong values before its rules read them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from linkage.errors import ConfigError
from linkage.schema import SCHEMAS_DIR
from linkage.yaml_file import read_yaml

VALIDATION_RULES_FILE = SCHEMAS_DIR / "validation.yaml"
_FIELD_NAME = re.compile(r"[a-z][a-z0-9_]*")


@dataclass(frozen=True)
class Check:
    name: str
    expectation: str
    column: str
    severity: str
    reason: str
    value_set: list[str] | list[bool] | None = None
    field: str | None = None  # the field a failure is recorded against; default from column

    @property
    def failing_field(self) -> str:
        return self.field or self.column.removesuffix("_issue")


@dataclass(frozen=True)
class ValidationRules:
    """What validation.yaml says: the bound on text values and the listed row checks."""

    max_text_length: int
    bounded_fields: dict[str, str]  # field -> words for its reason (record id, town, ...)
    checks: tuple[Check, ...]

    @property
    def too_long(self) -> str:
        """How a reason says a value was over the bound."""
        return f"longer than {self.max_text_length} characters"


def too_long_column(field: str) -> str:
    """The standardised column saying a field's value as sent was over max_text_length."""
    return f"{field}_too_long"


def validation_rules(path: Path = VALIDATION_RULES_FILE) -> ValidationRules:
    """The rules in validation.yaml, checked; errors name the file and the entry."""
    return _validation_rules(Path(path).resolve())


@cache
def _validation_rules(path: Path) -> ValidationRules:
    spec = read_yaml(path)
    bound = spec.get("max_text_length")
    if not isinstance(bound, int) or isinstance(bound, bool) or bound < 1:
        raise ConfigError(f"{path}: max_text_length must be a whole number of characters >= 1")
    fields = spec.get("bounded_fields")
    if not isinstance(fields, dict) or not all(
        isinstance(name, str) and _FIELD_NAME.fullmatch(name) and isinstance(words, str)
        for name, words in fields.items()
    ):
        raise ConfigError(f"{path}: bounded_fields must map field names to words for reasons")
    checks = []
    for position, entry in enumerate(spec.get("checks") or []):
        try:
            checks.append(Check(**entry))
        except TypeError as error:
            raise ConfigError(f"{path}: checks[{position}]: {error}") from None
    return ValidationRules(bound, dict(fields), tuple(checks))
