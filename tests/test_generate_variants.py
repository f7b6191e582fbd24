"""Generator variants: each deterministic, each with whole truth, each with a config that fits.

Small generations (1,000 people, two nights) per variant, shared by the module. The
written configs are checked at the YAML level against the files' own headers: the
`identifiers:` key and the project's `identifiers` / `postcode_format` keys are read by
the config loader on main, not yet on this branch.
"""

from __future__ import annotations

import csv
import filecmp
import re
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from linkage.cli import app
from linkage.generate import generate_population
from linkage.generate.extracts import ExtractSpec, extract_specs
from linkage.generate.names import ISLAND_SURNAMES
from linkage.generate.variants import VARIANTS, variant_named

REPO = Path(__file__).resolve().parent.parent
PEOPLE = 1_000
NIGHTS = ["2026-11-01", "2026-11-02"]
UK_POSTCODE = re.compile(r"[A-Z]{1,2}[0-9][0-9A-Z]? ?[0-9][A-Z]{2}", re.IGNORECASE)
HOUSING_REF = re.compile(r"HPR[0-9]{7}")
NATIONAL_COLUMN = re.compile(r"(CHI|SCN|PNC)(_|$)", re.IGNORECASE)  # not Child_Protection_Flag

Row = dict[str, str]


def generate(out: Path, variant: str, seed: int = 3) -> Path:
    generate_population(out, people=PEOPLE, seed=seed, nights=2, chunk_size=400, variant=variant)
    return out


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """variant -> its output folder."""
    return {name: generate(tmp_path_factory.mktemp(name), name) for name in VARIANTS}


def specs_of(variant: str) -> dict[str, ExtractSpec]:
    return extract_specs(variant_named(variant))


def read_extract(out: Path, night: str, spec: ExtractSpec) -> list[Row]:
    path = out / "landing" / night / spec.file_name
    with path.open(encoding=spec.encoding, newline="") as handle:
        return list(csv.DictReader(handle, delimiter=spec.delimiter))


def read_truth(out: Path, name: str) -> list[Row]:
    with (out / "truth" / name).open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def tags_of(row: Row) -> set[str]:
    return set(filter(None, row["corruptions"].split(";")))


def truth_by_record(out: Path, night: str) -> dict[tuple[str, str], Row]:
    return {
        (row["source"], row["source_record_id"]): row
        for row in read_truth(out, "records.csv")
        if row["night"] == night
    }


# -- every variant ----------------------------------------------------------------------------
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_same_seed_same_bytes_other_seed_differs(variant: str, tmp_path: Path) -> None:
    first, again = generate(tmp_path / "a", variant), generate(tmp_path / "b", variant)
    other = generate(tmp_path / "c", variant, seed=4)
    files = sorted(p.relative_to(first) for p in first.rglob("*.*"))
    extracts = [f for f in files if f.parts[0] == "landing"]
    assert len(extracts) == len(NIGHTS) * len(specs_of(variant))
    _, mismatch, errors = filecmp.cmpfiles(first, again, files, shallow=False)
    assert mismatch == [] and errors == []
    _, mismatch, _ = filecmp.cmpfiles(first, other, extracts, shallow=False)
    assert len(mismatch) == len(extracts)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_extract_row_in_truth_exactly_once_per_night(
    variant: str, generated: dict[str, Path]
) -> None:
    assert_truth_whole(generated[variant], variant)


def assert_truth_whole(out: Path, variant: str) -> None:
    """Every extract row of every night has exactly one truth row, and no truth row is spare."""
    truth_rows = read_truth(out, "records.csv")
    keys = Counter((r["night"], r["source"], r["source_record_id"]) for r in truth_rows)
    assert max(keys.values()) == 1
    for night in NIGHTS:
        in_files = {
            (night, source, row[spec.columns[0]])
            for source, spec in specs_of(variant).items()
            for row in read_extract(out, night, spec)
        }
        assert in_files == {key for key in keys if key[0] == night}


def test_default_variant_reproduces_the_committed_sample(tmp_path: Path) -> None:
    """`make sample` into a fresh folder gives sample_data's files byte for byte."""
    generate_population(tmp_path, people=3000, seed=20261101, nights=3, write_config=False)
    files = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.*"))
    assert not (tmp_path / "config").exists()
    _, mismatch, errors = filecmp.cmpfiles(REPO / "sample_data", tmp_path, files, shallow=False)
    assert (mismatch, errors) == ([], [])


# -- no_national_ids --------------------------------------------------------------------------
def test_no_national_ids_has_no_national_columns_and_4_digit_postcodes(
    generated: dict[str, Path],
) -> None:
    out = generated["no_national_ids"]
    postcodes: set[str] = set()
    for night in NIGHTS:
        for spec in specs_of("no_national_ids").values():
            header = (out / "landing" / night / spec.file_name).read_text(spec.encoding)
            columns = header.split("\n", 1)[0].split(spec.delimiter)
            assert not [c for c in columns if NATIONAL_COLUMN.match(c)], columns
            postcode_column = next(c for c in columns if c.lower() == "postcode")
            postcodes |= {r[postcode_column] for r in read_extract(out, night, spec)}
    postcodes.discard("")  # postcode_missing
    assert all(re.fullmatch("[0-9]{4}", code) for code in postcodes)
    households = {r["household_id"] for r in read_truth(out, "people.csv")}
    assert len(postcodes) < len(households) / 3, "an area code is shared by many households"
    people = read_truth(out, "people.csv")
    assert {(p["chi"], p["scn"]) for p in people} == {("", "")}
    tags = set().union(*(tags_of(r) for r in read_truth(out, "records.csv")))
    assert not tags & {"chi_miskeyed", "scn_miskeyed", "duplicate_no_chi", "postcode_no_space"}


# -- address_line -----------------------------------------------------------------------------
def test_address_line_police_address_ends_in_its_postcode(generated: dict[str, Path]) -> None:
    out = generated["address_line"]
    spec = specs_of("address_line")["police"]
    assert "AddressText" in spec.columns and "Postcode" not in spec.columns
    truth = truth_by_record(out, NIGHTS[0])
    rows = read_extract(out, NIGHTS[0], spec)
    assert set(rows[0]) == set(spec.columns)
    towns_given = 0
    for row in rows:
        line = row["AddressText"]
        parts = line.split(", ")
        if "postcode_missing" in tags_of(truth["police", row["IncidentPersonRef"]]):
            assert not UK_POSTCODE.fullmatch(parts[-1])
            continue
        assert UK_POSTCODE.fullmatch(parts[-1]), line
        assert re.match(r"(flat |[0-9])", parts[0], re.IGNORECASE), line
        towns_given += len(parts) > 2  # a line without its town is `36 Marchmont Rd, IV47 8AH`
    assert 0 < towns_given < len(rows), "some lines give the town, some do not"


# -- housing ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def housing(generated: dict[str, Path]) -> dict[str, Any]:
    out = generated["housing"]
    specs = specs_of("housing")
    return {
        "out": out,
        "rows": read_extract(out, NIGHTS[0], specs["housing"]),
        "socialwork": read_extract(out, NIGHTS[0], specs["socialwork"]),
        "truth": truth_by_record(out, NIGHTS[0]),
        "people": [p for p in read_truth(out, "people.csv") if p["first_night"] == NIGHTS[0]],
    }


def test_housing_ref_is_one_per_person_except_where_miskeyed(housing: dict[str, Any]) -> None:
    truth = housing["truth"]
    refs: dict[str, set[str]] = defaultdict(set)
    miskeyed: dict[str, set[str]] = defaultdict(set)
    rows_per_person: Counter[str] = Counter()
    for row in housing["rows"]:
        record = truth["housing", row["ApplicantRef"]]
        assert HOUSING_REF.fullmatch(row["HousingPersonRef"])
        bucket = miskeyed if "housing_ref_miskeyed" in tags_of(record) else refs
        bucket[record["person_id"]].add(row["HousingPersonRef"])
        rows_per_person[record["person_id"]] += 1
    assert all(len(values) == 1 for values in refs.values())
    for person_id, values in miskeyed.items():
        assert not values & refs.get(person_id, set())
    owners = Counter(next(iter(values)) for values in refs.values())
    assert max(owners.values()) == 1, "no two people share a reference"
    assert set(rows_per_person.values()) <= {1, 2, 3} and max(rows_per_person.values()) > 1
    share = len(rows_per_person) / len(housing["people"])
    assert 0.05 < share < 0.15, share


def test_social_work_records_the_housing_ref_for_some_clients(housing: dict[str, Any]) -> None:
    truth = housing["truth"]
    true_ref = {
        truth["housing", row["ApplicantRef"]]["person_id"]: row["HousingPersonRef"]
        for row in housing["rows"]
        if "housing_ref_miskeyed" not in tags_of(truth["housing", row["ApplicantRef"]])
    }
    on_register = recorded = 0
    for row in housing["socialwork"]:
        record = truth["socialwork", row["ClientID"]]
        person_id = record["person_id"]
        if person_id not in true_ref:
            assert row["HousingRef"] == ""
            continue
        on_register += 1
        if row["HousingRef"]:
            recorded += 1
            miskeyed = "housing_ref_miskeyed" in tags_of(record)
            assert (row["HousingRef"] == true_ref[person_id]) is not miskeyed
    assert on_register > 0 and 0 < recorded <= on_register


def test_housing_rows_carry_corruptions_and_their_own_date_style(
    housing: dict[str, Any],
) -> None:
    truth = housing["truth"]
    records = [truth["housing", row["ApplicantRef"]] for row in housing["rows"]]
    tags = Counter(tag for record in records for tag in tags_of(record))
    assert tags["upper_case"] > 0 and sum(tags.values()) > len(housing["rows"]) * 0.1
    for row in housing["rows"]:
        if row["BirthDate"]:
            datetime.strptime(row["BirthDate"], "%d-%b-%Y")
        datetime.strptime(row["ApplicationDate"], "%d-%b-%Y")
    raw = (housing["out"] / "landing" / NIGHTS[0] / "housing_register.tsv").read_text("utf-8")
    header = raw.split("\n", 1)[0].split("\t")
    assert header[:3] == ["ApplicantRef", "TenancyRef", "HousingPersonRef"]


# -- low name diversity (orthogonal to the variant) -------------------------------------------
NAMES_PEOPLE = 4_000  # enough for the shares of a few surnames; households cluster them


def generate_names(out: Path, diversity: str) -> Path:
    generate_population(
        out, people=NAMES_PEOPLE, seed=3, nights=2, chunk_size=400, name_diversity=diversity
    )
    return out


@pytest.fixture(scope="module")
def by_diversity(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The default variant at each name diversity, same people and seed."""
    return {name: generate_names(tmp_path_factory.mktemp(name), name) for name in ("normal", "low")}


def residents(out: Path) -> list[Row]:
    return [p for p in read_truth(out, "people.csv") if p["first_night"] == NIGHTS[0]]


def test_low_name_diversity_same_seed_same_bytes(
    by_diversity: dict[str, Path], tmp_path: Path
) -> None:
    low, again = by_diversity["low"], generate_names(tmp_path, "low")
    files = sorted(p.relative_to(low) for p in low.rglob("*.*"))
    _, mismatch, errors = filecmp.cmpfiles(low, again, files, shallow=False)
    assert (mismatch, errors) == ([], [])
    extracts = [f for f in files if f.parts[0] == "landing"]
    _, mismatch, _ = filecmp.cmpfiles(low, by_diversity["normal"], extracts, shallow=False)
    assert len(mismatch) == len(extracts)


def test_low_name_diversity_a_quarter_share_six_surnames(by_diversity: dict[str, Path]) -> None:
    def island_share(out: Path) -> float:
        people = residents(out)
        return sum(p["surname"] in ISLAND_SURNAMES for p in people) / len(people)

    assert island_share(by_diversity["low"]) == pytest.approx(0.25, abs=0.04)
    assert island_share(by_diversity["normal"]) < 0.05
    top_six = Counter(p["surname"] for p in residents(by_diversity["low"])).most_common(6)
    assert {name for name, _ in top_six} == set(ISLAND_SURNAMES)


def test_low_name_diversity_forenames_concentrate(by_diversity: dict[str, Path]) -> None:
    def forenames(diversity: str) -> Counter[str]:
        return Counter(p["forename"] for p in residents(by_diversity[diversity]))

    def top_ten_share(counts: Counter[str]) -> float:
        return sum(n for _, n in counts.most_common(10)) / sum(counts.values())

    low, normal = forenames("low"), forenames("normal")
    assert len(low) < len(normal) / 2
    assert top_ten_share(low) > top_ten_share(normal) + 0.15


def test_low_name_diversity_keeps_truth_and_hard_cases(by_diversity: dict[str, Path]) -> None:
    """Only names change: the truth is whole, and hard cases are what their tags say."""
    low = by_diversity["low"]
    assert_truth_whole(low, "scottish")
    people = {p["person_id"]: p for p in read_truth(low, "people.csv")}
    kinds: Counter[str] = Counter()
    for person in people.values():
        for tag in filter(None, person["hard_cases"].split(";")):
            kind, other_id = tag.split(":")
            kinds[kind] += 1
            other = people[other_id]
            assert f"{kind}:{person['person_id']}" in other["hard_cases"]
            if kind == "twin":
                assert other["date_of_birth"] == person["date_of_birth"]
                assert other["forename"] != person["forename"]
            elif kind == "same_name_dob":
                same = ("forename", "surname", "date_of_birth")
                assert [other[k] for k in same] == [person[k] for k in same]
    assert kinds["twin"] > 0 and kinds["same_name_dob"] > 0 and kinds["sibling"] > 0
    changes = Counter(row["change"] for row in read_truth(low, "changes.csv"))
    assert changes["moved"] > 0 and changes["name_change"] > 0 and changes["new_person"] > 0


# -- the written config -----------------------------------------------------------------------
def load_yaml(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text("utf-8"))


def columns_named(spec: Any) -> list[str]:
    """The file columns one field or identifier spec reads (shorthand or mapping)."""
    if isinstance(spec, str):
        return [spec]
    if isinstance(spec, list):
        return spec
    if isinstance(spec, dict) and "column" in spec:
        return columns_named(spec["column"])
    return []  # a constant, or a number such as open_for_days


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_config_reads_the_files_it_sits_beside(variant: str, generated: dict[str, Path]) -> None:
    config_dir = generated[variant] / "config"
    project = load_yaml(config_dir / "project.yaml")
    assert project["landing_dir"] == "../landing" and project["sources"] == "sources/*.yaml"
    assert {"warehouse", "output_dir", "archive_dir"} <= set(project)
    assert ("identifiers" in project) is (variant == "housing")
    as_written = "as_written" if variant == "no_national_ids" else None
    assert project.get("postcode_format") == as_written
    source_files = sorted((config_dir / "sources").glob("*.yaml"))
    assert [p.stem for p in source_files] == sorted(specs_of(variant))
    landing = (config_dir / project["landing_dir"]).resolve()
    for path in source_files:
        config = load_yaml(path)
        file = config["file"]
        [extract] = landing.glob(file["pattern"].replace("{run_date}", NIGHTS[0]))
        with extract.open(encoding=file["encoding"], newline="") as handle:
            header = next(csv.reader(handle, delimiter=file["delimiter"]))
        named = [config["record_id"]]
        for section in ("fields", "identifiers", "concern"):
            for spec in config.get(section, {}).values():
                named += columns_named(spec)
        assert set(named) <= set(header), (path.name, set(named) - set(header))
        assert not set(config["fields"]) & {"chi", "scn", "police_id", "pnc_id", "social_work_id"}


def test_identifier_columns_per_variant(generated: dict[str, Path]) -> None:
    def identifiers(variant: str) -> dict[str, dict[str, str]]:
        folder = generated[variant] / "config" / "sources"
        return {p.stem: load_yaml(p).get("identifiers", {}) for p in folder.glob("*.yaml")}

    assert identifiers("scottish")["police"] == {"police_id": "NominalRef", "pnc_id": "PNC_ID"}
    assert identifiers("no_national_ids") == {
        "health": {},
        "education": {},
        "police": {"police_id": "NominalRef"},
        "socialwork": {"social_work_id": "CaseRef"},
    }
    housing = identifiers("housing")
    assert housing["housing"] == {"housing_ref": "HousingPersonRef"}
    assert housing["socialwork"]["housing_ref"] == "HousingRef"
    police = load_yaml(generated["address_line"] / "config" / "sources" / "police.yaml")
    assert police["fields"]["address"] == "AddressText"
    assert not {"postcode", "town"} & set(police["fields"])


def test_identifier_registry_patterns_accept_the_generated_values(
    generated: dict[str, Path], housing: dict[str, Any]
) -> None:
    registry = load_yaml(generated["housing"] / "config" / "identifiers.yaml")["identifiers"]
    assert {"chi", "scn", "police_id", "pnc_id", "social_work_id", "housing_ref"} <= set(registry)
    assert registry["housing_ref"]["distinct_values_differ"] is True
    assert registry["police_id"]["equal_values_match"] is False

    def normalised(value: str) -> str:
        return re.sub(r"\s+", "", value.upper())

    housing_refs = [r["HousingPersonRef"] for r in housing["rows"]]
    housing_refs += [r["HousingRef"] for r in housing["socialwork"] if r["HousingRef"]]
    police = read_extract(generated["housing"], NIGHTS[0], specs_of("housing")["police"])
    pncs = [r["PNC_ID"] for r in police if r["PNC_ID"]]
    assert pncs and housing_refs
    pattern = re.compile(registry["housing_ref"]["pattern"])
    assert all(pattern.fullmatch(normalised(value)) for value in housing_refs)


def test_default_variant_config_matches_the_schemas_source_configs(
    generated: dict[str, Path],
) -> None:
    """The written configs say what schemas/sources/*.yaml say (identifiers moved out)."""
    registered = ("chi", "scn", "police_id", "pnc_id", "social_work_id")
    for path in sorted((REPO / "schemas" / "sources").glob("*.yaml")):
        expected = load_yaml(path)
        moved = {k: expected["fields"].pop(k) for k in registered if k in expected["fields"]}
        expected["identifiers"] = expected.get("identifiers", {}) | moved
        written = load_yaml(generated["scottish"] / "config" / "sources" / path.name)
        assert written == expected, path.name


# -- the command ------------------------------------------------------------------------------
def test_generate_command_takes_a_variant(tmp_path: Path) -> None:
    runner = CliRunner()
    args = ["generate", "--people", "200", "--nights", "1", "--out", str(tmp_path)]
    result = runner.invoke(app, [*args, "--variant", "housing"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "landing" / NIGHTS[0] / "housing_register.tsv").exists()
    assert (tmp_path / "config" / "identifiers.yaml").exists()
    result = runner.invoke(app, [*args, "--variant", "martian"])
    assert result.exit_code == 2 and "no_national_ids" in result.output


def test_generate_command_takes_a_name_diversity(tmp_path: Path) -> None:
    runner = CliRunner()
    args = ["generate", "--people", "200", "--nights", "1", "--out", str(tmp_path)]
    result = runner.invoke(app, [*args, "--variant", "housing", "--name-diversity", "low"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "landing" / NIGHTS[0] / "housing_register.tsv").exists()
    result = runner.invoke(app, [*args, "--name-diversity", "none"])
    assert result.exit_code == 2 and "low" in result.output
