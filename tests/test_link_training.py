"""Training: real Splink training on the sample's canonical records, saved and reloadable."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
from splink import DuckDBAPI, Linker

from linkage.link.train import latest_model, load_model_input
from tests.conftest import NIGHTS, SAMPLE_DIR


@pytest.fixture(scope="module")
def trained(linked_sample) -> tuple[Path, Path]:
    return linked_sample.config, linked_sample.model_path


def test_training_saves_a_versioned_model_with_metadata_and_offline_chart(trained) -> None:
    config, model_path = trained
    models_dir = config.parent / "w" / "models"
    assert latest_model(models_dir) == model_path
    version = model_path.stem.removeprefix("model-")
    metadata = json.loads((models_dir / f"model-{version}.meta.json").read_text())
    with duckdb.connect(str(config.parent / "w" / "linkage.duckdb"), read_only=True) as con:
        by_source = dict(
            con.execute("SELECT source, count(*) FROM canonical_record GROUP BY 1").fetchall()
        )
    # trained after night 1; the warehouse has moved on since, with the same sources
    assert set(metadata["records_by_source"]) == set(by_source)
    assert metadata["records"] == sum(metadata["records_by_source"].values()) > 3000
    assert metadata["version"] == version and metadata["seed"] == 7
    chart = (models_dir / f"model-{version}.weights.html").read_text()
    assert "<script" in chart and "cdn.jsdelivr" not in chart


def test_identifier_levels_stay_fixed_and_names_carry_evidence(trained) -> None:
    _, model_path = trained
    settings = json.loads(model_path.read_text())
    comparisons = {c["output_column_name"]: c for c in settings["comparisons"]}
    chi_levels = [
        level for level in comparisons["chi"]["comparison_levels"] if not level.get("is_null_level")
    ]
    assert [level["m_probability"] for level in chi_levels] == [
        pytest.approx(0.999),
        pytest.approx(0.001),
    ]
    forename_exact = comparisons["forename"]["comparison_levels"][1]
    assert forename_exact["m_probability"] > 10 * forename_exact["u_probability"]


def test_saved_model_reloads_and_scores_a_pair(trained) -> None:
    config, model_path = trained
    records = load_model_input(config.parent / "w" / "linkage.duckdb")
    linker = Linker(DuckDBAPI().register(records), str(model_path))
    chi_pairs = records.dropna(subset=["chi"]).groupby("chi").filter(lambda group: len(group) > 1)
    first, second = chi_pairs.sort_values(["chi", "record_key"]).head(2)["record_key"]
    scored = linker.inference.predict(threshold_match_probability=0.0).as_pandas_dataframe()
    pair = scored[
        (scored.record_key_l == min(first, second)) & (scored.record_key_r == max(first, second))
    ]
    assert len(pair) == 1 and pair.match_probability.iloc[0] > 0.99


@pytest.mark.parametrize("night", NIGHTS)
def test_published_index_meets_accuracy_targets_on_the_sample(linked_sample, night) -> None:
    from linkage.evaluate import evaluate

    index = linked_sample.index_by_night[night]
    con = duckdb.connect()
    con.register("linked", index)
    result = evaluate(con, "linked", SAMPLE_DIR / "truth", night)
    assert result.records == len(index)
    assert result.pairwise_precision >= 0.995 and result.pairwise_recall >= 0.98
    assert result.twins_merged == 0
    assert result.wrong_person_merges <= 0.001 * result.true_persons


def test_training_report_says_what_was_used_and_is_saved_with_the_model(trained) -> None:
    from linkage.link.train import training_report

    _, model_path = trained
    report = training_report(model_path)
    assert {"forename", "surname", "date_of_birth", "address", "sex", "chi", "pnc_id"} <= set(
        report.comparisons
    )
    assert "police_id" not in report.comparisons  # registered, but not near-proof
    used = {block["name"] for block in report.em_blocks if block["used"]}
    assert "name + place" in used
    for block in report.em_blocks:
        assert block["why"] and (block["pairs"] is None or block["pairs"] >= 0)
    assert 0 < report.prior < 1
    text = report.to_text()
    assert "EM block name + place" in text and "prior" in text


def test_every_level_ends_with_an_m_and_a_u(trained) -> None:
    _, model_path = trained
    for comparison in json.loads(model_path.read_text())["comparisons"]:
        for level in comparison["comparison_levels"]:
            if not level.get("is_null_level"):
                assert 0 < level["m_probability"] <= 1 and 0 < level["u_probability"] <= 1


def test_a_level_no_pair_reached_is_settled_not_left_without_u() -> None:
    """The KeyError: 'u_probability' a source config without other_surnames once caused."""
    from linkage.link.train import TrainingReport, settle_unobserved_levels

    settings = {
        "comparisons": [
            {
                "output_column_name": "surname",
                "comparison_levels": [
                    {"is_null_level": True, "label_for_charts": "null"},
                    {
                        "label_for_charts": "Exact match",
                        "m_probability": 0.9,
                        "u_probability": 0.01,
                    },
                    {"label_for_charts": "Other known surname"},  # neither m nor u
                    {"label_for_charts": "Sounds alike", "u_probability": 0.02},
                    {"label_for_charts": "All other comparisons", "u_probability": 0.9},
                ],
            }
        ]
    }
    report = TrainingReport()
    levels = settle_unobserved_levels(settings, report)["comparisons"][0]["comparison_levels"]
    assert (levels[2]["m_probability"], levels[2]["u_probability"]) == (0.9, 0.01)  # tied
    assert levels[3]["m_probability"] == levels[3]["u_probability"] == 0.02  # neutral
    assert levels[4]["m_probability"] == pytest.approx(1e-3)  # rare disagreement
    assert len(report.levels_settled) == 3


def test_a_record_keeps_its_earlier_postcode_and_surname_as_evidence(linked_sample) -> None:
    """The sample's later nights move people and change surnames: the earlier values stay."""
    with duckdb.connect(str(linked_sample.warehouse), read_only=True) as con:
        moved = con.execute(
            "SELECT count(*) FROM canonical_record"
            " WHERE previous_postcodes IS NOT NULL"
            " AND NOT list_contains(previous_postcodes, postcode)"
        ).fetchall()[0][0]
        renamed = con.execute(
            "SELECT count(*) FROM canonical_record c"
            " WHERE list_contains(c.other_surnames, c.surname)"
        ).fetchall()[0][0]
    truth = duckdb.sql(
        f"SELECT count(*) FROM read_csv('{SAMPLE_DIR / 'truth' / 'changes.csv'}')"
        " WHERE change = 'moved'"
    ).fetchall()[0][0]
    assert moved > 0 and truth > 0
    assert renamed == 0  # a current surname is never also listed as an other one
