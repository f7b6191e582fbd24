"""People and households, evolving night by night; generated in seeded chunks.

Each chunk of households is generated from its own seed and written (every night,
every agency) before the next is made, so memory stays bounded at any population size.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta

from linkage.generate import identifiers as ids
from linkage.generate.names import (
    FEMALE_FORENAMES,
    MALE_FORENAMES,
    STREET_NAMES,
    STREET_TYPES,
    SURNAMES,
    TOWN_WEIGHTS,
    TOWNS,
    zipf_weights,
)

TWIN_RATE = 0.015  # of births
FATHER_SON_NAME_RATE = 0.06  # of sons with a father in the household
SAME_NAME_DOB_PER_1000 = 2  # planted unrelated pairs with a common name and the same DOB
TROUBLED_HOUSEHOLD_RATE = 0.03
RECENT_MOVE_RATE = 0.12


@dataclass
class Address:
    house_number: str
    street: str
    street_type: tuple[str, str]
    flat: str | None
    town: str
    postcode: str


@dataclass
class Person:
    person_id: str
    household_id: str
    sex: str
    dob: date
    forename: str
    middle_names: str
    surname: str
    birth_surname: str
    chi: str
    scn: str | None
    troubled: bool
    addresses: list[Address]  # current last
    hard_cases: list[str] = field(default_factory=list)
    first_night: int = 0
    last_night: int | None = None  # night index after which the person is gone

    @property
    def address(self) -> Address:
        return self.addresses[-1]

    def age_on(self, day: date) -> float:
        return (day - self.dob).days / 365.25


class Chunk:
    """Households generated from one seed."""

    def __init__(
        self,
        seed: int,
        chunk_index: int,
        people: int,
        start: date,
        id_offset: int,
        issuer: ids.IdentifierIssuer,
    ):
        self.issuer = issuer
        self.rng = random.Random(f"{seed}:{chunk_index}")
        self.start = start
        self.next_id = id_offset
        self.household_count = 0
        self.chunk_index = chunk_index
        self.people: list[Person] = []
        self.surname_weights = zipf_weights(len(SURNAMES))
        self.male_weights = zipf_weights(len(MALE_FORENAMES), 0.7)
        self.female_weights = zipf_weights(len(FEMALE_FORENAMES), 0.7)
        self.postcodes: list[tuple[str, str, str, tuple[str, str]]] = []
        self._previous_address: Address | None = None
        while len(self.people) < people:
            self._household(people - len(self.people))
        self._plant_same_name_dob()

    # -- building blocks ---------------------------------------------------------------
    def _pid(self) -> str:
        self.next_id += 1
        return f"P{self.next_id:08d}"

    def _surname(self) -> str:
        return self.rng.choices(SURNAMES, self.surname_weights)[0]

    def _forename(self, sex: str) -> str:
        names, weights = (
            (MALE_FORENAMES, self.male_weights)
            if sex == "M"
            else (FEMALE_FORENAMES, self.female_weights)
        )
        return self.rng.choices(names, weights)[0]

    def new_address(self) -> Address:
        rng = self.rng
        if not self.postcodes or rng.random() < 0.05:
            town, area, districts = rng.choices(TOWNS, TOWN_WEIGHTS)[0]
            postcode = (
                f"{area}{rng.choice(list(districts))} {rng.randrange(1, 10)}"
                f"{rng.choice('ABDEFGHJLNPQRSTUWXYZ')}{rng.choice('ABDEFGHJLNPQRSTUWXYZ')}"
            )
            self.postcodes.append(
                (town, postcode, rng.choice(STREET_NAMES), rng.choice(STREET_TYPES))
            )
        town, postcode, street, street_type = rng.choice(self.postcodes[-40:])
        flat = f"FLAT {rng.randrange(0, 4)}/{rng.randrange(1, 3)}" if rng.random() < 0.25 else None
        number = str(rng.randrange(1, 200)) + ("A" if rng.random() < 0.03 else "")
        return Address(number, street, street_type, flat, town, postcode)

    def _dob(self, low_age: float, high_age: float) -> date:
        days = self.rng.uniform(low_age * 365.25, high_age * 365.25)
        return self.start - timedelta(days=int(days))

    def _person(
        self,
        household: str,
        sex: str,
        dob: date,
        surname: str,
        address: Address,
        troubled: bool,
        forename: str | None = None,
    ) -> Person:
        person = Person(
            person_id=self._pid(),
            household_id=household,
            sex=sex,
            dob=dob,
            forename=forename or self._forename(sex),
            middle_names=self._forename(sex) if self.rng.random() < 0.45 else "",
            surname=surname,
            birth_surname=surname,
            chi=self.issuer.chi(dob, sex),
            scn=None,
            troubled=troubled,
            addresses=[address],
        )
        if self._previous_address is not None:
            person.addresses.insert(0, self._previous_address)
        if 3 <= person.age_on(self.start) < 19:
            person.scn = self.issuer.scn()
        self.people.append(person)
        return person

    # -- households --------------------------------------------------------------------
    def _household(self, room: int) -> None:
        rng = self.rng
        self.household_count += 1
        household = f"H{self.chunk_index:04d}{self.household_count:06d}"
        address = self.new_address()
        # some households moved in recently: one agency may still hold the old address
        previous = self.new_address() if rng.random() < RECENT_MOVE_RATE else None
        self._previous_address = previous
        troubled = rng.random() < TROUBLED_HOUSEHOLD_RATE
        kind = rng.choices(["single", "couple", "family", "lone_parent"], [30, 25, 33, 12])[0]
        surname = self._surname()
        adults: list[Person] = []
        if kind == "single" or room == 1:
            sex = rng.choice("MF")
            adults.append(
                self._person(household, sex, self._dob(18, 92), surname, address, troubled)
            )
            return
        father = mother = None
        if kind in ("couple", "family"):
            father = self._person(household, "M", self._dob(22, 80), surname, address, troubled)
            mother = self._person(
                household,
                "F",
                father.dob + timedelta(days=rng.randint(-2500, 2500)),
                surname,
                address,
                troubled,
            )
            if rng.random() < 0.75:  # took partner's surname on marriage
                mother.birth_surname = self._surname()
            else:
                mother.surname = mother.birth_surname = self._surname()
            adults += [father, mother]
        else:
            mother = self._person(household, "F", self._dob(18, 50), surname, address, troubled)
            adults.append(mother)
        if kind in ("family", "lone_parent"):
            self._children(household, father, mother, address, troubled, room - len(adults))

    def _children(
        self,
        household: str,
        father: Person | None,
        mother: Person,
        address: Address,
        troubled: bool,
        room: int,
    ) -> None:
        rng = self.rng
        surname = father.surname if father else mother.surname
        youngest_parent_age = mother.age_on(self.start)
        count = min(room, rng.choices([1, 2, 3, 4], [35, 40, 18, 7])[0])
        born = 0
        while born < count:
            age = rng.uniform(0, max(0.1, min(youngest_parent_age - 17, 18)))
            dob = self.start - timedelta(days=int(age * 365.25))
            sex = rng.choice("MF")
            forename = None
            if father and sex == "M" and rng.random() < FATHER_SON_NAME_RATE:
                forename = father.forename
            child = self._person(household, sex, dob, surname, address, troubled, forename)
            if father and forename:
                child.hard_cases.append(f"father_son:{father.person_id}")
                father.hard_cases.append(f"father_son:{child.person_id}")
            born += 1
            if born < count and rng.random() < TWIN_RATE * 2:  # per birth, any sex mix
                twin_sex = sex if rng.random() < 0.5 else rng.choice("MF")
                twin_name = self._forename(twin_sex)
                while twin_name == child.forename:
                    twin_name = self._forename(twin_sex)
                twin = self._person(household, twin_sex, dob, surname, address, troubled, twin_name)
                child.hard_cases.append(f"twin:{twin.person_id}")
                twin.hard_cases.append(f"twin:{child.person_id}")
                born += 1
            else:
                # siblings share a household and a surname
                pass

    def _plant_same_name_dob(self) -> None:
        """Unrelated people with a common name and the same date of birth."""
        pairs = max(1, len(self.people) * SAME_NAME_DOB_PER_1000 // 1000)
        adults = [p for p in self.people if p.age_on(self.start) > 18 and not p.hard_cases]
        for _ in range(pairs):
            first, second = self.rng.sample(adults, 2)
            if first.household_id == second.household_id or first.sex != second.sex:
                continue
            second.forename, second.surname, second.birth_surname = (
                first.forename,
                first.surname,
                first.surname,
            )
            second.dob = first.dob
            second.chi = self.issuer.chi(second.dob, second.sex)
            first.hard_cases.append(f"same_name_dob:{second.person_id}")
            second.hard_cases.append(f"same_name_dob:{first.person_id}")
