"""Validate each source's night with great-expectations, suites built from schema files.

File-level checks (required columns, row count against the last good night) decide
whether a source is used at all tonight. Row-level checks come from
schemas/validation.yaml: a `quarantine` failure removes the row (with its reason), a
`flag` failure keeps it and records the issue.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")  # no network calls from a nightly job

import great_expectations as gx  # noqa: E402
from great_expectations.data_context.types.base import ProgressBarsConfig  # noqa: E402

from linkage.extract import LINE_NUMBER, ROW_NUMBER, quote_identifier  # noqa: E402
from linkage.identifiers import IdentifierRegistry, default_registry  # noqa: E402
from linkage.validation_rules import Check, too_long_column, validation_rules  # noqa: E402

INDEX_COLUMN = "source_row_number"
DUPLICATE_ROW_CHECK = "duplicate_row"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RowFailure:
    """One row failing one check; values are not kept, only where and why."""

    source_row_number: int
    check: str
    severity: str
    field: str | None
    reason: str


@dataclass
class SourceValidation:
    source: str
    file_checks_passed: bool
    file_failures: list[str] = field(default_factory=list)
    row_failures: list[RowFailure] = field(default_factory=list)
    results: list[dict[str, Any]] = field(default_factory=list)  # per expectation, no values


def row_checks(registry: IdentifierRegistry | None = None) -> tuple[Check, ...]:
    """The checks of validation.yaml, its bounded fields' length checks, then the
    identifier types' flag checks.

    Per bounded field, `<field>_length`: its value as sent is over max_text_length, the row
    is quarantined. Per identifier type, `<type>_length`: the value as sent is over
    max_text_length and was nulled. Per checked type, `<type>_valid`: a value nulled for
    failing its check, or (CHI) kept but disagreeing with date of birth or sex. Per
    fixed-length type, `<type>_restored`: a value kept after the leading zeros a spreadsheet
    dropped were put back; it is counted apart from invalid values, since the record keeps
    its identifier.
    """
    registry = registry or default_registry()
    rules = validation_rules()
    bound = rules.too_long
    length_checks = tuple(
        _length_check(field, f"{words} {bound}", "quarantine")
        for field, words in rules.bounded_fields.items()
    )
    identifier_checks: list[Check] = []
    for kind in registry.types:
        identifier_checks.append(
            _length_check(kind.name, f"{kind.label} {bound}; not used", "flag")
        )
        if kind.check != "none":
            identifier_checks.append(
                Check(
                    name=f"{kind.name}_valid",
                    expectation="expect_column_values_to_be_null",
                    column=f"{kind.name}_issue",
                    severity="flag",
                    reason=kind.label,
                )
            )
        if kind.fixed_length is not None:
            identifier_checks.append(
                Check(
                    name=f"{kind.name}_restored",
                    expectation="expect_column_values_to_be_in_set",
                    column=f"{kind.name}_restored",
                    severity="flag",
                    reason=f"{kind.label}: leading zero(s) restored",
                    value_set=[False],
                    field=kind.name,
                )
            )
    return rules.checks + length_checks + tuple(identifier_checks)


def _length_check(field: str, reason: str, severity: str) -> Check:
    """A value as sent over max_text_length (marked by standardisation, which cut it)."""
    return Check(
        name=f"{field}_length",
        expectation="expect_column_values_to_be_in_set",
        column=too_long_column(field),
        severity=severity,
        reason=reason,
        value_set=[False],
        field=field,
    )


def _expectation(check: Check, max_length: int) -> gx.expectations.Expectation:
    kwargs: dict[str, Any] = {"column": check.column, "meta": {"check": check.name}}
    if check.expectation == "expect_column_value_lengths_to_be_between":
        kwargs["max_value"] = max_length
    if check.value_set is not None:
        kwargs["value_set"] = check.value_set
    expectation_class = _expectation_classes()[check.expectation]
    return expectation_class(**kwargs)


@cache
def _expectation_classes() -> dict[str, type]:
    return {
        "expect_column_values_to_not_be_null": gx.expectations.ExpectColumnValuesToNotBeNull,
        "expect_column_values_to_be_null": gx.expectations.ExpectColumnValuesToBeNull,
        "expect_column_values_to_be_unique": gx.expectations.ExpectColumnValuesToBeUnique,
        "expect_column_values_to_be_in_set": gx.expectations.ExpectColumnValuesToBeInSet,
        "expect_column_value_lengths_to_be_between": (
            gx.expectations.ExpectColumnValueLengthsToBeBetween
        ),
    }


def row_suite(
    source: str, min_rows: int | None, registry: IdentifierRegistry | None = None
) -> gx.ExpectationSuite:
    """The suite for one source: row checks from the schema plus the row-count check."""
    max_length = validation_rules().max_text_length
    expectations = [_expectation(check, max_length) for check in row_checks(registry)]
    if min_rows is not None:
        expectations.append(
            gx.expectations.ExpectTableRowCountToBeBetween(
                min_value=min_rows, meta={"check": "row_count_vs_last_good_night"}
            )
        )
    # given whole: add_expectation compares each new one with every one before it (50 ms a
    # suite, 0.2 s a night of four sources)
    return gx.ExpectationSuite(name=f"{source}_rows", expectations=expectations)


class Validator:
    """One ephemeral great-expectations context per run."""

    def __init__(self) -> None:
        logging.getLogger("great_expectations").setLevel(logging.WARNING)
        self.context = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False)
        self.datasource = self.context.data_sources.add_pandas("nightly")

    def _validate(self, name: str, frame: pd.DataFrame, suite: gx.ExpectationSuite) -> Any:
        asset = self.datasource.add_dataframe_asset(name)
        batch = asset.add_batch_definition_whole_dataframe("whole").get_batch(
            batch_parameters={"dataframe": frame}
        )
        result_format = {
            "result_format": "COMPLETE",
            "unexpected_index_column_names": [INDEX_COLUMN],
            "return_unexpected_index_query": False,
        }
        return batch.validate(self.context.suites.add(suite), result_format=result_format)

    def validate_file(self, source: str, columns: list[str], required: list[str]) -> list[str]:
        """File-level column check; returns failure messages (empty when fine)."""
        columns_present = gx.expectations.ExpectTableColumnsToMatchSet(
            column_set=required, exact_match=False
        )
        suite = gx.ExpectationSuite(name=f"{source}_file", expectations=[columns_present])
        result = self._validate(f"{source}_file", pd.DataFrame(columns=columns), suite)
        if result.success:
            return []
        missing = sorted(set(required) - set(columns))
        return [f"missing required column(s): {', '.join(missing)}"]

    def validate_rows(
        self,
        con: duckdb.DuckDBPyConnection,
        source: str,
        table: str,
        min_rows: int | None,
        registry: IdentifierRegistry | None = None,
        duplicates: list[RowFailure] | None = None,
        carried: int = 0,
    ) -> SourceValidation:
        """Run the source's suite over its rows; `duplicates` (exact repeats of earlier
        rows, see exact_duplicate_rows) are quarantined as such and not checked again,
        so the first copy of a repeated row stays. `table` may leave out rows carried
        unchanged from the last good night (`carried` of them): they count for the row
        count, and passed the row checks then."""
        registry = registry or default_registry()
        duplicates = duplicates or []
        frame = _row_frame(con, source, table, registry)
        repeated = [failure.source_row_number for failure in duplicates]
        frame = frame[~frame[INDEX_COLUMN].isin(repeated)]
        checked_min = None if min_rows is None else max(min_rows - carried, 0)
        result = self._validate(f"{source}_rows", frame, row_suite(source, checked_min, registry))
        checks = {check.name: check for check in row_checks(registry)}
        outcome = SourceValidation(source=source, file_checks_passed=True)
        outcome.row_failures.extend(duplicates)
        for expectation_result in result.results:
            check_name = expectation_result.expectation_config.meta["check"]
            outcome.results.append(_summary(check_name, expectation_result))
            if expectation_result.success:
                continue
            if check_name == "row_count_vs_last_good_night":
                outcome.file_checks_passed = False
                outcome.file_failures.append(
                    f"{len(frame) + carried} rows, implausibly fewer than the last good night"
                    f" (at least {min_rows} expected)"
                )
                continue
            outcome.row_failures.extend(
                _row_failures(checks[check_name], expectation_result.result)
            )
        return outcome


def exact_duplicate_rows(con: duckdb.DuckDBPyConnection, raw_table: str) -> list[RowFailure]:
    """Rows identical in every column to an earlier row of the night's raw rows.

    A file sent twice, or a resend appended, repeats rows: the first copy is the record,
    the later ones are quarantined as repeats (not as duplicate record ids, which would
    quarantine every copy and lose the record).
    """
    columns = [
        quote_identifier(name)
        for (name, *_rest) in con.execute(f"DESCRIBE {raw_table}").fetchall()
        if name not in (ROW_NUMBER, LINE_NUMBER)
    ]
    # Rows sharing a hash of their values are the only suspects; a window over all
    # columns of those few then says which are exact repeats (a hash may collide).
    rows = con.execute(
        f"""
        WITH hashed AS (
            SELECT {ROW_NUMBER}, hash({", ".join(columns)}) AS row_hash FROM {raw_table}
        ),
        suspect AS (
            SELECT {ROW_NUMBER} FROM hashed
            WHERE row_hash IN (SELECT row_hash FROM hashed GROUP BY 1 HAVING count(*) > 1)
        )
        SELECT {ROW_NUMBER}, first_row FROM (
            SELECT {ROW_NUMBER},
                   min({ROW_NUMBER}) OVER (PARTITION BY {", ".join(columns)}) AS first_row
            FROM {raw_table} SEMI JOIN suspect USING ({ROW_NUMBER})
        )
        WHERE {ROW_NUMBER} > first_row
        ORDER BY {ROW_NUMBER}
        """
    ).fetchall()
    return [
        RowFailure(
            source_row_number=int(row),
            check=DUPLICATE_ROW_CHECK,
            severity="quarantine",
            field=None,
            reason=f"exact repeat of row {first} (the file repeats rows?)",
        )
        for row, first in rows
    ]


def _row_frame(
    con: duckdb.DuckDBPyConnection, source: str, table: str, registry: IdentifierRegistry
) -> pd.DataFrame:
    """Just the columns the checks read, for one source."""
    columns = sorted({check.column for check in row_checks(registry)} - {"linkable_evidence"})
    select = ", ".join(quote_identifier(column) for column in columns)
    evidence = ", ".join(
        ["surname", "CAST(date_of_birth AS VARCHAR)"]
        + [quote_identifier(name) for name in registry.names]
    )
    return con.execute(
        f"SELECT {INDEX_COLUMN}, {select},"
        f" coalesce({evidence}) IS NOT NULL OR NULL AS linkable_evidence"
        f" FROM {table} WHERE source = $source ORDER BY {INDEX_COLUMN}",
        {"source": source},
    ).df()


def _row_failures(check: Check, result: dict[str, Any]) -> list[RowFailure]:
    failures = []
    for entry in result.get("unexpected_index_list") or []:
        value = entry.get(check.column)
        # issue columns carry the reason itself; other columns carry personal data
        detail = f": {value}" if check.column.endswith("_issue") and isinstance(value, str) else ""
        failures.append(
            RowFailure(
                source_row_number=int(entry[INDEX_COLUMN]),
                check=check.name,
                severity=check.severity,
                field=check.failing_field,
                reason=f"{check.reason}{detail}",
            )
        )
    return failures


def _summary(check_name: str, expectation_result: Any) -> dict[str, Any]:
    result = expectation_result.result or {}
    return {
        "check": check_name,
        "expectation": expectation_result.expectation_config.type,
        "column": expectation_result.expectation_config.kwargs.get("column"),
        "success": bool(expectation_result.success),
        "element_count": result.get("element_count"),
        "unexpected_count": result.get("unexpected_count"),
        "unexpected_percent": result.get("unexpected_percent"),
        "observed_value": result.get("observed_value"),
    }


def write_html_report(path: Path, run_id: str, validations: list[SourceValidation]) -> Path:
    """A readable, self-contained HTML page of the night's validation results."""
    from html import escape

    sections = []
    for validation in validations:
        rows = "".join(
            "<tr class='{cls}'><td>{check}</td><td>{column}</td><td>{ok}</td>"
            "<td>{count}</td><td>{unexpected}</td></tr>".format(
                cls="ok" if item["success"] else "fail",
                check=escape(str(item["check"])),
                column=escape(str(item["column"] or "")),
                ok="pass" if item["success"] else "FAIL",
                count=item["element_count"]
                if item["element_count"] is not None
                else escape(str(item["observed_value"])),
                unexpected=item["unexpected_count"] or 0,
            )
            for item in validation.results
        )
        file_notes = "".join(f"<li>{escape(message)}</li>" for message in validation.file_failures)
        status = "used" if validation.file_checks_passed else "SKIPPED (last good records kept)"
        sections.append(
            f"<h2>{escape(validation.source)}: {status}</h2><ul>{file_notes}</ul>"
            "<table><tr><th>check</th><th>column</th><th>result</th><th>rows</th>"
            f"<th>failing rows</th></tr>{rows}</table>"
        )
    html = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>Validation {escape(run_id)}</title><style>"
        "body{font-family:sans-serif;margin:2em} table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px} tr.fail{background:#fdd}"
        f"</style></head><body><h1>Validation report, run {escape(run_id)}</h1>"
        + "".join(sections)
        + "</body></html>"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html, encoding="utf-8")
    return path
