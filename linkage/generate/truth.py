"""The ground truth files: who each record really is, the people, their concerns, the changes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

from linkage.generate.concerns import MISSING
from linkage.generate.households import Person
from linkage.generate.nights import Change
from linkage.generate.records import Record

TRUTH_COLUMNS: dict[str, tuple[str, ...]] = {
    "records.csv": ("night", "source", "source_record_id", "person_id", "corruptions"),
    "people.csv": (
        "person_id",
        "household_id",
        "sex",
        "date_of_birth",
        "forename",
        "middle_names",
        "surname",
        "birth_surname",
        "chi",
        "scn",
        "hard_cases",
        "first_night",
        "last_night",
    ),  # fmt: skip
    "concerns.csv": (
        "night",
        "person_id",
        "agency",
        "concern_type",
        "status",
        "opened",
        "closed",
        "source_record_id",
    ),  # fmt: skip
    "changes.csv": ("night", "person_id", "change", "source", "source_record_id"),
}
NOT_A_CONCERN = "ADULT_CARE"  # a care package, not a welfare concern


def record_row(night: str, record: Record) -> list[str]:
    tags = ";".join(record.corruptions)
    return [night, record.source, record.record_id, record.person.person_id, tags]


def person_row(person: Person, nights: list[date], national_ids: bool = True) -> list[str]:
    """The person's truth; CHI and SCN blank where the variant has no national ids."""
    last = "" if person.last_night is None else nights[person.last_night].isoformat()
    return [
        person.person_id,
        person.household.household_id,
        person.sex,
        person.dob.isoformat(),
        person.forename,
        person.middle_names,
        person.surname,
        person.birth_surname,
        person.chi if national_ids else "",
        person.scn,
        ";".join(person.hard_cases),
        nights[person.first_night].isoformat(),
        last,
    ]


def concern_rows(night: str, record: Record) -> Iterator[list[str]]:
    """The concerns this record shows tonight (duplicates repeat their original's, so skip)."""
    if record.duplicate:
        return
    person = record.person
    person_id = person.person_id
    if record.source == "health":
        if person.cp_flag_on is not None:
            yield [night, person_id, "health", "HEALTH_CHILD_PROTECTION", "open",
                   person.cp_flag_on.isoformat(), "", record.record_id]  # fmt: skip
    elif record.source == "education":
        if person.school_status == MISSING and person.school_status_on is not None:
            yield [night, person_id, "education", "MISSING_FROM_EDUCATION", "open",
                   person.school_status_on.isoformat(), "", record.record_id]  # fmt: skip
    elif record.source == "police":
        participation = record.participation
        if participation is not None and participation.concern_flag:
            happened = participation.incident.when.date().isoformat()
            yield [night, person_id, "police", f"POLICE_{participation.concern_flag}", "open",
                   happened, "", record.record_id]  # fmt: skip
    elif record.source == "socialwork":
        case = person.case
        if case is not None and case.case_type != NOT_A_CONCERN:
            closed = case.closed.date().isoformat() if case.closed else ""
            yield [night, person_id, "socialwork", case.case_type,
                   "closed" if case.closed else "open", case.opened.date().isoformat(), closed,
                   record.record_id]  # fmt: skip


def change_row(night: str, change: Change) -> list[str]:
    return [night, change.person_id, change.change, change.source, change.source_record_id]
