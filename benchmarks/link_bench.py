"""Benchmark: link + cluster at ~1M records, ours against plain Splink with the same model.

1. generate ~830,000 people (one night, ~1.0M records) and run the real nightly intake;
2. train once in a process of its own (reported apart: not part of the link time);
3. ours: `link_warehouse` on a copy of the intake warehouse, timed per step (load
   records, predict, cluster, id assignment, publish, ...);
4. plain: the same records and the same saved model through Splink alone: `predict` at the
   same edge floor, then `cluster_pairwise_predictions_at_threshold` at our link threshold.

Each side runs in its own process, so peak RSS (from wait4) and CPU time never mix; a
sampler thread also records each step's peak RSS. The overhead ratio is ours (link_warehouse:
load, predict, cluster, ids, publish) over plain (load, predict, cluster), in wall time and
in CPU time (the steadier figure when other jobs share the CPU). Both indexes are then
evaluated against the truth (outside the measured processes).

    .venv/bin/python benchmarks/link_bench.py [--people 830000] [--reuse] [--repeat 2]

Prints the figures with the targets and writes benchmarks/results/link_bench.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
from plain_splink import first_night, machine_context, population_dir, prepare_population

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results" / "link_bench.json"
TARGET_SECONDS = 90.0
TARGET_RSS_GIB = 4.0
TARGET_OVERHEAD = 1.5
# linkage.index's steps, in the order link_warehouse calls them
SIDES = ["first_link", "relink", "plain"]  # measured per repeat, in this order
OUR_STEPS = {
    "model_input": "load records",
    "score_pairs": "predict",
    "cluster_records": "cluster",
    "assign_person_ids": "id assignment",
    "_publish": "publish",
    "_persons_by_sources": "persons by sources",
}


# ---- measuring inside a side's process ----


class StepMeter:
    """Wall time, CPU time and peak RSS per named step (RSS sampled every 20 ms by a thread)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.cpu_seconds: dict[str, float] = {}  # all threads; robust to other jobs' load
        self.peak_rss_mib: dict[str, float] = {}
        self.step = "start"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    @contextmanager
    def measure(self, step: str) -> Iterator[None]:
        outer, self.step = self.step, step
        started, cpu_started = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.seconds[step] = self.seconds.get(step, 0.0) + time.perf_counter() - started
            cpu = time.process_time() - cpu_started
            self.cpu_seconds[step] = self.cpu_seconds.get(step, 0.0) + cpu
            self.step = outer

    def wrap(self, step: str, function: Callable) -> Callable:
        def measured(*args: object, **kwargs: object) -> object:
            with self.measure(step):
                return function(*args, **kwargs)

        return measured

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            rss = current_rss_mib()
            self.peak_rss_mib[self.step] = max(self.peak_rss_mib.get(self.step, 0.0), rss)

    def close(self) -> dict[str, dict[str, float]]:
        self._stop.set()
        self._thread.join()
        return {
            "seconds": {k: round(v, 2) for k, v in self.seconds.items()},
            "cpu_seconds": {k: round(v, 2) for k, v in self.cpu_seconds.items()},
            "peak_rss_mib_during": {k: round(v) for k, v in self.peak_rss_mib.items()},
        }


def current_rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def reset_peak_rss() -> bool:
    """Set this process's peak-RSS mark (VmHWM) back to its current RSS (Linux 4.0 and
    later); False where that cannot be done."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def peak_rss_mib() -> float:
    """This process's peak RSS since it started or since reset_peak_rss."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return current_rss_mib()


def side_ours(config: Path, out: Path) -> None:
    """The real link stage, its steps wrapped with timers (their code is not changed)."""
    from datetime import date

    import linkage.index as index
    from linkage.config import load_project
    from linkage.warehouse import open_warehouse

    meter = StepMeter()
    for name, step in OUR_STEPS.items():
        setattr(index, name, meter.wrap(step, getattr(index, name)))
    project = load_project(config)
    con = open_warehouse(project.warehouse)
    night = date.fromisoformat(_canonical_night(con))
    with meter.measure("link_warehouse total"):
        outcome = index.link_warehouse(con, project, f"bench-{int(time.time())}", night)
    con.close()
    figures = meter.close()
    figures["counts"] = {"records": outcome.records, "edges": outcome.edges}
    figures["counts"]["persons"] = outcome.persons
    figures["review_by_reason"] = outcome.review_by_reason
    figures["id_changes"] = outcome.id_changes
    figures["stage_seconds_reported"] = getattr(outcome, "stage_seconds", None)  # if any
    out.write_text(json.dumps(figures, indent=2))


def side_plain(config: Path, model: Path, out: Path) -> None:
    """Splink alone with the same saved model: predict, then connected components."""
    from linkage.config import load_project
    from linkage.link.blocking import plan_blocking
    from linkage.link.model import ModelShape, filled_columns
    from linkage.link.predict import load_linker
    from linkage.link.train import load_model_input

    project = load_project(config)
    meter = StepMeter()
    with meter.measure("load records"):
        records = load_model_input(project.warehouse)
    with meter.measure("blocking plan"):  # the same blocks as ours tonight (not timed as plain's)
        registry = project.identifier_registry()
        with duckdb.connect(str(project.warehouse), read_only=True) as con:
            plan = plan_blocking(
                con,
                "canonical_record",
                ModelShape(filled_columns(records), registry),
                project.linkage.max_pairs_per_record,
            )
    with meter.measure("predict"):
        linker = load_linker(records, model, plan.rules())
        predictions = linker.inference.predict(
            threshold_match_probability=project.linkage.edge_floor
        )
        edges = predictions.as_duckdbpyrelation().count("*").fetchall()[0][0]
    with meter.measure("cluster"):
        clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
            predictions, threshold_match_probability=project.linkage.link_threshold
        )
        persons = clusters.as_duckdbpyrelation().unique("cluster_id").count("*").fetchall()[0][0]
    with meter.measure("write index"):  # for the evaluation; the nearest thing to publishing
        clusters.as_duckdbpyrelation().select("record_key, cluster_id AS person_id").to_parquet(
            str(out.with_suffix(".parquet"))
        )
    figures = meter.close()
    figures["counts"] = {"records": len(records), "edges": int(edges), "persons": int(persons)}
    out.write_text(json.dumps(figures, indent=2))


def side_train(config: Path, out: Path) -> None:
    from linkage.config import load_project
    from linkage.link.train import load_model_input, save_model, train_model

    project = load_project(config)
    meter = StepMeter()
    with meter.measure("load records"):
        records = load_model_input(project.warehouse, project.identifier_registry())
    with meter.measure("train"):
        linker, report = train_model(records, seed=42, registry=project.identifier_registry())
    with meter.measure("save"):
        path = save_model(linker, records, project.model_dir, seed=42, report=report)
    figures = meter.close()
    figures["model"] = str(path)
    out.write_text(json.dumps(figures, indent=2))


def _canonical_night(con: duckdb.DuckDBPyConnection) -> str:
    return str(con.execute("SELECT max(run_date) FROM canonical_record").fetchall()[0][0])


# ---- the parent: one process per side ----


def run_side(side: str, config: Path, model: Path | None, workdir: Path) -> dict:
    """Run one side in a child process; its own peak RSS and CPU time come from wait4."""
    out = workdir / f"side_{side}.json"
    command = [sys.executable, __file__, "--side", side, "--config", str(config)]
    command += ["--out", str(out)] + (["--model", str(model)] if model else [])
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    child = subprocess.Popen(command)
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"{side} side failed with exit code {child.returncode}")
    figures = json.loads(out.read_text())
    figures["process"] = {
        "wall_s": round(time.perf_counter() - started, 2),
        "user_s": round(usage.ru_utime, 2),
        "sys_s": round(usage.ru_stime, 2),
        "peak_rss_mib": round(usage.ru_maxrss / 1024),  # KiB on Linux
        "load_average_1min_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }
    return figures


def link_copy(config: Path, workdir: Path) -> Path:
    """A config over a fresh copy of the intake warehouse, so every run links the same state."""
    intake = workdir / "bench" / "w.duckdb"
    copy = workdir / "bench" / "link_ours.duckdb"
    shutil.copyfile(intake, copy)
    text = config.read_text().replace("bench/w.duckdb", "bench/link_ours.duckdb")
    copied_config = workdir / "project_link_ours.yaml"
    copied_config.write_text(text)
    return copied_config


def trained_model(config: Path, workdir: Path) -> tuple[Path, dict | None]:
    """The saved model (training it, in its own process, if there is none yet)."""
    from linkage.config import load_project
    from linkage.link.train import latest_model

    model = latest_model(load_project(config).model_dir)
    if model is not None:
        return model, None
    figures = run_side("train", config, None, workdir)
    return Path(figures["model"]), figures


def evaluate_both(ours_config: Path, plain_index: Path, truth_dir: Path, night: str) -> dict:
    from linkage.config import load_project
    from linkage.evaluate import evaluate, evaluate_run

    started = time.perf_counter()
    ours = evaluate_run(load_project(ours_config), truth_dir).evaluation
    evaluate_run_s = time.perf_counter() - started
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE plain_index AS SELECT * FROM read_parquet($path)", {"path": str(plain_index)}
    )
    plain = evaluate(con, "plain_index", truth_dir, night)
    con.close()
    return {
        "ours": ours.as_dict(),
        "plain": plain.as_dict(),
        "evaluate_run_s": round(evaluate_run_s, 2),
    }


# Plain Splink's counterpart of link_warehouse: it too must read the records first.
PLAIN_STEPS = ("load records", "predict", "cluster")


def plain_seconds(plain: dict, measure: str = "seconds") -> float:
    return round(sum(plain[measure][step] for step in PLAIN_STEPS), 2)


def summary(ours: dict, plain: dict) -> dict:
    """Ours against plain: whole link stage, and predict + cluster alone (like for like)."""
    ours_s = ours["seconds"]["link_warehouse total"]
    like_for_like = ours["seconds"]["predict"] + ours["seconds"]["cluster"]
    plain_predict_cluster = plain["seconds"]["predict"] + plain["seconds"]["cluster"]
    ours_cpu = ours["cpu_seconds"]["link_warehouse total"]
    plain_cpu = plain_seconds(plain, "cpu_seconds")
    return {
        "ours_link_s": ours_s,
        "plain_load_predict_cluster_s": plain_seconds(plain),
        "ratio_time_ours_total_over_plain": round(ours_s / plain_seconds(plain), 2),
        "ratio_time_predict_cluster_only": round(like_for_like / plain_predict_cluster, 2),
        "ours_link_cpu_s": ours_cpu,
        "plain_load_predict_cluster_cpu_s": plain_cpu,
        "ratio_cpu_time": round(ours_cpu / plain_cpu, 2),
        "ours_peak_rss_mib": ours["process"]["peak_rss_mib"],
        "plain_peak_rss_mib": plain["process"]["peak_rss_mib"],
        "ratio_peak_rss": round(
            ours["process"]["peak_rss_mib"] / plain["process"]["peak_rss_mib"], 2
        ),
    }


def report(run: dict) -> str:
    sides = {name: run[name] for name in SIDES}
    counts = {name: side["counts"] for name, side in sides.items()}
    lines = [
        "records "
        + f"{counts['plain']['records']:,}; "
        + "; ".join(
            f"{name}: {c['edges']:,} edges, {c['persons']:,} persons" for name, c in counts.items()
        ),
        "",
        "| step | "
        + " | ".join(f"{name} s" for name in sides)
        + " | "
        + " | ".join(f"{name} CPU s" for name in sides)
        + " | "
        + " | ".join(f"{name} peak RSS MiB" for name in sides)
        + " |",
        "|---" + "|---:" * (3 * len(sides)) + "|",
    ]
    for step in [*OUR_STEPS.values(), "write index"]:
        cells = [side["seconds"].get(step, "") for side in sides.values()]
        cells += [side["cpu_seconds"].get(step, "") for side in sides.values()]
        cells += [side["peak_rss_mib_during"].get(step, "") for side in sides.values()]
        if any(cell != "" for cell in cells):
            lines.append(f"| {step} | " + " | ".join(str(cell) for cell in cells) + " |")
    totals = [side["seconds"].get("link_warehouse total") for side in sides.values()]
    totals[-1] = plain_seconds(sides["plain"])
    cpu = [side["cpu_seconds"].get("link_warehouse total") for side in sides.values()]
    cpu[-1] = plain_seconds(sides["plain"], "cpu_seconds")
    totals += cpu + [side["process"]["peak_rss_mib"] for side in sides.values()]
    lines.append(
        "| **total** (ours: link_warehouse; plain: load + predict + cluster; RSS: process) | "
        + " | ".join(str(cell) for cell in totals)
        + " |"
    )
    for name, side in sides.items():
        p = side["process"]
        lines.append(
            f"{name} process: wall {p['wall_s']} s (incl. start-up), cpu {p['user_s']} user +"
            f" {p['sys_s']} sys, peak RSS {p['peak_rss_mib']} MiB,"
            f" 1-min load before/after {p['load_average_1min_before_after']}"
        )
    lines.append("")
    for name in SIDES[:2]:
        s = run[f"summary_{name}"]
        lines.append(
            f"targets ({name}): link under {TARGET_SECONDS:.0f} s -> {s['ours_link_s']} s;"
            f" peak under {TARGET_RSS_GIB:.0f} GiB -> {s['ours_peak_rss_mib'] / 1024:.2f} GiB;"
            f" overhead under {TARGET_OVERHEAD}x -> {s['ratio_time_ours_total_over_plain']}x"
            f" (predict + cluster only {s['ratio_time_predict_cluster_only']}x; CPU time"
            f" {s['ratio_cpu_time']}x; memory {s['ratio_peak_rss']}x)"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=830_000, help="~1.2 records per person")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--reuse", action="store_true", help="reuse population, intake, model")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each side, alternating")
    parser.add_argument("--side", choices=["ours", "plain", "train"], help=argparse.SUPPRESS)
    parser.add_argument("--config", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side == "ours":
        return side_ours(args.config, args.out)
    if args.side == "plain":
        return side_plain(args.config, args.model, args.out)
    if args.side == "train":
        return side_train(args.config, args.out)

    workdir = (
        population_dir(args.people, args.seed)
        if args.reuse
        else Path(tempfile.mkdtemp(prefix="link_bench_"))
    )
    context = machine_context()
    config = prepare_population(workdir, args.people, args.seed)
    model, training = trained_model(config, workdir)
    runs = []
    for _ in range(args.repeat):
        ours_config = link_copy(config, workdir)
        run = {
            # a new warehouse: no published index, every person is created
            "first_link": run_side("ours", ours_config, model, workdir),
            # the nightly case: the same records again, ids inherited from the published index
            "relink": run_side("ours", ours_config, model, workdir),
            "plain": run_side("plain", config, model, workdir),
        }
        for name in SIDES[:2]:
            run[f"summary_{name}"] = summary(run[name], run["plain"])
        runs.append(run)
        print(report(run), flush=True)
    accuracy = evaluate_both(
        ours_config, workdir / "side_plain.parquet", workdir / "truth", str(first_night(workdir))
    )
    result = {
        "people": args.people,
        "seed": args.seed,
        "workdir": str(workdir),
        "model": str(model),
        "training": training or "reused a saved model (not retrained)",
        "context_at_start": context,
        "targets": {
            "link_s": TARGET_SECONDS,
            "peak_rss_gib": TARGET_RSS_GIB,
            "overhead_ratio": TARGET_OVERHEAD,
        },
        "runs": runs,
        "fastest": {
            name: min((run[f"summary_{name}"] for run in runs), key=lambda s: s["ours_link_s"])
            for name in SIDES[:2]
        },
        "accuracy_of_last_run": accuracy,
    }
    if training:
        p = training["process"]
        print(f"training (apart): {training['seconds']} s; peak RSS {p['peak_rss_mib']} MiB")
    for side in ("ours", "plain"):
        shown = {k: round(v, 4) if isinstance(v, float) else v for k, v in accuracy[side].items()}
        print(f"accuracy {side}: {shown}")
    print(f"evaluate_run on the published index: {accuracy['evaluate_run_s']} s")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written {RESULTS}")


if __name__ == "__main__":
    main()
