"""Concerns: police incidents, social-work cases, health child-protection flags, schooling.

Concerns cluster. A troubled household (more often one with children) is where police
attend domestic incidents with children present, where social work opens child-protection
cases, where health flags the children and where a pupil goes missing from education, so
a downstream alerting stage sees the same family from several agencies.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from itertools import accumulate

from linkage.generate import rates
from linkage.generate.households import DAYS_PER_YEAR, Household, Person
from linkage.generate.identifiers import Issuer
from linkage.generate.places import school_name

INCIDENT_COUNTS = list(rates.INCIDENTS_PER_PERSON)
INCIDENT_COUNT_WEIGHTS = list(accumulate(rates.INCIDENTS_PER_PERSON.values()))
POLICE_LOOKBACK_DAYS = 730
ENROLLED, TRANSFERRED, MISSING = "Enrolled", "Left - transferred", "Left - destination unknown"
CHILD_CASE_TYPES = ("CHILD_PROTECTION", "LOOKED_AFTER_CHILD", "CHILD_IN_NEED")
ADULT_CASE_TYPES = ("ADULT_SUPPORT_PROTECTION", "ADULT_CARE")


@dataclass(slots=True, eq=False)
class Incident:
    incident_ref: str
    when: datetime
    incident_type: str


@dataclass(slots=True, frozen=True)
class Participation:
    """One person's part in one incident: one row of the police extract."""

    incident: Incident
    person: Person
    role: str
    concern_flag: str
    ordinal: int  # 1 for the person's first incident, 2 for their second...


@dataclass(slots=True, eq=False)
class Case:
    case_ref: str
    case_type: str
    opened: datetime
    closed: datetime | None = None


class ConcernMaker:
    """Draws concerns for one chunk, at the first night or as nightly events."""

    def __init__(self, rng: random.Random, issuer: Issuer, residents: list[Person]) -> None:
        self.rng, self.issuer = rng, issuer
        self.residents = residents  # the chunk's people: second parties come from here

    # -- households ------------------------------------------------------------------------
    def mark_troubled(self, household: Household, today: date) -> None:
        has_children = any(p.age_on(today) < 18 for p in household.members)
        rate = rates.TROUBLED_RATE["with_children" if has_children else "without_children"]
        household.troubled = self.rng.random() < rate
        household.police_history = (
            household.troubled and self.rng.random() < rates.POLICE_HISTORY_TROUBLED
        )

    # -- police ----------------------------------------------------------------------------
    def police_history(self, household: Household, today: date) -> list[Participation]:
        """Incidents in the two years before the first night, for one household."""
        rng = self.rng
        rows: list[Participation] = []
        if household.police_history:
            for _ in range(self._incident_count()):
                when = self._past_moment(today, POLICE_LOOKBACK_DAYS)
                rows += self.household_incident(household, when)
        for person in household.members:
            if rng.random() < _baseline_police_rate(person.age_on(today)):
                for _ in range(self._incident_count()):
                    when = self._past_moment(today, POLICE_LOOKBACK_DAYS)
                    if when.date() > person.dob + timedelta(days=int(12 * DAYS_PER_YEAR)):
                        rows += self.individual_incident(person, when)
        return rows

    def household_incident(self, household: Household, when: datetime) -> list[Participation]:
        """A domestic (or a child concern) at the household; children are often present."""
        rng = self.rng
        day = when.date()
        members = [p for p in household.members if p.dob < day and p.present]
        adults = [p for p in members if p.age_on(day) >= 18]
        children = [p for p in members if p.age_on(day) < 18]
        teenagers = [p for p in children if p.age_on(day) >= 12]
        if teenagers and rng.random() < 0.2:
            incident = self._incident(when, "MISSING PERSON")
            return [self._take_part(incident, rng.choice(teenagers), "SUBJECT", "MISSING_PERSON")]
        if not adults:
            return []
        women = [p for p in adults if p.sex == "F"] or adults
        men = [p for p in adults if p.sex == "M"]
        incident = self._incident(when, "DOMESTIC")
        victim = rng.choice(women)
        rows = [self._take_part(incident, victim, "VICTIM", "DOMESTIC_ABUSE")]
        suspects = [p for p in men if p is not victim]
        if suspects:  # else the suspect is an ex-partner who lives elsewhere
            rows.append(self._take_part(incident, suspects[0], "SUSPECT", "DOMESTIC_ABUSE"))
        for child in children:
            if rng.random() < rates.CHILD_PRESENT_RATE:
                rows.append(self._take_part(incident, child, "CHILD_PRESENT", "CHILD_CONCERN"))
        return rows

    def individual_incident(self, person: Person, when: datetime) -> list[Participation]:
        """An incident about one person, sometimes with someone from another household."""
        rng = self.rng
        age = (when.date() - person.dob).days / DAYS_PER_YEAR
        incident_type, role, flag = _individual_kind(rng, age)
        incident = self._incident(when, incident_type)
        rows = [self._take_part(incident, person, role, flag)]
        if incident_type in ("ASSAULT", "THEFT", "ASB") and rng.random() < rates.SECOND_PARTY_RATE:
            other = rng.choice(self.residents)
            if other.household is not person.household and other.age_on(when.date()) >= 12:
                other_role = {"SUSPECT": "VICTIM", "VICTIM": "SUSPECT"}.get(role, "WITNESS")
                if rng.random() < 0.3:
                    other_role = "WITNESS"
                rows.append(self._take_part(incident, other, other_role, ""))
        return rows

    def _take_part(self, incident: Incident, person: Person, role: str, flag: str) -> Participation:
        """The person's row; their first incident makes them a police nominal."""
        rng = self.rng
        if not person.nominal:
            person.nominal = self.issuer.ref("NOM", 7)
        day = incident.when.date()
        adult = (day - person.dob).days >= 18 * DAYS_PER_YEAR
        first_incident = person.incident_count == 0
        if adult and first_incident and rng.random() < rates.PNC_RATE:
            first_year = max(1995, person.dob.year + 16)
            person.pnc = self.issuer.pnc(rng.randint(min(first_year, day.year), day.year))
        person.incident_count += 1
        return Participation(incident, person, role, flag, person.incident_count)

    def _incident(self, when: datetime, incident_type: str) -> Incident:
        ref = f"PS-{when:%Y%m%d}-{self.issuer.serial('incident', 7):07d}"
        return Incident(ref, when, incident_type)

    def _incident_count(self) -> int:
        return self.rng.choices(INCIDENT_COUNTS, cum_weights=INCIDENT_COUNT_WEIGHTS)[0]

    def _past_moment(self, today: date, days_back: int) -> datetime:
        day = today - timedelta(days=self.rng.randint(1, days_back))
        return moment_on(self.rng, day)

    # -- social work -----------------------------------------------------------------------
    def initial_cases(self, household: Household, today: date) -> None:
        """Open (or recently closed) social-work cases at the first night."""
        rng = self.rng
        case_rate = rates.SOCIALWORK_CASE
        troubled_children = household.troubled and rng.random() < case_rate["troubled_children"]
        family_type = rng.choices(CHILD_CASE_TYPES, (50, 15, 35))[0]
        for person in household.members:
            age = person.age_on(today)
            if age < 18:
                chance = 1.0 if troubled_children else case_rate["child"]
                case_type = family_type if troubled_children else _child_case_type(rng)
            elif household.troubled:
                chance, case_type = rates.SOCIALWORK_CASE["troubled_adult"], ADULT_CASE_TYPES[0]
            else:
                chance = rates.SOCIALWORK_CASE["elderly" if age >= 75 else "adult"]
                case_type = _adult_case_type(rng, age)
            if rng.random() < chance:
                opened = today - timedelta(days=rng.randint(1, min(1100, max(1, int(age * 365)))))
                case = self.open_case(person, case_type, moment_on(rng, opened, office=True))
                if rng.random() < rates.CASE_CLOSED_BEFORE_NIGHT_1:
                    self._close_before(case, today)

    def open_case(self, person: Person, case_type: str, opened: datetime) -> Case:
        person.case = Case(self.issuer.ref("SWK", 7), case_type, opened)
        return person.case

    def new_case_type(self, person: Person, today: date) -> str:
        age = person.age_on(today)
        if age < 18:
            troubled = person.household.troubled
            return CHILD_CASE_TYPES[0] if troubled else _child_case_type(self.rng)
        return _adult_case_type(self.rng, age)

    def _close_before(self, case: Case, today: date) -> None:
        span = (today - case.opened.date()).days
        if span > 2:
            closed = case.opened.date() + timedelta(days=self.rng.randint(1, span - 1))
            case.closed = moment_on(self.rng, closed, office=True)

    # -- health ----------------------------------------------------------------------------
    def initial_cp_flag(self, person: Person, today: date) -> None:
        """Health's child-protection flag: mostly, not always, where social work has a case."""
        rng = self.rng
        if person.age_on(today) >= 18:
            return
        case, flag_rate = person.case, rates.HEALTH_CP_FLAG
        if case and case.case_type == "CHILD_PROTECTION":
            kept = case.closed is None or rng.random() < flag_rate["kept_after_closure"]
            if kept and rng.random() < flag_rate["open_cp_case"]:
                person.cp_flag_on = min(today, case.opened.date() + timedelta(rng.randint(0, 14)))
        elif person.household.troubled and rng.random() < flag_rate["troubled_child_without_case"]:
            person.cp_flag_on = today - timedelta(days=rng.randint(1, 400))
            person.cp_flag_on = max(person.cp_flag_on, person.dob)

    # -- education -------------------------------------------------------------------------
    def enrol(self, person: Person, today: date) -> None:
        """School, status and status date of a pupil at the first night (or on moving in)."""
        rng = self.rng
        started = school_start(person.dob)
        secondary = today >= date(started.year + 7, 8, 16)
        address = person.address
        person.school = school_name(address.town, address.district, secondary, person.household.key)
        person.school_status = ENROLLED
        person.school_status_on = max(started, person.moved_on or started)
        if secondary and person.moved_on is None:
            person.school_status_on = date(started.year + 7, 8, 16)
        troubled = person.household.troubled
        missing = rates.SCHOOL_STATUS["missing_troubled" if troubled else "missing"]
        draw = rng.random()
        if draw < missing:
            person.school_status = MISSING
        elif draw < missing + rates.SCHOOL_STATUS["transferred"]:
            person.school_status = TRANSFERRED
        if person.school_status != ENROLLED:
            days_enrolled = max(1, (today - person.school_status_on).days)
            left = person.school_status_on + timedelta(rng.randint(0, days_enrolled - 1))
            person.school_status_on = left


def school_start(dob: date) -> date:
    """Scottish P1 intake: children born March to February start together in August."""
    year = dob.year + 5 if dob.month >= 3 else dob.year + 4
    return date(year, 8, 16)


def is_school_age(person: Person, today: date) -> bool:
    return school_start(person.dob) <= today and person.age_on(today) < rates.SCHOOL_AGE[1]


def moment_on(rng: random.Random, day: date, office: bool = False) -> datetime:
    """A time on that day: office hours for casework, mostly evenings for police."""
    if office:
        minutes = rng.randint(8 * 60 + 30, 17 * 60)
    else:
        minutes = int(rng.triangular(0, 24 * 60, 21 * 60)) % (24 * 60)
    return datetime.combine(day, time(minutes // 60, minutes % 60))


def _baseline_police_rate(age: float) -> float:
    rate = 0.0
    for lowest_age, age_rate in rates.POLICE_HISTORY_BY_AGE:
        if age >= lowest_age:
            rate = age_rate
    return rate


def _individual_kind(rng: random.Random, age: float) -> tuple[str, str, str]:
    """(incident type, role, concern flag) for an incident about one person of this age."""
    if age < 18:
        options = [
            (("ASB", "SUSPECT", ""), 30),
            (("THEFT", "SUSPECT", ""), 15),
            (("ASSAULT", "VICTIM", "CHILD_CONCERN"), 10),
            (("ASSAULT", "SUSPECT", ""), 10),
            (("MISSING PERSON", "SUBJECT", "MISSING_PERSON"), 20),
            (("CONCERN FOR PERSON", "SUBJECT", "CHILD_CONCERN"), 15),
        ]
    elif age < 70:
        options = [
            (("THEFT", "SUSPECT", ""), 20),
            (("THEFT", "VICTIM", ""), 12),
            (("ASSAULT", "SUSPECT", ""), 15),
            (("ASSAULT", "VICTIM", ""), 12),
            (("ASB", "SUSPECT", ""), 18),
            (("CONCERN FOR PERSON", "SUBJECT", "VULNERABLE_ADULT"), 12),
            (("MISSING PERSON", "SUBJECT", "MISSING_PERSON"), 5),
            (("ASSAULT", "WITNESS", ""), 6),
        ]
    else:
        options = [
            (("CONCERN FOR PERSON", "SUBJECT", "VULNERABLE_ADULT"), 45),
            (("THEFT", "VICTIM", ""), 30),
            (("MISSING PERSON", "SUBJECT", "MISSING_PERSON"), 15),
            (("ASB", "WITNESS", ""), 10),
        ]
    kinds, weights = zip(*options, strict=True)
    return rng.choices(kinds, weights)[0]


def _child_case_type(rng: random.Random) -> str:
    return rng.choices(CHILD_CASE_TYPES, (20, 5, 75))[0]


def _adult_case_type(rng: random.Random, age: float) -> str:
    protection_share = 15 if age >= 75 else 40
    return rng.choices(ADULT_CASE_TYPES, (protection_share, 100 - protection_share))[0]
