"""Agency records: which corruptions each record carries, and what it therefore says.

A record keeps its list of corruptions (the truth tags) and a seed; its visible fields are
rendered from the person (or, for a police row, the person as at the incident) through
those corruptions. So a house move or a marriage re-renders the record with the same
errors, and a correction is just a tag removed and a re-render.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from datetime import date

from linkage.generate import rates
from linkage.generate.concerns import Participation
from linkage.generate.corruptions import (
    PLACEHOLDER_DOB,
    day_month_swapped,
    dob_digit_typo,
    has_accent,
    is_mac,
    mac_variant,
    nickname,
    postcode_without_space,
    strip_accents,
    typo,
    with_extra_whitespace,
)
from linkage.generate.households import Person, Snapshot
from linkage.generate.housing import Applicant
from linkage.generate.identifiers import Issuer, is_valid_chi, is_valid_scn, miskey, stable_hash
from linkage.generate.names import NICKNAMES
from linkage.generate.places import Address
from linkage.generate.variants import Variant

SOURCE_RATES = {
    source: {tag: by_agency[source] for tag, by_agency in rates.RATES.items()}
    for source in rates.AGENCIES
} | {"housing": rates.HOUSING_RATES}
RECORD_PREFIXES = {  # source -> (record id prefix, digits)
    "health": ("HP", 8),
    "education": ("PUP", 7),
    "police": ("IP", 8),
    "socialwork": ("SWC", 7),
    "housing": ("HAP", 7),
}
SOURCES = tuple(RECORD_PREFIXES)  # every agency of every variant, in extract order
TAG_SALT = {tag: stable_hash(tag) for tag in (*rates.RATES, *rates.HOUSING_RATES)}
JUNIOR = "Jnr"


@dataclass(slots=True, eq=False)
class Record:
    """One row of one agency's extract, and the truth about it."""

    source: str
    record_id: str
    person: Person
    corruptions: list[str]
    seed: int
    snapshot: Snapshot | None = None  # police rows keep the person as at the incident
    participation: Participation | None = None
    applicant: Applicant | None = None  # housing rows: the application and the role on it
    nominal: str = ""
    duplicate: bool = False
    chi_recorded: bool = False
    scn: str = ""
    housing_ref: str = ""  # the HousingPersonRef the agency holds, if any
    preferred_name: str = ""
    previous_surname_recorded: bool = False
    style: int = 0  # how the agency lays out the address (abbreviations, order)
    present: bool = True
    # rendered from the person through the corruptions
    forename: str = ""
    surname: str = ""
    dob: date | None = None
    sex: str = ""
    address: Address | None = None
    postcode: str = ""
    chi: str = ""
    recorded_scn: str = ""
    recorded_housing_ref: str = ""
    row: list[str] | None = None  # the formatted extract row, cached until a change

    @property
    def subject(self) -> Person | Snapshot:
        return self.snapshot or self.person


def draw_corruptions(
    rng: random.Random, source: str, subject: Person | Snapshot, namesake: bool, today: date
) -> list[str]:
    """The identity corruptions one new record carries, each at its rate where it applies."""
    rate = SOURCE_RATES[source]
    tags: list[str] = []
    baby = (
        rate["baby_forename"] > 0
        and (today - subject.dob).days < rates.NEWBORN_DAYS
        and rng.random() < rate["baby_forename"]
    )
    if baby:
        tags.append("baby_forename")
    elif subject.forename in NICKNAMES and rng.random() < rate["nickname"]:
        tags.append("nickname")
    if subject.middle_names and rng.random() < rate["middle_in_forename"]:
        tags.append("middle_in_forename")
    surname = subject.surname
    if (
        subject.married
        and subject.birth_surname != subject.surname
        and rng.random() < rate["birth_surname"]
    ):
        tags.append("birth_surname")
        surname = subject.birth_surname
    if is_mac(surname) and rng.random() < rate["mac_variant"]:
        tags.append("mac_variant")
    if not baby and rng.random() < rate["typo_forename"]:
        tags.append("typo_forename")
    if rng.random() < rate["typo_surname"]:
        tags.append("typo_surname")
    forename_replaced = bool(tags) and tags[0] in ("nickname", "baby_forename")
    accented = has_accent(surname) or (not forename_replaced and has_accent(subject.forename))
    if accented and rng.random() < rate["accent_dropped"]:
        tags.append("accent_dropped")
    if rng.random() < rate["name_swap"]:
        tags.append("name_swap")
    if namesake and rng.random() < rate["jnr_suffix"]:
        tags.append("jnr_suffix")
    tags += _dob_corruptions(rng, rate, subject.dob)
    if rng.random() < rate["sex_unknown"]:
        tags.append("sex_unknown")
    if subject.previous_address is not None and rng.random() < rate["moved_old_address"]:
        tags.append("moved_old_address")
    draw = rng.random()
    if draw < rate["postcode_missing"]:
        tags.append("postcode_missing")
    elif draw < rate["postcode_missing"] + rate["postcode_no_space"]:
        tags.append("postcode_no_space")
    draw = rng.random()
    if draw < rate["upper_case"]:
        tags.append("upper_case")
    elif draw < rate["upper_case"] + rate["lower_case"]:
        tags.append("lower_case")
    if rng.random() < rate["extra_whitespace"]:
        tags.append("extra_whitespace")
    return tags


def _dob_corruptions(rng: random.Random, rate: dict[str, float], dob: date) -> list[str]:
    draw = rng.random()
    if draw < rate["dob_missing"]:
        return ["dob_missing"]
    if draw < rate["dob_missing"] + rate["dob_placeholder"]:
        return ["dob_placeholder"]
    if day_month_swapped(dob) and rng.random() < rate["dob_day_month_swap"]:
        return ["dob_day_month_swap"]
    if rng.random() < rate["dob_digit_typo"]:
        return ["dob_digit_typo"]
    return []


def render(record: Record, today: date) -> None:
    """Set the record's visible fields from its subject through its corruptions."""
    subject = record.subject
    tags = record.corruptions
    forename, surname = subject.forename, subject.surname
    dob: date | None = subject.dob
    address = subject.address
    chi = record.person.chi if record.chi_recorded else ""
    scn = record.scn
    sex = subject.sex
    if tags:
        forename, surname = _rendered_names(record, subject, tags)
        dob = _rendered_dob(record, subject.dob, tags, today)
        if "moved_old_address" in tags and subject.previous_address is not None:
            address = subject.previous_address
        if "sex_unknown" in tags:
            sex = "U"
        if chi and "chi_miskeyed" in tags:
            chi = miskey(_tag_rng(record, "chi_miskeyed"), chi, is_valid_chi)
        if scn and "scn_miskeyed" in tags:
            scn = miskey(_tag_rng(record, "scn_miskeyed"), scn, is_valid_scn)
    housing_ref = record.housing_ref
    if housing_ref and tags and "housing_ref_miskeyed" in tags:
        housing_ref = miskeyed_housing_ref(_tag_rng(record, "housing_ref_miskeyed"), housing_ref)
    postcode = address.postcode
    if tags and "postcode_missing" in tags:
        postcode = ""
    elif tags and "postcode_no_space" in tags:
        postcode = postcode_without_space(postcode)
    record.forename, record.surname, record.dob, record.sex = forename, surname, dob, sex
    record.address, record.postcode, record.chi, record.recorded_scn = address, postcode, chi, scn
    record.recorded_housing_ref = housing_ref
    record.row = None


def miskeyed_housing_ref(rng: random.Random, reference: str) -> str:
    """HPR1234567 with a digit changed or two swapped: it still looks valid (no check digit)."""
    prefix, digits = reference[:3], reference[3:]
    return prefix + miskey(rng, digits, lambda candidate: candidate == digits)


def _rendered_names(record: Record, subject: Person | Snapshot, tags: list[str]) -> tuple[str, str]:
    forename, surname = subject.forename, subject.surname
    if "baby_forename" in tags:
        forename = "BABY"
    elif "nickname" in tags:
        forename = nickname(_tag_rng(record, "nickname"), forename) or forename
    if "middle_in_forename" in tags and subject.middle_names:
        forename = f"{forename} {subject.middle_names}"
    if "birth_surname" in tags:
        surname = subject.birth_surname
    if "mac_variant" in tags and is_mac(surname):
        surname = mac_variant(_tag_rng(record, "mac_variant"), surname)
    if "typo_forename" in tags:
        forename = typo(_tag_rng(record, "typo_forename"), forename)
    if "typo_surname" in tags:
        surname = typo(_tag_rng(record, "typo_surname"), surname)
    if "accent_dropped" in tags:
        forename, surname = strip_accents(forename), strip_accents(surname)
    if "name_swap" in tags:
        forename, surname = surname, forename
    if "jnr_suffix" in tags:
        if _tag_rng(record, "jnr_suffix").random() < 0.5:
            surname = f"{surname} {JUNIOR}"
        else:
            forename = f"{forename} {JUNIOR}"
    if "extra_whitespace" in tags:
        surname = with_extra_whitespace(_tag_rng(record, "extra_whitespace"), surname)
    return forename, surname


def _rendered_dob(record: Record, dob: date, tags: list[str], today: date) -> date | None:
    if "dob_missing" in tags:
        return None
    if "dob_placeholder" in tags:
        return PLACEHOLDER_DOB
    if "dob_day_month_swap" in tags:
        return day_month_swapped(dob) or dob
    if "dob_digit_typo" in tags:
        return dob_digit_typo(_tag_rng(record, "dob_digit_typo"), dob, today)
    return dob


_RNG = random.Random()


def _tag_rng(record: Record, tag: str) -> random.Random:
    """The same random stream for the same record and tag, however often it is rendered."""
    _RNG.seed(record.seed ^ TAG_SALT[tag])
    return _RNG


# -- making records -------------------------------------------------------------------------
class RecordMaker:
    """Creates each agency's records for people of one chunk."""

    def __init__(self, rng: random.Random, issuer: Issuer, variant: Variant) -> None:
        self.rng, self.issuer, self.variant = rng, issuer, variant

    def _record(
        self,
        source: str,
        person: Person,
        today: date,
        snapshot: Snapshot | None = None,
        **fields: object,
    ) -> Record:
        prefix, digits = RECORD_PREFIXES[source]
        subject = snapshot or person
        record = Record(
            source=source,
            record_id=self.issuer.ref(prefix, digits),
            person=person,
            corruptions=draw_corruptions(
                self.rng, source, subject, person.father is not None, today
            ),
            seed=self.rng.getrandbits(32),
            snapshot=snapshot,
            style=self.rng.randrange(4),
            **fields,  # type: ignore[arg-type]
        )
        if self.variant.numeric_postcodes and "postcode_no_space" in record.corruptions:
            record.corruptions.remove("postcode_no_space")  # a 4-digit code has no space
        person.records.append(record)
        return record

    def health(self, person: Person, today: date, duplicate: bool = False) -> Record:
        rate = SOURCE_RATES["health"]
        national_ids = self.variant.national_ids
        record = self._record(
            "health", person, today, duplicate=duplicate, chi_recorded=national_ids
        )
        if duplicate:
            record.corruptions.append("duplicate")
            if national_ids and self.rng.random() < rate["duplicate_no_chi"]:
                record.chi_recorded = False
                record.corruptions.append("duplicate_no_chi")
        if record.chi_recorded and self.rng.random() < rate["chi_miskeyed"]:
            record.corruptions.append("chi_miskeyed")
        render(record, today)
        return record

    def education(self, person: Person, today: date) -> Record:
        national_ids = self.variant.national_ids
        if national_ids and not person.scn:
            person.scn = self.issuer.scn()
        record = self._record("education", person, today, scn=person.scn)
        record.preferred_name = self._preferred_name(person)
        if national_ids and self.rng.random() < SOURCE_RATES["education"]["scn_miskeyed"]:
            record.corruptions.append("scn_miskeyed")
        render(record, today)
        return record

    def police(self, participation: Participation, today: date) -> Record:
        """A row for one person at one incident, with their details as they were then."""
        person = participation.person
        snapshot = person.snapshot()
        happened = participation.incident.when.date()
        if person.moved_on and happened < person.moved_on and person.previous_address:
            snapshot = replace(snapshot, address=person.previous_address, previous_address=None)
        record = self._record(
            "police", person, today, snapshot=snapshot, participation=participation
        )
        record.nominal = person.nominal
        fresh_rate = SOURCE_RATES["police"]["fresh_nominal"]
        if participation.ordinal > 1 and self.rng.random() < fresh_rate:
            record.nominal = self.issuer.ref("NOM", 7)  # an officer created a new nominal
            record.corruptions.append("fresh_nominal")
        render(record, today)
        return record

    def socialwork(self, person: Person, today: date, duplicate: bool = False) -> Record:
        rate = SOURCE_RATES["socialwork"]
        chi_recorded = (
            self.variant.national_ids and self.rng.random() < rates.SOCIALWORK_CHI_RECORDED
        )
        record = self._record(
            "socialwork", person, today, duplicate=duplicate, chi_recorded=chi_recorded
        )
        record.previous_surname_recorded = self.rng.random() < 0.7
        if duplicate:
            record.corruptions.append("duplicate")
        if chi_recorded and self.rng.random() < rate["chi_miskeyed"]:
            record.corruptions.append("chi_miskeyed")
        # only people on the housing register (the housing variant) have a reference to record
        housing = rates.SOCIALWORK_HOUSING_REF
        if person.housing_ref and self.rng.random() < housing["recorded"]:
            record.housing_ref = person.housing_ref
            if self.rng.random() < housing["miskeyed"]:
                record.corruptions.append("housing_ref_miskeyed")
        render(record, today)
        return record

    def housing(self, applicant: Applicant, today: date) -> Record:
        """A row for one person named on one tenancy or application."""
        person = applicant.person
        if not person.housing_ref:
            person.housing_ref = self.issuer.ref("HPR", 7)
        record = self._record(
            "housing", person, today, applicant=applicant, housing_ref=person.housing_ref
        )
        if self.rng.random() < SOURCE_RATES["housing"]["housing_ref_miskeyed"]:
            record.corruptions.append("housing_ref_miskeyed")
        render(record, today)
        return record

    def with_duplicates(self, source: str, person: Person, today: date) -> list[Record]:
        """The person's record, and now and then a second one under a new id."""
        make = self.health if source == "health" else self.socialwork
        records = [make(person, today)]
        if self.rng.random() < SOURCE_RATES[source]["duplicate"]:
            records.append(make(person, today, duplicate=True))
        return records

    def _preferred_name(self, person: Person) -> str:
        """Pupils' known-as names: a nickname, or their middle name, or (mostly) nothing."""
        draw = self.rng.random()
        options = NICKNAMES.get(person.forename)
        if options and draw < 0.15:
            return self.rng.choice(options)
        if person.middle_names and draw > 0.97:
            return person.middle_names
        return ""
