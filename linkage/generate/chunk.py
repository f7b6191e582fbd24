"""One chunk of households: built from its own seed, it holds everything until written.

A chunk is seeded from (seed, chunk index) through numpy's SeedSequence, so its
randomness does not depend on any other chunk; only the shared Issuer (unique ids) and
PostcodeIssuer carry state from one chunk to the next, which is why chunks run in order.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date

import numpy as np

from linkage.generate import rates
from linkage.generate.concerns import ConcernMaker, is_school_age
from linkage.generate.households import Household, HouseholdBuilder, Person, plant_same_name_dob
from linkage.generate.housing import housing_applicants
from linkage.generate.identifiers import Issuer
from linkage.generate.names import NamePicker
from linkage.generate.places import AddressBook, PostcodeIssuer
from linkage.generate.records import SOURCES, Record, RecordMaker
from linkage.generate.variants import VARIANTS, Variant


@dataclass
class Shared:
    """What every chunk of one generation shares: the seed, the nights and the issuers."""

    seed: int
    nights: list[date]
    issuer: Issuer
    postcodes: PostcodeIssuer
    names: NamePicker
    variant: Variant = VARIANTS["scottish"]


@dataclass
class Chunk:
    index: int
    rng: random.Random
    builder: HouseholdBuilder
    concerns: ConcernMaker
    maker: RecordMaker
    variant: Variant
    households: list[Household] = field(default_factory=list)
    people: list[Person] = field(default_factory=list)
    records: dict[str, list[Record]] = field(
        default_factory=lambda: {source: [] for source in SOURCES}
    )

    def add(self, records: list[Record]) -> list[Record]:
        for record in records:
            self.records[record.source].append(record)
        return records


def chunk_rng(seed: int, chunk_index: int) -> random.Random:
    """The chunk's own random stream, independent of every other chunk's."""
    state = np.random.SeedSequence([seed, chunk_index]).generate_state(4, dtype=np.uint32)
    return random.Random(int.from_bytes(state.tobytes(), "little"))


def build_chunk(shared: Shared, index: int, size: int) -> Chunk:
    """`size` residents in households, their concerns and every agency's first-night records."""
    today = shared.nights[0]
    rng = chunk_rng(shared.seed, index)
    addresses = AddressBook(rng, shared.postcodes)
    builder = HouseholdBuilder(rng, shared.issuer, shared.names, addresses, today)
    people: list[Person] = []
    concerns = ConcernMaker(rng, shared.issuer, people)
    maker = RecordMaker(rng, shared.issuer, shared.variant)
    chunk = Chunk(index, rng, builder, concerns, maker, shared.variant, people=people)
    while len(people) < size:
        household = builder.household(size - len(people))
        chunk.households.append(household)
        people += household.members
    plant_same_name_dob(rng, chunk.households, shared.names, shared.issuer)
    for household in chunk.households:
        open_first_night_concerns(chunk, household, today)
    for household in chunk.households:
        for participation in chunk.concerns.police_history(household, today):
            chunk.add([chunk.maker.police(participation, today)])
    if chunk.variant.housing:  # before social work, which records some housing references
        for household in chunk.households:
            register_with_housing(chunk, household, today)
    for person in people:
        register_with_agencies(chunk, person, today, health_coverage=rates.HEALTH_COVERAGE)
    return chunk


def open_first_night_concerns(chunk: Chunk, household: Household, today: date) -> None:
    chunk.concerns.mark_troubled(household, today)
    chunk.concerns.initial_cases(household, today)
    for person in household.members:
        chunk.concerns.initial_cp_flag(person, today)


def register_with_agencies(
    chunk: Chunk, person: Person, today: date, health_coverage: float
) -> list[Record]:
    """The person's health, education and social-work records (police rows come from incidents)."""
    rng, maker = chunk.rng, chunk.maker
    records: list[Record] = []
    if rng.random() < health_coverage:
        records += maker.with_duplicates("health", person, today)
    if is_school_age(person, today) and rng.random() < rates.EDUCATION_COVERAGE:
        chunk.concerns.enrol(person, today)
        records.append(maker.education(person, today))
    if person.case is not None:
        records += maker.with_duplicates("socialwork", person, today)
    return chunk.add(records)


def register_with_housing(chunk: Chunk, household: Household, today: date) -> list[Record]:
    """The household's rows on the housing register, if it is on it (housing variant)."""
    applicants = housing_applicants(chunk.rng, chunk.maker.issuer, household, today)
    return chunk.add([chunk.maker.housing(applicant, today) for applicant in applicants])
