"""Benchmark: the extract stage alone (archive copy + parse + load into raw_<source>).

Builds a big CSV from the sample's health extract (its data rows repeated until about
--rows rows), then times `extract_source` into an in-memory DuckDB and prints rows/s.
Best of --repeat runs, since the machine may be shared.

    .venv/bin/python benchmarks/extract_bench.py --rows 1000000
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import duckdb

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # measure this checkout's linkage, not an installed one
HEALTH = REPO / "sample_data" / "landing" / "2026-11-01" / "health_patients.csv"
NIGHT = date(2026, 11, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="extract_bench_") as work:
        landing = Path(work) / "landing"
        rows = write_big_file(landing / NIGHT.isoformat() / "health_patients.csv", args.rows)
        seconds = [
            time_extract(landing, Path(work) / f"archive{n}", rows) for n in range(args.repeat)
        ]
    best = min(seconds)
    figures = {
        "rows": rows,
        "best_s": round(best, 2),
        "runs_s": [round(s, 2) for s in seconds],
        "rows_per_s": round(rows / best),
    }
    print(json.dumps(figures, indent=2))
    out = REPO / "benchmarks" / "results" / "extract.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2))


def write_big_file(path: Path, rows: int) -> int:
    """The health header, then its data rows repeated until at least `rows` rows."""
    header, *data = HEALTH.read_bytes().splitlines(keepends=True)
    copies = -(-rows // len(data))
    path.parent.mkdir(parents=True)
    with path.open("wb") as handle:
        handle.write(header)
        for _ in range(copies):
            handle.writelines(data)
    return copies * len(data)


def time_extract(landing: Path, archive: Path, rows: int) -> float:
    from linkage.config import load_source
    from linkage.extract import extract_source

    config = load_source(REPO / "schemas" / "sources" / "health.yaml")
    with duckdb.connect() as con:
        start = time.perf_counter()
        [extracted] = extract_source(con, config, landing, archive, NIGHT)
        seconds = time.perf_counter() - start
    assert extracted.rows_parsed == extracted.rows_read == rows, "every row read and parsed"
    return seconds


if __name__ == "__main__":
    main()
