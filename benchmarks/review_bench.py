"""Benchmark: how long the review application takes to draw its pages on a linked warehouse.

The project's warehouse file is copied into a work directory first (the original is never
opened for writing). On the copy: two reviewers (every agency; no police), and decisions
on `--decisions` linked pairs, a few of whose records are then changed, so the queue has
re-queued decisions to find as it would after real nights. Each page is requested through
the real application (FastAPI, the templates, a read-only warehouse connection opened and
closed per request) with starlette's in-process client, `--repeat` times; the figures are
wall milliseconds per request (min, median, max), response size and the warehouse's size.

    .venv/bin/python benchmarks/review_bench.py --config <project.yaml> [--work DIR]

Prints the figures and writes benchmarks/results/review_bench.json (or --json).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # measure this checkout's linkage, not an installed one
RESULTS = REPO / "benchmarks" / "results" / "review_bench.json"
TARGET_MS = 1000.0
PASSWORD = "benchmark password"


def prepare(config: Path, work: Path) -> Path:
    """A project config over a copy of the warehouse in `work`, with review roles."""
    from linkage.config import load_project

    project = load_project(config)
    work.mkdir(parents=True, exist_ok=True)
    warehouse = work / "warehouse" / "linkage.duckdb"
    warehouse.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(project.warehouse, warehouse)
    wal = project.warehouse.with_name(project.warehouse.name + ".wal")
    if wal.exists():
        shutil.copyfile(wal, warehouse.with_name(wal.name))
    sources = sorted(config.source for config in project.source_configs())
    care = [source for source in sources if source != "police"]
    copied = work / "project.yaml"
    copied.write_text(
        "\n".join(
            [
                f"landing_dir: {project.landing_dir}",
                "sources: [" + ", ".join(str(s) for s in project.sources) + "]",
                f"warehouse: {warehouse}",
                f"output_dir: {work / 'output'}",
                f"archive_dir: {project.archive_dir}",
                f"models_dir: {project.model_dir}",
                f"identifiers: {project.identifiers}",
                f"sharing_rules: {REPO / 'schemas' / 'sharing.yaml'}",
                f"review: {{roles: {{all: [{', '.join(sources)}], care: [{', '.join(care)}]}}}}",
                "",
            ]
        )
    )
    return copied


def seed(config: Path, decisions: int, changed: int) -> dict[str, Any]:
    """Reviewers, decisions on linked pairs, and changed records behind some of them."""
    from linkage.config import load_project
    from linkage.review import save_decision
    from linkage.review_app.accounts import add_reviewer
    from linkage.warehouse import open_warehouse

    project = load_project(config)
    started = time.perf_counter()
    with open_warehouse(project.warehouse, project.identifier_registry()) as con:
        roles = set(project.review_roles())
        add_reviewer(con, "ana", "all", PASSWORD, roles, replace=True)
        add_reviewer(con, "cara", "care", PASSWORD, roles, replace=True)
        pairs = con.execute(
            "SELECT record_key_l, record_key_r FROM edge WHERE linked"
            " ORDER BY match_probability, record_key_l LIMIT $n",
            {"n": decisions},
        ).fetchall()
        for number, (key_l, key_r) in enumerate(pairs):
            decision = "match" if number % 2 else "unsure"
            save_decision(con, key_l, key_r, decision, "bench", decided_by="ana", via="bench")
        matched = [pair for number, pair in enumerate(pairs) if number % 2][:changed]
        con.execute(
            "UPDATE canonical_record SET forename = forename || 'X'"
            " WHERE record_key IN (SELECT unnest($keys))",
            {"keys": [key_r for _, key_r in matched]},
        )
        records = con.execute("SELECT count(*) FROM canonical_record").fetchall()[0][0]
        queued = con.execute("SELECT count(*) FROM link_review WHERE queued").fetchall()[0][0]
        largest = con.execute(
            "SELECT person_id FROM person ORDER BY records DESC, person_id LIMIT 1"
        ).fetchall()[0][0]
        record_id = con.execute(
            "SELECT source_record_id FROM linked_index WHERE source = 'health'"
            " ORDER BY record_key LIMIT 1 OFFSET 1000"
        ).fetchall()[0][0]
    return {
        "records": int(records),
        "queued": int(queued),
        "decisions": len(pairs),
        "changed": len(matched),
        "largest_person": largest,
        "record_id": record_id,
        "seed_seconds": round(time.perf_counter() - started, 1),
    }


def measure(config: Path, seeded: dict[str, Any], repeat: int) -> list[dict[str, Any]]:
    import warnings

    warnings.filterwarnings("ignore", message="Using `httpx`")
    from starlette.testclient import TestClient

    from linkage.config import load_project
    from linkage.review_app import ReviewContext, create_app

    context = ReviewContext.load(load_project(config))
    context.prepare_warehouse()
    app = create_app(context)
    rows = []
    for reviewer in ("ana", "cara"):
        client = TestClient(app, follow_redirects=False)
        token = client.get("/login").cookies["linkage_review_login"]
        client.post("/login", data={"name": reviewer, "password": PASSWORD, "csrf": token})
        items = [client.get(f"/queue/at?pos={pos}").headers["location"] for pos in range(5)]
        pages = [
            ("queue, page 1", ["/queue"]),
            ("queue, page 5", ["/queue?page=5"]),
            ("queue, agency filter", ["/queue?agency=health"]),
            ("queue, reason filter", ["/queue?reason=possible+twins"]),
            ("queue, not sure", ["/queue?status=unsure"]),
            ("next item (redirect)", ["/queue/at?pos=3"]),
            ("item page (first 5 items)", items),
            ("person page (largest person)", [f"/person/{seeded['largest_person']}"]),
            ("search by record id", [f"/search?q={seeded['record_id']}"]),
        ]
        for label, paths in pages:
            timings, size, status = [], 0, 0
            for _ in range(repeat):
                for path in paths:
                    started = time.perf_counter()
                    answer = client.get(path)
                    timings.append(1000 * (time.perf_counter() - started))
                    size, status = len(answer.content), answer.status_code
            rows.append(
                {
                    "reviewer": reviewer,
                    "page": label,
                    "status": status,
                    "min_ms": round(min(timings), 1),
                    "median_ms": round(statistics.median(timings), 1),
                    "max_ms": round(max(timings), 1),
                    "bytes": size,
                }
            )
        if reviewer == "ana":
            rows += measure_decisions(client, repeat)
    return rows


def measure_decisions(client: Any, repeat: int) -> list[dict[str, Any]]:
    """Deciding the first item ("not sure", so the index is untouched), then the redirect to
    the next item (the changed decisions are read again: a decision was recorded) and it."""
    steps: dict[str, list[float]] = {
        "decide (POST)": [],
        "next item after a decision (2 requests)": [],
    }
    for _ in range(repeat):
        item = client.get(client.get("/queue/at?pos=0").headers["location"]).text
        form = {
            name: re.search(rf'name="{name}" value="([^"]*)"', item)[1]  # type: ignore[index]
            for name in ("csrf", "l", "r", "evidence", "pos")
        }
        started = time.perf_counter()
        decided = client.post("/decide", data=form | {"decision": "unsure", "note": "bench"})
        steps["decide (POST)"].append(1000 * (time.perf_counter() - started))
        started = time.perf_counter()
        following = client.get(decided.headers["location"])
        client.get(following.headers["location"])
        steps["next item after a decision (2 requests)"].append(
            1000 * (time.perf_counter() - started)
        )
    return [
        {
            "reviewer": "ana",
            "page": label,
            "status": 303 if label.startswith("decide") else 200,
            "min_ms": round(min(timings), 1),
            "median_ms": round(statistics.median(timings), 1),
            "max_ms": round(max(timings), 1),
            "bytes": 0,
        }
        for label, timings in steps.items()
    ]


def connection_ms(config: Path, repeat: int) -> float:
    """Opening and closing the warehouse read-only, as every request does."""
    from linkage.config import load_project

    warehouse = load_project(config).warehouse
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        duckdb.connect(str(warehouse), read_only=True).close()
        timings.append(1000 * (time.perf_counter() - started))
    return round(statistics.median(timings), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=Path("/tmp/exb/config/project.yaml"))
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--decisions", type=int, default=400)
    parser.add_argument("--changed", type=int, default=20)
    parser.add_argument("--json", type=Path, default=RESULTS)
    args = parser.parse_args()
    if not args.config.exists():
        sys.exit(f"{args.config}: no such project config (a linked warehouse is needed)")
    work = args.work or Path(tempfile.mkdtemp(prefix="review_bench_"))
    config = prepare(args.config, work)
    seeded = seed(config, args.decisions, args.changed)
    rows = measure(config, seeded, args.repeat)
    opened = connection_ms(config, 10)
    print(
        f"warehouse: {seeded['records']:,} records, {seeded['queued']:,} queued review items,"
        f" {seeded['decisions']} decisions ({seeded['changed']} with changed records);"
        f" opening it read-only: {opened} ms"
    )
    header = ("reviewer", "page", "status", "min", "median", "max", "KiB")
    print("{:8} {:40} {:>6} {:>8} {:>8} {:>8} {:>6}".format(*header))
    for row in rows:
        print(
            f"{row['reviewer']:8} {row['page']:40} {row['status']:>6} {row['min_ms']:>8}"
            f" {row['median_ms']:>8} {row['max_ms']:>8} {row['bytes'] / 1024:>6.0f}"
        )
    slowest = max(row["max_ms"] for row in rows if "2 requests" not in row["page"])
    load = os.getloadavg()[0]
    print(
        f"slowest single request: {slowest:.0f} ms (target {TARGET_MS:.0f} ms);"
        f" load average {load:.1f} on {os.cpu_count()} cores"
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {
                "measured_at": datetime.now().isoformat(timespec="seconds"),
                "config": str(args.config),
                "repeat": args.repeat,
                "open_read_only_ms": opened,
                "load_average": round(os.getloadavg()[0], 2),
                "cores": os.cpu_count(),
                **seeded,
                "pages": rows,
            },
            indent=2,
        )
    )
    print(f"written: {args.json}")


if __name__ == "__main__":
    main()
