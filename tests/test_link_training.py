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
