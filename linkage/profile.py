"""`linkage profile`: what one source's landing file would give the pipeline, before its
first night.

The night's own extract, stage and standardise run on the one source in an in-memory
DuckDB, with the archive copy in a temporary directory that is removed afterwards, so the
warehouse and the project's archive are never touched. Each mapped field is then measured
with set-based SQL over the raw and standardised rows (no Python loop over rows).
Examples are personal data: they go to the console only and are never logged.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import asdict, dataclass, field, replace
from datetime import date
from pathlib import Path

import duckdb

from linkage.config import ConcernFields, FieldSpec, PersonFields, ProjectConfig, SourceConfig
from linkage.errors import ConfigError, SourceFileError
from linkage.extract import (
    ROW_NUMBER,
    ExtractedFile,
    extract_source,
    file_columns,
    find_night_files,
    quote_identifier,
    raw_table_name,
)
from linkage.link.model import ModelShape, level_gammas, model_columns
from linkage.link.model import model_settings as build_model_settings
from linkage.link.train import filled_input_columns
from linkage.stage import STAGED_TABLE, create_staged_table, stage_source
from linkage.standardise import standardise
from linkage.validation_rules import too_long_column, validation_rules
from linkage.warehouse import table_columns

log = logging.getLogger(__name__)
STANDARDISED = "standardised_record"
PROFILE_VALUES = "profile_value"
# Model columns standardisation never fills from tonight's file: they are carried forward.
# A column mapped wrongly (names as sex codes) fails for as many reasons as it has values.
MAX_REASONS_SHOWN = 10
CARRIED_FORWARD = {"previous_postcodes": "carried from earlier nights once published"}
RESTORED = "leading zero(s) restored"
NAME_CONTROL_ISSUE = "name_control_issue"  # "forename U+2028; surname U+200B"
NAME_FIELDS = ("forename", "middle_names", "preferred_forename", "surname", "other_surnames")


@dataclass(frozen=True)
class FieldCheck:
    """How a mapped field is measured: SQL over the standardised row `s` for its usable value
    and for why a value fails; `unusable` names a raw value that left nothing usable."""

    value: str
    issue: str = "NULL::VARCHAR"
    unusable: str = "nothing left after standardisation"


def _identifier_check(name: str) -> FieldCheck:
    """A value kept after its dropped leading zeros were put back is usable, and named too:
    an agency sending its numbers through a spreadsheet should hear of it."""
    issue, restored = (f"s.{quote_identifier(name + suffix)}" for suffix in ("_issue", "_restored"))
    return FieldCheck(
        f"s.{quote_identifier(name)}",
        f"CASE WHEN {restored} THEN coalesce({issue} || ' ({RESTORED})', '{RESTORED}, value kept')"
        f" ELSE {issue} END",
    )


RECORD_ID_CHECK = FieldCheck(
    "s.source_record_id",
    "CASE WHEN count(*) OVER (PARTITION BY s.source_record_id) > 1"
    " AND s.source_record_id IS NOT NULL THEN 'appears on more than one row' END",
)
# One per canonical person field, in PersonFields order (the order reports list them in).
PERSON_FIELD_CHECKS = {
    "forename": FieldCheck("s.forename"),
    "middle_names": FieldCheck("s.middle_names"),
    "preferred_forename": FieldCheck("s.preferred_forename"),
    "surname": FieldCheck("s.surname"),
    "other_surnames": FieldCheck("array_to_string(s.other_surnames, '|')"),
    "date_of_birth": FieldCheck(
        "strftime(s.date_of_birth, '%Y-%m-%d')",
        "CASE WHEN s.dob_issue <> 'missing' THEN s.dob_issue END",
    ),
    "sex": FieldCheck(
        "s.sex",
        "CASE WHEN s.sex_issue IS NOT NULL THEN 'unknown code ''' || s.sex_raw || '''' END",
        unusable="a code the config maps to unknown",
    ),
    "address": FieldCheck("s.address_line"),
    "town": FieldCheck("s.town"),
    "postcode": FieldCheck("s.postcode", "s.postcode_issue"),
}
DOB_WORDS = {
    "unparseable": "not a date in the configured formats ({formats})",
    "placeholder": "a placeholder date (treated as unknown)",
}


@dataclass(frozen=True)
class FieldIssue:
    """Values of one field failing for one reason: how many, and the first row numbers."""

    reason: str
    rows: int
    row_numbers: list[int]


@dataclass
class FieldProfile:
    """One mapped field: where it comes from, how full it is and what fails."""

    name: str
    kind: str  # record id, field or identifier
    source_columns: list[str]
    missing_columns: list[str] = field(default_factory=list)  # not in the file: not profiled
    rows: int = 0
    raw_filled: int = 0  # rows with a non-empty raw value
    usable: int = 0  # rows with a usable standardised value
    distinct_values: int = 0
    issues: list[FieldIssue] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)  # personal data: console only

    @property
    def raw_fill_rate(self) -> float:
        return self.raw_filled / self.rows if self.rows else 0.0

    @property
    def usable_rate(self) -> float:
        return self.usable / self.rows if self.rows else 0.0


@dataclass(frozen=True)
class ParseReject:
    """A row the parser could not read (no excerpt: it would be personal data)."""

    file: str
    row_number: int
    line_number: int
    reason: str


@dataclass(frozen=True)
class IdentifierUse:
    """What the registry says of an identifier the source carries."""

    name: str
    label: str
    source_columns: list[str]
    hard_constraint: bool  # two different valid values: two people, never merged
    compared: bool  # equal values near-proof of one person: compared, blocked on, trained on
    in_model: bool  # compared and filled by this source


@dataclass
class SourceProfile:
    """What a source's file for a night would give the pipeline."""

    source: str
    night: date
    files: list[str]
    rows_read: int = 0
    rows_parsed: int = 0
    rejected: list[ParseReject] = field(default_factory=list)
    repaired: list[FieldIssue] = field(default_factory=list)  # rows kept after a repair
    blank_lines: int = 0  # lines with no values (not rows)
    missing_columns: dict[str, list[str]] = field(default_factory=dict)  # file -> columns
    error: str | None = None  # why fields could not be profiled at all
    fields: list[FieldProfile] = field(default_factory=list)
    comparisons: dict[str, list[str]] = field(default_factory=dict)  # -> level labels
    identifiers: list[IdentifierUse] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)  # model columns this source leaves empty

    @property
    def usable_tonight(self) -> bool:
        """False when a night would skip the source (a required column is missing)."""
        return not self.missing_columns and self.error is None

    def to_dict(self) -> dict:
        data = asdict(self)
        data["night"] = self.night.isoformat()
        for entry, profile in zip(data["fields"], self.fields, strict=True):
            entry["raw_fill_rate"] = round(profile.raw_fill_rate, 4)
            entry["usable_rate"] = round(profile.usable_rate, 4)
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_text(self) -> str:
        return "\n".join(_text_lines(self))


# --- measuring ------------------------------------------------------------------------


def profile_source(
    project: ProjectConfig,
    source: str,
    night: date | None = None,
    examples: int = 3,
    row_numbers: int = 10,
) -> SourceProfile:
    """Profile a source's landing file for a night (default: the newest that has one).

    Writes nothing to the warehouse or the archive. Missing required columns are reported
    and the fields that need them skipped; a missing record id column stops at the file.
    """
    config = source_config(project, source)
    run_date = night or newest_night(config, project.landing_dir)
    paths = find_night_files(config, project.landing_dir, run_date)
    profile = SourceProfile(config.source, run_date, [str(path) for path in paths])
    profile.missing_columns = missing_columns(config, paths)
    lacking = {column for columns in profile.missing_columns.values() for column in columns}
    if config.record_id in lacking:
        profile.error = f"record id column {config.record_id} is missing: no row can be keyed"
        return profile
    readable = without_columns(config, lacking)
    registry = project.identifier_registry()
    # the night's own stages, on a scratch database and a scratch archive
    with duckdb.connect() as con, tempfile.TemporaryDirectory(prefix="profile-") as archive:
        files = extract_source(con, readable, project.landing_dir, Path(archive), run_date)
        _record_files(profile, files, row_numbers)
        create_staged_table(con)
        stage_source(con, readable, files, run_date)
        standardise(con, STAGED_TABLE, STANDARDISED, registry=registry)
        profile.fields = field_profiles(con, config, lacking, examples, row_numbers)
        shape = ModelShape(filled_input_columns(con, registry, STANDARDISED), registry)
    _describe_model(profile, config, shape)
    log.info(
        "profile %s %s: %d rows read, %d rejected, %d fields",
        config.source,
        run_date,
        profile.rows_read,
        len(profile.rejected),
        len(profile.fields),
    )
    return profile


def source_config(project: ProjectConfig, source: str) -> SourceConfig:
    """The project's config for a source, or an error listing the sources it has."""
    configs = project.source_configs()
    for config in configs:
        if config.source == source:
            return config
    names = ", ".join(config.source for config in configs)
    raise ConfigError(f"{project.config_path}: no source named {source!r} (sources: {names})")


def newest_night(config: SourceConfig, landing_dir: Path) -> date:
    """The newest night folder (YYYY-MM-DD) holding a file for the source."""
    folders = sorted((p.name for p in landing_dir.iterdir() if p.is_dir()), reverse=True)
    for name in folders:
        try:
            night = date.fromisoformat(name)
        except ValueError:
            continue
        if any(path.is_file() for path in landing_dir.glob(config.file_pattern(night))):
            return night
    raise SourceFileError(
        config.source,
        str(landing_dir),
        f"no night folder holds a file matching {config.file.pattern}",
    )


def missing_columns(config: SourceConfig, paths: list[Path]) -> dict[str, list[str]]:
    """File -> the required columns its header lacks (files lacking none are left out)."""
    missing = {
        str(path): [c for c in config.required_columns() if c not in file_columns(config, path)]
        for path in paths
    }
    return {path: columns for path, columns in missing.items() if columns}


def without_columns(config: SourceConfig, lacking: set[str]) -> SourceConfig:
    """The config without the mappings that need a lacking column (so the rest can be read)."""
    if not lacking:
        return config

    def keeps(spec: FieldSpec | None) -> bool:
        return spec is not None and not set(spec.source_columns) & lacking

    fields = {
        name: spec
        for name in PersonFields.model_fields
        if keeps(spec := getattr(config.fields, name))
    }
    identifiers = {name: spec for name, spec in config.identifiers.items() if keeps(spec)}
    concern = config.concern
    if concern is not None:
        specs = [getattr(concern, name) for name in ConcernFields.model_fields]
        if any(isinstance(s, FieldSpec) and not keeps(s) for s in specs):
            concern = None
    return config.model_copy(
        update={"fields": PersonFields(**fields), "identifiers": identifiers, "concern": concern}
    )


def _record_files(profile: SourceProfile, files: list[ExtractedFile], row_numbers: int) -> None:
    profile.rows_read = sum(extracted.rows_read for extracted in files)
    profile.rows_parsed = sum(extracted.rows_parsed for extracted in files)
    profile.blank_lines = sum(extracted.blank_lines for extracted in files)
    repaired: dict[str, list[int]] = {}  # reason -> rows (e.g. read in the fallback encoding)
    for flag in (flag for extracted in files for flag in extracted.flagged):
        repaired.setdefault(flag.reason, []).append(flag.row_number)
    profile.repaired = [
        FieldIssue(reason, len(rows), rows[:row_numbers]) for reason, rows in repaired.items()
    ]
    profile.rejected = [
        ParseReject(Path(row.source_file).name, row.row_number, row.line_number, row.reason)
        for extracted in files
        for row in extracted.rejected
    ]


def mapped_fields(config: SourceConfig) -> list[tuple[str, str, FieldSpec, FieldCheck]]:
    """(name, kind, spec, check) of every mapping: record id, person fields, identifiers."""
    mapped = [("record_id", "record id", FieldSpec(column=config.record_id), RECORD_ID_CHECK)]
    for name, check in PERSON_FIELD_CHECKS.items():
        spec = config.fields.made_from(name)
        if spec is not None:
            mapped.append((name, "field", spec, check))
    for name, spec in config.identifiers.items():
        mapped.append((name, "identifier", spec, _identifier_check(name)))
    return mapped


def field_profiles(
    con: duckdb.DuckDBPyConnection,
    config: SourceConfig,
    lacking: set[str],
    examples: int,
    row_numbers: int,
) -> list[FieldProfile]:
    """Measure every mapping over raw_<source> and standardised_record, in SQL."""
    mapped = mapped_fields(config)
    profiles = [
        FieldProfile(
            name,
            kind,
            spec.source_columns,
            missing_columns=[c for c in spec.source_columns if c in lacking],
        )
        for name, kind, spec, _ in mapped
    ]
    measured = [(i, spec, check) for i, (_, _, spec, check) in enumerate(mapped)]
    measured = [item for item in measured if not profiles[item[0]].missing_columns]
    standardised = set(table_columns(con, STANDARDISED))
    checks = [
        (profiles[i].name, s, _with_damage(profiles[i], c, standardised)) for i, s, c in measured
    ]
    _build_profile_values(con, config.source, checks)
    by_name = {profile.name: profile for profile in profiles}
    _read_counts(con, by_name)
    _read_issues(con, by_name, row_numbers, config)
    if examples > 0:
        _read_examples(con, by_name, examples)
    return profiles


def _with_damage(profile: FieldProfile, check: FieldCheck, standardised: set[str]) -> FieldCheck:
    """The check, its value's damage first: over max_text_length as sent (the row is
    quarantined; an identifier's value is nulled), then control characters removed from a
    name (kept, flagged)."""
    issue = check.issue
    if NAME_CONTROL_ISSUE in standardised and profile.name in NAME_FIELDS:
        issue = (
            f"CASE WHEN regexp_matches(s.{NAME_CONTROL_ISSUE}, '(^|; ){profile.name} U[+]')"
            f" THEN 'control or invisible characters removed' ELSE {issue} END"
        )
    too_long = too_long_column(profile.name)
    if too_long in standardised:
        cost = "value nulled" if profile.kind == "identifier" else "row quarantined"
        issue = (
            f"CASE WHEN s.{quote_identifier(too_long)}"
            f" THEN '{validation_rules().too_long} ({cost})' ELSE {issue} END"
        )
    return replace(check, issue=issue)


def _raw_present(spec: FieldSpec) -> str:
    if spec.constant is not None:
        return "true"
    values = ", ".join(f"nullif(trim(r.{quote_identifier(c)}), '')" for c in spec.source_columns)
    return f"coalesce({values}) IS NOT NULL"


def _build_profile_values(
    con: duckdb.DuckDBPyConnection, source: str, measured: list[tuple[str, FieldSpec, FieldCheck]]
) -> None:
    """profile_value: one row per (field, data row): raw present?, usable value, issue."""
    params: dict[str, object] = {}
    parts = []
    for position, (name, spec, check) in enumerate(measured):
        params[f"field{position}"], params[f"unusable{position}"] = name, check.unusable
        parts.append(
            f"SELECT $field{position} AS field, r.{ROW_NUMBER} AS data_row,"
            f" {_raw_present(spec)} AS raw_present, CAST({check.value} AS VARCHAR) AS value,"
            f" CAST({check.issue} AS VARCHAR) AS issue, $unusable{position} AS unusable"
            f" FROM {quote_identifier(raw_table_name(source))} AS r"
            f" LEFT JOIN {STANDARDISED} AS s ON s.source_row_number = r.{ROW_NUMBER}"
        )
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {PROFILE_VALUES} (field VARCHAR, data_row BIGINT,"
        " raw_present BOOLEAN, value VARCHAR, issue VARCHAR)"
    )
    if not parts:
        return
    union = "\n    UNION ALL\n    ".join(parts)
    con.execute(
        f"""
        INSERT INTO {PROFILE_VALUES}
        WITH measured AS (
            {union}
        )
        SELECT field, data_row, raw_present, value,
               coalesce(issue, CASE WHEN raw_present AND value IS NULL THEN unusable END)
        FROM measured
        """,
        params,
    )


def _read_counts(con: duckdb.DuckDBPyConnection, by_name: dict[str, FieldProfile]) -> None:
    rows = con.execute(
        f"""
        SELECT field, count(*), count(*) FILTER (WHERE raw_present), count(value),
               count(DISTINCT value)
        FROM {PROFILE_VALUES} GROUP BY field
        """
    ).fetchall()
    for name, total, raw_filled, usable, distinct in rows:
        profile = by_name[name]
        profile.rows, profile.raw_filled = int(total), int(raw_filled)
        profile.usable, profile.distinct_values = int(usable), int(distinct)


def _read_issues(
    con: duckdb.DuckDBPyConnection,
    by_name: dict[str, FieldProfile],
    row_numbers: int,
    config: SourceConfig,
) -> None:
    rows = con.execute(
        f"""
        SELECT field, issue, count(*) AS rows,
               list_slice(list(data_row ORDER BY data_row), 1, $limit)
        FROM {PROFILE_VALUES} WHERE issue IS NOT NULL
        GROUP BY field, issue ORDER BY field, rows DESC, issue
        """,
        {"limit": row_numbers},
    ).fetchall()
    dob = config.fields.date_of_birth
    formats = ", ".join((dob.formats if dob else None) or ["%Y-%m-%d"])
    for name, reason, count, numbers in rows:
        if name == "date_of_birth":
            reason = DOB_WORDS.get(reason, reason).format(formats=formats)
        by_name[name].issues.append(FieldIssue(reason, int(count), [int(n) for n in numbers]))


def _read_examples(
    con: duckdb.DuckDBPyConnection, by_name: dict[str, FieldProfile], examples: int
) -> None:
    """The first distinct usable values in file order (deterministic, so goldens hold)."""
    rows = con.execute(
        f"""
        WITH first_seen AS (
            SELECT field, value, min(data_row) AS first_row
            FROM {PROFILE_VALUES} WHERE value IS NOT NULL GROUP BY field, value
        )
        SELECT field, value FROM first_seen
        QUALIFY row_number() OVER (PARTITION BY field ORDER BY first_row) <= $limit
        ORDER BY field, first_row
        """,
        {"limit": examples},
    ).fetchall()
    for name, value in rows:
        by_name[name].examples.append(value)


def _describe_model(profile: SourceProfile, config: SourceConfig, shape: ModelShape) -> None:
    """The comparisons the source's records support, its identifiers and what is left out."""
    settings = build_model_settings(shape).create_settings_dict("duckdb")
    profile.comparisons = {
        comparison: sorted(levels, key=lambda label: -levels[label])
        for comparison, levels in level_gammas(settings).items()
    }
    registry = shape.registry
    for name, spec in config.identifiers.items():
        kind = registry.get(name)
        profile.identifiers.append(
            IdentifierUse(
                name,
                kind.label,
                spec.source_columns,
                hard_constraint=kind.distinct_values_differ,
                compared=kind.equal_values_match,
                in_model=name in shape.identifiers,
            )
        )
    candidates = [c for c in model_columns(registry) if c not in ("record_key", "source")]
    profile.left_out = [c for c in candidates if c not in shape.filled]


# --- rendering --------------------------------------------------------------------------


def _text_lines(profile: SourceProfile) -> list[str]:
    files = ", ".join(Path(f).name for f in profile.files)
    lines = [
        f"{profile.source}, night {profile.night}: {files}",
        f"  {profile.rows_read:,} rows read, {profile.rows_parsed:,} parsed,"
        f" {len(profile.rejected):,} rejected by the parser"
        " (nothing was written to the warehouse or the archive)",
    ]
    for file, columns in profile.missing_columns.items():
        lines.append(
            f"  REQUIRED COLUMNS MISSING from {file}: {', '.join(columns)}"
            " (a night would skip this source; the fields needing them are not profiled)"
        )
    if profile.error:
        lines.append(f"  {profile.error}")
        return lines
    for reject in profile.rejected:
        lines.append(
            f"  rejected row {reject.row_number} (line {reject.line_number}): {reject.reason}"
        )
    for issue in profile.repaired:
        more = ", ..." if issue.rows > len(issue.row_numbers) else ""
        numbers = ", ".join(str(n) for n in issue.row_numbers) + more
        lines.append(f"  kept and flagged: {issue.reason}: {issue.rows:,} row(s) ({numbers})")
    if profile.blank_lines:
        lines.append(f"  {profile.blank_lines:,} blank line(s) skipped (not rows)")
    lines += ["", f"Fields (shares of the {profile.rows_parsed:,} parsed rows):"]
    for field_profile in profile.fields:
        lines += _field_lines(field_profile)
    lines += ["", "Model comparisons this source's records support (levels, strongest first):"]
    lines += [f"  {name}: {', '.join(levels)}" for name, levels in profile.comparisons.items()]
    lines += ["", "Identifiers:"] + [_identifier_line(use) for use in profile.identifiers]
    if not profile.identifiers:
        lines.append("  none")
    left_out = [
        f"{c} ({CARRIED_FORWARD[c]})" if c in CARRIED_FORWARD else c for c in profile.left_out
    ]
    lines += ["", f"Left out of the model (this source does not fill them): {', '.join(left_out)}"]
    return lines


def _field_lines(profile: FieldProfile) -> list[str]:
    lines = [f"  {profile.name} <- {', '.join(profile.source_columns) or '(constant)'}"]
    if profile.missing_columns:
        return lines + [f"    not profiled: column(s) {', '.join(profile.missing_columns)} missing"]
    lines.append(
        f"    filled {profile.raw_fill_rate:.1%}, usable {profile.usable_rate:.1%},"
        f" {profile.distinct_values:,} distinct"
    )
    for issue in profile.issues[:MAX_REASONS_SHOWN]:
        more = ", ..." if issue.rows > len(issue.row_numbers) else ""
        numbers = ", ".join(str(n) for n in issue.row_numbers) + more
        lines.append(f"    ! {issue.reason}: {issue.rows:,} row(s) ({numbers})")
    hidden = profile.issues[MAX_REASONS_SHOWN:]
    if hidden:
        hidden_rows = sum(issue.rows for issue in hidden)
        lines.append(f"    ! {len(hidden):,} more reason(s): {hidden_rows:,} row(s) (see --json)")
    if profile.examples:
        lines.append(f"    e.g. {' | '.join(profile.examples)}")
    return lines


def _identifier_line(use: IdentifierUse) -> str:
    constraint = "hard constraint" if use.hard_constraint else "not a hard constraint"
    if use.in_model:
        compared = "compared by the model (near-proof)"
    elif use.compared:
        compared = "near-proof, but too few valid values here to compare"
    else:
        compared = "not compared (values may be shared or re-issued)"
    return (
        f"  {use.name} ({use.label}) <- {', '.join(use.source_columns)}: {constraint}; {compared}"
    )
