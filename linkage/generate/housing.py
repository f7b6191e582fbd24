"""The council housing register (the `housing` variant): who is on it, on which applications.

A household on the register holds one to three tenancies or applications over the years;
each names a lead applicant, usually the other adults and sometimes the children. Every
person named is one row of the extract, so a person has as many rows as applications,
like police's one row per person per incident. Troubled households are on it more often,
which is what makes its shared reference with social work worth linking on.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta
from itertools import accumulate

from linkage.generate import rates
from linkage.generate.households import Household, Person
from linkage.generate.identifiers import Issuer

APPLICATION_TYPES = ("Waiting list", "Tenancy", "Transfer", "Homeless")
APPLICATION_COUNTS = list(rates.HOUSING_APPLICATIONS)
APPLICATION_COUNT_WEIGHTS = list(accumulate(rates.HOUSING_APPLICATIONS.values()))
LEAD, JOINT, MEMBER = "Lead applicant", "Joint applicant", "Household member"
ADULT_AGE = 16


@dataclass(slots=True, frozen=True)
class Application:
    """One tenancy or housing application; its people share its TenancyRef."""

    tenancy_ref: str
    kind: str
    applied_on: date


@dataclass(slots=True, frozen=True)
class Applicant:
    """One person named on one application: one row of the housing extract."""

    application: Application
    person: Person
    relationship: str


def housing_applicants(
    rng: random.Random, issuer: Issuer, household: Household, today: date
) -> list[Applicant]:
    """The household's rows on the register (none for most households)."""
    rate = rates.HOUSING_REGISTER["troubled_household" if household.troubled else "household"]
    members = household.present_members
    adults = [p for p in members if p.age_on(today) >= ADULT_AGE]
    if not adults or rng.random() >= rate:
        return []
    children = [p for p in members if p.age_on(today) < ADULT_AGE]
    lead = rng.choice(adults)
    count = rng.choices(APPLICATION_COUNTS, cum_weights=APPLICATION_COUNT_WEIGHTS)[0]
    applicants: list[Applicant] = []
    for _ in range(count):
        applied_on = today - timedelta(days=rng.randint(30, 15 * 365))
        kind = rng.choice(APPLICATION_TYPES)
        application = Application(issuer.ref("TEN", 6), kind, applied_on)
        applicants.append(Applicant(application, lead, LEAD))
        for adult in adults:
            if adult is not lead and rng.random() < rates.HOUSING_REGISTER["other_adult"]:
                applicants.append(Applicant(application, adult, JOINT))
        if children and rng.random() < rates.HOUSING_REGISTER["children"]:
            born_by_then = [c for c in children if c.dob <= applied_on]
            applicants += [Applicant(application, child, MEMBER) for child in born_by_then]
    return applicants
