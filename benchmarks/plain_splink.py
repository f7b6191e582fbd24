"""Benchmark: our link stage against a well-configured plain Splink, on the same records.

Generates a population (or reuses one), runs the real nightly intake so `canonical_record`
holds the standardised records, then links them twice and measures both against the truth:

- ours: `train_model` + `save_model`, `link_warehouse` (constrained clustering, guards,
  stable ids, publish), evaluated with `evaluate_run` (so it is saved with the run);
- plain Splink: the comparison library's standard comparisons, Splink's own training
  (prior from deterministic rules, u by random sampling, EM over two blocks), predict and
  `cluster_pairwise_predictions_at_threshold` at several thresholds, each evaluated with
  `linkage.evaluate.evaluate`.

    .venv/bin/python benchmarks/plain_splink.py --people 100000 [--reuse]

Prints one table and writes benchmarks/results/plain_splink.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd
import splink.comparison_library as cl
from splink import DuckDBAPI, Linker, SettingsCreator, block_on

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results" / "plain_splink.json"
THRESHOLDS = [0.9, 0.95, 0.99, 0.999]
TABLE_MEASURES = [
    "pairwise_precision",
    "pairwise_recall",
    "pairwise_f1",
    "wrong_person_merges",
    "twins_merged",
    "split_persons",
]


# ---- the population and its intake (shared with link_bench.py) ----


def population_dir(people: int, seed: int) -> Path:
    """Where --reuse looks for (and leaves) a population and its intake warehouse."""
    return Path(tempfile.gettempdir()) / "linkage_bench" / f"people{people}_seed{seed}"


def prepare_population(workdir: Path, people: int, seed: int) -> Path:
    """Generate one night (unless present) and run the real nightly intake; return the config."""
    if not (workdir / "landing").exists():
        generate(workdir, people, seed)
    config = workdir / "project.yaml"
    config.write_text(
        f"landing_dir: landing\nsources: {REPO}/schemas/sources/*.yaml\n"
        "warehouse: bench/w.duckdb\noutput_dir: bench/output\narchive_dir: bench/archive\n"
        "models_dir: bench/models\n"
    )
    if canonical_records(workdir / "bench" / "w.duckdb") == 0:
        run_intake(config, first_night(workdir))
    return config


def generate(workdir: Path, people: int, seed: int) -> None:
    # its own process, so the generator's memory never counts against the linkers
    command = [sys.executable, "-m", "linkage.cli", "generate", "--out", str(workdir)]
    options = ["--people", str(people), "--seed", str(seed), "--nights", "1"]
    subprocess.run([*command, *options], check=True, cwd=REPO)


def first_night(workdir: Path) -> date:
    return date.fromisoformat(sorted(p.name for p in (workdir / "landing").iterdir())[0])


def canonical_records(warehouse: Path) -> int:
    if not warehouse.exists():
        return 0
    with duckdb.connect(str(warehouse), read_only=True) as con:
        tables = {row[0] for row in con.execute("SHOW TABLES").fetchall()}
        if "canonical_record" not in tables:
            return 0
        return int(con.execute("SELECT count(*) FROM canonical_record").fetchall()[0][0])


def run_intake(config: Path, night: date) -> None:
    """The real nightly flow; with no model yet it stops after publishing the records."""
    from prefect.testing.utilities import prefect_test_harness

    from flows.nightly import nightly

    with prefect_test_harness(server_startup_timeout=120):
        nightly(config, night)


def machine_context() -> dict[str, object]:
    """Enough to judge the figures: commit, cores, load (other jobs may share the CPU)."""
    return {
        "commit": _git("rev-parse", "--short", "HEAD") or "unknown (not a git checkout)",
        "uncommitted_changes": bool(_git("status", "--porcelain", "--", "linkage", "flows")),
        "cpus": os.cpu_count(),
        "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
    }


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], capture_output=True, text=True, cwd=REPO)
    return done.stdout.strip() if done.returncode == 0 else ""


# ---- the two linkers ----


@dataclass
class Row:
    configuration: str
    measures: dict[str, float | int]
    seconds: dict[str, float]


def ours(config: Path, truth_dir: Path, night: date, seed: int) -> Row:
    """Train, link and publish with the pipeline's own functions; evaluated as saved."""
    from linkage.config import load_project
    from linkage.evaluate import evaluate_run
    from linkage.index import link_warehouse
    from linkage.link.train import load_model_input, save_model, train_model
    from linkage.warehouse import open_warehouse

    project = load_project(config)
    started = time.perf_counter()
    registry = project.identifier_registry()
    records = load_model_input(project.warehouse, registry)
    linker, report = train_model(records, seed=seed, registry=registry)
    save_model(linker, records, project.model_dir, seed, report=report)
    trained = time.perf_counter()
    con = open_warehouse(project.warehouse)
    try:
        outcome = link_warehouse(con, project, f"bench-{int(time.time())}", night)
    finally:
        con.close()
    linked = time.perf_counter()
    result = evaluate_run(project, truth_dir, night)
    label = f"ours (link >= {project.linkage.link_threshold}, guards, constraints)"
    seconds = {"train": trained - started, "link": linked - trained}
    return Row(label, result.evaluation.as_dict() | {"edges": outcome.edges}, seconds)


def plain_comparisons(variant: str) -> list:
    """The comparison library's out-of-the-box comparisons over the canonical columns."""
    if variant == "forename_surname":
        names = [
            cl.ForenameSurnameComparison(
                "forename", "surname", forename_surname_concat_col_name="full_name"
            )
        ]
    else:
        names = [cl.NameComparison("forename"), cl.NameComparison("surname")]
    return [
        *names,
        cl.DateOfBirthComparison("date_of_birth", input_is_string=False),
        cl.PostcodeComparison("postcode"),
        cl.ExactMatch("sex"),
        cl.ExactMatch("chi"),
        cl.ExactMatch("scn"),
        cl.ExactMatch("pnc_id"),
    ]


# Candidate pairs: every identifier, then name/date/postcode pairs; each block bounded.
PLAIN_BLOCKING_RULES = [
    block_on("chi"),
    block_on("scn"),
    block_on("pnc_id"),
    block_on("forename", "surname"),
    block_on("date_of_birth", "surname"),
    block_on("date_of_birth", "forename"),
    block_on("date_of_birth", "postcode"),
    block_on("postcode", "forename"),
]
# As Splink's tutorials do: the prior from near-certain rules, m by EM on name and birth date.
# Also tried at 100k: EM on CHI + name, and CHI + name + birth date: precision and recall moved
# by under 0.003 at every threshold and twins stayed merged, so the tutorial's blocks stay.
PLAIN_PRIOR_RULES = [block_on("chi"), block_on("forename", "surname", "date_of_birth")]
PLAIN_PRIOR_RECALL = 0.8
PLAIN_EM_BLOCKS = [block_on("forename", "surname"), block_on("date_of_birth")]
PLAIN_COLUMNS = [
    "record_key",
    "forename",
    "surname",
    "date_of_birth",
    "sex",
    "postcode",
    "chi",
    "scn",
    "pnc_id",
]


def plain_linker(records: pd.DataFrame, variant: str, seed: int) -> Linker:
    """A plain Splink linker trained with Splink's own estimators only."""
    from linkage.link.train import u_sample_pairs

    frame = records[PLAIN_COLUMNS].assign(
        full_name=records["forename"].fillna("") + " " + records["surname"].fillna("")
    )
    settings = SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name="record_key",
        comparisons=plain_comparisons(variant),
        blocking_rules_to_generate_predictions=PLAIN_BLOCKING_RULES,
    )
    db_api = DuckDBAPI(connection=duckdb.connect())
    linker = Linker(db_api.register(frame), settings, log_level=logging.WARNING)
    training = linker.training
    training.estimate_probability_two_random_records_match(
        PLAIN_PRIOR_RULES, recall=PLAIN_PRIOR_RECALL
    )
    training.estimate_u_using_random_sampling(max_pairs=u_sample_pairs(len(records)), seed=seed)
    for rule in PLAIN_EM_BLOCKS:
        training.estimate_parameters_using_expectation_maximisation(rule)
    return linker


def plain(
    records: pd.DataFrame, variant: str, truth_dir: Path, night: date, seed: int
) -> list[Row]:
    """Train once, predict once, cluster and evaluate at each threshold."""
    from linkage.evaluate import evaluate

    started = time.perf_counter()
    linker = plain_linker(records, variant, seed)
    trained = time.perf_counter()
    predictions = linker.inference.predict(threshold_match_probability=min(THRESHOLDS))
    predicted = time.perf_counter()
    rows = []
    for threshold in THRESHOLDS:
        mark = time.perf_counter()
        clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
            predictions, threshold_match_probability=threshold
        ).as_pandas_dataframe()
        clustered = time.perf_counter() - mark
        index = clusters[["record_key", "cluster_id"]].rename(columns={"cluster_id": "person_id"})
        con = duckdb.connect()
        con.register("plain_index", index)
        evaluation = evaluate(con, "plain_index", truth_dir, night.isoformat())
        con.close()
        seconds = {
            "train": trained - started,
            "predict": predicted - trained,
            "cluster": clustered,
        }
        label = f"plain Splink ({variant}), cluster >= {threshold}"
        rows.append(Row(label, evaluation.as_dict(), seconds))
    return rows


# ---- report ----


def table(rows: list[Row]) -> str:
    header = ["configuration", "precision", "recall", "F1", "wrong-person clusters"]
    header += ["twins merged", "split persons"]
    lines = ["| " + " | ".join(header) + " |", "|---" + "|---:" * (len(header) - 1) + "|"]
    for row in rows:
        values = [row.measures[name] for name in TABLE_MEASURES]
        shown = [f"{v:.4f}" if isinstance(v, float) else f"{v:,}" for v in values]
        lines.append(f"| {row.configuration} | " + " | ".join(shown) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--reuse", action="store_true", help="reuse the population and intake")
    parser.add_argument(
        "--variants",
        nargs="+",
        default=["name_per_field", "forename_surname"],
        choices=["name_per_field", "forename_surname"],
        help="plain Splink name comparisons: NameComparison per field, or one "
        "ForenameSurnameComparison",
    )
    args = parser.parse_args()
    if args.reuse:
        workdir = population_dir(args.people, args.seed)
    else:
        workdir = Path(tempfile.mkdtemp(prefix="plain_splink_"))
    context = machine_context()
    mark = time.perf_counter()
    config = prepare_population(workdir, args.people, args.seed)
    intake_s = time.perf_counter() - mark
    night, truth_dir = first_night(workdir), workdir / "truth"

    from linkage.link.train import load_model_input

    records = load_model_input(workdir / "bench" / "w.duckdb")
    rows = [ours(config, truth_dir, night, args.seed)]
    for variant in args.variants:
        rows += plain(records, variant, truth_dir, night, args.seed)

    print(f"\n{len(records):,} records of {args.people:,} people (seed {args.seed}), night {night}")
    print(table(rows))
    for row in rows:
        timing = ", ".join(f"{name} {s:.1f} s" for name, s in row.seconds.items())
        print(f"  {row.configuration}: {timing}")
    figures = {
        "people": args.people,
        "seed": args.seed,
        "night": night.isoformat(),
        "records": len(records),
        "workdir": str(workdir),
        "generate_and_intake_s": round(intake_s, 1),
        "context_at_start": context,
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "rows": [
            {
                "configuration": row.configuration,
                **row.measures,
                "seconds": {k: round(v, 2) for k, v in row.seconds.items()},
            }
            for row in rows
        ],
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"written {RESULTS}")


if __name__ == "__main__":
    main()
