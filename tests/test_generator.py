"""The synthetic population: valid identifiers, determinism, rates and complete truth."""

from __future__ import annotations

import csv
import filecmp
from collections import Counter
from datetime import date, datetime
from pathlib import Path

import pytest

from linkage.generate import generate_population
from linkage.generate.corruptions import RATES
from linkage.generate.identifiers import chi_check_digit, is_valid_chi, is_valid_scn
from linkage.generate.writer import EXTRACTS

PEOPLE = 8000
NIGHT_1 = "2026-11-01"


@pytest.fixture(scope="module")
def population(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("population")
    generate_population(out, people=PEOPLE, seed=11, nights=3)
    return out


def read_extract(out: Path, night: str, agency: str) -> list[dict[str, str]]:
    name, encoding, delimiter, _ = EXTRACTS[agency]
    with (out / "landing" / night / name).open(encoding=encoding, newline="") as handle:
        return list(csv.DictReader(handle, delimiter=delimiter))


def read_truth(out: Path, name: str) -> list[dict[str, str]]:
    with (out / "truth" / name).open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def tags_by_record(out: Path, night: str = NIGHT_1) -> dict[tuple[str, str], set[str]]:
    return {
        (row["source"], row["source_record_id"]): set(filter(None, row["corruptions"].split(";")))
        for row in read_truth(out, "records.csv")
        if row["night"] == night
    }


def test_chi_check_digit_follows_modulus_11() -> None:
    # weights 10..2 over 010203123: 0+9+0+14+0+15+4+6+6 = 54; 54 % 11 = 10; 11 - 10 = 1
    assert chi_check_digit("010203123") == 1
    assert is_valid_chi("0102031231") and not is_valid_chi("0102031232")


def test_identifiers_valid_exactly_where_not_miskeyed(population: Path) -> None:
    tags = tags_by_record(population)
    people = {row["person_id"]: row for row in read_truth(population, "people.csv")}
    truth = {
        (row["source"], row["source_record_id"]): row["person_id"]
        for row in read_truth(population, "records.csv")
        if row["night"] == NIGHT_1
    }
    checked = 0
    for agency, column in [("health", "CHI_Number"), ("socialwork", "CHI")]:
        id_column = EXTRACTS[agency][3][0]
        for row in read_extract(population, NIGHT_1, agency):
            if not row[column]:
                continue
            key = (agency, row[id_column])
            miskeyed = "chi_miskeyed" in tags[key]
            assert is_valid_chi(row[column]) != miskeyed, key
            if not miskeyed:
                person = people[truth[key]]
                assert row[column] == person["chi"]
                assert row[column][:6] == datetime.fromisoformat(person["date_of_birth"]).strftime(
                    "%d%m%y"
                )
                assert (int(row[column][8]) % 2 == 1) == (person["sex"] == "M")
                checked += 1
    for row in read_extract(population, NIGHT_1, "education"):
        miskeyed = "scn_miskeyed" in tags[("education", row["PupilRef"])]
        assert is_valid_scn(row["SCN"]) != miskeyed
    assert checked > PEOPLE * 0.9
    chis = [row["chi"] for row in people.values()]
    assert len(chis) == len(set(chis)), "every person has their own CHI"


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    for name, seed in [("a", 5), ("b", 5), ("c", 6)]:
        generate_population(tmp_path / name, people=600, seed=seed, nights=2)
    files = [p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file()]
    assert len(files) == 2 * 4 + 4
    _, mismatch, errors = filecmp.cmpfiles(tmp_path / "a", tmp_path / "b", files, shallow=False)
    assert mismatch == [] and errors == []
    _, mismatch, _ = filecmp.cmpfiles(tmp_path / "a", tmp_path / "c", files, shallow=False)
    assert len(mismatch) == len(files)


@pytest.mark.parametrize(
    ("tag", "agency"),
    [
        ("typo_forename", "police"),
        ("typo_surname", "health"),
        ("nickname", "police"),
        ("chi_miskeyed", "health"),
        ("dob_placeholder", "police"),
        ("typo_forename", "health"),
        ("dob_missing", "police"),
        ("name_swap", "police"),
    ],
)
def test_corruption_rates_within_tolerance(population: Path, tag: str, agency: str) -> None:
    tags = [t for (source, _), t in tags_by_record(population).items() if source == agency]
    observed = sum(tag in t for t in tags) / len(tags)
    expected = RATES[tag if tag != "chi_miskeyed" else "id_miskeyed"][agency]
    if tag == "nickname":  # only names with a nickname can take one
        assert 0.2 * expected < observed < expected
    else:
        tolerance = 4 * (expected * (1 - expected) / len(tags)) ** 0.5 + 0.002
        assert abs(observed - expected) < tolerance, (observed, expected)


def test_hard_cases_present_in_realistic_proportions(population: Path) -> None:
    people = read_truth(population, "people.csv")
    kinds = Counter(
        tag.split(":")[0] for row in people for tag in row["hard_cases"].split(";") if tag
    )
    assert 0.002 < kinds["twin"] / len(people) < 0.03
    assert kinds["father_son"] > 0 and kinds["same_name_dob"] > 0
    by_id = {row["person_id"]: row for row in people}
    for row in people:
        for tag in filter(None, row["hard_cases"].split(";")):
            kind, other_id = tag.split(":")
            other = by_id[other_id]
            if kind == "twin":
                assert (other["date_of_birth"], other["surname"]) == (
                    row["date_of_birth"],
                    row["surname"],
                )
                assert other["forename"] != row["forename"]
                assert other["household_id"] == row["household_id"]
            if kind == "father_son":
                assert other["forename"] == row["forename"]
                assert other["date_of_birth"] != row["date_of_birth"]
            if kind == "same_name_dob":
                assert (other["forename"], other["surname"], other["date_of_birth"]) == (
                    row["forename"],
                    row["surname"],
                    row["date_of_birth"],
                )
                assert other["household_id"] != row["household_id"]


def test_truth_complete_and_coverage_realistic(population: Path) -> None:
    records = read_truth(population, "records.csv")
    people = {row["person_id"] for row in read_truth(population, "people.csv")}
    for night in ["2026-11-01", "2026-11-02", "2026-11-03"]:
        truth_keys = [(r["source"], r["source_record_id"]) for r in records if r["night"] == night]
        assert len(truth_keys) == len(set(truth_keys)), "each record once per night"
        extract_keys = [
            (agency, row[EXTRACTS[agency][3][0]])
            for agency in EXTRACTS
            for row in read_extract(population, night, agency)
        ]
        assert sorted(extract_keys) == sorted(truth_keys)
    assert {r["person_id"] for r in records} <= people
    per_source = Counter(r["source"] for r in records if r["night"] == NIGHT_1)
    assert 0.93 < per_source["health"] / PEOPLE < 1.02
    assert 0.10 < per_source["education"] / PEOPLE < 0.30
    assert 0.02 < per_source["police"] / PEOPLE < 0.12
    assert 0.005 < per_source["socialwork"] / PEOPLE < 0.05


def test_deltas_carry_every_change_kind(population: Path) -> None:
    changes = Counter(row["change"] for row in read_truth(population, "changes.csv"))
    for kind in ["moved", "removed_record", "new_person", "new_incident", "corrected_record"]:
        assert changes[kind] > 0, kind
    concerns = read_truth(population, "concerns.csv")
    assert {c["agency"] for c in concerns} == {"socialwork", "health", "police", "education"}


def test_encodings_and_columns_as_documented(population: Path) -> None:
    for name, encoding, delimiter, columns in EXTRACTS.values():
        raw = (population / "landing" / NIGHT_1 / name).read_bytes()
        header = raw.split(b"\n", 1)[0].decode(encoding).split(delimiter)
        assert header == columns
        if encoding == "utf-8":
            raw.decode("utf-8")
    education = (population / "landing" / NIGHT_1 / EXTRACTS["education"][0]).read_bytes()
    assert "ò".encode("latin-1") in education or "ì".encode("latin-1") in education
    assert date.fromisoformat(NIGHT_1)
