"""Benchmark: extract + validate + standardise on ~1M generated records.

Generates a population (in a subprocess, so its memory is not counted), then runs the
night's intake stages in this process and prints wall time per stage and peak RSS.

    .venv/bin/python benchmarks/ingest_bench.py --people 870000
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--people", type=int, default=870_000, help="~1.15 records per person")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workdir", type=Path, default=None, help="reuse a generated population")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="ingest_bench_"))
    if not (workdir / "landing").exists():
        subprocess.run(
            [
                sys.executable,
                "-m",
                "linkage.cli",
                "generate",
                "--out",
                str(workdir),
                "--people",
                str(args.people),
                "--seed",
                str(args.seed),
                "--nights",
                "1",
            ],
            check=True,
        )
    figures = run_intake(workdir)
    print(json.dumps(figures, indent=2))
    out = REPO / "benchmarks" / "results" / "ingest.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2))


def run_intake(workdir: Path) -> dict:
    from linkage import night as stages
    from linkage.config import load_project

    config = workdir / "project.yaml"
    config.write_text(
        f"landing_dir: landing\nsources: {REPO}/schemas/sources/*.yaml\n"
        "warehouse: bench/w.duckdb\noutput_dir: bench/output\narchive_dir: bench/archive\n"
    )
    project = load_project(config)
    night_date = date.fromisoformat(sorted(p.name for p in project.landing_dir.iterdir())[0])
    timings: dict[str, float] = {}
    start = time.perf_counter()
    night = stages.start_night(project, night_date)
    intakes = [stages.intake_source(night, source) for source in project.source_configs()]
    timings["extract_and_stage_s"] = time.perf_counter() - start
    mark = time.perf_counter()
    intakes = stages.standardise_night(night, intakes)
    rows = night.con.execute(f"SELECT count(*) FROM {stages.STANDARDISED_TABLE}").fetchall()[0][0]
    timings["standardise_s"] = time.perf_counter() - mark
    mark = time.perf_counter()
    intakes = [stages.validate_source(night, intake) for intake in intakes]
    timings["validate_s"] = time.perf_counter() - mark
    mark = time.perf_counter()
    status = stages.publish_night(night, intakes)
    timings["publish_s"] = time.perf_counter() - mark
    report = stages.build_report(night, intakes, status)
    stages.finish_night(night, intakes, report)
    total = time.perf_counter() - start
    return {
        "records": rows,
        "rows_by_source": {s.source: s.rows_read for s in report.sources},
        "quarantined": sum(s.rows_quarantined for s in report.sources),
        "status": status,
        "wall_s": round(total, 2),
        **{k: round(v, 2) for k, v in timings.items()},
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


if __name__ == "__main__":
    main()
