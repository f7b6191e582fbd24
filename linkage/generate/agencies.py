"""How each agency sees a person: its coverage, its concerns and its record rows."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta

from linkage.generate import identifiers as ids
from linkage.generate.corruptions import (
    RATES,
    display_case,
    mac_variant,
    nickname,
    strip_accents,
    typo,
)
from linkage.generate.population import Address, Person

PNC_LETTERS = "ABCDEFGHJKLMNPQRTUVWXY"
HEALTH_COVERAGE, EDUCATION_COVERAGE = 0.97, 0.95
POLICE_RATE, POLICE_RATE_TROUBLED = 0.04, 0.35
SOCIALWORK_RATE, SOCIALWORK_RATE_TROUBLED = 0.012, 0.4
MISSING_FROM_EDUCATION_RATE, MISSING_TROUBLED = 0.002, 0.05


@dataclass
class Case:
    case_ref: str
    case_type: str
    opened: date
    closed: date | None = None


@dataclass
class Incident:
    incident_ref: str
    row_ref: str
    when: date
    minutes: int
    incident_type: str
    concern_flag: str
    role: str
    fresh_nominal: bool


@dataclass
class AgencyView:
    """Which agencies know a person, and what they hold (evolves night by night)."""

    in_health: bool
    in_education: bool
    nominal: str | None = None
    pnc: str | None = None
    incidents: list[Incident] = field(default_factory=list)
    client_id: str | None = None
    case: Case | None = None
    health_cp_flag: date | None = None
    school_status: str = "Enrolled"
    school_status_date: date | None = None
    corrected: set[str] = field(default_factory=set)  # agencies whose record was corrected


def record_rng(seed: int, person_id: str, agency: str, ordinal: int = 0) -> random.Random:
    """Per-record randomness: the same record is corrupted the same way every night."""
    return random.Random(f"{seed}:{person_id}:{agency}:{ordinal}")


def initial_view(rng: random.Random, person: Person, today: date) -> AgencyView:
    age = person.age_on(today)
    view = AgencyView(
        in_health=rng.random() < HEALTH_COVERAGE,
        in_education=4.5 <= age < 18
        and person.scn is not None
        and rng.random() < EDUCATION_COVERAGE,
    )
    police_rate = POLICE_RATE_TROUBLED if person.troubled else POLICE_RATE
    if (
        age >= 12
        and rng.random() < police_rate
        or (person.troubled and age < 12 and rng.random() < 0.3)
    ):
        view.nominal = ids.opaque_ref("NOM", person.person_id, 0, 10, 1)
        if age >= 18 and rng.random() < 0.3:
            serial = f"{int(person.person_id[1:]) * 7933 % 10**7:07d}"  # unique below 10M people
            view.pnc = f"{rng.randrange(1995, 2025)}/{serial}{rng.choice(PNC_LETTERS)}"
        for _ in range(rng.choices([1, 2, 3, 4, 5, 6], [50, 22, 12, 8, 5, 3])[0]):
            add_incident(rng, person, view, today - timedelta(days=rng.randrange(1, 730)))
    sw_rate = SOCIALWORK_RATE_TROUBLED if person.troubled else SOCIALWORK_RATE
    if rng.random() < sw_rate:
        case = open_case(rng, person, view, today - timedelta(days=rng.randrange(1, 1500)))
        if rng.random() < 0.3:
            case.closed = min(
                today - timedelta(days=1), case.opened + timedelta(days=rng.randrange(30, 900))
            )
    if view.in_education:
        rate = MISSING_TROUBLED if person.troubled else MISSING_FROM_EDUCATION_RATE
        if rng.random() < rate:
            view.school_status = "Left - destination unknown"
            view.school_status_date = today - timedelta(days=rng.randrange(1, 200))
        elif rng.random() < 0.01:
            view.school_status = "Left - transferred"
            view.school_status_date = today - timedelta(days=rng.randrange(1, 200))
    return view


def open_case(rng: random.Random, person: Person, view: AgencyView, opened: date) -> Case:
    child = person.age_on(opened) < 18
    if child:
        weights = [55, 20, 25] if person.troubled else [15, 15, 70]
        case_type = rng.choices(
            ["CHILD_PROTECTION", "LOOKED_AFTER_CHILD", "CHILD_IN_NEED"], weights
        )[0]
    else:
        case_type = rng.choices(["ADULT_SUPPORT_PROTECTION", "ADULT_CARE"], [35, 65])[0]
    view.client_id = view.client_id or ids.opaque_ref("SW", person.person_id, 0, 10, 2)
    case = Case(
        ids.opaque_ref("CASE", person.person_id, rng.randrange(64), 10, 3), case_type, opened
    )
    view.case = case
    if case_type == "CHILD_PROTECTION" and view.in_health and rng.random() < 0.8:
        view.health_cp_flag = opened + timedelta(days=rng.randrange(0, 30))
    return case


def add_incident(rng: random.Random, person: Person, view: AgencyView, when: date) -> None:
    age = person.age_on(when)
    if age < 16:
        incident_type, flag, role = rng.choice(
            [
                ("DOMESTIC", "CHILD_CONCERN", "CHILD_PRESENT"),
                ("CONCERN FOR PERSON", "CHILD_CONCERN", "SUBJECT"),
                ("MISSING PERSON", "MISSING_PERSON", "SUBJECT"),
                ("ASB", "", "SUSPECT"),
            ]
        )
    else:
        incident_type = rng.choices(
            ["DOMESTIC", "ASSAULT", "THEFT", "ASB", "MISSING PERSON", "CONCERN FOR PERSON"],
            [30 if person.troubled else 10, 15, 20, 20, 5, 10],
        )[0]
        flag = {
            "DOMESTIC": "DOMESTIC_ABUSE",
            "MISSING PERSON": "MISSING_PERSON",
            "CONCERN FOR PERSON": "VULNERABLE_ADULT",
        }.get(incident_type, "")
        role = (
            rng.choice(["VICTIM", "SUSPECT", "WITNESS"])
            if incident_type != "CONCERN FOR PERSON"
            else "SUBJECT"
        )
    view.incidents.append(
        Incident(
            incident_ref=f"INC{rng.randrange(10**8, 10**9)}",
            row_ref=ids.opaque_ref("IP", person.person_id, len(view.incidents), 10, 4),
            when=when,
            minutes=rng.randrange(0, 1440),
            incident_type=incident_type,
            concern_flag=flag,
            role=role,
            fresh_nominal=len(view.incidents) > 0 and rng.random() < 0.05,
        )
    )


# -- rendering records ---------------------------------------------------------------------
@dataclass
class RenderedName:
    forename: str
    surname: str
    middle: str
    tags: list[str]


def render_name(rng: random.Random, person: Person, agency: str, today: date) -> RenderedName:
    rates = RATES
    tags: list[str] = []
    forename, surname, middle = person.forename, person.surname, person.middle_names
    if agency == "health" and person.age_on(today) < 0.12 and rng.random() < 0.5:
        forename = "BABY"
        tags.append("baby_forename")
    elif rng.random() < rates["nickname"][agency] and (nick := nickname(rng, forename)):
        forename = nick
        tags.append("nickname")
    if person.birth_surname != person.surname and rng.random() < rates["birth_surname"][agency]:
        surname = person.birth_surname
        tags.append("birth_surname")
    if rng.random() < rates["mac_variant"][agency] and (variant := mac_variant(rng, surname)):
        surname = variant
        tags.append("mac_variant")
    if rng.random() < rates["typo_forename"][agency] and forename != "BABY":
        forename = typo(rng, forename)
        tags.append("typo_forename")
    if rng.random() < rates["typo_surname"][agency]:
        surname = typo(rng, surname)
        tags.append("typo_surname")
    if strip_accents(forename) != forename and rng.random() < rates["accent_dropped"][agency]:
        forename = strip_accents(forename)
        tags.append("accent_dropped")
    if middle and rng.random() < rates["middle_in_forename"][agency]:
        forename = f"{forename} {middle}"
        middle = ""
        tags.append("middle_in_forename")
    if rng.random() < rates["name_swap"][agency]:
        forename, surname = surname, forename
        tags.append("name_swap")
    upper = rng.random() < rates["case_upper"][agency]
    return RenderedName(
        display_case(rng, forename, upper),
        display_case(rng, surname, upper),
        display_case(rng, middle, upper),
        tags,
    )


def render_dob(rng: random.Random, person: Person, agency: str, tags: list[str]) -> date | None:
    dob = person.dob
    if rng.random() < RATES["dob_missing"][agency]:
        tags.append("dob_missing")
        return None
    if rng.random() < RATES["dob_placeholder"][agency]:
        tags.append("dob_placeholder")
        return date(1900, 1, 1)
    if (
        dob.day <= 12
        and dob.day != dob.month
        and rng.random() < RATES["dob_day_month_swap"][agency]
    ):
        tags.append("dob_day_month_swap")
        return date(dob.year, dob.day, dob.month)
    if rng.random() < RATES["dob_typo"][agency]:
        tags.append("dob_typo")
        shifted = dob + timedelta(days=rng.choice([-1, 1, 10, -10, 365, -365]))
        return shifted
    return dob


def render_address(rng: random.Random, person: Person, agency: str, tags: list[str]) -> Address:
    if len(person.addresses) > 1 and rng.random() < RATES["moved_old_address"][agency] * 3:
        tags.append("moved_old_address")
        return person.addresses[-2]
    return person.address


def render_chi(rng: random.Random, chi: str, agency: str, tags: list[str]) -> str:
    if rng.random() < RATES["id_miskeyed"][agency]:
        tags.append("chi_miskeyed")
        return ids.miskey(rng, chi, ids.is_valid_chi)
    return chi


def render_scn(rng: random.Random, scn: str, tags: list[str]) -> str:
    if rng.random() < RATES["id_miskeyed"]["education"]:
        tags.append("scn_miskeyed")
        return ids.miskey(rng, scn, ids.is_valid_scn)
    return scn


def street_text(rng: random.Random, address: Address, abbreviate: bool) -> str:
    street_type = address.street_type[1] if abbreviate else address.street_type[0]
    return f"{address.house_number} {address.street.title()} {street_type.title()}"
