"""Benchmark: accuracy of the whole pipeline on a generated population, night after night.

Generates a population of a generator variant (or reuses one), onboards it through the
config folder the generator writes (config files only), runs the real nightly flow for
each night, trains after the first, and measures every night's published index against
the truth: pairwise precision and recall, wrong-person clusters, twins merged, split
persons, and how many people who moved house kept their person id.

    .venv/bin/python benchmarks/accuracy.py --variant scottish --people 100000 --nights 2

Prints one table and writes benchmarks/results/accuracy-<variant>-<people>.json.
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
from datetime import date
from pathlib import Path

import duckdb

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # nothing leaves the machine
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
RESULTS_DIR = REPO / "benchmarks" / "results"
MEASURES = [
    "records",
    "pairwise_precision",
    "pairwise_recall",
    "wrong_person_merges",
    "twins_merged",
    "split_persons",
]


def generate(workdir: Path, variant: str, people: int, seed: int, nights: int) -> None:
    # its own process, so the generator's memory never counts against the pipeline
    command = [sys.executable, "-m", "linkage.cli", "generate", "--out", str(workdir)]
    options = ["--people", str(people), "--seed", str(seed), "--nights", str(nights)]
    subprocess.run([*command, *options, "--variant", variant], check=True, cwd=REPO)


def run_nights(config: Path, truth: Path, nights: list[date], seed: int) -> list[dict]:
    """Each night through the real flow; train after the first; evaluate every night."""
    from prefect.testing.utilities import prefect_test_harness

    from flows.link import relink
    from flows.nightly import nightly
    from flows.train import train
    from linkage.config import load_project
    from linkage.evaluate import evaluate_run
    from linkage.link.train import training_report

    project = load_project(config)
    rows = []
    with prefect_test_harness(server_startup_timeout=180):
        for position, night in enumerate(nights):
            started = time.perf_counter()
            nightly(config, night)
            if position == 0:
                print(training_report(train(config, seed)).to_text())
                relink(config)
            seconds = round(time.perf_counter() - started, 1)
            evaluation = evaluate_run(project, truth, night).evaluation.as_dict()
            snapshot = _snapshot(project.warehouse, night)
            rows.append({"night": night.isoformat(), "seconds": seconds} | evaluation)
            rows[-1]["snapshot"] = str(snapshot)
    return rows


def _snapshot(warehouse: Path, night: date) -> Path:
    """The night's published index, kept to compare person ids across nights."""
    path = warehouse.parent / f"linked_index-{night.isoformat()}.parquet"
    with duckdb.connect(str(warehouse), read_only=True) as con:
        con.execute(f"COPY (SELECT record_key, person_id FROM linked_index) TO '{path}'")
    return path


MOVERS_SQL = """
WITH movers AS (
    SELECT DISTINCT person_id FROM read_csv($changes, all_varchar = true)
    WHERE night = $night AND change = 'moved'
),
records AS (
    SELECT source || ':' || source_record_id AS record_key, person_id
    FROM read_csv($records, all_varchar = true) WHERE night = $night
),
compared AS (
    SELECT r.person_id, bool_or(before.person_id <> after.person_id) AS changed
    FROM records r
    JOIN movers USING (person_id)
    JOIN read_parquet($before) before USING (record_key)
    JOIN read_parquet($after) after USING (record_key)
    GROUP BY r.person_id
)
SELECT count(*), count(*) FILTER (changed) FROM compared
"""


def movers_kept_id(truth: Path, night: str, before: str, after: str) -> dict[str, int]:
    """People who moved house on a night, and how many of them changed person id."""
    params = {
        "changes": str(truth / "changes.csv"),
        "records": str(truth / "records.csv"),
        "night": night,
        "before": before,
        "after": after,
    }
    with duckdb.connect() as con:
        moved, changed = con.execute(MOVERS_SQL, params).fetchall()[0]
    return {"movers": int(moved), "movers_changed_id": int(changed)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="scottish")
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--nights", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--reuse", action="store_true", help="keep the generated extracts")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    name = f"{args.variant}-people{args.people}-seed{args.seed}"
    workdir = args.workdir or Path(tempfile.gettempdir()) / "linkage_accuracy" / name
    if not (args.reuse and (workdir / "landing").exists()):
        generate(workdir, args.variant, args.people, args.seed, args.nights)
    for stale in ("warehouse", "output"):
        subprocess.run(["rm", "-rf", str(workdir / stale)], check=True)
    nights = sorted(date.fromisoformat(p.name) for p in (workdir / "landing").iterdir())
    rows = run_nights(workdir / "config" / "project.yaml", workdir / "truth", nights, args.seed)
    for before, after in zip(rows, rows[1:], strict=False):
        after |= movers_kept_id(
            workdir / "truth", after["night"], before["snapshot"], after["snapshot"]
        )
    print(f"\n{name}")
    print("| night | " + " | ".join(MEASURES) + " | movers changed id | seconds |")
    print("|---" * (len(MEASURES) + 3) + "|")
    for row in rows:
        moved = f"{row['movers_changed_id']} of {row['movers']}" if "movers" in row else ""
        cells = [f"{row[m]:.4f}" if isinstance(row[m], float) else f"{row[m]:,}" for m in MEASURES]
        print(f"| {row['night']} | " + " | ".join(cells) + f" | {moved} | {row['seconds']} |")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / f"accuracy-{name}.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
