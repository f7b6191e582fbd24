"""Benchmark: generate a population and print wall time, peak memory and record counts.

    .venv/bin/python benchmarks/generate_bench.py --people 1000000
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import tempfile
from pathlib import Path

from linkage.generate import generate_population

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--people", type=int, default=1_000_000)
    parser.add_argument("--nights", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", type=Path, default=None, help="write here and keep the files")
    args = parser.parse_args()
    out = args.keep or Path(tempfile.mkdtemp(prefix="generate_bench_"))
    summary = generate_population(out, people=args.people, seed=args.seed, nights=args.nights)
    size = sum(path.stat().st_size for path in out.rglob("*") if path.is_file())
    figures = {
        "people": summary.people,
        "households": summary.households,
        "nights": args.nights,
        "records_per_night": summary.records,
        "wall_s": summary.seconds,
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "output_mib": round(size / 2**20, 1),
    }
    print(json.dumps(figures, indent=2))
    results = REPO / "benchmarks" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / "generate.json").write_text(json.dumps(figures, indent=2))
    if args.keep is None:
        shutil.rmtree(out)


if __name__ == "__main__":
    main()
