"""Benchmark: whole nights at ~1M records, stage by stage, against plain Splink.

For each population, generated once (two nights) and cached under benchmarks/cache/ (reused
while the generator's arguments and source are unchanged):

- `default`: the default variant (`scottish`);
- `low`: the same at low name diversity (a quarter of people share six surnames, as on
  Lewis and Harris; `linkage generate --name-diversity low`).

On a fresh warehouse it runs, with the library functions the nightly flow calls, each timed
on its own: night 1's intake (extract + stage, standardise, validate, publish), training
(its own line: nightly runs never train), then night 1's link stage, alerts, exports, report
and dashboards; then night 2 whole. Then:

- plain Splink on each night's canonical records with the same saved model and blocking
  rules: load, predict, connected components at the link threshold (link_bench.py's plain
  side, in its own process), and the link stage's overhead over it, in wall and CPU time;
- the real Prefect flow for night 2 end to end (`linkage nightly`, its own process), on a
  copy of the warehouse as night 1 left it;
- precision and recall of each night's index (ours and plain) against the generator's truth;
- the full rebuild after the last night, and then (`--repeats`, 2 by default) the last
  night's incremental link and the rebuild again, each in its own process on a fresh copy
  of the warehouse as it found it: link against rebuild as a median of runs, not one pair
  of timings.

Per stage: wall seconds, CPU seconds (process_time: every thread of this process), peak RSS
(sampled every 20 ms; ru_maxrss only ever grows) and RSS at its start, rows in and out, and
the 1-minute load average at its end: other jobs may share the CPU, so CPU seconds are the
steadier figure. `--profile` also writes a cProfile of every stage (slower; main thread only).

    .venv/bin/python benchmarks/night_bench.py [--people 830000] [--population default|low|both]

Prints the machine and the tables; writes benchmarks/results/night-<population>-<people>.json
and benchmarks/results/night.md (the populations of this run).
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import io
import json
import logging
import os
import platform
import pstats
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # this checkout's linkage, not another's editable install
# child processes (generator, plain Splink, the flow) import this checkout's code too
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # nothing leaves the machine

import link_bench  # noqa: E402
from link_bench import PLAIN_STEPS, current_rss_mib, peak_rss_mib, reset_peak_rss  # noqa: E402
from plain_splink import machine_context  # noqa: E402

CACHE = REPO / "benchmarks" / "cache"
RESULTS_DIR = REPO / "benchmarks" / "results"
POPULATIONS = {"default": "normal", "low": "low"}  # population -> generator name diversity
VARIANT = "scottish"
NIGHTS = 2
START_DATE = date(2026, 11, 1)
NIGHT_STAGES = "night"  # a night's stages, summed into its total (training, measuring apart)


# ---- measuring ----------------------------------------------------------------------------


@dataclass
class Stage:
    night: str
    name: str
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    peak_rss_mib: float = 0.0
    start_rss_mib: float = 0.0
    rows_in: int | None = None
    rows_out: int | None = None
    load_1min: float = 0.0
    kind: str = NIGHT_STAGES  # night | training | evaluation | analysis
    detail: dict[str, Any] = field(default_factory=dict)


class Meter:
    """Stages one after another. A stage's peak RSS is the kernel's own mark (VmHWM), set
    back to the current RSS as the stage starts: exact, and no thread competes with the
    stage for the GIL. Where the mark cannot be reset, a thread samples RSS every 20 ms."""

    def __init__(self, profile_dir: Path | None = None) -> None:
        self.stages: list[Stage] = []
        self.profile_dir = profile_dir
        self._peak = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if not reset_peak_rss():
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self._peak = max(self._peak, current_rss_mib())

    def _stage_peak_mib(self) -> float:
        if self._thread is None:
            return peak_rss_mib()
        return max(self._peak, current_rss_mib())

    @contextmanager
    def stage(self, night: str, name: str, kind: str = NIGHT_STAGES) -> Iterator[Stage]:
        figures = Stage(night, name, kind=kind, start_rss_mib=round(current_rss_mib()))
        profiler = cProfile.Profile() if self.profile_dir else None
        self._peak = figures.start_rss_mib
        if self._thread is None:
            reset_peak_rss()
        started, cpu_started = time.perf_counter(), time.process_time()
        if profiler:
            profiler.enable()
        try:
            yield figures
        finally:
            if profiler:
                profiler.disable()
            figures.seconds = round(time.perf_counter() - started, 2)
            figures.cpu_seconds = round(time.process_time() - cpu_started, 2)
            figures.peak_rss_mib = round(self._stage_peak_mib())
            figures.load_1min = round(os.getloadavg()[0], 2)
            self.stages.append(figures)
            if profiler and self.profile_dir:
                self._write_profile(profiler, f"night{night}-{name}")
        print(
            f"  night {night} {name}: {figures.seconds} s, CPU {figures.cpu_seconds} s,"
            f" peak RSS {figures.peak_rss_mib} MiB",
            flush=True,
        )

    def _write_profile(self, profiler: cProfile.Profile, label: str) -> None:
        assert self.profile_dir is not None
        self.profile_dir.mkdir(parents=True, exist_ok=True)
        stem = self.profile_dir / "".join(c if c.isalnum() or c in "-_" else "_" for c in label)
        profiler.dump_stats(f"{stem}.prof")
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(30)
        stem.with_suffix(".txt").write_text(text.getvalue())

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def machine() -> dict[str, Any]:
    """Cores, memory, CPU model and load: enough to judge the figures."""
    meminfo = Path("/proc/meminfo").read_text().split()
    cpu_model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown",
    )
    return machine_context() | {
        "cpu_model": cpu_model,
        "memory_gib": round(int(meminfo[meminfo.index("MemTotal:") + 1]) / 2**20, 1),
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
    }


def count(con: duckdb.DuckDBPyConnection, sql: str, params: dict | None = None) -> int:
    return int(con.execute(sql, params or {}).fetchall()[0][0])


# ---- the cached populations --------------------------------------------------------------


def generator_arguments(population: str, people: int, seed: int) -> dict[str, Any]:
    """What the cached files depend on, the generator's source included."""
    digest = hashlib.sha256()
    for path in sorted((REPO / "linkage" / "generate").glob("*.py")):
        digest.update(path.read_bytes())
    return {
        "people": people,
        "seed": seed,
        "nights": NIGHTS,
        "start_date": START_DATE.isoformat(),
        "variant": VARIANT,
        "name_diversity": POPULATIONS[population],
        "generator_sha256": digest.hexdigest()[:16],
    }


def cached_population(population: str, people: int, seed: int) -> tuple[Path, dict[str, Any]]:
    """The population's folder, generated (in its own process) unless the cache matches."""
    folder = CACHE / f"{population}-people{people}-seed{seed}"
    marker = folder / "generator.json"
    wanted = generator_arguments(population, people, seed)
    if marker.exists():
        cached = json.loads(marker.read_text())
        if cached["arguments"] == wanted:
            return folder, cached | {"reused": True}
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    command = [sys.executable, "-m", "linkage.cli", "generate", "--out", str(folder / "data")]
    command += ["--people", str(people), "--seed", str(seed), "--nights", str(NIGHTS)]
    command += ["--start-date", START_DATE.isoformat(), "--variant", VARIANT]
    command += ["--name-diversity", POPULATIONS[population]]
    print(f"generating {population} population: {people:,} people, {NIGHTS} nights", flush=True)
    process = run_process(command, folder / "generate.log")
    generated = {"arguments": wanted, "process": process}
    marker.write_text(json.dumps(generated, indent=2) + "\n")  # last: a half-done run regenerates
    return folder, generated | {"reused": False}


def run_process(command: list[str], log_file: Path, env: dict | None = None) -> dict[str, Any]:
    """Run a command to completion: wall time, CPU time (wait4) and peak RSS.

    The peak is the child's own VmHWM, polled: wait4's ru_maxrss would start from this
    (large) process's RSS, which a forked child inherits.
    """
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    with log_file.open("w") as log:
        child = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env)
        watcher = PeakWatcher(child.pid)
        _, status, usage = os.wait4(child.pid, 0)
        peak = watcher.stop()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command[1:5])} ... failed; see {log_file}")
    return {
        "wall_s": round(time.perf_counter() - started, 2),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),  # its waited-for children too
        "peak_rss_mib": round(peak),  # the main process (a Prefect server apart)
        "load_1min_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }


class PeakWatcher:
    """Polls a child's VmHWM (peak resident set of its own program) every 50 ms."""

    def __init__(self, pid: int) -> None:
        self.status = Path(f"/proc/{pid}/status")
        self.peak_mib = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.wait(0.05):
            try:
                lines = self.status.read_text().splitlines()
            except OSError:  # exited
                return
            for line in lines:
                if line.startswith("VmHWM:"):
                    self.peak_mib = max(self.peak_mib, int(line.split()[1]) / 1024)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak_mib


def write_project(population_dir: Path, run_dir: Path, models_dir: Path) -> Path:
    """A project config over the cached files, with the schemas' alert and sharing rules."""
    config_dir = population_dir / "data" / "config"
    generated = yaml.safe_load((config_dir / "project.yaml").read_text())
    project: dict[str, Any] = {
        "landing_dir": str(population_dir / "data" / "landing"),
        "sources": str(config_dir / "sources" / "*.yaml"),
        "warehouse": "warehouse/linkage.duckdb",
        "output_dir": "output",
        "archive_dir": "archive",
        "models_dir": str(models_dir),
        "alert_rules": str(REPO / "schemas" / "alerts.yaml"),
        "sharing_rules": str(REPO / "schemas" / "sharing.yaml"),
    }
    if "identifiers" in generated:
        project["identifiers"] = str(config_dir / generated["identifiers"])
    if "postcode_format" in generated:
        project["postcode_format"] = generated["postcode_format"]
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "project.yaml"
    path.write_text(yaml.safe_dump(project, sort_keys=False))
    return path


# ---- one night, stage by stage -----------------------------------------------------------


def run_night(
    meter: Meter,
    config: Path,
    night_date: date,
    label: str,
    seed: int,
    before_link: Path | None = None,
) -> dict:
    """The nightly flow's stages in its order, each timed; trains after publishing if the
    warehouse has no model yet (night 1). Returns the run's id, status and model.
    `before_link`: where to keep a copy of the warehouse as the link stage finds it."""
    from linkage import night as stages
    from linkage.config import load_project
    from linkage.explain import dashboards_for_run
    from linkage.link.train import latest_model

    project = load_project(config)
    with meter.stage(label, "extract + stage") as figures:
        night = stages.start_night(project, night_date)
        intakes = [stages.intake_source(night, source) for source in project.source_configs()]
    figures.rows_in = sum(intake.rows_read for intake in intakes)
    figures.rows_out = staged = count(night.con, f"SELECT count(*) FROM {stages.STAGED_TABLE}")
    with meter.stage(label, "standardise") as figures:
        intakes = stages.standardise_night(night, intakes)
    figures.rows_in = staged
    figures.rows_out = standardised = count(
        night.con, f"SELECT count(*) FROM {stages.STANDARDISED_TABLE}"
    )
    with meter.stage(label, "validate") as figures:
        intakes = [stages.validate_source(night, intake) for intake in intakes]
    failures = [(i.source, f) for i in intakes if i.validation for f in i.validation.row_failures]
    quarantined = {
        (source, f.source_row_number) for source, f in failures if f.severity == "quarantine"
    }
    figures.rows_in, figures.rows_out = standardised, standardised - len(quarantined)
    figures.detail = {"row_failures": len(failures), "held": [i.source for i in intakes if i.error]}
    with meter.stage(label, "publish") as figures:
        status = stages.publish_night(night, intakes)
    figures.rows_in = standardised
    figures.rows_out = records = count(night.con, "SELECT count(*) FROM canonical_record")
    figures.detail = {"status": status}
    if latest_model(project.model_dir) is None:
        train(meter, night, label, seed)
    if before_link is not None:  # between stages: the intake has committed
        night.con.execute("CHECKPOINT")
        shutil.copyfile(project.warehouse, before_link)
    with ExitStack() as together:  # as the flow: index, alerts and exports commit as one
        together.enter_context(stages.published_together(night))
        with meter.stage(label, "link") as figures:
            outcome = stages.link_night(night)
        if outcome is None:
            raise SystemExit(f"night {label}: not linked: {night.link_skipped}")
        figures.rows_in, figures.rows_out = records, outcome.persons
        figures.detail = {
            "edges": outcome.edges,
            "review_items": sum(outcome.review_by_reason.values()),
            "id_changes": outcome.id_changes,
            "steps_seconds": outcome.stage_seconds,
            "linked": outcome.linked,
            "records_relinked": outcome.records_relinked,
        }
        with meter.stage(label, "alerts") as figures:
            alerts = stages.alert_night(night, outcome)
        figures.rows_in = outcome.persons
        if alerts is not None:
            figures.rows_out = sum(alerts.delivered_by_recipient.values())
            figures.detail = {"by_rule_and_status": alerts.by_rule_and_status}
        with meter.stage(label, "export") as figures:
            exports = stages.export_night(night, outcome)
        figures.rows_in = outcome.persons
        if exports is not None:
            figures.rows_out = sum(export.rows for export in exports.agencies)
        with meter.stage(label, "commit"):
            together.close()  # the one commit, then the files move into place
    with meter.stage(label, "report") as figures:
        report = stages.build_report(night, intakes, status, outcome, alerts, exports)
        stages.finish_night(night, intakes, report)  # closes the warehouse
    figures.detail = {"status": report.status}
    with meter.stage(label, "dashboards") as figures:
        figures.rows_out = len(dashboards_for_run(project, night.run_id))
    return {
        "run_id": night.run_id,
        "status": report.status,
        "link_edges": outcome.edges,
        "held": [intake.error for intake in intakes if intake.error],
        "records": records,
        "model": str(latest_model(project.model_dir)),
    }


def full_rebuild(meter: Meter, config: Path, night_date: date, label: str) -> dict:
    """`linkage rebuild` after the last night: every record linked again (the incremental
    nights' yardstick), and how far their index had drifted from it."""
    from linkage import night as stages
    from linkage.config import load_project

    project = load_project(config)
    night = stages.start_night(project, night_date, full="benchmark: full rebuild")
    with ExitStack() as together:
        together.enter_context(stages.published_together(night))
        with meter.stage(label, "rebuild (full link)", kind="rebuild") as figures:
            outcome = stages.link_night(night)
        if outcome is None:
            raise SystemExit(f"rebuild after night {label}: not linked: {night.link_skipped}")
        figures.rows_in, figures.rows_out = outcome.records, outcome.persons
        figures.detail = {"steps_seconds": outcome.stage_seconds, "drift": outcome.drift}
    report = stages.build_report(night, [], "complete", outcome)
    stages.finish_night(night, [], report)
    return {"seconds": outcome.seconds, "drift": outcome.drift}


def link_against_rebuild(
    config: Path, before_link: Path, after_night: Path, run_id: str, night_date: date, times: int
) -> list[dict[str, float]]:
    """The last night's incremental link and the full rebuild again, `times` over, each on a
    fresh copy of the warehouse as it found it and in a process of its own, as `linkage
    rebuild` runs. This machine's timings vary by a third from run to run, more than the
    ratio's distance from its target; and in this process, after the nights and the rebuild,
    an incremental link ran 4-56% slower than the night's own."""
    runs = []
    for _ in range(times):
        link_seconds = timed_link_process(config, before_link, night_date, run_id)
        rebuild_seconds = timed_link_process(config, after_night, night_date)
        runs.append(
            {
                "link_s": round(link_seconds, 2),
                "rebuild_s": round(rebuild_seconds, 2),
                "ratio": round(link_seconds / rebuild_seconds, 4),
            }
        )
    return runs


def timed_link_process(
    config: Path, warehouse: Path, night_date: date, run_id: str | None = None
) -> float:
    """timed_link in a fresh interpreter running this script (a multiprocessing child has
    a __main__ without a file, which DuckDB takes for an interactive session: progress bars)."""
    command = [sys.executable, __file__, "--time-link", str(config), str(warehouse)]
    command += [night_date.isoformat(), *([run_id] if run_id else [])]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"timing a link on {warehouse.name} failed:\n{done.stderr[-2000:]}")
    return float(done.stdout.split()[-1])


def timed_link(config: Path, warehouse: Path, night_date: date, run_id: str | None = None) -> float:
    """Seconds of one link stage on a copy of `warehouse`: the night `run_id`'s own link
    (incremental, as it was), or without one full_rebuild's, timed as it times it."""
    from linkage.config import load_project
    from linkage.index import link_warehouse
    from linkage.warehouse import open_warehouse, transaction

    quiet_libraries()
    project = load_project(config)
    shutil.copyfile(warehouse, project.warehouse)
    if run_id is None:
        meter = Meter()
        try:
            return float(full_rebuild(meter, config, night_date, "again")["seconds"])
        finally:
            meter.close()
    con = open_warehouse(project.warehouse, project.identifier_registry())
    with transaction(con):  # as the night's link, inside published_together
        started = time.perf_counter()
        outcome = link_warehouse(con, project, run_id, night_date)
        seconds = time.perf_counter() - started
    con.close()
    if outcome.linked != "incremental":
        raise SystemExit(f"the last night's link again was not incremental: {outcome.linked}")
    return seconds


def train(meter: Meter, night: Any, label: str, seed: int) -> None:
    """flows/train.py's task on the open warehouse (a fresh one: no reviewed pairs yet)."""
    from linkage.link import train as training

    registry = night.project.identifier_registry()
    with meter.stage(label, "train", kind="training") as figures:
        records = training.model_input(night.con, registry)
        linker, report = training.train_model(records, seed=seed, registry=registry)
        path = training.save_model(linker, records, night.project.model_dir, seed, 0, report)
    figures.rows_in = len(records)
    figures.detail = {"model": path.name}


def evaluate_night(meter: Meter, config: Path, truth: Path, night: date, label: str) -> dict:
    from linkage.config import load_project
    from linkage.evaluate import evaluate_run

    with meter.stage(label, "evaluate", kind="evaluation"):
        result = evaluate_run(load_project(config), truth, night)
    return result.evaluation.as_dict()


def candidate_pairs(meter: Meter, config: Path, model: Path, label: str) -> dict[str, Any]:
    """Pairs each block the link stage used gives predict to score (after the budget; exact
    counts from group sizes, linkage/link/blocking.py; a pair two blocks share counts
    twice here, once in predict)."""
    from linkage.config import load_project
    from linkage.link.blocking import plan_blocking
    from linkage.link.model import ModelShape, filled_columns
    from linkage.link.train import model_input

    project = load_project(config)
    with meter.stage(label, "candidate pairs", kind="analysis") as figures:
        con = duckdb.connect(str(project.warehouse), read_only=True)
        registry = project.identifier_registry()
        shape = ModelShape(filled_columns(model_input(con, registry)), registry)
        plan = plan_blocking(con, "canonical_record", shape, project.linkage.max_pairs_per_record)
        con.close()
    used = [row for row in plan.as_rows() if row["action"] in ("kept", "tightened")]
    figures.rows_out = sum(row["pairs"] for row in used)
    return {
        "total": figures.rows_out,
        "estimated": False,
        "by_rule": {row["rule"]: int(row["pairs"]) for row in used},
    }


def evaluate_plain(index: Path, truth: Path, night: date) -> dict:
    from linkage.evaluate import evaluate

    with duckdb.connect() as con:
        con.execute("CREATE TABLE plain_index AS SELECT * FROM read_parquet($p)", {"p": str(index)})
        return evaluate(con, "plain_index", truth, night.isoformat()).as_dict()


# ---- plain Splink and the real flow ------------------------------------------------------


def plain_splink(config: Path, model: Path, workdir: Path) -> dict:
    """link_bench.py's plain side in its own process: load, predict, connected components."""
    workdir.mkdir(parents=True, exist_ok=True)
    out = workdir / "side_plain.json"
    command = [sys.executable, link_bench.__file__, "--side", "plain", "--config", str(config)]
    command += ["--model", str(model), "--out", str(out)]
    process = run_process(command, workdir / "plain.log")
    return json.loads(out.read_text()) | {"process": process}


def overhead(link: Stage, plain: dict) -> dict[str, float]:
    """The link stage over plain Splink's load + predict + cluster, in wall and CPU time."""
    plain_s = sum(plain["seconds"][step] for step in PLAIN_STEPS)
    plain_cpu = sum(plain["cpu_seconds"][step] for step in PLAIN_STEPS)
    ours_predict = link.detail["steps_seconds"].get("predict", 0.0)
    return {
        "ours_s": link.seconds,
        "plain_s": round(plain_s, 2),
        "ratio_wall": round(link.seconds / plain_s, 2),
        "ours_cpu_s": link.cpu_seconds,
        "plain_cpu_s": round(plain_cpu, 2),
        "ratio_cpu": round(link.cpu_seconds / plain_cpu, 2),
        "ours_predict_s": ours_predict,
        "plain_predict_s": plain["seconds"]["predict"],
        "ours_peak_rss_mib": link.peak_rss_mib,
        "ours_start_rss_mib": link.start_rss_mib,
        "plain_peak_rss_mib": plain["process"]["peak_rss_mib"],
        "plain_edges": plain["counts"]["edges"],
        "plain_persons": plain["counts"]["persons"],
    }


def copy_for_flow(run_dir: Path, flow_dir: Path, models_dir: Path, population: Path) -> Path:
    """A config over a copy of the warehouse as it is now (night 1 done), for the flow."""
    shutil.rmtree(flow_dir, ignore_errors=True)
    (flow_dir / "warehouse").mkdir(parents=True)
    shutil.copyfile(run_dir / "warehouse" / "linkage.duckdb", flow_dir / "warehouse/linkage.duckdb")
    return write_project(population, flow_dir, models_dir)


def prefect_flow(config: Path, night: date, flow_dir: Path) -> dict:
    """`linkage nightly` end to end in its own process (Prefect's local ephemeral API)."""
    env = os.environ | {"PREFECT_HOME": str(flow_dir / "prefect_home")}
    env.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    command = [sys.executable, "-m", "linkage.cli", "nightly", "--config", str(config)]
    command += ["--run-date", night.isoformat()]
    print(f"  night {night} through the Prefect flow (its own process)", flush=True)
    process = run_process(command, flow_dir / "nightly.log", env)
    [report_file] = (flow_dir / "output" / "runs").glob("*/report.json")
    report = json.loads(report_file.read_text())
    return {"process": process, "run_report_seconds": report["seconds"], "status": report["status"]}


# ---- one population ----------------------------------------------------------------------


def bench_population(
    population: str, people: int, seed: int, profile: bool, with_flow: bool, repeats: int
) -> dict:
    folder, generated = cached_population(population, people, seed)
    truth = folder / "data" / "truth"
    run_dir, flow_dir = folder / "run", folder / "flow"
    shutil.rmtree(run_dir, ignore_errors=True)
    models_dir = run_dir / "models"
    config = write_project(folder, run_dir, models_dir)
    nights = [START_DATE + timedelta(days=offset) for offset in range(NIGHTS)]
    meter = Meter(run_dir / "profiles" if profile else None)
    result: dict[str, Any] = {
        "population": population,
        "people": people,
        "seed": seed,
        "generator": generated,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "nights": {},
    }
    flow_config = None
    before_link, after_night = run_dir / "before-last-link.duckdb", run_dir / "last-night.duckdb"
    for position, night in enumerate(nights, start=1):
        label = str(position)
        print(f"{population}: night {label} ({night})", flush=True)
        last = position == len(nights)
        outcome = run_night(meter, config, night, label, seed, before_link if last else None)
        outcome["accuracy"] = evaluate_night(meter, config, truth, night, label)
        outcome["candidate_pairs"] = candidate_pairs(meter, config, Path(outcome["model"]), label)
        plain = plain_splink(config, Path(outcome["model"]), run_dir / f"plain-night{label}")
        outcome["plain_splink"] = plain
        outcome["plain_accuracy"] = evaluate_plain(
            run_dir / f"plain-night{label}" / "side_plain.parquet", truth, night
        )
        link = next(s for s in meter.stages if s.night == label and s.name == "link")
        outcome["link_vs_plain"] = overhead(link, plain)
        if with_flow and position == len(nights) - 1:  # the warehouse as the flow finds it
            flow_config = copy_for_flow(run_dir, flow_dir, models_dir, folder)
        result["nights"][label] = outcome
    shutil.copyfile(run_dir / "warehouse" / "linkage.duckdb", after_night)
    result["rebuild"] = full_rebuild(meter, config, nights[-1], str(len(nights)))
    if repeats:
        print(f"{population}: night {len(nights)}'s link and the rebuild again", flush=True)
        result["rebuild"]["repeats"] = link_against_rebuild(
            config, before_link, after_night, outcome["run_id"], nights[-1], repeats
        )
    if flow_config is not None:
        flow = prefect_flow(flow_config, nights[-1], flow_dir)
        flow["accuracy"] = evaluate_night(meter, flow_config, truth, nights[-1], "flow")
        result["prefect_flow_last_night"] = flow
    meter.close()
    result["stages"] = [asdict(stage) for stage in meter.stages]
    result["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    return result


def night_totals(stages: list[dict], night: str) -> dict[str, float]:
    mine = [s for s in stages if s["night"] == night and s["kind"] == NIGHT_STAGES]
    return {
        "seconds": round(sum(s["seconds"] for s in mine), 1),
        "cpu_seconds": round(sum(s["cpu_seconds"] for s in mine), 1),
        "peak_rss_mib": max(s["peak_rss_mib"] for s in mine),
    }


# ---- report ------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.2f}" if value < 1000 else f"{value:,.0f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def pairs_text(outcome: dict) -> str:
    """Candidate pairs predict scored, and the rule that gave most of them."""
    pairs = outcome["candidate_pairs"]
    rule, most = max(pairs["by_rule"].items(), key=lambda item: item[1])
    return (
        f"candidate pairs of the blocks used: {pairs['total']:,}; {most:,} of them from"
        f" `{rule.replace('|', '/')}`; edges kept: {outcome['link_edges']:,}"
    )


def markdown(result: dict, context: dict) -> str:
    first = result["nights"]["1"]
    gen = result["generator"]["process"]
    lines = [
        f"## {result['population']} population: {result['people']:,} people,"
        f" {first['records']:,} records on night 1 (seed {result['seed']})",
        "",
        f"Machine: {context['cpus']} cores, {context['memory_gib']} GiB, {context['cpu_model']};"
        f" commit {context['commit']}; load average at start {context['load_average_1_5_15']}."
        f" Generation ({'cached' if result['generator']['reused'] else 'this run'}):"
        f" {gen['wall_s']} s, peak RSS {gen['peak_rss_mib']} MiB.",
        "",
        "| night | stage | wall s | CPU s | peak RSS MiB | RSS at start MiB | rows in | rows out"
        " | load 1 min |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for stage in result["stages"]:
        cells = [stage[k] for k in ("seconds", "cpu_seconds", "peak_rss_mib", "start_rss_mib")]
        cells += [stage["rows_in"], stage["rows_out"], stage["load_1min"]]
        name = stage["name"] if stage["kind"] == NIGHT_STAGES else f"*{stage['name']}*"
        lines.append(f"| {stage['night']} | {name} | " + " | ".join(map(_cell, cells)) + " |")
        if stage["name"] == "link":
            steps = stage["detail"]["steps_seconds"]
            split = ", ".join(f"{step} {seconds}" for step, seconds in steps.items())
            lines.append(f"| | (link: {split}) | | | | | | | |")
            lines.append(f"| | ({pairs_text(result['nights'][stage['night']])}) | | | | | | | |")
    for night in result["nights"]:
        total = night_totals(result["stages"], night)
        cells = [total["seconds"], total["cpu_seconds"], total["peak_rss_mib"]]
        lines.append(
            f"| {night} | **night total** (training and measurements apart) | "
            + " | ".join(map(_cell, cells))
            + " | | | | |"
        )
    flow = result.get("prefect_flow_last_night")
    if flow:
        p = flow["process"]
        lines.append(
            f"| {len(result['nights'])} | **Prefect flow, end to end** (`linkage nightly`, own"
            f" process with Prefect's start-up; its run report: {flow['run_report_seconds']:.1f}"
            f" s) | {_cell(p['wall_s'])} | {_cell(p['cpu_s'])}"
            f" | {_cell(p['peak_rss_mib'])} | | | | {p['load_1min_before_after'][1]} |"
        )
    rebuild = result.get("rebuild")
    if rebuild:
        last = str(len(result["nights"]))
        link = next(s for s in result["stages"] if s["night"] == last and s["name"] == "link")
        drift = rebuild["drift"]
        kinds = ", ".join(f"{kind} {n:,}" for kind, n in drift.get("persons", {}).items())
        lines += [
            "",
            f"Night {last} linked incrementally in {link['seconds']:.1f} s; a full rebuild of"
            f" the same records took {rebuild['seconds']:.1f} s"
            f" ({link['seconds'] / rebuild['seconds']:.3f} of it). The rebuild's persons against"
            f" the incremental index: {kinds}; records moved: {drift.get('records_moved', 0):,}.",
        ]
        repeats = rebuild.get("repeats", [])
        if repeats:
            ratios = [link["seconds"] / rebuild["seconds"]] + [r["ratio"] for r in repeats]
            again = "; ".join(f"{r['link_s']:.2f} s / {r['rebuild_s']:.1f} s" for r in repeats)
            lines.append(
                f"Again, each in its own process on a fresh copy of the warehouse as it found it:"
                f" {again}. Link against"
                f" rebuild over the {len(ratios)} runs: median {statistics.median(ratios):.3f},"
                f" from {min(ratios):.3f} to {max(ratios):.3f}."
            )
    lines += [
        "",
        "Link stage against plain Splink (same saved model and blocking rules; plain: load +"
        " predict + connected components at the link threshold, in its own process):",
        "",
        "| night | ours s | plain s | ratio wall | ours CPU s | plain CPU s | ratio CPU"
        " | ours predict s | plain predict s | ours peak RSS MiB (at start) | plain peak RSS MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for night, outcome in result["nights"].items():
        o = outcome["link_vs_plain"]
        keys = ["ours_s", "plain_s", "ratio_wall", "ours_cpu_s", "plain_cpu_s", "ratio_cpu"]
        keys += ["ours_predict_s", "plain_predict_s"]
        cells = [_cell(o[k]) for k in keys]
        cells.append(f"{o['ours_peak_rss_mib']:,} (from {o['ours_start_rss_mib']:,})")
        cells.append(_cell(o["plain_peak_rss_mib"]))
        lines.append(f"| {night} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| night | index | records | precision | recall | F1 | wrong-person clusters"
        " | twins merged | split persons |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    rows = []
    for night, outcome in result["nights"].items():
        rows += [(night, "ours", outcome["accuracy"]), (night, "plain", outcome["plain_accuracy"])]
    if flow:
        rows.append((str(len(result["nights"])), "ours, Prefect flow", flow["accuracy"]))
    for night, index, measures in rows:
        keys = ["records", "pairwise_precision", "pairwise_recall", "pairwise_f1"]
        keys += ["wrong_person_merges", "twins_merged", "split_persons"]
        cells = [f"{v:.4f}" if isinstance(v, float) else _cell(v) for v in map(measures.get, keys)]
        lines.append(f"| {night} | {index} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def quiet_libraries() -> None:
    """Warnings only, and none of Splink's expected ones (levels EM never saw at this size):
    the training report says which levels were set by rule."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.WARNING)
    handler.addFilter(lambda record: record.levelno >= logging.ERROR or "splink" not in record.name)
    logging.basicConfig(level=logging.WARNING, handlers=[handler])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=830_000, help="~1.2 records per person")
    parser.add_argument("--population", choices=["default", "low", "both"], default="both")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--profile", action="store_true", help="cProfile every stage")
    parser.add_argument(
        "--no-flow", action="store_true", help="skip the Prefect flow's run of the last night"
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=2,
        help="times to link the last night and rebuild again, on copies of the warehouse",
    )
    parser.add_argument("--time-link", nargs="+", help=argparse.SUPPRESS)  # timed_link_process
    args = parser.parse_args()
    if args.time_link:
        config, warehouse, night, *run_id = args.time_link
        print(timed_link(Path(config), Path(warehouse), date.fromisoformat(night), *run_id))
        return
    quiet_libraries()
    context = machine()
    print(
        f"machine: {context['cpus']} cores, {context['memory_gib']} GiB RAM,"
        f" {context['cpu_model']}; load average {context['load_average_1_5_15']};"
        f" commit {context['commit']}",
        flush=True,
    )
    populations = ["default", "low"] if args.population == "both" else [args.population]
    sections = []
    started = time.perf_counter()
    for population in populations:
        result = bench_population(
            population, args.people, args.seed, args.profile, not args.no_flow, args.repeats
        )
        result["machine"] = context
        result["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        out = RESULTS_DIR / f"night-{population}-{args.people}.json"
        out.write_text(json.dumps(result, indent=2, default=str) + "\n")
        sections.append(markdown(result, context))
        print("\n" + sections[-1], flush=True)
    title = f"# Whole-night benchmark ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)\n\n"
    took = f"\nThe whole benchmark took {time.perf_counter() - started:.0f} s.\n"
    (RESULTS_DIR / "night.md").write_text(title + "\n".join(sections) + took)
    print(took.strip())
    print(f"written {RESULTS_DIR / 'night.md'}")


if __name__ == "__main__":
    main()
