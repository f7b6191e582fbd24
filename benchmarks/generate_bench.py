"""Benchmark: generate a population into a temp dir; print wall time, peak memory, records.

    .venv/bin/python benchmarks/generate_bench.py --people 1000000

Writes the figures to benchmarks/results/generate.json as well.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import tempfile
import time
from datetime import date
from pathlib import Path

from linkage.generate import generate_population

RESULTS = Path(__file__).resolve().parent / "results" / "generate.json"


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def directory_mib(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=1_000_000)
    parser.add_argument("--nights", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--chunk-size", type=int, default=20_000)
    parser.add_argument("--keep", type=Path, help="write here and keep the files")
    parser.add_argument("--variant", default="scottish", help="generator variant (see README)")
    args = parser.parse_args()

    out = args.keep or Path(tempfile.mkdtemp(prefix="generate_bench_"))
    started = time.perf_counter()
    summary = generate_population(
        out,
        people=args.people,
        seed=args.seed,
        nights=args.nights,
        start_date=date(2026, 11, 1),
        chunk_size=args.chunk_size,
        variant=args.variant,
    )
    figures = {
        "variant": args.variant,
        "people": summary.people,
        "households": summary.households,
        "people_added_after_night_1": summary.people_added,
        "nights": args.nights,
        "chunk_size": args.chunk_size,
        "records_per_night": summary.records,
        "wall_seconds": round(time.perf_counter() - started, 1),
        "peak_rss_mib": round(peak_rss_mib(), 1),
        "output_mib": round(directory_mib(out), 1),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
    }
    if args.keep is None:
        shutil.rmtree(out)
    print(
        f"{figures['people']:,} people, {args.nights} nights: {figures['wall_seconds']} s, "
        f"peak RSS {figures['peak_rss_mib']} MiB, {figures['output_mib']} MiB written"
    )
    for night, counts in summary.records.items():
        print(f"  {night}: " + ", ".join(f"{source} {n:,}" for source, n in counts.items()))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
