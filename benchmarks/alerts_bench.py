"""Benchmark: `run_alerts` over a linked warehouse (~1M records), on a copy of it.

The project's warehouse file is copied into a work directory first (the original is never
opened for writing) and outputs go there too. Three alert runs exercise the lifecycle:

1. `night1`: the first night's published index (the accuracy benchmark keeps it as
   linked_index-<night>.parquet next to the warehouse), so every alert is new;
2. `night2`: the warehouse's own (latest) index on its night: alerts carry on, resolve,
   are raised, and follow the person-id merges between the two nights;
3. `rerun`: night 2 again under a new run id (a re-run creates no duplicates).

Without a first-night snapshot, run 1 uses the latest index a day earlier. Each run is
timed (wall and CPU) with the process's peak RSS; the `alert` and `alert_review` tables
and delivery files after each run are dumped to <work>/dump/<run>/ so two code versions
can be compared with `--compare`.

    .venv/bin/python benchmarks/alerts_bench.py --config <project.yaml> [--work DIR]
    .venv/bin/python benchmarks/alerts_bench.py --compare <dumpA> <dumpB>

Prints the figures and writes benchmarks/results/alerts_bench.json (or --json).
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import duckdb

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # measure this checkout's linkage, not an installed one
RESULTS = REPO / "benchmarks" / "results" / "alerts_bench.json"
TARGET_SECONDS = 10.0
DUMPED_TABLES = ["alert", "alert_review"]


def prepare(config: Path, work: Path) -> tuple[Path, Path | None]:
    """A copy of the project's warehouse in `work`, and the first night's index if kept."""
    from linkage.config import load_project

    project = load_project(config)
    work.mkdir(parents=True, exist_ok=True)
    warehouse = work / "warehouse" / "linkage.duckdb"
    warehouse.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(project.warehouse, warehouse)
    snapshots = sorted(project.warehouse.parent.glob("linked_index-*.parquet"))
    return warehouse, snapshots[0] if len(snapshots) > 1 else None


def use_first_night_index(con: duckdb.DuckDBPyConnection, snapshot: Path) -> None:
    """Swap in the first night's person ids (records it did not have drop out)."""
    con.execute("CREATE TABLE latest_linked_index AS SELECT * FROM linked_index")
    con.execute(
        "CREATE OR REPLACE TABLE linked_index AS"
        " SELECT first.person_id, li.record_key, li.source, li.source_record_id,"
        " li.link_confidence, li.run_id"
        " FROM latest_linked_index li JOIN read_parquet($snapshot) first USING (record_key)",
        {"snapshot": str(snapshot)},
    )


def restore_latest_index(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE OR REPLACE TABLE linked_index AS SELECT * FROM latest_linked_index")
    con.execute("DROP TABLE latest_linked_index")


def dump(con: duckdb.DuckDBPyConnection, alerts_dir: Path, target: Path) -> dict[str, int]:
    """The alert tables (sorted) and the night's delivery files, for comparison."""
    target.mkdir(parents=True, exist_ok=True)
    counts = {}
    for table in DUMPED_TABLES:
        con.execute(f"COPY (SELECT * FROM {table} ORDER BY ALL) TO '{target / table}.parquet'")
        counts[table] = con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
    if alerts_dir.exists():
        shutil.copytree(alerts_dir, target / "files")
    return counts


def run(config: Path, work: Path) -> dict:
    from linkage.alerts import run_alerts
    from linkage.config import load_project
    from linkage.warehouse import open_warehouse

    warehouse, snapshot = prepare(config, work)
    project = load_project(config).model_copy(
        update={"warehouse": warehouse, "output_dir": work / "output"}
    )
    con = open_warehouse(warehouse, project.identifier_registry())
    latest = con.execute("SELECT max(run_date) FROM run WHERE status = 'complete'").fetchall()
    night2: date = latest[0][0]
    night1 = date.fromisoformat(snapshot.stem.removeprefix("linked_index-")) if snapshot else None
    plan = [
        ("night1", night1 or night2 - timedelta(days=1)),
        ("night2", night2),
        ("rerun", night2),
    ]
    figures: dict = {"warehouse": str(load_project(config).warehouse), "runs": {}}
    figures["records"] = con.execute("SELECT count(*) FROM linked_index").fetchall()[0][0]
    figures["persons"] = con.execute("SELECT count(*) FROM person").fetchall()[0][0]
    for name, night in plan:
        if name == "night1" and snapshot is not None:
            use_first_night_index(con, snapshot)
        run_id = f"bench-{name}"
        started, cpu_started = time.perf_counter(), time.process_time()
        outcome = run_alerts(con, project, run_id, night)
        seconds = time.perf_counter() - started
        cpu_seconds = time.process_time() - cpu_started
        peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        if name == "night1" and snapshot is not None:
            restore_latest_index(con)
        alerts_dir = project.output_dir / "runs" / run_id / "alerts"
        counts = dump(con, alerts_dir, work / "dump" / name)
        figures["runs"][name] = {
            "night": night.isoformat(),
            "seconds": round(seconds, 2),
            "cpu_seconds": round(cpu_seconds, 2),
            "peak_rss_mib_so_far": round(peak_rss_mib),
            "load_average_1min": round(os.getloadavg()[0], 2),  # other jobs share the CPU
            "rows": counts,
            "by_rule_and_status": outcome.by_rule_and_status if outcome else None,
            "delivered_by_recipient": outcome.delivered_by_recipient if outcome else None,
        }
        print(f"{name} ({night}): {seconds:.2f} s wall, {cpu_seconds:.2f} s CPU,"
              f" peak RSS {peak_rss_mib:.0f} MiB, {counts}")  # fmt: skip
    con.close()
    figures["target_seconds"] = TARGET_SECONDS
    return figures


def compare(first: Path, second: Path) -> bool:
    """True when two dumps hold the same alert tables and byte-identical delivery files."""
    same = True
    con = duckdb.connect()
    for run_dir in sorted(p for p in first.iterdir() if p.is_dir()):
        other = second / run_dir.name
        for table in DUMPED_TABLES:
            a, b = str(run_dir / f"{table}.parquet"), str(other / f"{table}.parquet")
            rows = con.execute(f"SELECT count(*) FROM '{a}'").fetchall()[0][0]
            only_a = con.execute(f"SELECT count(*) FROM (FROM '{a}' EXCEPT ALL FROM '{b}')")
            only_a_rows = only_a.fetchall()[0][0]  # fetch before the connection runs another
            only_b = con.execute(f"SELECT count(*) FROM (FROM '{b}' EXCEPT ALL FROM '{a}')")
            differing = (only_a_rows, only_b.fetchall()[0][0])
            same &= differing == (0, 0)
            print(f"{run_dir.name} {table}: {rows} rows, differing rows {differing}")
        files = sorted(p.name for p in (run_dir / "files").glob("*"))
        other_files = sorted(p.name for p in (other / "files").glob("*"))
        _, mismatch, errors = filecmp.cmpfiles(run_dir / "files", other / "files", files,
                                               shallow=False)  # fmt: skip
        same &= files == other_files and not mismatch and not errors
        print(f"{run_dir.name} files: {len(files)}, differing {mismatch + errors}")
    return same


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path)
    parser.add_argument("--work", type=Path, help="work directory (default: a temp dir)")
    parser.add_argument("--json", type=Path, default=RESULTS)
    parser.add_argument("--compare", type=Path, nargs=2, metavar=("DUMP_A", "DUMP_B"))
    args = parser.parse_args()
    if args.compare:
        sys.exit(0 if compare(*args.compare) else 1)
    if args.config is None:
        parser.error("--config is required")
    work = args.work or Path(tempfile.mkdtemp(prefix="alerts_bench_"))
    figures = run(args.config.resolve(), work)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"dumps in {work / 'dump'}; figures in {args.json}")


if __name__ == "__main__":
    main()
