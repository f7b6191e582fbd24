"""The identifier registry: types declared as data, checked on load, applied by the
standardiser, the validation, the model and the clustering without code changes."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
import pytest

from linkage.config import load_sources
from linkage.errors import ConfigError
from linkage.identifiers import default_registry, load_registry
from linkage.link.cluster import ClusterSettings, cluster_records
from linkage.link.model import ModelShape, comparisons, prediction_blocking_rules
from linkage.schema import canonical_column_names
from linkage.standardise import standardise
from linkage.validate import row_checks
from tests.test_standardise import build_staged, fetch_rows

HOUSING_REGISTRY = """
identifiers:
  chi: {label: CHI number, check: chi, distinct_values_differ: true, equal_values_match: true}
  nhs_number: {label: NHS number, check: nhs_number, distinct_values_differ: true,
               equal_values_match: true}
  housing_ref: {label: Housing person reference, check: regex, pattern: 'HPR[0-9]{7}',
                distinct_values_differ: true, equal_values_match: true}
  tenancy_ref: {label: Tenancy reference, check: none}
"""


@pytest.fixture
def registry_file(tmp_path: Path) -> Path:
    path = tmp_path / "identifiers.yaml"
    path.write_text(HOUSING_REGISTRY, encoding="utf-8")
    return path


def test_default_registry_keeps_the_four_agencies_identifiers() -> None:
    registry = default_registry()
    assert {"chi", "scn", "police_id", "pnc_id", "social_work_id"} <= set(registry.names)
    assert {"chi", "scn", "pnc_id"} <= set(registry.hard_constraints())
    assert "police_id" not in registry.matching()


def test_a_registered_type_becomes_a_canonical_column(registry_file: Path) -> None:
    registry = load_registry(registry_file)
    columns = canonical_column_names(registry)
    assert columns[-4:] == ["chi", "nhs_number", "housing_ref", "tenancy_ref"]
    assert "scn" not in columns


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("x: {label: X, check: regex}", "pattern"),
        ("x: {label: X, check: luhn}", "check"),
        ("Bad-Name: {label: X}", "Bad-Name"),
        ("x: {label: X, hard: true}", "hard"),
    ],
)
def test_a_bad_registry_entry_is_named(tmp_path: Path, entry: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(f"identifiers:\n  {entry}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=message) as error:
        load_registry(path)
    assert str(path) in str(error.value)


def test_a_type_named_like_a_canonical_column_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "clash.yaml"
    path.write_text("identifiers:\n  surname: {label: Surname again}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="clash"):
        canonical_column_names(load_registry(path))


def test_a_source_mapping_an_unregistered_identifier_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "housing.yaml"
    source.write_text(
        "source: housing\nfile: {pattern: 'housing*.csv'}\nrecord_id: Ref\n"
        "fields: {surname: Name}\nidentifiers: {tenancy_number: TenancyNo}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match="tenancy_number"):
        load_sources([source])


def test_each_check_kind_is_applied_by_the_standardiser(registry_file: Path) -> None:
    registry = load_registry(registry_file)
    cases = [
        ("nhs_ok", {"nhs_number_raw": "943 476 5919"}),
        ("nhs_bad_check", {"nhs_number_raw": "9434765918"}),
        ("nhs_short", {"nhs_number_raw": "94347659"}),
        ("housing_ok", {"housing_ref_raw": "hpr 1234567"}),
        ("housing_bad", {"housing_ref_raw": "HPR12345"}),
        ("tenancy_any", {"tenancy_ref_raw": " t/77 "}),
    ]
    con = duckdb.connect()
    _build_staged(con, cases, registry.names)
    standardise(con, registry=registry)
    rows = {row["source_record_id"]: row for row in fetch_rows(con, "standardised_record")}
    assert rows["nhs_ok"]["nhs_number"] == "9434765919"
    assert rows["nhs_ok"]["nhs_number_issue"] is None
    assert (rows["nhs_bad_check"]["nhs_number"], rows["nhs_bad_check"]["nhs_number_issue"]) == (
        None,
        "check digit fails",
    )
    assert rows["nhs_short"]["nhs_number_issue"] == "not 10 digits"
    assert rows["housing_ok"]["housing_ref"] == "HPR1234567"
    assert rows["housing_bad"]["housing_ref"] is None
    assert rows["housing_bad"]["housing_ref_issue"] == "does not have the registered format"
    assert rows["tenancy_any"]["tenancy_ref"] == "T/77"
    assert rows["tenancy_any"]["tenancy_ref_issue"] is None


def _build_staged(con: duckdb.DuckDBPyConnection, cases: list, names: list[str]) -> None:
    """build_staged knows the default registry's types; map these by hand."""
    staged = []
    for case_id, raw in cases:
        held = {name: raw[f"{name}_raw"] for name in names if f"{name}_raw" in raw}
        staged.append((case_id, {"identifiers_raw": held}, {}))
    build_staged(con, [])
    for row_number, (case_id, values, _) in enumerate(staged, start=1):
        con.execute(
            "INSERT INTO staged_record (run_date, source, source_record_id, source_row_number,"
            " source_line_number, identifiers_raw) VALUES (DATE '2026-11-01', 'housing', ?, ?,"
            " ?, ?::MAP(VARCHAR, VARCHAR))",
            [
                case_id,
                row_number,
                row_number + 1,
                {
                    "key": list(values["identifiers_raw"]),
                    "value": list(values["identifiers_raw"].values()),
                },
            ],
        )


def test_validation_flags_each_checked_type(registry_file: Path) -> None:
    names = {check.name for check in row_checks(load_registry(registry_file))}
    assert {"chi_valid", "nhs_number_valid", "housing_ref_valid"} <= names
    assert "tenancy_ref_valid" not in names  # check: none has nothing to flag


def test_the_model_compares_and_blocks_on_near_proof_identifiers_it_sees(
    registry_file: Path,
) -> None:
    registry = load_registry(registry_file)
    filled = frozenset({"forename", "surname", "date_of_birth", "housing_ref", "tenancy_ref"})
    shape = ModelShape(filled, registry)
    assert shape.identifiers == ["housing_ref"]  # chi/nhs unfilled; tenancy not near-proof
    names = [c.create_comparison_dict("duckdb")["output_column_name"] for c in comparisons(shape)]
    assert names == ["forename", "surname", "date_of_birth", "housing_ref"]
    rules = [
        rule.get_blocking_rule("duckdb").blocking_rule_sql
        for rule in prediction_blocking_rules(shape)
    ]
    assert any("housing_ref" in rule for rule in rules)
    assert not any("postcode" in rule or "chi" in rule for rule in rules)


def test_a_registered_hard_constraint_keeps_two_people_apart(registry_file: Path) -> None:
    registry = load_registry(registry_file)
    records = pd.DataFrame(
        {
            "record_key": ["h:1", "h:2"],
            "source": ["h", "h"],
            "housing_ref": ["HPR0000001", "HPR0000002"],
        }
    )
    edges = pd.DataFrame(
        {
            "record_key_l": ["h:1"],
            "record_key_r": ["h:2"],
            "match_weight": [20.0],
            "match_probability": [0.999],
        }
    )
    settings = ClusterSettings(hard_identifiers=tuple(registry.hard_constraints()))
    result = cluster_records(records, edges, settings)
    assert result.person_of["h:1"] != result.person_of["h:2"]
    assert [item.reason for item in result.review] == ["refused: different housing_ref"]
