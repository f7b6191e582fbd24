"""What changes between one night's extracts and the next, for one chunk.

Each event changes the true state (people, households, concerns), updates the records the
agencies hold, and logs a Change for the truth. Agencies are imperfect: after a move or a
marriage some records keep the old address or name, at the agency's corruption rate.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from linkage.generate import rates
from linkage.generate.chunk import Chunk, register_with_agencies, register_with_housing
from linkage.generate.concerns import ENROLLED, MISSING, TRANSFERRED, Participation, moment_on
from linkage.generate.corruptions import CORRECTABLE
from linkage.generate.households import Household, Person
from linkage.generate.records import SOURCE_RATES, Record, render

CHANGES = (
    # about a person (source and record id blank)
    "new_person",
    "removed_person",
    "moved",
    "name_change",
    # about a record
    "new_record",
    "removed_record",
    "corrected_record",
    "new_incident",
    "case_opened",
    "case_closed",
    "cp_flag_set",
    "cp_flag_removed",
    "left_school",
)
# police rows are history: never updated
LIVE_SOURCES = ("health", "education", "socialwork", "housing")


@dataclass(frozen=True, slots=True)
class Change:
    person_id: str
    change: str
    source: str = ""
    source_record_id: str = ""


class NightlyChanges:
    """Applies one night's events to a chunk and collects the changes."""

    def __init__(self, chunk: Chunk, night: int, today: date) -> None:
        self.chunk, self.night, self.today = chunk, night, today
        self.rng = chunk.rng
        self.changes: list[Change] = []

    def apply(self) -> list[Change]:
        self.departures()
        self.duplicates_merged()
        self.house_moves()
        self.marriages()
        self.corrections()
        self.births()
        self.arrivals()
        self.new_duplicates()
        self.police_incidents()
        self.social_work()
        self.schooling()
        return self.changes

    # -- logging helpers -------------------------------------------------------------------
    def _log(self, person: Person, change: str, record: Record | None = None) -> None:
        if record is None:
            self.changes.append(Change(person.person_id, change))
        else:
            self.changes.append(Change(person.person_id, change, record.source, record.record_id))

    def _live_records(self, person: Person) -> list[Record]:
        return [r for r in person.records if r.present and r.source in LIVE_SOURCES]

    def _present_people(self) -> list[Person]:
        return [p for p in self.chunk.people if p.present]

    def _present_households(self) -> list[Household]:
        return [h for h in self.chunk.households if any(p.present for p in h.members)]

    # -- people leaving and arriving -------------------------------------------------------
    def departures(self) -> None:
        """Households moving out of the area, and deaths."""
        rng = self.rng
        for household in self._present_households():
            if rng.random() < rates.NIGHTLY["household_moves_out"]:
                for person in household.present_members:
                    self._remove(person, moved_away=True)
        for person in self._present_people():
            elderly = person.age_on(self.today) >= 80
            rate = rates.NIGHTLY["death_80_plus" if elderly else "death_under_80"]
            if rng.random() < rate:
                self._remove(person, moved_away=False)

    def _remove(self, person: Person, moved_away: bool) -> None:
        person.last_night = self.night - 1
        self._log(person, "removed_person")
        for record in self._live_records(person):
            if record.source == "education" and moved_away:
                self._leave_school(person, TRANSFERRED)
            else:
                record.present = False
                self._log(person, "removed_record", record)

    def births(self) -> None:
        rng = self.rng
        for household in self._present_households():
            mothers = [
                p for p in household.present_members
                if p.sex == "F" and 18 <= p.age_on(self.today) < 45
            ]  # fmt: skip
            if mothers and rng.random() < rates.NIGHTLY["birth"]:
                # a night stands for about a month: babies born over the last four weeks
                born = self.today - timedelta(days=rng.randint(0, 27))
                babies = [self.chunk.builder.baby(household, mothers[0], born)]
                if rng.random() < rates.TWIN_BIRTH_RATE:
                    babies.append(self.chunk.builder.baby(household, mothers[0], born))
                    _tag_pair(babies[0], babies[1], "twin")
                self._tag_new_siblings(household, babies)
                for baby in babies:
                    self._welcome(baby, health_coverage=1.0)  # a CHI is issued at birth

    def arrivals(self) -> None:
        """New households moving into the area."""
        expected = len(self.chunk.households) * rates.NIGHTLY["household_moves_in"]
        count = int(expected) + (self.rng.random() < expected - int(expected))
        for _ in range(count):
            household = self.chunk.builder.household(room=6)
            self.chunk.households.append(household)
            self.chunk.concerns.mark_troubled(household, self.today)
            for person in household.members:
                person.previous_address, person.moved_on = None, self.today
            # on the housing register first, so social work can record the reference
            housing: list[Record] = []
            if self.chunk.variant.housing:
                housing = register_with_housing(self.chunk, household, self.today)
            for person in household.members:
                self._welcome(person, health_coverage=rates.HEALTH_COVERAGE)
            for record in housing:
                self._log(record.person, "new_record", record)

    def _welcome(self, person: Person, health_coverage: float) -> None:
        person.first_night = self.night
        self.chunk.people.append(person)
        self._log(person, "new_person")
        for record in register_with_agencies(self.chunk, person, self.today, health_coverage):
            self._log(person, "new_record", record)

    def _tag_new_siblings(self, household: Household, babies: list[Person]) -> None:
        for baby in babies:
            for other in household.present_members:
                if other not in babies and other.age_on(self.today) < 18:
                    _tag_pair(baby, other, "sibling")

    # -- changed details -------------------------------------------------------------------
    def house_moves(self) -> None:
        rng = self.rng
        for household in self._present_households():
            if rng.random() >= rates.NIGHTLY["household_moves_house"]:
                continue
            new_address = self.chunk.builder.addresses.vacant_dwelling()
            old_address, household.address = household.address, new_address
            for person in household.present_members:
                person.previous_address, person.address = old_address, new_address
                person.moved_on = self.today
                self._log(person, "moved")
                self._update_records(person, "moved", "moved_old_address")

    def marriages(self) -> None:
        rng = self.rng
        for person in self._present_people():
            if (
                person.sex == "F"
                and not person.married
                and 20 <= person.age_on(self.today) < 45
                and rng.random() < rates.NIGHTLY["marriage_name_change"]
            ):
                person.married = True
                person.surname = self.chunk.builder.names.surname(rng)
                self._log(person, "name_change")
                self._update_records(person, "name_change", "birth_surname")

    def _update_records(self, person: Person, change: str, lag_tag: str) -> None:
        """Each agency updates its records, except those that lag (they keep the old detail)."""
        for record in self._live_records(person):
            lags = self.rng.random() < SOURCE_RATES[record.source][lag_tag]
            if lags and lag_tag not in record.corruptions:
                record.corruptions.append(lag_tag)
            elif not lags and lag_tag in record.corruptions:
                record.corruptions.remove(lag_tag)
            if not lags:
                self._log(person, change, record)
            render(record, self.today)

    def corrections(self) -> None:
        """Agencies fix some errors: a typo, a mis-keyed CHI, a baby now named."""
        rng, correction_rate = self.rng, rates.NIGHTLY["correction"]
        for records in self.chunk.records.values():
            for record in records:
                if not record.present or not record.corruptions:
                    continue
                fixable = [tag for tag in record.corruptions if tag in CORRECTABLE]
                if fixable and record.source != "police" and rng.random() < correction_rate:
                    record.corruptions.remove(fixable[0])
                    render(record, self.today)
                    self._log(record.person, "corrected_record", record)

    def duplicates_merged(self) -> None:
        for records in self.chunk.records.values():
            for record in records:
                if (
                    record.duplicate
                    and record.present
                    and self.rng.random() < rates.NIGHTLY["duplicate_deleted"]
                ):
                    record.present = False
                    self._log(record.person, "removed_record", record)

    def new_duplicates(self) -> None:
        """A person registered a second time (a temporary resident, a new client file)."""
        maker = self.chunk.maker
        for source in ("health", "socialwork"):
            for record in list(self.chunk.records[source]):
                if (
                    record.present
                    and not record.duplicate
                    and self.rng.random() < rates.NIGHTLY["new_duplicate"]
                ):
                    make = maker.health if source == "health" else maker.socialwork
                    duplicate = make(record.person, self.today, duplicate=True)
                    self.chunk.add([duplicate])
                    self._log(record.person, "new_record", duplicate)

    # -- concerns --------------------------------------------------------------------------
    def police_incidents(self) -> None:
        rng, concerns = self.rng, self.chunk.concerns
        rows: list[Participation] = []
        for household in self._present_households():
            if household.police_history and rng.random() < rates.NIGHTLY["troubled_incident"]:
                rows += concerns.household_incident(household, moment_on(rng, self.today))
        for person in self._present_people():
            if person.nominal:
                rate = rates.NIGHTLY["repeat_incident"]
            else:
                rate = rates.NIGHTLY["first_incident"] if person.age_on(self.today) >= 12 else 0
            if rate and rng.random() < rate:
                rows += concerns.individual_incident(person, moment_on(rng, self.today))
        for participation in rows:
            record = self.chunk.add([self.chunk.maker.police(participation, self.today)])[0]
            self._log(participation.person, "new_incident", record)

    def social_work(self) -> None:
        rng = self.rng
        for person in self._present_people():
            case = person.case
            if case is not None and case.closed is None:
                if rng.random() < rates.NIGHTLY["case_closed"]:
                    self._close_case(person)
                continue
            child = person.age_on(self.today) < 18
            rate = (
                rates.NIGHTLY["case_opened_troubled_child"]
                if child and person.household.troubled
                else rates.NIGHTLY["case_opened"]
            )
            if rng.random() < rate:
                self._open_case(person)

    def _open_case(self, person: Person) -> None:
        concerns = self.chunk.concerns
        had_records = any(r.source == "socialwork" and r.present for r in person.records)
        case_type = concerns.new_case_type(person, self.today)
        concerns.open_case(person, case_type, moment_on(self.rng, self.today, office=True))
        if had_records:  # a returning client: same ClientID, new case
            records = [r for r in self._live_records(person) if r.source == "socialwork"]
        else:
            records = self.chunk.add(
                self.chunk.maker.with_duplicates("socialwork", person, self.today)
            )
        for record in records:
            record.row = None
            self._log(person, "case_opened", record)
        flag_rate = rates.HEALTH_CP_FLAG["open_cp_case"]
        if case_type == "CHILD_PROTECTION" and self.rng.random() < flag_rate:
            self._set_cp_flag(person, self.today)

    def _close_case(self, person: Person) -> None:
        assert person.case is not None
        person.case.closed = moment_on(self.rng, self.today, office=True)
        for record in self._live_records(person):
            if record.source == "socialwork":
                record.row = None
                self._log(person, "case_closed", record)
        keep = self.rng.random() < rates.HEALTH_CP_FLAG["kept_after_closure"]
        if person.case.case_type == "CHILD_PROTECTION" and person.cp_flag_on and not keep:
            self._set_cp_flag(person, None)

    def _set_cp_flag(self, person: Person, flagged_on: date | None) -> None:
        person.cp_flag_on = flagged_on
        for record in self._live_records(person):
            if record.source == "health" and not record.duplicate:
                record.row = None
                change = "cp_flag_set" if flagged_on else "cp_flag_removed"
                self._log(person, change, record)

    def schooling(self) -> None:
        rng = self.rng
        for person in self._present_people():
            if person.school_status == ENROLLED and rng.random() < rates.NIGHTLY["leaves_school"]:
                share = rates.LEAVERS_MISSING
                missing = share["troubled" if person.household.troubled else "default"]
                self._leave_school(person, MISSING if rng.random() < missing else TRANSFERRED)

    def _leave_school(self, person: Person, status: str) -> None:
        if person.school_status != ENROLLED:
            return
        person.school_status, person.school_status_on = status, self.today
        for record in self._live_records(person):
            if record.source == "education":
                record.row = None
                self._log(person, "left_school", record)


def _tag_pair(first: Person, second: Person, kind: str) -> None:
    first.hard_cases.append(f"{kind}:{second.person_id}")
    second.hard_cases.append(f"{kind}:{first.person_id}")
