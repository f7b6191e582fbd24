"""The synthetic population: valid identifiers, determinism, rates, hard cases and truth.

One real 20,000-person, three-night generation (in chunks of 5,000) is shared by most
tests; the rest use tiny generations or hand-made values.
"""

from __future__ import annotations

import csv
import filecmp
import random
from collections import Counter, defaultdict
from datetime import date
from pathlib import Path

import pytest

from linkage.generate import generate_population
from linkage.generate.corruptions import RATES, has_accent, is_mac, mac_variant, typo
from linkage.generate.extracts import EXTRACTS
from linkage.generate.households import Household, Person
from linkage.generate.identifiers import (
    Issuer,
    chi_check_digit,
    is_valid_chi,
    is_valid_pnc,
    is_valid_scn,
    miskey,
    scn_check_digit,
)
from linkage.generate.names import NICKNAMES
from linkage.generate.places import Address
from linkage.generate.rates import HEALTH_COVERAGE, TWIN_BIRTH_RATE
from linkage.generate.records import draw_corruptions
from linkage.generate.truth import TRUTH_COLUMNS

PEOPLE = 20_000
NIGHTS = ["2026-11-01", "2026-11-02", "2026-11-03"]
NIGHT_1 = NIGHTS[0]
TODAY = date.fromisoformat(NIGHT_1)

Row = dict[str, str]


@pytest.fixture(scope="module")
def population(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("population")
    generate_population(out, people=PEOPLE, seed=11, nights=3, chunk_size=5_000)
    return out


@pytest.fixture(scope="module")
def extracts(population: Path) -> dict[tuple[str, str], list[Row]]:
    """(night, source) -> rows of that night's extract."""
    tables = {}
    for night in NIGHTS:
        for source, spec in EXTRACTS.items():
            path = population / "landing" / night / spec.file_name
            with path.open(encoding=spec.encoding, newline="") as handle:
                tables[night, source] = list(csv.DictReader(handle, delimiter=spec.delimiter))
    return tables


def read_truth(out: Path, name: str) -> list[Row]:
    with (out / "truth" / name).open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def truth(population: Path) -> dict[str, list[Row]]:
    return {name: read_truth(population, name) for name in TRUTH_COLUMNS}


@pytest.fixture(scope="module")
def people(truth: dict[str, list[Row]]) -> dict[str, Row]:
    return {row["person_id"]: row for row in truth["people.csv"]}


@pytest.fixture(scope="module")
def night_1(truth: dict[str, list[Row]]) -> dict[tuple[str, str], Row]:
    """(source, record id) -> truth row, for the first night."""
    return {
        (row["source"], row["source_record_id"]): row
        for row in truth["records.csv"]
        if row["night"] == NIGHT_1
    }


def tags_of(row: Row) -> set[str]:
    return set(filter(None, row["corruptions"].split(";")))


def age_on_night_1(person: Row) -> float:
    return (TODAY - date.fromisoformat(person["date_of_birth"])).days / 365.25


# -- identifiers ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("first9", "check"),
    [
        ("010203123", 1),  # 0+9+0+14+0+15+4+6+6 = 54; 54 % 11 = 10; 11 - 10 = 1
        ("000000000", 0),  # 11 - 0 = 11 -> 0
        ("000000006", None),  # 6*2 = 12; 12 % 11 = 1; 11 - 1 = 10: never issued
        ("311299004", 8),  # 30+9+8+14+54+45+0+0+8 = 168; 168 % 11 = 3; 11 - 3 = 8
    ],
)
def test_chi_check_digit_is_modulus_11(first9: str, check: int | None) -> None:
    assert chi_check_digit(first9) == check


@pytest.mark.parametrize(
    ("chi", "valid"),
    [
        ("0102031231", True),
        ("0102031232", False),
        ("0000000000", True),
        ("0000000060", False),  # the serial whose check would be 10
        ("010203123", False),  # nine digits
        ("01020312A1", False),
    ],
)
def test_is_valid_chi(chi: str, valid: bool) -> None:
    assert is_valid_chi(chi) is valid


def test_scn_and_pnc_checks() -> None:
    # SCN: weights 9..2 over 12345678 = 9+16+21+24+25+24+21+16 = 156; 156 % 11 = 2; 11-2 = 9
    assert scn_check_digit("12345678") == 9
    assert is_valid_scn("123456789") and not is_valid_scn("123456788")
    # PNC: (19 * 10**7 + 123456) % 23 = 5 -> "ZABCDEFGHJKLMNPQRTUVWXY"[5] = "E"
    assert is_valid_pnc("2019/0123456E") and not is_valid_pnc("2019/0123456F")


def test_issued_identifiers_are_valid_and_miskeying_always_breaks_them() -> None:
    issuer, rng = Issuer(seed=3), random.Random(3)
    chis = [issuer.chi(date(1980, 5, 17), "F") for _ in range(300)]
    assert len(set(chis)) == 300 and all(is_valid_chi(chi) for chi in chis)
    assert all(chi.startswith("170580") and int(chi[8]) % 2 == 0 for chi in chis)
    scns = [issuer.scn() for _ in range(300)]
    assert len(set(scns)) == 300 and all(is_valid_scn(scn) for scn in scns)
    assert all(is_valid_pnc(issuer.pnc(2020)) for _ in range(100))
    for chi in chis:
        miskeyed = miskey(rng, chi, is_valid_chi)
        assert not is_valid_chi(miskeyed) and len(miskeyed) == 10


def test_ids_in_extracts_valid_exactly_where_not_miskeyed(
    extracts: dict[tuple[str, str], list[Row]],
    night_1: dict[tuple[str, str], Row],
    people: dict[str, Row],
) -> None:
    checked = 0
    for source, id_column, chi_column in [
        ("health", "Patient_ID", "CHI_Number"),
        ("socialwork", "ClientID", "CHI"),
    ]:
        for row in extracts[NIGHT_1, source]:
            truth_row = night_1[source, row[id_column]]
            if not row[chi_column]:
                continue
            miskeyed = "chi_miskeyed" in tags_of(truth_row)
            assert is_valid_chi(row[chi_column]) is not miskeyed
            if not miskeyed:
                assert row[chi_column] == people[truth_row["person_id"]]["chi"]
                checked += 1
    assert checked > PEOPLE * 0.9
    for row in extracts[NIGHT_1, "education"]:
        truth_row = night_1["education", row["PupilRef"]]
        miskeyed = "scn_miskeyed" in tags_of(truth_row)
        assert is_valid_scn(row["SCN"]) is not miskeyed
        if not miskeyed:
            assert row["SCN"] == people[truth_row["person_id"]]["scn"]
    pncs = [row["PNC_ID"] for row in extracts[NIGHT_1, "police"] if row["PNC_ID"]]
    assert pncs and all(is_valid_pnc(pnc) for pnc in pncs)


def test_every_true_chi_is_unique_and_agrees_with_dob_and_sex(people: dict[str, Row]) -> None:
    chis = [person["chi"] for person in people.values()]
    assert len(chis) == len(set(chis))
    for person in people.values():
        dob = date.fromisoformat(person["date_of_birth"])
        assert is_valid_chi(person["chi"])
        assert person["chi"][:6] == f"{dob:%d%m%y}"
        assert (int(person["chi"][8]) % 2 == 1) == (person["sex"] == "M")


# -- determinism ----------------------------------------------------------------------------
def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    for name, seed in [("a", 5), ("b", 5), ("c", 6)]:
        generate_population(
            tmp_path / name, people=900, seed=seed, nights=2, chunk_size=400, write_config=False
        )
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.*"))
    assert len(files) == 2 * 4 + 4
    _, mismatch, errors = filecmp.cmpfiles(tmp_path / "a", tmp_path / "b", files, shallow=False)
    assert mismatch == [] and errors == []
    _, mismatch, _ = filecmp.cmpfiles(tmp_path / "a", tmp_path / "c", files, shallow=False)
    assert len(mismatch) == len(files)


def test_progress_reports_people_done_after_each_chunk(tmp_path: Path) -> None:
    done: list[int] = []
    summary = generate_population(
        tmp_path, people=500, seed=1, nights=1, chunk_size=200, progress=done.append
    )
    assert done == [200, 400, 500]
    assert summary.people == 500 and summary.households > 150
    assert summary.records[NIGHT_1]["health"] > 450


# -- corruption rates -----------------------------------------------------------------------
def _surname_used(person: Row, tags: set[str]) -> str:
    return person["birth_surname"] if "birth_surname" in tags else person["surname"]


def _forename_replaced(tags: set[str]) -> bool:
    return bool(tags & {"nickname", "baby_forename"})


def _dob_swappable(person: Row, tags: set[str]) -> bool:
    dob = date.fromisoformat(person["date_of_birth"])
    return dob.day <= 12 and dob.day != dob.month and not tags & {"dob_missing", "dob_placeholder"}


def _is_namesake_son(person: Row, people: dict[str, Row]) -> bool:
    return any(
        tag.startswith("father_son:")
        and people[tag.split(":")[1]]["date_of_birth"] < person["date_of_birth"]
        for tag in person["hard_cases"].split(";")
    )


# tag -> which records it can apply to (the denominator of its rate)
ELIGIBLE = {
    "typo_forename": lambda p, t, _: "baby_forename" not in t,
    "typo_surname": lambda p, t, _: True,
    "name_swap": lambda p, t, _: True,
    "nickname": lambda p, t, _: p["forename"] in NICKNAMES and "baby_forename" not in t,
    "mac_variant": lambda p, t, _: is_mac(_surname_used(p, t)),
    "accent_dropped": lambda p, t, _: (
        has_accent(_surname_used(p, t)) or (has_accent(p["forename"]) and not _forename_replaced(t))
    ),
    "middle_in_forename": lambda p, t, _: bool(p["middle_names"]),
    "birth_surname": lambda p, t, _: p["surname"] != p["birth_surname"],
    "dob_missing": lambda p, t, _: True,
    "dob_placeholder": lambda p, t, _: True,
    "dob_day_month_swap": lambda p, t, _: _dob_swappable(p, t),
    "upper_case": lambda p, t, _: True,
    "lower_case": lambda p, t, _: True,
    "extra_whitespace": lambda p, t, _: True,
    "sex_unknown": lambda p, t, _: True,
    "postcode_missing": lambda p, t, _: True,
    "jnr_suffix": lambda p, t, people: _is_namesake_son(p, people),
    "baby_forename": lambda p, t, _: (TODAY - date.fromisoformat(p["date_of_birth"])).days < 42,
}
RATE_CASES = [
    (tag, source)
    for tag in ELIGIBLE
    for source in ("health", "education", "police", "socialwork")
    if RATES[tag][source] > 0
]


@pytest.mark.parametrize(("tag", "source"), RATE_CASES)
def test_corruption_rate_within_tolerance(
    tag: str,
    source: str,
    night_1: dict[tuple[str, str], Row],
    people: dict[str, Row],
) -> None:
    eligible = [
        tags_of(row)
        for (row_source, _), row in night_1.items()
        if row_source == source and ELIGIBLE[tag](people[row["person_id"]], tags_of(row), people)
    ]
    expected = RATES[tag][source]
    if len(eligible) < 30:  # the per-person draw test below covers these
        pytest.skip(f"{tag}: only {len(eligible)} eligible {source} records at this size")
    observed = sum(tag in tags for tags in eligible) / len(eligible)
    tolerance = 4 * (expected * (1 - expected) / len(eligible)) ** 0.5 + 0.003
    assert observed == pytest.approx(expected, abs=tolerance), (observed, len(eligible))


@pytest.mark.parametrize("source", ["health", "socialwork"])
def test_duplicate_and_identifier_rates(source: str, night_1: dict[tuple[str, str], Row]) -> None:
    rows = [tags_of(row) for (s, _), row in night_1.items() if s == source]
    duplicates = sum("duplicate" in tags for tags in rows)
    originals = len(rows) - duplicates
    expected = RATES["duplicate"][source]
    tolerance = 4 * (expected / originals) ** 0.5 + 0.002
    assert duplicates / originals == pytest.approx(expected, abs=tolerance)


def test_chi_miskeyed_and_fresh_nominal_rates(
    extracts: dict[tuple[str, str], list[Row]], night_1: dict[tuple[str, str], Row]
) -> None:
    with_chi = [
        tags_of(night_1["health", row["Patient_ID"]])
        for row in extracts[NIGHT_1, "health"]
        if row["CHI_Number"]
    ]
    observed = sum("chi_miskeyed" in tags for tags in with_chi) / len(with_chi)
    assert observed == pytest.approx(RATES["chi_miskeyed"]["health"], abs=0.0025)
    police = [row for (s, _), row in night_1.items() if s == "police"]
    repeat_rows = len(police) - len({row["person_id"] for row in police})
    fresh = sum("fresh_nominal" in tags_of(row) for row in police)
    assert fresh / repeat_rows == pytest.approx(RATES["fresh_nominal"]["police"], abs=0.03)


def _eligible_for_everything() -> Person:
    """An adult namesake son who moved last year, with accents, a Mac surname and a nickname."""
    home = Address("12", "Kelvin Street", "Street", "Flat 2/1", "Glasgow", "G12 8QQ", "G12")
    old_home = Address("3", "Oak Road", "Road", "", "Glasgow", "G11 5AB", "G11")
    household = Household("H1", 1, home)
    person = Person(
        person_id="P1", household=household, sex="M", dob=date(1990, 3, 7),
        forename="Seumas", middle_names="Iain", surname="MacDòmhnaill",
        birth_surname="Ó Briain", married=True, chi="0703901234", address=home,
        previous_address=old_home,
    )  # fmt: skip
    person.father = person  # stands in for a father of the same name
    return person


@pytest.mark.parametrize("source", ["health", "education", "police", "socialwork"])
def test_drawn_corruption_rates_for_a_person_eligible_for_all(source: str) -> None:
    """Tags the truth files cannot show eligibility for (an old address, a Jnr) included."""
    rng, person = random.Random(7), _eligible_for_everything()
    draws = [set(draw_corruptions(rng, source, person, True, TODAY)) for _ in range(20_000)]
    for tag in ["moved_old_address", "jnr_suffix", "nickname", "middle_in_forename",
                "accent_dropped", "birth_surname", "typo_surname", "upper_case"]:  # fmt: skip
        observed = sum(tag in tags for tags in draws) / len(draws)
        assert observed == pytest.approx(RATES[tag][source], abs=0.012), tag
    with_mac = [tags for tags in draws if "birth_surname" not in tags]
    observed = sum("mac_variant" in tags for tags in with_mac) / len(with_mac)
    assert observed == pytest.approx(RATES["mac_variant"][source], abs=0.012)


def test_corruptions_do_what_they_say() -> None:
    rng = random.Random(1)
    for _ in range(200):
        assert typo(rng, "Campbell") != "Campbell"
    assert {mac_variant(rng, "MacDonald") for _ in range(200)} >= {"McDonald", "Macdonald"}
    assert is_mac("McLeod") and is_mac("Macdonald") and not is_mac("Mackie")


# -- hard cases -----------------------------------------------------------------------------
def test_hard_cases_in_realistic_proportions(people: dict[str, Row]) -> None:
    residents = [p for p in people.values() if p["first_night"] == NIGHT_1]
    children = [p for p in residents if age_on_night_1(p) < 18]
    households = {p["household_id"] for p in residents}
    kinds = Counter(
        tag.split(":")[0] for p in residents for tag in p["hard_cases"].split(";") if tag
    )
    twin_share = kinds["twin"] / len(children)  # ~2 twins per twin birth
    assert twin_share == pytest.approx(2 * TWIN_BIRTH_RATE, abs=0.012)
    namesake_households = {p["household_id"] for p in residents if "father_son:" in p["hard_cases"]}
    assert len(namesake_households) / len(households) == pytest.approx(0.01, abs=0.005)
    assert kinds["same_name_dob"] / 2 == pytest.approx(PEOPLE * 2 / 1000, rel=0.1)
    assert kinds["sibling"] > len(children) / 2


def test_hard_case_pairs_are_what_their_tags_say(people: dict[str, Row]) -> None:
    for person in people.values():
        for tag in filter(None, person["hard_cases"].split(";")):
            kind, other_id = tag.split(":")
            other = people[other_id]
            assert f"{kind}:{person['person_id']}" in other["hard_cases"]
            same_home = other["household_id"] == person["household_id"]
            if kind == "twin":
                assert other["date_of_birth"] == person["date_of_birth"] and same_home
                assert other["forename"] != person["forename"]
            elif kind == "father_son":
                assert (other["forename"], other["sex"]) == (person["forename"], "M")
                assert other["date_of_birth"] != person["date_of_birth"] and same_home
            elif kind == "same_name_dob":
                same = ("forename", "surname", "date_of_birth")
                assert [other[k] for k in same] == [person[k] for k in same]
                assert not same_home and other["chi"] != person["chi"]
            else:
                assert kind == "sibling" and same_home


# -- truth and coverage ---------------------------------------------------------------------
def test_every_extract_record_in_truth_exactly_once_per_night(
    extracts: dict[tuple[str, str], list[Row]],
    truth: dict[str, list[Row]],
    people: dict[str, Row],
) -> None:
    for night in NIGHTS:
        truth_keys = [
            (row["source"], row["source_record_id"])
            for row in truth["records.csv"]
            if row["night"] == night
        ]
        extract_keys = [
            (source, row[EXTRACTS[source].columns[0]])
            for source in EXTRACTS
            for row in extracts[night, source]
        ]
        assert len(truth_keys) == len(set(truth_keys))
        assert sorted(extract_keys) == sorted(truth_keys)
    assert {row["person_id"] for row in truth["records.csv"]} <= set(people)


def test_record_ids_are_stable_across_nights(truth: dict[str, list[Row]]) -> None:
    owner: dict[tuple[str, str], str] = {}
    for row in truth["records.csv"]:
        key = (row["source"], row["source_record_id"])
        assert owner.setdefault(key, row["person_id"]) == row["person_id"]


def test_coverage_proportions(night_1: dict[tuple[str, str], Row], people: dict[str, Row]) -> None:
    persons = defaultdict(set)
    for (source, _), row in night_1.items():
        persons[source].add(row["person_id"])
    assert len(persons["health"]) / PEOPLE == pytest.approx(HEALTH_COVERAGE, abs=0.01)
    school_age = [
        p
        for p in people.values()
        if 5.0 <= age_on_night_1(p) < 17.9 and p["first_night"] == NIGHT_1
    ]
    pupils = sum(p["person_id"] in persons["education"] for p in school_age)
    assert pupils / len(school_age) == pytest.approx(0.95, abs=0.02)
    assert 0.035 < len(persons["police"]) / PEOPLE < 0.07
    assert 0.012 < len(persons["socialwork"]) / PEOPLE < 0.03


def test_nightly_deltas_are_explained_by_changes(truth: dict[str, list[Row]]) -> None:
    kinds = Counter(row["change"] for row in truth["changes.csv"])
    for kind in [
        "new_person", "moved", "name_change", "corrected_record", "removed_record",
        "new_incident", "case_opened", "case_closed", "left_school",
    ]:  # fmt: skip
        assert kinds[kind] > 0, kind
    keys = defaultdict(set)
    for row in truth["records.csv"]:
        keys[row["night"]].add((row["source"], row["source_record_id"]))
    for before, after in zip(NIGHTS, NIGHTS[1:], strict=False):
        changes = [row for row in truth["changes.csv"] if row["night"] == after]
        added = {
            (row["source"], row["source_record_id"])
            for row in changes
            if row["change"] in ("new_record", "new_incident", "case_opened")
        }
        removed = {
            (row["source"], row["source_record_id"])
            for row in changes
            if row["change"] == "removed_record"
        }
        assert keys[after] - keys[before] <= added and keys[after] - keys[before]
        assert keys[before] - keys[after] == removed


def test_people_enter_and_leave_on_the_nights_recorded(
    truth: dict[str, list[Row]], people: dict[str, Row]
) -> None:
    new = {r["person_id"] for r in truth["changes.csv"] if r["change"] == "new_person"}
    gone = {r["person_id"] for r in truth["changes.csv"] if r["change"] == "removed_person"}
    assert new == {p for p, row in people.items() if row["first_night"] != NIGHT_1}
    assert gone == {p for p, row in people.items() if row["last_night"]}


# -- concerns -------------------------------------------------------------------------------
def test_concerns_cluster_across_agencies(
    truth: dict[str, list[Row]], people: dict[str, Row]
) -> None:
    open_tonight = [
        row for row in truth["concerns.csv"] if row["night"] == NIGHT_1 and row["status"] == "open"
    ]
    agencies_by_person = defaultdict(set)
    for row in open_tonight:
        agencies_by_person[row["person_id"]].add(row["agency"])
    cp_children = {r["person_id"] for r in open_tonight if r["concern_type"] == "CHILD_PROTECTION"}
    health_flagged = {r["person_id"] for r in open_tonight if r["agency"] == "health"}
    assert len(cp_children & health_flagged) / len(cp_children) > 0.6
    assert health_flagged - cp_children, "health holds some flags social work does not"
    homes_with_police = {
        people[r["person_id"]]["household_id"] for r in open_tonight if r["agency"] == "police"
    }
    cp_homes = {people[p]["household_id"] for p in cp_children}
    assert len(cp_homes & homes_with_police) / len(cp_homes) > 0.4
    assert sum(len(a) > 1 for a in agencies_by_person.values()) > PEOPLE * 0.003


# -- files ----------------------------------------------------------------------------------
def test_encodings_delimiters_and_columns_as_documented(population: Path) -> None:
    for night in NIGHTS:
        for spec in EXTRACTS.values():
            raw = (population / "landing" / night / spec.file_name).read_bytes()
            text = raw.decode(spec.encoding)
            header = text.split("\n", 1)[0].split(spec.delimiter)
            assert tuple(header) == spec.columns
            rows = list(csv.reader(text.splitlines(), delimiter=spec.delimiter))
            assert {len(row) for row in rows} == {len(spec.columns)}
    folder = population / "landing" / NIGHT_1
    education = (folder / "education_pupils.txt").read_bytes()
    assert any(byte >= 0x80 for byte in education), "latin-1 accents are written as such"
    with pytest.raises(UnicodeDecodeError):
        education.decode("utf-8")
    assert not (folder / "health_patients.csv").read_text("utf-8").isascii()
    for name, columns in TRUTH_COLUMNS.items():
        header = (population / "truth" / name).read_text("utf-8").split("\n", 1)[0]
        assert tuple(header.split(",")) == columns


# -- docs -----------------------------------------------------------------------------------
README = Path(__file__).resolve().parent.parent / "sample_data" / "README.md"


def test_readme_documents_every_rate_and_column() -> None:
    """The sample README's rates table and column lists cannot drift from the code."""
    text = README.read_text("utf-8")
    documented = {}
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if len(cells) == 6 and cells[0].startswith("`") and cells[0].strip("`") in RATES:
            documented[cells[0].strip("`")] = [0.0 if c == "–" else float(c) for c in cells[1:5]]
    for tag, by_agency in RATES.items():
        assert documented.get(tag) == [by_agency[a] for a in EXTRACTS], tag
    for spec in EXTRACTS.values():
        assert spec.file_name in text
        for column in spec.columns:
            assert f"`{column}`" in text, column
    for columns in TRUTH_COLUMNS.values():
        for column in columns:
            assert f"`{column}`" in text, column
