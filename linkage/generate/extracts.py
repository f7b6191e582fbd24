"""The extract files: names, encodings, delimiters, columns, and how a row is laid out.

The pipeline's source configs (schemas/sources/*.yaml) depend on these exact names,
formats and columns; sample_data/README.md documents them column by column. `EXTRACTS`
are the default (scottish) variant's four files; `extract_specs` derives each other
variant's files from them, so a variant states only what it changes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, datetime

from linkage.generate.concerns import ENROLLED
from linkage.generate.places import Address, gp_practice
from linkage.generate.records import Record
from linkage.generate.variants import Variant

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True)
class ExtractSpec:
    source: str
    file_name: str
    encoding: str
    delimiter: str
    columns: tuple[str, ...]
    row: Callable[[Record, date], list[str]]


def cased(text: str, record: Record) -> str:
    """Names and addresses as keyed: proper case, or all capitals, or all lower case."""
    tags = record.corruptions
    if tags:
        if "upper_case" in tags:
            return text.upper()
        if "lower_case" in tags:
            return text.lower()
    return text


def _dmy(day: date | None, separator: str) -> str:
    if day is None:
        return ""
    return f"{day.day:02d}{separator}{day.month:02d}{separator}{day.year:04d}"


def _iso(day: date | None) -> str:
    return "" if day is None else day.isoformat()


def _stamp(moment: datetime | None) -> str:
    return "" if moment is None else f"{moment:%Y-%m-%d %H:%M:%S}"


def _address(record: Record) -> Address:
    assert record.address is not None, "records are rendered before they are written"
    return record.address


def health_row(record: Record, today: date) -> list[str]:
    address = _address(record)
    person = record.person
    # flags are only ever set on children; the cached row must not depend on the night
    flagged = not record.duplicate and person.cp_flag_on is not None
    return [
        record.record_id,
        record.chi,
        cased(record.forename, record),
        cased(record.surname, record),
        _dmy(record.dob, "/"),
        record.sex,
        cased(address.street_line(abbreviate=record.style == 0), record),
        cased(address.flat, record),
        cased(address.town, record),
        record.postcode,
        gp_practice(address.district, person.household.key),
        "Y" if flagged else "N",
        _dmy(person.cp_flag_on, "/") if flagged else "",
    ]


def education_row(record: Record, today: date) -> list[str]:
    address = _address(record)
    person = record.person
    home = address.street_line()
    if address.flat:
        home = f"{home}, {address.flat}"
    return [
        record.record_id,
        record.recorded_scn,
        cased(record.forename, record),
        cased(record.preferred_name, record),
        cased(record.surname, record),
        _iso(record.dob),
        {"M": "Male", "F": "Female"}[record.sex],
        cased(home, record),
        cased(address.town, record),
        record.postcode,
        person.school,
        person.school_status or ENROLLED,
        _iso(person.school_status_on),
    ]


def police_row(record: Record, today: date) -> list[str]:
    participation = record.participation
    assert participation is not None, "police rows come from incidents"
    incident = participation.incident
    return [
        record.record_id,
        incident.incident_ref,
        record.nominal,
        "" if "fresh_nominal" in record.corruptions else record.person.pnc,
        cased(record.forename, record),
        cased(record.surname, record),
        _dmy(record.dob, "."),
        {"M": "1", "F": "2", "U": "9"}[record.sex],
        cased(police_address_text(record), record),
        record.postcode,
        f"{_dmy(incident.when.date(), '.')} {incident.when:%H:%M}",
        incident.incident_type,
        participation.concern_flag,
        participation.role,
    ]


def police_address_text(record: Record) -> str:
    """Free text as officers type it: sometimes with the flat, the town or the postcode."""
    address = _address(record)
    style = record.style
    street = address.street_line(abbreviate=style != 1)
    flat = f"{address.flat}, " if address.flat and style != 0 else ""
    if style == 0:
        return street
    if style == 1:
        return f"{flat}{street}, {address.town}"
    if style == 2:
        return f"{flat}{street}, {address.town}, {address.postcode}"
    return f"{flat}{street} {address.town}"


def socialwork_row(record: Record, today: date) -> list[str]:
    address = _address(record)
    person = record.person
    case = person.case
    assert case is not None, "social-work records exist only for people with a case"
    previous = ""
    if (
        record.previous_surname_recorded
        and person.birth_surname != person.surname
        and "birth_surname" not in record.corruptions
    ):
        previous = cased(person.birth_surname, record)
    return [
        record.record_id,
        case.case_ref,
        record.chi,
        cased(record.forename, record),
        cased(record.surname, record),
        previous,
        _stamp(datetime(record.dob.year, record.dob.month, record.dob.day) if record.dob else None),
        {"M": "Male", "F": "Female", "U": "Unknown"}[record.sex],
        cased(address.street_line(abbreviate=record.style == 0), record),
        cased(address.flat, record),
        cased(address.town, record),
        record.postcode,
        case.case_type,
        "Closed" if case.closed else "Open",
        _stamp(case.opened),
        _stamp(case.closed),
    ]


EXTRACTS: dict[str, ExtractSpec] = {
    "health": ExtractSpec(
        "health",
        "health_patients.csv",
        "utf-8",
        ",",
        (
            "Patient_ID",
            "CHI_Number",
            "Forename",
            "Surname",
            "Date_Of_Birth",
            "Gender",
            "Address_Line_1",
            "Address_Line_2",
            "Town",
            "Postcode",
            "GP_Practice_Code",
            "Child_Protection_Flag",
            "CP_Flag_Date",
        ),  # fmt: skip
        health_row,
    ),
    "education": ExtractSpec(
        "education",
        "education_pupils.txt",
        "latin-1",
        "|",
        (
            "PupilRef",
            "SCN",
            "LegalForename",
            "PreferredName",
            "LegalSurname",
            "DateOfBirth",
            "Sex",
            "HomeAddress",
            "Town",
            "PostCode",
            "SchoolName",
            "EnrolmentStatus",
            "StatusDate",
        ),  # fmt: skip
        education_row,
    ),
    "police": ExtractSpec(
        "police",
        "police_incidents.csv",
        "utf-8",
        ",",
        (
            "IncidentPersonRef",
            "IncidentRef",
            "NominalRef",
            "PNC_ID",
            "Forenames",
            "Surname",
            "DOB",
            "SexCode",
            "AddressText",
            "Postcode",
            "IncidentDateTime",
            "IncidentType",
            "ConcernFlag",
            "Role",
        ),  # fmt: skip
        police_row,
    ),
    "socialwork": ExtractSpec(
        "socialwork",
        "socialwork_clients.csv",
        "latin-1",
        ",",
        (
            "ClientID",
            "CaseRef",
            "CHI",
            "FirstName",
            "LastName",
            "PreviousLastName",
            "BirthDate",
            "Gender",
            "Address1",
            "Address2",
            "TownCity",
            "Postcode",
            "CaseType",
            "CaseStatus",
            "CaseOpened",
            "CaseClosed",
        ),  # fmt: skip
        socialwork_row,
    ),
}


def police_full_name(record: Record) -> str:
    """The whole name in one column, as many police systems keep it: mostly `SMITH, John
    Paul`, else `John Paul SMITH` or `John Paul Smith` as typed."""
    forenames, surname = record.forename, record.surname
    if record.style in (0, 1):
        return cased(f"{surname.upper()}, {forenames}", record)
    if record.style == 2:
        return cased(f"{forenames} {surname.upper()}", record)
    return cased(f"{forenames} {surname}", record)


def police_address_line(record: Record) -> str:
    """One free-text line, comma-separated, ending in the postcode as recorded.

    `36 Marchmont Rd, Inverness, IV47 8AH`; a quarter of lines leave out the town, and a
    missing postcode (a corruption) leaves the line ending in the town.
    """
    address = _address(record)
    style = record.style
    street = address.street_line(abbreviate=style != 1)
    flat = f"{address.flat}, " if address.flat and style in (1, 2) else ""
    parts = [f"{flat}{street}"]
    if style != 0:
        parts.append(address.town)
    if record.postcode:
        parts.append(record.postcode)
    return cased(", ".join(parts), record)


def _dd_mon_yyyy(day: date | None) -> str:
    """05-Mar-1984, in English whatever the locale (strftime's %b is not)."""
    return "" if day is None else f"{day.day:02d}-{MONTHS[day.month - 1]}-{day.year:04d}"


def housing_row(record: Record, today: date) -> list[str]:
    address = _address(record)
    applicant = record.applicant
    assert applicant is not None, "housing rows come from applications"
    application = applicant.application
    return [
        record.record_id,
        application.tenancy_ref,
        record.recorded_housing_ref,
        cased(record.forename, record),
        cased(record.surname, record),
        _dd_mon_yyyy(record.dob),
        {"M": "M", "F": "F", "U": ""}[record.sex],
        cased(address.street_line(abbreviate=record.style == 0), record),
        cased(address.flat, record),
        cased(address.town, record),
        record.postcode,
        application.kind,
        _dd_mon_yyyy(application.applied_on),
        applicant.relationship,
    ]


HOUSING = ExtractSpec(
    "housing",
    "housing_register.tsv",
    "utf-8",
    "\t",
    (
        "ApplicantRef",
        "TenancyRef",
        "HousingPersonRef",
        "GivenName",
        "FamilyName",
        "BirthDate",
        "Sex",
        "AddressLine1",
        "AddressLine2",
        "Town",
        "PostCode",
        "ApplicationType",
        "ApplicationDate",
        "Relationship",
    ),  # fmt: skip
    housing_row,
)
NATIONAL_ID_COLUMNS = frozenset({"CHI_Number", "SCN", "PNC_ID", "CHI"})


def without_columns(spec: ExtractSpec, dropped: frozenset[str]) -> ExtractSpec:
    """The same file with some columns left out (absent from the header, not blank)."""
    kept = [index for index, column in enumerate(spec.columns) if column not in dropped]
    full_row = spec.row

    def row(record: Record, today: date) -> list[str]:
        values = full_row(record, today)
        return [values[index] for index in kept]

    return replace(spec, columns=tuple(spec.columns[index] for index in kept), row=row)


def with_column(
    spec: ExtractSpec, after: str, column: str, value: Callable[[Record], str]
) -> ExtractSpec:
    """The same file with one more column, placed after `after`."""
    position = spec.columns.index(after) + 1
    full_row = spec.row

    def row(record: Record, today: date) -> list[str]:
        values = full_row(record, today)
        values.insert(position, value(record))
        return values

    columns = (*spec.columns[:position], column, *spec.columns[position:])
    return replace(spec, columns=columns, row=row)


def with_value(spec: ExtractSpec, column: str, value: Callable[[Record], str]) -> ExtractSpec:
    """The same file with one column's value made differently."""
    position = spec.columns.index(column)
    full_row = spec.row

    def row(record: Record, today: date) -> list[str]:
        values = full_row(record, today)
        values[position] = value(record)
        return values

    return replace(spec, row=row)


def extract_specs(variant: Variant) -> dict[str, ExtractSpec]:
    """The variant's extract files by source, in the order they are written."""
    specs = dict(EXTRACTS)
    if not variant.national_ids:
        specs = {name: without_columns(spec, NATIONAL_ID_COLUMNS) for name, spec in specs.items()}
    if variant.police_address_line:
        line = with_value(specs["police"], "AddressText", police_address_line)
        specs["police"] = without_columns(line, frozenset({"Postcode"}))
    if variant.police_full_name:
        named = with_column(specs["police"], "Surname", "FullName", police_full_name)
        specs["police"] = without_columns(named, frozenset({"Forenames", "Surname"}))
    if variant.housing:
        specs["socialwork"] = with_column(
            specs["socialwork"], "CHI", "HousingRef", lambda record: record.recorded_housing_ref
        )
        specs["housing"] = HOUSING
    return specs


def formatted_row(record: Record, today: date, spec: ExtractSpec) -> list[str]:
    """The record's extract row (cached until the record or its person changes)."""
    if record.row is None:
        record.row = spec.row(record, today)
    return record.row
