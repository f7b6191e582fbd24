"""raw_<source> -> staged_record: rename an agency's columns onto the canonical inputs.

This is the only config-specific step. Everything after it (standardise, validate,
link) sees one shape whatever the agency sent. Values from configs and files are bound
as parameters or quoted through `quote_identifier`, never pasted into SQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from functools import cache
from itertools import groupby

import duckdb

from linkage.config import (
    EXCEL_SERIAL,
    ConcernFields,
    FieldSpec,
    FullNameSpec,
    PersonFields,
    SourceConfig,
)
from linkage.extract import (
    LINE_NUMBER,
    ROW_NUMBER,
    ExtractedFile,
    quote_identifier,
    raw_table_name,
    row_ranges,
)
from linkage.standardise.reference import REFERENCE_TABLES, read_reference

STAGED_TABLE = "staged_record"

# canonical input -> (staged column, separator when several source columns are joined)
TEXT_INPUTS = {
    "forename": ("forename_raw", " "),
    "middle_names": ("middle_names_raw", " "),
    "preferred_forename": ("preferred_forename_raw", " "),
    "surname": ("surname_raw", " "),
    "other_surnames": ("other_surnames_raw", "|"),
    "address": ("address_raw", ", "),
    "town": ("town_raw", " "),
    "postcode": ("postcode_raw", " "),
}

# A time of day ending a date: 00:00, 00:00:00, 00:00:00.000, 12:00:00 AM, T00:00:00Z,
# 00:00:00+01:00. Hours 0-23, minutes and seconds 0-59; removed before the formats are tried.
TIME_OF_DAY_PATTERN = (
    "[ T]+([01]?[0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9]([.,][0-9]+)?)?"
    "( ?[AP]M)?( ?(Z|[+-][0-9]{2}(:?[0-9]{2})?))?$"
)

# A spreadsheet day number (Excel's 1900 system): day 1 is 1900-01-01, and the system
# counts a 29 February 1900 that never was, so from day 61 (1900-03-01) on, day n is
# 1899-12-30 + n. A fraction is a time of day, dropped. Only days 2193 (1906-01-01) to
# 73050 (2099-12-31) are read: a smaller number in a date column is likelier a year
# (1985), an age or a count than a date before 1906, and stays unparseable.
EXCEL_SERIAL_SQL = (
    "CASE WHEN regexp_full_match({text}, '[0-9]{{4,5}}([.][0-9]+)?')"
    " AND floor(TRY_CAST({text} AS DOUBLE)) BETWEEN 2193 AND 73050"
    " THEN DATE '1899-12-30' + CAST(floor(TRY_CAST({text} AS DOUBLE)) AS INTEGER) END"
)

STAGED_COLUMNS = """
    run_date DATE, source VARCHAR, source_record_id VARCHAR, source_file VARCHAR,
    file_sha256 VARCHAR, source_row_number BIGINT, source_line_number BIGINT,
    forename_raw VARCHAR, middle_names_raw VARCHAR, preferred_forename_raw VARCHAR,
    surname_raw VARCHAR, other_surnames_raw VARCHAR,
    date_of_birth_raw VARCHAR, date_of_birth DATE, sex_raw VARCHAR, sex VARCHAR,
    address_raw VARCHAR, town_raw VARCHAR, postcode_raw VARCHAR,
    identifiers_raw MAP(VARCHAR, VARCHAR),
    concern_type VARCHAR, concern_status VARCHAR, concern_opened_raw VARCHAR,
    concern_opened DATE, concern_closed_raw VARCHAR, concern_closed DATE
"""


def create_staged_table(con: duckdb.DuckDBPyConnection) -> None:
    """The night's staged rows: a temporary table (a third of the cost of
    writing a million rows into the warehouse file, and gone when the run ends)."""
    database = con.execute("SELECT current_database()").fetchall()[0][0]
    for table in (STAGED_TABLE, "code_map", "standardised_record"):
        # older warehouses kept them in the file
        con.execute(f"DROP TABLE IF EXISTS {quote_identifier(database)}.main.{table}")
    con.execute(f"CREATE OR REPLACE TEMP TABLE {STAGED_TABLE} ({STAGED_COLUMNS})")


class SelectBuilder:
    """Builds one source's SELECT expressions, collecting bound parameters."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.params: dict[str, object] = {}

    def bind(self, value: object) -> str:
        """A named placeholder for value (named, so nesting order cannot misbind)."""
        name = f"p{len(self.params)}"
        self.params[name] = value
        return f"${name}"

    def text(self, spec: FieldSpec | None, separator: str = " ") -> str:
        if spec is None:
            return "NULL::VARCHAR"
        if spec.constant is not None:
            return self.bind(spec.constant)
        columns = [f"nullif(trim({quote_identifier(c)}), '')" for c in spec.source_columns]
        if len(columns) == 1:
            return columns[0]
        return f"nullif(concat_ws({self.bind(separator)}, {', '.join(columns)}), '')"

    def coded(self, spec: FieldSpec | None) -> str:
        """Map raw codes through the config's code table (case aside); unlisted codes give
        NULL. A CASE over the few codes, not a join: it costs nothing per row."""
        raw = self.text(spec)
        if spec is None or spec.codes is None:
            return raw
        branches = "".join(
            f" WHEN upper({self.bind(raw_code)}) THEN {self.bind(code)}"
            for raw_code, code in spec.codes.items()
        )
        return f"CAST(CASE upper({raw}){branches} END AS VARCHAR)"

    def declared_null(self, spec: FieldSpec | None) -> str:
        """True where the raw value is a code the config maps to 'unknown'."""
        if spec is None or spec.codes is None:
            return "false"
        unknown = [raw for raw, code in spec.codes.items() if code is None]
        if not unknown:
            return "false"
        codes = ", ".join(f"upper({self.bind(raw)})" for raw in unknown)
        return f"coalesce(upper({self.text(spec)}) IN ({codes}), false)"

    def identifiers(self, specs: dict[str, FieldSpec]) -> str:
        """A map of registered identifier type -> raw value (types the source lacks: absent)."""
        entries = [
            f"({self.bind(name)}, {self.text(spec, '')})" for name, spec in sorted(specs.items())
        ]
        return f"map_from_entries([{', '.join(entries)}])::MAP(VARCHAR, VARCHAR)"

    def date(self, spec: FieldSpec | None, run_date: date) -> str:
        """The config's date formats tried in order; see FieldSpec.formats.

        A time of day after the date is dropped, whatever it is (a spreadsheet or database
        writes a date as its midnight, and a date of birth has no time), so the formats
        need not list time formats; formats that do list one still read it first.

        A two-digit year (%y) reads 00-68 as 2000-2068: a date so read that falls after
        the night is a century earlier (a birth in 1955 sent as 55 is 1955, not 2055).
        Where the formats have one, a four-digit format (%Y, which also reads 55 as the
        year 55) leaves a year below 100 to them.
        """
        if spec is None:
            return "NULL::DATE"
        text = self.text(spec)
        attempts = []
        formats = spec.formats or ["%Y-%m-%d"]
        two_digit_years = any(_format_kind(given) == "two-digit year" for given in formats)
        night = f"{self.bind(run_date)}::DATE" if two_digit_years else ""
        for kind, group in groupby(formats, _format_kind):
            if kind == "serial":
                attempts.append(EXCEL_SERIAL_SQL.format(text=text))
                continue
            tried = self.bind(list(group))
            date_part = f"regexp_replace({text}, {self.bind(TIME_OF_DAY_PATTERN)}, '', 'i')"
            for read in (f"try_strptime({text}, {tried})", f"try_strptime({date_part}, {tried})"):
                if kind == "two-digit year":
                    read = (
                        f"CASE WHEN CAST({read} AS DATE) > {night}"
                        f" THEN {read} - INTERVAL 100 YEAR ELSE {read} END"
                    )
                elif two_digit_years:
                    read = f"CASE WHEN year({read}) >= 100 THEN {read} END"
                attempts.append(read)
        return f"CAST(coalesce({', '.join(attempts)}) AS DATE)"


def _format_kind(given: str) -> str:
    if given == EXCEL_SERIAL:
        return "serial"
    return "two-digit year" if "%y" in given else "strptime"


@dataclass(frozen=True)
class NamePatterns:
    """Regular expressions splitting a whole name, from the reference tables: a surname
    keeps the particles before it (VAN DER BERG), and a trailing suffix (JNR) is dropped
    before the name is split, as the name rules drop it after the first word."""

    suffix: str  # a trailing suffix, with the space or comma before it
    surname_last: str  # group 1 the forenames, group 2 the surname
    surname_first: str  # group 1 the surname, group 2 the forenames
    # the first run of words in capitals (at least two letters each): "John SMITH"
    capitals: str = r"(?:^| )([A-Z][A-Z'-]+(?: [A-Z][A-Z'-]+)*)(?: |$)"


# Suffixes that are family names too (Amartya Sen, Kim Jun): in a whole name they are read
# as suffixes only after a comma or with a dot (`John Smith, Sen`, `John Smith Sen.`).
SURNAME_LIKE_SUFFIXES = frozenset({"SEN", "JUN"})


@cache
def name_patterns() -> NamePatterns:
    tables = {reference.file: reference for reference in REFERENCE_TABLES}
    particles = [row["particle"] for row in read_reference(tables["surname_particles.csv"])]
    titles = read_reference(tables["name_titles.csv"])
    suffixes = [row["token"] for row in titles if row["kind"] == "suffix"]
    plain = [suffix for suffix in suffixes if suffix not in SURNAME_LIKE_SUFFIXES]
    surname = f"(?:(?:{'|'.join(particles)}) )*[^ ]+"
    return NamePatterns(
        # a suffix that is also a surname counts only after a comma or with its dot
        suffix=(
            f"(?:[ ,]+(?:{'|'.join(plain)})[.]?|, *(?:{'|'.join(suffixes)})[.]?"
            f"|[ ,]+(?:{'|'.join(suffixes)})[.])$"
        ),
        surname_last=f"^(.+?) ({surname})$",
        surname_first=f"^({surname}) (.+)$",
    )


def split_full_name(build: SelectBuilder, spec: FullNameSpec) -> tuple[str, str]:
    """(forenames, surname) SQL of a whole name in one field.

    A comma puts the surname first whatever the order ("SMITH, John Paul"). Otherwise
    `auto` takes the words in capitals as the surname where the rest is not in capitals
    ("John SMITH", "SMITH John"), else reads forenames first, as `forename_first` does
    ("John Paul van der Berg": forenames John Paul, surname VAN DER BERG); `surname_first`
    takes the first word and the particles before it. A single word is a surname.
    """
    patterns = name_patterns()
    collapsed = f"regexp_replace({build.text(spec)}, '\\s+', ' ', 'g')"
    unsuffixed = f"regexp_replace({collapsed}, {build.bind(patterns.suffix)}, '', 'i')"
    # a suffix is dropped only where more than one word is left: a name is never cut to
    # a suffix's neighbour alone (Amartya Sen). About 1.4 s a million names on 2 cores
    value = (
        f"(CASE WHEN regexp_matches({unsuffixed}, '[ ,]') THEN {unsuffixed} ELSE {collapsed} END)"
    )
    comma = f"strpos({value}, ',')"
    # (condition, surname, forenames), the first that holds wins
    rules = [
        (
            f"{comma} > 0",
            f"nullif(trim(split_part({value}, ',', 1)), '')",
            f"nullif(trim(replace(substr({value}, {comma} + 1), ',', ' ')), '')",
        )
    ]
    if spec.order == "auto":
        capitals = (
            f"CASE WHEN regexp_matches({value}, '[a-z]') THEN"
            f" nullif(regexp_extract({value}, {build.bind(patterns.capitals)}, 1), '') END"
        )
        rest = f"trim(regexp_replace(replace({value}, {capitals}, ''), ' +', ' ', 'g'))"
        rules.append((f"{capitals} IS NOT NULL", capitals, f"nullif({rest}, '')"))
    if spec.order == "surname_first":
        split, surname_group, forenames_group = patterns.surname_first, 1, 2
    else:
        split, surname_group, forenames_group = patterns.surname_last, 2, 1
    pattern = build.bind(split)
    surname = f"nullif(regexp_extract({value}, {pattern}, {surname_group}, 'i'), '')"
    forenames = f"nullif(regexp_extract({value}, {pattern}, {forenames_group}, 'i'), '')"
    surname_cases = "".join(f" WHEN {when} THEN {last}" for when, last, _ in rules)
    forename_cases = "".join(f" WHEN {when} THEN {first}" for when, _, first in rules)
    return (
        f"CASE{forename_cases} ELSE {forenames} END",
        f"CASE{surname_cases} ELSE coalesce({surname}, {value}) END",
    )


def stage_source(
    con: duckdb.DuckDBPyConnection,
    config: SourceConfig,
    files: list[ExtractedFile],
    run_date: date,
) -> int:
    """Append a source's raw rows to staged_record in the canonical input shape."""
    fields: PersonFields = config.fields
    concern: ConcernFields | None = config.concern
    build = SelectBuilder(config.source)
    file_case = _file_case(build, files)
    expressions = {
        "run_date": f"{build.bind(run_date)}::DATE",
        "source": build.bind(config.source),
        "source_record_id": f"nullif(trim({quote_identifier(config.record_id)}), '')",
        "source_file": file_case("archive"),
        "file_sha256": file_case("sha"),
        "source_row_number": ROW_NUMBER,
        "source_line_number": LINE_NUMBER,
        "date_of_birth_raw": build.text(fields.date_of_birth),
        "date_of_birth": build.date(fields.date_of_birth, run_date),
        "sex_raw": (
            f"CASE WHEN {build.declared_null(fields.sex)} THEN NULL"
            f" ELSE {build.text(fields.sex)} END"
        ),
        "sex": build.coded(fields.sex),
        "concern_type": build.coded(concern.type) if concern else "NULL",
        "concern_status": build.coded(concern.status) if concern else "NULL",
        "concern_opened_raw": build.text(concern.opened) if concern else "NULL",
        "concern_opened": build.date(concern.opened, run_date) if concern else "NULL::DATE",
        "concern_closed_raw": build.text(concern.closed) if concern else "NULL",
        "concern_closed": build.date(concern.closed, run_date) if concern else "NULL::DATE",
        "identifiers_raw": build.identifiers(config.identifiers),
    }
    for name, (staged_column, separator) in TEXT_INPUTS.items():
        expressions[staged_column] = build.text(getattr(fields, name), separator)
    if fields.full_name is not None:  # fills forename and surname where they are empty
        forenames, surname = split_full_name(build, fields.full_name)
        expressions["forename_raw"] = f"coalesce({expressions['forename_raw']}, {forenames})"
        expressions["surname_raw"] = f"coalesce({expressions['surname_raw']}, {surname})"
    columns = ", ".join(expressions)
    select_list = ",\n  ".join(f"{sql} AS {name}" for name, sql in expressions.items())
    sql = (
        f"INSERT INTO {STAGED_TABLE} ({columns})\n"
        f"SELECT\n  {select_list}\nFROM {quote_identifier(raw_table_name(config.source))}"
    )
    inserted = con.execute(sql, build.params).fetchall()  # DuckDB returns the row count
    return int(inserted[0][0])


def _file_case(build: SelectBuilder, files: list[ExtractedFile]):  # noqa: ANN202
    """SQL choosing a file attribute by row number (a source may span several files)."""

    def attribute(kind: str) -> str:
        branches = []
        for extracted, (first_row, last_row) in zip(files, row_ranges(files), strict=True):
            value = str(extracted.archive_path) if kind == "archive" else extracted.sha256
            branches.append(
                f"WHEN {ROW_NUMBER} BETWEEN {build.bind(first_row)} AND {build.bind(last_row)}"
                f" THEN {build.bind(value)}"
            )
        return f"CASE {' '.join(branches)} END"

    return attribute
