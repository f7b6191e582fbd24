"""generate_population: chunks of households -> every night's four extracts + truth."""

from __future__ import annotations

import csv
import random
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from linkage.generate import identifiers as ids
from linkage.generate.agencies import (
    AgencyView,
    add_incident,
    initial_view,
    open_case,
    record_rng,
    render_address,
    render_chi,
    render_dob,
    render_name,
    render_scn,
    street_text,
)
from linkage.generate.corruptions import RATES
from linkage.generate.population import Chunk, Person

EXTRACTS = {  # agency -> (file name, encoding, delimiter, columns)
    "health": (
        "health_patients.csv",
        "utf-8",
        ",",
        [
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
        ],
    ),
    "education": (
        "education_pupils.txt",
        "latin-1",
        "|",
        [
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
        ],
    ),
    "police": (
        "police_incidents.csv",
        "utf-8",
        ",",
        [
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
        ],
    ),
    "socialwork": (
        "socialwork_clients.csv",
        "latin-1",
        ",",
        [
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
        ],
    ),
}
TRUTH = {
    "records.csv": ["night", "source", "source_record_id", "person_id", "corruptions"],
    "people.csv": [
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
    ],
    "concerns.csv": ["night", "person_id", "agency", "concern_type", "status", "opened", "closed"],
    "changes.csv": ["night", "person_id", "change", "source", "source_record_id"],
}
NIGHTLY = {
    "move": 0.01,
    "remove": 0.002,
    "birth": 0.0008,
    "marriage": 0.001,
    "correct": 0.2,
    "new_incident": 0.03,
    "new_police": 0.0015,
    "close_case": 0.04,
    "new_case": 0.0008,
    "leave_school": 0.002,
}
SCHOOLS = [
    "Hillhead High School",
    "Kelvinside Academy",
    "Leith Academy",
    "St Mungo's Academy",
    "Portobello High School",
    "Harlaw Academy",
    "Perth Grammar",
    "Dunoon Grammar",
]


@dataclass
class GenerationSummary:
    people: int
    households: int
    records: dict[str, dict[str, int]] = field(default_factory=dict)
    out_dir: Path | None = None
    seconds: float = 0.0


def generate_population(
    out_dir: Path,
    people: int,
    seed: int,
    nights: int = 3,
    start_date: date = date(2026, 11, 1),
    chunk_size: int = 20_000,
    progress: Callable[[int], None] | None = None,
) -> GenerationSummary:
    """Write `nights` nightly snapshots of four agency extracts and the truth, deterministically."""
    started = time.perf_counter()
    out_dir = Path(out_dir)
    night_dates = [start_date + timedelta(days=k) for k in range(nights)]
    summary = GenerationSummary(people=people, households=0, out_dir=out_dir)
    with ExitStack() as stack:
        extract_writers = {}
        for night in night_dates:
            folder = out_dir / "landing" / night.isoformat()
            folder.mkdir(parents=True, exist_ok=True)
            for agency, (name, encoding, delimiter, columns) in EXTRACTS.items():
                handle = stack.enter_context(
                    (folder / name).open("w", encoding=encoding, errors="replace", newline="")
                )
                writer = csv.writer(handle, delimiter=delimiter, lineterminator="\n")
                writer.writerow(columns)
                extract_writers[(night, agency)] = writer
        (out_dir / "truth").mkdir(parents=True, exist_ok=True)
        truth_writers = {}
        for name, columns in TRUTH.items():
            handle = stack.enter_context(
                (out_dir / "truth" / name).open("w", encoding="utf-8", newline="")
            )
            truth_writers[name] = csv.writer(handle, lineterminator="\n")
            truth_writers[name].writerow(columns)
        done = 0
        chunk_index = 0
        issuer = ids.IdentifierIssuer(seed)
        while done < people:
            size = min(chunk_size, people - done)
            chunk = Chunk(seed, chunk_index, size, start_date, id_offset=done, issuer=issuer)
            _write_chunk(chunk, seed, night_dates, extract_writers, truth_writers, summary)
            summary.households += chunk.household_count
            done += len(chunk.people)
            chunk_index += 1
            if progress:
                progress(done)
    summary.people = done
    summary.seconds = round(time.perf_counter() - started, 2)
    return summary


def _write_chunk(
    chunk: Chunk,
    seed: int,
    night_dates: list[date],
    extract_writers: dict,
    truth_writers: dict,
    summary: GenerationSummary,
) -> None:
    views = {p.person_id: initial_view(chunk.rng, p, night_dates[0]) for p in chunk.people}
    for index, night in enumerate(night_dates):
        if index:
            _evolve(chunk, views, night, index, truth_writers["changes.csv"])
        counts = summary.records.setdefault(night.isoformat(), {a: 0 for a in EXTRACTS})
        for person in list(chunk.people):
            if person.first_night > index or (
                person.last_night is not None and person.last_night < index
            ):
                continue
            view = views[person.person_id]
            for agency, row_id, row, tags in _records(seed, person, view, night):
                extract_writers[(night, agency)].writerow(row)
                truth_writers["records.csv"].writerow(
                    [night.isoformat(), agency, row_id, person.person_id, ";".join(tags)]
                )
                counts[agency] += 1
            for concern in _concerns(person, view, night):
                truth_writers["concerns.csv"].writerow(
                    [night.isoformat(), person.person_id, *concern]
                )
    for person in chunk.people:
        truth_writers["people.csv"].writerow(
            [
                person.person_id,
                person.household_id,
                person.sex,
                person.dob.isoformat(),
                person.forename,
                person.middle_names,
                person.surname,
                person.birth_surname,
                person.chi,
                person.scn or "",
                ";".join(person.hard_cases),
                night_dates[person.first_night].isoformat(),
                "" if person.last_night is None else night_dates[person.last_night].isoformat(),
            ]
        )


def _evolve(chunk: Chunk, views: dict[str, AgencyView], night: date, index: int, changes) -> None:  # noqa: ANN001
    """One night's changes: moves, births, removals, marriages, corrections, new concerns."""
    rng = random.Random(f"{chunk.rng.random()}:{index}")
    log = lambda person, change, source="": changes.writerow(  # noqa: E731
        [night.isoformat(), person.person_id, change, source, ""]
    )
    households: dict[str, list[Person]] = {}
    for person in chunk.people:
        if person.last_night is None:
            households.setdefault(person.household_id, []).append(person)
    for members in households.values():
        if rng.random() < NIGHTLY["move"]:
            address = chunk.new_address()
            for person in members:
                person.addresses.append(address)
                log(person, "moved")
    for person in [p for members in households.values() for p in members]:
        view = views[person.person_id]
        if rng.random() < NIGHTLY["remove"]:
            person.last_night = index - 1
            log(person, "removed_record")
            continue
        if person.sex == "F" and person.age_on(night) > 20 and rng.random() < NIGHTLY["marriage"]:
            person.surname = chunk._surname()
            log(person, "name_change")
        if rng.random() < NIGHTLY["correct"] * 0.05:
            agency = rng.choice(["health", "socialwork", "police"])
            view.corrected.add(agency)
            log(person, "corrected_record", agency)
        if view.nominal and rng.random() < NIGHTLY["new_incident"]:
            add_incident(rng, person, view, night - timedelta(days=1))
            log(person, "new_incident", "police")
        elif (
            not view.nominal and person.age_on(night) > 12 and rng.random() < NIGHTLY["new_police"]
        ):
            view.nominal = ids.opaque_ref("NOM", person.person_id, 0, 10, 1)
            add_incident(rng, person, view, night - timedelta(days=1))
            log(person, "new_incident", "police")
        if view.case and view.case.closed is None and rng.random() < NIGHTLY["close_case"]:
            view.case.closed = night - timedelta(days=1)
            log(person, "case_closed", "socialwork")
        elif view.case is None and rng.random() < NIGHTLY["new_case"] * (
            20 if person.troubled else 1
        ):
            open_case(rng, person, view, night - timedelta(days=1))
            log(person, "case_opened", "socialwork")
        if (
            view.in_education
            and view.school_status == "Enrolled"
            and rng.random() < NIGHTLY["leave_school"]
        ):
            view.school_status = rng.choice(["Left - destination unknown", "Left - transferred"])
            view.school_status_date = night - timedelta(days=1)
            log(person, "left_school", "education")
    chunk._previous_address = None  # newborns have only their household's address
    for members in households.values():
        mother = next((p for p in members if p.sex == "F" and 18 < p.age_on(night) < 45), None)
        if mother and rng.random() < NIGHTLY["birth"] * len(members):
            sex = rng.choice("MF")
            baby = chunk._person(
                mother.household_id,
                sex,
                night - timedelta(days=1),
                mother.surname,
                mother.address,
                mother.troubled,
            )
            baby.first_night = index
            views[baby.person_id] = AgencyView(in_health=True, in_education=False)
            log(baby, "new_person", "health")


def _records(seed: int, person: Person, view: AgencyView, night: date):  # noqa: ANN202
    """Every extract row this person has tonight: (agency, record id, row, corruption tags)."""
    if view.in_health:
        yield from _health_rows(seed, person, view, night)
    if view.in_education:
        yield _education_row(seed, person, view, night)
    for ordinal, incident in enumerate(view.incidents):
        yield _police_row(seed, person, view, incident, ordinal, night)
    if view.case:
        yield from _socialwork_rows(seed, person, view, night)


def _clean(agency: str, view: AgencyView) -> bool:
    return agency in view.corrected


def _name_dob_address(
    seed: int, person: Person, agency: str, ordinal: int, night: date, clean: bool
):  # noqa: ANN202
    if clean:
        from linkage.generate.agencies import RenderedName

        name = RenderedName(
            person.forename.title(),
            person.surname.title(),
            person.middle_names.title(),
            ["corrected"],
        )
        return name, person.dob, person.address
    name = render_name(
        record_rng(seed, person.person_id, agency + ":name", ordinal), person, agency, night
    )
    dob = render_dob(
        record_rng(seed, person.person_id, agency + ":dob", ordinal), person, agency, name.tags
    )
    address = render_address(
        record_rng(seed, person.person_id, agency + ":addr", ordinal), person, agency, name.tags
    )
    return name, dob, address


def _health_rows(seed: int, person: Person, view: AgencyView, night: date):  # noqa: ANN202
    copies = (
        2
        if record_rng(seed, person.person_id, "health:dup").random() < RATES["duplicate"]["health"]
        else 1
    )
    for ordinal in range(copies):
        rng = record_rng(seed, person.person_id, "health", ordinal)
        row_id = ids.opaque_ref("HP", person.person_id, ordinal, 10, 5)
        name, dob, address = _name_dob_address(
            seed, person, "health", ordinal, night, _clean("health", view)
        )
        tags = name.tags + (["duplicate"] if ordinal else [])
        chi = (
            render_chi(rng, person.chi, "health", tags)
            if not _clean("health", view)
            else person.chi
        )
        if ordinal and rng.random() < 0.5:
            chi = ""
        flag = view.health_cp_flag is not None and person.age_on(night) < 18
        yield (
            "health",
            row_id,
            [
                row_id,
                chi,
                name.forename,
                name.surname,
                _fmt(dob, "%d/%m/%Y"),
                person.sex,
                street_text(rng, address, rng.random() < 0.3),
                address.flat or "",
                address.town.title(),
                address.postcode,
                f"{rng.randrange(10000, 99999)}",
                "Y" if flag else "N",
                _fmt(view.health_cp_flag, "%d/%m/%Y") if flag else "",
            ],
            tags,
        )


def _education_row(seed: int, person: Person, view: AgencyView, night: date):  # noqa: ANN202
    rng = record_rng(seed, person.person_id, "education")
    row_id = ids.opaque_ref("PUP", person.person_id, 0, 10, 6)
    name, dob, address = _name_dob_address(seed, person, "education", 0, night, False)
    scn = render_scn(rng, person.scn or "", name.tags)
    preferred = ""
    if "nickname" in name.tags:  # schools record the known-as name beside the legal one
        preferred, name.forename = name.forename, person.forename.title()
    home = street_text(rng, address, rng.random() < 0.5) + (
        f", {address.flat.title()}" if address.flat else ""
    )
    return (
        "education",
        row_id,
        [
            row_id,
            scn,
            name.forename,
            preferred,
            name.surname,
            _fmt(dob, "%Y-%m-%d"),
            "Male" if person.sex == "M" else "Female",
            home,
            address.town.title(),
            address.postcode,
            rng.choice(SCHOOLS),
            view.school_status,
            _fmt(view.school_status_date, "%Y-%m-%d"),
        ],
        name.tags,
    )


def _police_row(seed: int, person: Person, view: AgencyView, incident, ordinal: int, night: date):  # noqa: ANN001, ANN202
    rng = record_rng(seed, person.person_id, "police", ordinal)
    name, dob, address = _name_dob_address(
        seed, person, "police", ordinal, night, _clean("police", view)
    )
    nominal = view.nominal or ""
    if incident.fresh_nominal:
        nominal = ids.opaque_ref("NOM", person.person_id, ordinal + 1, 10, 1)
        name.tags.append("fresh_nominal")
    sex_code = "9" if rng.random() < 0.01 else ("1" if person.sex == "M" else "2")
    text = street_text(rng, address, True) + (
        f", {address.town.title()}" if rng.random() < 0.5 else ""
    )
    when = incident.when
    return (
        "police",
        incident.row_ref,
        [
            incident.row_ref,
            incident.incident_ref,
            nominal,
            view.pnc or "",
            name.forename,
            name.surname,
            _fmt(dob, "%d.%m.%Y"),
            sex_code,
            text,
            address.postcode if rng.random() > 0.05 else "",
            f"{when:%d.%m.%Y} {incident.minutes // 60:02d}:{incident.minutes % 60:02d}",
            incident.incident_type,
            incident.concern_flag,
            incident.role,
        ],
        name.tags,
    )


def _socialwork_rows(seed: int, person: Person, view: AgencyView, night: date):  # noqa: ANN202
    case = view.case
    if case is None:
        return
    copies = (
        2
        if record_rng(seed, person.person_id, "sw:dup").random() < RATES["duplicate"]["socialwork"]
        else 1
    )
    for ordinal in range(copies):
        rng = record_rng(seed, person.person_id, "socialwork", ordinal)
        row_id = (
            view.client_id
            if ordinal == 0
            else ids.opaque_ref("SW", person.person_id, ordinal, 10, 2)
        )
        name, dob, address = _name_dob_address(
            seed, person, "socialwork", ordinal, night, _clean("socialwork", view)
        )
        tags = name.tags + (["duplicate"] if ordinal else [])
        chi = ""
        if rng.random() < 0.6:
            chi = (
                render_chi(rng, person.chi, "socialwork", tags)
                if not _clean("socialwork", view)
                else person.chi
            )
        previous = (
            person.birth_surname.title()
            if person.birth_surname != person.surname and rng.random() < 0.6
            else ""
        )
        yield (
            "socialwork",
            row_id,
            [
                row_id,
                case.case_ref,
                chi,
                name.forename,
                name.surname,
                previous,
                _fmt(dob, "%Y-%m-%d %H:%M:%S"),
                {"M": "Male", "F": "Female"}[person.sex] if rng.random() > 0.01 else "Unknown",
                street_text(rng, address, rng.random() < 0.3),
                address.flat or "",
                address.town.title(),
                address.postcode,
                case.case_type,
                "Closed" if case.closed else "Open",
                f"{case.opened:%Y-%m-%d} 09:00:00",
                f"{case.closed:%Y-%m-%d} 17:00:00" if case.closed else "",
            ],
            tags,
        )


def _concerns(person: Person, view: AgencyView, night: date):  # noqa: ANN202
    """What is truly true tonight: (agency, type, status, opened, closed)."""
    if view.case and view.case.case_type != "ADULT_CARE":
        case = view.case
        yield (
            "socialwork",
            case.case_type,
            "closed" if case.closed else "open",
            case.opened.isoformat(),
            case.closed.isoformat() if case.closed else "",
        )
    if view.in_health and view.health_cp_flag and person.age_on(night) < 18:
        yield ("health", "HEALTH_CHILD_PROTECTION", "open", view.health_cp_flag.isoformat(), "")
    for incident in view.incidents:
        if incident.concern_flag:
            yield (
                "police",
                f"POLICE_{incident.concern_flag}",
                "open",
                incident.when.isoformat(),
                "",
            )
    if view.in_education and view.school_status == "Left - destination unknown":
        yield (
            "education",
            "MISSING_FROM_EDUCATION",
            "open",
            view.school_status_date.isoformat() if view.school_status_date else "",
            "",
        )


def _fmt(value: date | None, pattern: str) -> str:
    return value.strftime(pattern) if value else ""
