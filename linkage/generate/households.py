"""True people and households: who lives where, their names, dates of birth and hard cases.

Households are built kind by kind (single adults, couples, families, three generations,
sharers) with Scotland-like shares; surnames follow marriage and parentage, so a married
woman's birth surname and a grandmother's surname are real family links.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from itertools import accumulate
from typing import TYPE_CHECKING

from linkage.generate import rates
from linkage.generate.identifiers import Issuer
from linkage.generate.names import NamePicker
from linkage.generate.places import Address, AddressBook, gaelic_rate

if TYPE_CHECKING:
    from linkage.generate.concerns import Case
    from linkage.generate.records import Record

DAYS_PER_YEAR = 365.25
MAX_AGE = 98  # CHI holds a two-digit year: nobody is 100, so no two centuries collide
KINDS = list(rates.HOUSEHOLD_MIX)
KIND_WEIGHTS = list(accumulate(rates.HOUSEHOLD_MIX.values()))
CHILD_COUNTS = list(rates.CHILDREN_PER_FAMILY)
CHILD_COUNT_WEIGHTS = list(accumulate(rates.CHILDREN_PER_FAMILY.values()))


@dataclass(slots=True, frozen=True)
class Snapshot:
    """A person's details as they were at one moment (a police incident keeps these)."""

    forename: str
    middle_names: str
    surname: str
    birth_surname: str
    married: bool
    dob: date
    sex: str
    address: Address
    previous_address: Address | None


@dataclass(slots=True, eq=False)
class Person:
    """One true person, and what each agency holds about them."""

    person_id: str
    household: Household
    sex: str  # M / F
    dob: date
    forename: str
    middle_names: str
    surname: str
    birth_surname: str
    married: bool
    chi: str
    address: Address
    previous_address: Address | None = None
    moved_on: date | None = None
    father: Person | None = None  # only set for a son who carries his father's name
    hard_cases: list[str] = field(default_factory=list)
    first_night: int = 0  # index into the nights
    last_night: int | None = None  # last night present, None while still here
    records: list[Record] = field(default_factory=list)
    # what the agencies hold
    scn: str = ""
    nominal: str = ""
    pnc: str = ""
    housing_ref: str = ""  # HousingPersonRef, once on the housing register (housing variant)
    incident_count: int = 0
    case: Case | None = None
    cp_flag_on: date | None = None
    school: str = ""
    school_status: str = ""
    school_status_on: date | None = None

    def age_on(self, day: date) -> float:
        return (day - self.dob).days / DAYS_PER_YEAR

    def snapshot(self) -> Snapshot:
        return Snapshot(
            self.forename,
            self.middle_names,
            self.surname,
            self.birth_surname,
            self.married,
            self.dob,
            self.sex,
            self.address,
            self.previous_address,
        )

    @property
    def present(self) -> bool:
        return self.last_night is None


@dataclass(slots=True, eq=False)
class Household:
    household_id: str
    key: int  # a number that picks the household's GP practice and school
    address: Address
    members: list[Person] = field(default_factory=list)
    troubled: bool = False  # concerns cluster here: police, social work, health, school
    police_history: bool = False

    @property
    def present_members(self) -> list[Person]:
        return [person for person in self.members if person.present]


class HouseholdBuilder:
    """Builds households for one chunk from the chunk's random stream."""

    def __init__(
        self,
        rng: random.Random,
        issuer: Issuer,
        names: NamePicker,
        addresses: AddressBook,
        today: date,
    ) -> None:
        self.rng, self.issuer, self.names = rng, issuer, names
        self.addresses, self.today = addresses, today

    # -- households ------------------------------------------------------------------------
    def household(self, room: int) -> Household:
        """A household of at most `room` people, its kind drawn from the Scottish mix."""
        rng = self.rng
        shared = rng.random() < rates.SHARED_ADDRESS_RATE
        address = self.addresses.occupied_dwelling() if shared else self.addresses.vacant_dwelling()
        household = Household(self.issuer.household_id(), rng.getrandbits(30), address)
        kind = rng.choices(KINDS, cum_weights=KIND_WEIGHTS)[0] if room > 1 else "single"
        if kind == "three_generations" and room < 3:
            kind = "couple"
        builders = {
            "single": self._single,
            "couple": self._couple,
            "lone_parent": self._lone_parent,
            "couple_with_children": self._couple_with_children,
            "adults_with_adult_child": self._adults_with_adult_child,
            "sharers": self._sharers,
            "three_generations": self._three_generations,
        }
        builders[kind](household, room)
        if rng.random() < rates.RECENT_MOVE_RATE:
            self._moved_in_last_year(household)
        return household

    def _single(self, household: Household, room: int) -> None:
        old = self.rng.random() < 0.42  # pensioners are ~40% of one-person households
        age = self.rng.uniform(65, MAX_AGE) if old else self.rng.uniform(18, 65)
        sex = "F" if self.rng.random() < (0.62 if old else 0.45) else "M"
        self.person(household, sex, age, self.names.surname(self.rng))

    def _couple(self, household: Household, room: int) -> None:
        self._partners(household, self.rng.uniform(20, 90))

    def _lone_parent(self, household: Household, room: int) -> None:
        rng = self.rng
        sex = "F" if rng.random() < 0.9 else "M"
        parent = self.person(household, sex, rng.uniform(19, 55), self.names.surname(rng))
        # children often carry an absent father's surname
        surname = parent.surname if rng.random() < 0.6 else self.names.surname(rng)
        mother = parent if sex == "F" else None
        father = parent if sex == "M" else None
        self._children(household, mother, father, parent.age_on(self.today), surname, room - 1)

    def _couple_with_children(self, household: Household, room: int) -> None:
        man, woman = self._partners(household, self.rng.uniform(22, 56))
        surname = self._children_surname(man, woman)
        self._children(household, woman, man, woman.age_on(self.today), surname, room - 2)

    def _adults_with_adult_child(self, household: Household, room: int) -> None:
        rng = self.rng
        man, woman = self._partners(household, rng.uniform(42, 75))
        mother_age = woman.age_on(self.today)
        children = []
        for _ in range(min(room - 2, rng.choice((1, 1, 2)))):
            child_age = rng.uniform(18, max(18.5, min(40, mother_age - 18)))
            sex = rng.choice("MF")
            children.append(self._child(household, sex, child_age, man.surname, woman, man))
        self._tag_siblings(children)

    def _sharers(self, household: Household, room: int) -> None:
        for _ in range(min(room, self.rng.choice((2, 2, 3, 4)))):
            sex = self.rng.choice("MF")
            self.person(household, sex, self.rng.uniform(19, 40), self.names.surname(self.rng))

    def _three_generations(self, household: Household, room: int) -> None:
        rng = self.rng
        man, woman = self._partners(household, rng.uniform(30, 55))
        # the grandparent is the man's parent (same surname) or the woman's (her birth name)
        grand_surname = man.surname if rng.random() < 0.5 else woman.birth_surname
        grand_age = self._within(woman.age_on(self.today) + rng.uniform(20, 40), 60, MAX_AGE)
        self.person(household, "F" if rng.random() < 0.7 else "M", grand_age, grand_surname)
        if room > 3:
            surname = self._children_surname(man, woman)
            self._children(household, woman, man, woman.age_on(self.today), surname, room - 3)

    # -- people ----------------------------------------------------------------------------
    def person(
        self,
        household: Household,
        sex: str,
        age: float,
        surname: str,
        forename: str | None = None,
        dob: date | None = None,
    ) -> Person:
        rng = self.rng
        dob = dob or self.today - timedelta(days=int(age * DAYS_PER_YEAR))
        gaelic = gaelic_rate(household.address.town, rates.GAELIC_FORENAME_RATE)
        forename = forename or self.names.forename(rng, sex, dob.year, gaelic)
        middle = ""
        if rng.random() < rates.MIDDLE_NAME_RATE:
            middle = self.names.forename(rng, sex, dob.year, gaelic)
            if middle == forename:
                middle = ""
        person = Person(
            person_id=self.issuer.person_id(),
            household=household,
            sex=sex,
            dob=dob,
            forename=forename,
            middle_names=middle,
            surname=surname,
            birth_surname=surname,
            married=False,
            chi=self.issuer.chi(dob, sex),
            address=household.address,
        )
        household.members.append(person)
        return person

    def _partners(self, household: Household, man_age: float) -> tuple[Person, Person]:
        rng = self.rng
        man = self.person(household, "M", man_age, self.names.surname(rng))
        woman_age = self._within(man_age + rng.gauss(-2, 4), 18.5, MAX_AGE)
        woman = self.person(household, "F", woman_age, self.names.surname(rng))
        if rng.random() < rates.MARRIED_RATE:
            man.married = woman.married = True
            if rng.random() < rates.TOOK_SPOUSES_SURNAME:
                woman.surname = man.surname
        return man, woman

    def _within(self, age: float, youngest: float, oldest: float) -> float:
        """The age if in range, else a fresh one near the bound it crossed.

        Clamping would pile many people onto one date of birth (and exhaust its CHIs).
        """
        if age < youngest:
            return self.rng.uniform(youngest, youngest + 4)
        if age > oldest:
            return self.rng.uniform(oldest - 8, oldest)
        return age

    def _children_surname(self, man: Person, woman: Person) -> str:
        rng = self.rng
        if rng.random() < rates.HYPHENATED_SURNAME_RATE and man.surname != woman.surname:
            return f"{man.surname}-{woman.birth_surname}"
        return man.surname if man.married or rng.random() < 0.7 else woman.surname

    def _children(
        self,
        household: Household,
        mother: Person | None,
        father: Person | None,
        parent_age: float,
        surname: str,
        room: int,
    ) -> None:
        """1-4 children under 18, born when the mother was 18-44; twins at the twin rate."""
        rng = self.rng
        count = min(room, rng.choices(CHILD_COUNTS, cum_weights=CHILD_COUNT_WEIGHTS)[0])
        youngest, oldest = max(0.0, parent_age - 44), min(17.99, parent_age - 18)
        if count <= 0 or oldest <= youngest:
            return
        children: list[Person] = []
        while len(children) < count:
            age = rng.uniform(youngest, oldest)
            child = self._child(household, rng.choice("MF"), age, surname, mother, father)
            children.append(child)
            if len(children) < room and rng.random() < rates.TWIN_BIRTH_RATE:
                children.append(self._twin(household, child, mother, father))
        self._tag_siblings(children)

    def _child(
        self,
        household: Household,
        sex: str,
        age: float,
        surname: str,
        mother: Person | None,
        father: Person | None,
    ) -> Person:
        namesake = (
            father is not None
            and sex == "M"
            and surname == father.surname
            and not any(p.father is father for p in household.members)
            and self.rng.random() < rates.NAMESAKE_SON_RATE
        )
        if not namesake:
            return self.person(household, sex, age, surname)
        assert father is not None
        son = self.person(household, sex, age, surname, forename=father.forename)
        if self.rng.random() < 0.5:
            son.middle_names = father.middle_names
        son.father = father
        son.hard_cases.append(f"father_son:{father.person_id}")
        father.hard_cases.append(f"father_son:{son.person_id}")
        return son

    def _twin(
        self, household: Household, first: Person, mother: Person | None, father: Person | None
    ) -> Person:
        rng = self.rng
        same_sex = rng.random() < rates.SAME_SEX_TWIN_SHARE
        sex = first.sex if same_sex else ("F" if first.sex == "M" else "M")
        twin = self.person(household, sex, 0, first.surname, dob=first.dob)
        while twin.forename == first.forename:
            gaelic = gaelic_rate(household.address.town, rates.GAELIC_FORENAME_RATE)
            twin.forename = self.names.forename(rng, sex, first.dob.year, gaelic)
        first.hard_cases.append(f"twin:{twin.person_id}")
        twin.hard_cases.append(f"twin:{first.person_id}")
        return twin

    @staticmethod
    def _tag_siblings(children: list[Person]) -> None:
        for child in children:
            for other in children:
                if other is not child and f"twin:{other.person_id}" not in child.hard_cases:
                    child.hard_cases.append(f"sibling:{other.person_id}")

    def _moved_in_last_year(self, household: Household) -> None:
        """The household moved here recently; some agencies may still hold the old address."""
        previous = self.addresses.vacant_dwelling()
        moved_on = self.today - timedelta(days=self.rng.randint(7, 365))
        for person in household.members:
            if person.dob < moved_on:
                person.previous_address, person.moved_on = previous, moved_on

    # -- newcomers -------------------------------------------------------------------------
    def baby(self, household: Household, mother: Person, born: date) -> Person:
        """A newborn in the household, taking the family surname."""
        husbands = [p for p in household.present_members if p.sex == "M" and p.married]
        father = next((p for p in husbands if p.age_on(born) > 18), None)
        surname = father.surname if father else mother.surname
        return self.person(household, self.rng.choice("MF"), 0, surname, dob=born)


def plant_same_name_dob(
    rng: random.Random, households: list[Household], names: NamePicker, issuer: Issuer
) -> None:
    """Unrelated people living alone made to share a common name and a date of birth."""
    singles = [h.members[0] for h in households if len(h.members) == 1 and not h.members[0].married]
    people = sum(len(h.members) for h in households)
    expected = people * rates.SAME_NAME_DOB_PAIRS_PER_1000 / 1000
    pairs = int(expected) + (rng.random() < expected - int(expected))
    rng.shuffle(singles)
    by_sex: dict[str, list[Person]] = {"M": [], "F": []}
    for person in singles:
        if not person.hard_cases:
            by_sex[person.sex].append(person)
    for _ in range(pairs):
        sex = rng.choice("MF")
        if len(by_sex[sex]) < 2:
            continue
        first, second = by_sex[sex].pop(), by_sex[sex].pop()
        forename = names.common_forename(rng, sex, first.dob.year)
        surname = rng.choice(names.surnames[:8])
        for person in (first, second):
            person.forename, person.surname, person.birth_surname = forename, surname, surname
        second.dob = first.dob
        second.chi = issuer.chi(second.dob, second.sex)
        first.hard_cases.append(f"same_name_dob:{second.person_id}")
        second.hard_cases.append(f"same_name_dob:{first.person_id}")
