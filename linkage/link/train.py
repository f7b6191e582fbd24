"""Train the model on the warehouse's canonical records and save it, versioned.

u comes from random sampling; m from EM over several blocks, one of them records that
share a valid CHI (the pairs most surely the same person). Nightly runs load a saved
model and never retrain silently.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd
import splink
from splink import DuckDBAPI, Linker, block_on
from splink.internals.blocking_rule_creator import BlockingRuleCreator

from linkage.link.model import IDENTIFIERS, MODEL_COLUMNS, model_settings

log = logging.getLogger(__name__)
U_SAMPLE_PAIRS = 5e6
# m by EM over blocks of pairs that are mostly the same person whatever the household:
# sharing a valid identifier (CHI across health and social work, PNC across police
# nominals), then full name + district. No block on date of birth + surname or address:
# there twins and siblings outnumber duplicates, and EM would learn "household" as "person".
EM_BLOCKS = [
    block_on("chi"),
    block_on("pnc_id"),
    block_on("forename_canonical", "surname", "postcode_outward"),
]
# Rules near-certain to pair the same person, for the prior (their recall is a guess).
PRIOR_RULES: list[str | BlockingRuleCreator] = [
    block_on("chi"),
    block_on("scn"),
    block_on("forename_canonical", "surname", "date_of_birth", "postcode"),
]
PRIOR_RULES_RECALL = 0.8
UNSEEN_DISAGREEMENT_M = 1e-3
MIN_LABELLED_MATCHES = 100  # fewer reviewed matches are too few to estimate m from


@dataclass(frozen=True)
class ModelMetadata:
    version: str
    trained_at: str
    splink_version: str
    seed: int
    records: int
    records_by_source: dict[str, int]
    u_sample_pairs: float
    em_blocking_rules: list[str]
    labelled_matches: int = 0  # reviewed matches m was also estimated from


def model_input(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """The model's columns of canonical_record, sorted so every run sees the same order."""
    columns = ", ".join(MODEL_COLUMNS)
    return con.execute(f"SELECT {columns} FROM canonical_record ORDER BY record_key").df()


def load_model_input(warehouse: Path) -> pd.DataFrame:
    """model_input from a warehouse file, opened read-only."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return model_input(con)


def identifier_u(records: pd.DataFrame) -> dict[str, float]:
    """u of identifier equality: 1 / number of distinct valid values (see model.py)."""
    return {
        column: 1.0 / max(records[column].nunique(dropna=True), 1) for column in IDENTIFIERS
    }


def reviewed_matches(warehouse: Path) -> pd.DataFrame:
    """Pairs analysts reviewed as one person (record_key_l, record_key_r)."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        tables = {row[0] for row in con.execute("SHOW TABLES").fetchall()}
        if "review_decision" not in tables:
            return pd.DataFrame(columns=["record_key_l", "record_key_r"])
        return con.execute(
            "SELECT record_key_l, record_key_r FROM review_decision WHERE decision = 'match'"
            " ORDER BY ALL"
        ).df()


def train_model(
    records: pd.DataFrame, seed: int = 42, labelled_matches: pd.DataFrame | None = None
) -> Linker:
    """A trained Splink linker over the records (in an in-memory DuckDB).

    With at least MIN_LABELLED_MATCHES reviewed matches, m is also estimated from them
    (Splink averages it with the EM estimates): analysts' labels are the best evidence of
    how one person's records differ in this population.
    """
    db_api = DuckDBAPI(connection=duckdb.connect())
    canonical = db_api.register(records, dataset_display_name="canonical_record")
    linker = Linker(canonical, model_settings(identifier_u(records)), log_level=logging.WARNING)
    linker.training.estimate_probability_two_random_records_match(
        PRIOR_RULES, recall=PRIOR_RULES_RECALL
    )
    linker.training.estimate_u_using_random_sampling(max_pairs=U_SAMPLE_PAIRS, seed=seed)
    for rule in EM_BLOCKS:
        linker.training.estimate_parameters_using_expectation_maximisation(rule)
    known = set(records["record_key"])
    if labelled_matches is not None:
        labelled_matches = labelled_matches[
            labelled_matches["record_key_l"].isin(known)
            & labelled_matches["record_key_r"].isin(known)
        ]
    if labelled_matches is not None and len(labelled_matches) >= MIN_LABELLED_MATCHES:
        labels = labelled_matches.assign(
            source_dataset_l="canonical_record", source_dataset_r="canonical_record"
        )
        linker.table_management.register_table(labels, "reviewed_matches", overwrite=True)
        linker.training.estimate_m_from_pairwise_labels("reviewed_matches")
    settings = settle_unobserved_levels(linker.misc.save_model_to_json())
    return Linker(canonical, settings, log_level=logging.WARNING)


def settle_unobserved_levels(settings: dict) -> dict:
    """Give levels that EM never saw among matches an m of our choosing, not Splink's default.

    Splink falls back to positional defaults (or to m = 1e-6, strong evidence against)
    for such levels, which can make a near-agreement count against a pair. An unseen
    partial-agreement level is made neutral (m = u: no evidence either way); an unseen
    disagreement level gets m = UNSEEN_DISAGREEMENT_M, rare among matches.
    """
    for comparison in settings["comparisons"]:
        levels = [
            level for level in comparison["comparison_levels"] if not level.get("is_null_level")
        ]
        for position, level in enumerate(levels):
            if isinstance(level.get("m_probability"), float) and level["m_probability"] > 1e-6:
                continue
            is_else = position == len(levels) - 1
            level["m_probability"] = UNSEEN_DISAGREEMENT_M if is_else else level["u_probability"]
    return settings


def save_model(
    linker: Linker, records: pd.DataFrame, models_dir: Path, seed: int, labelled_matches: int = 0
) -> Path:
    """Write model-<version>.json (Splink settings), its metadata and its weights chart."""
    trained_at = datetime.now(UTC)
    version = trained_at.strftime("%Y%m%dT%H%M%SZ")
    models_dir.mkdir(parents=True, exist_ok=True)
    path = models_dir / f"model-{version}.json"
    linker.misc.save_model_to_json(str(path))
    metadata = ModelMetadata(
        version=version,
        trained_at=trained_at.isoformat(),
        splink_version=splink.__version__,
        seed=seed,
        records=len(records),
        labelled_matches=labelled_matches if labelled_matches >= MIN_LABELLED_MATCHES else 0,
        records_by_source=records["source"].value_counts().sort_index().to_dict(),
        u_sample_pairs=U_SAMPLE_PAIRS,
        em_blocking_rules=[
            rule.get_blocking_rule("duckdb").blocking_rule_sql for rule in EM_BLOCKS
        ],
    )
    (models_dir / f"model-{version}.meta.json").write_text(json.dumps(asdict(metadata), indent=2))
    chart = linker.visualisations.match_weights_chart()
    # inline: the chart's JavaScript is bundled, so it opens offline (no CDN)
    (models_dir / f"model-{version}.weights.html").write_text(chart.to_html(inline=True))
    log.info("model %s trained on %d records", version, len(records))
    return path


def latest_model(models_dir: Path) -> Path | None:
    models = sorted(models_dir.glob("model-*Z.json"))
    return models[-1] if models else None
