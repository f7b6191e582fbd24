"""What a run report tells people: tonight against the last night that ran, and what stands out.

Built from the warehouse at the end of a run (counts only, never values) and kept in the
report's `digest`; the Markdown and HTML reports (linkage/report.py) render it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb

from linkage.audit import config_files
from linkage.config import ProjectConfig
from linkage.extract import sha256_of
from linkage.status import RAN_STATUSES
from linkage.warehouse import fetch_one

# What stands out: a fall in a source's rows, a jump in the largest person or the queue.
ROWS_FALL = 0.2  # a source read this much fewer rows than on the last good night
SIZE_JUMP = 2.0  # the largest person holds this many times more records than before
QUEUE_JUMP = 2.0  # the review queue is this many times longer than before
MIN_JUMP_BASE = 10  # ... when it was at least this long (small numbers jump by chance)

PREVIOUS_RUN_SQL = """
SELECT run_id, report_path FROM run
WHERE list_contains($ran, status) AND run_id <> $run_id
  AND started_at < (SELECT started_at FROM run WHERE run_id = $run_id)
ORDER BY started_at DESC LIMIT 1
"""

CLUSTER_SQL = """
WITH sizes AS (SELECT person_id, count(*) AS records FROM linked_index GROUP BY ALL)
SELECT count(*) AS persons, coalesce(max(records), 0) AS largest,
       count(*) FILTER (records >= 5) AS with_5_or_more
FROM sizes
"""


def build_digest(
    con: duckdb.DuckDBPyConnection,
    project: ProjectConfig,
    run_id: str,
    report: dict[str, Any],
    stage_seconds: dict[str, float],
) -> dict[str, Any]:
    """Tonight's figures beside the last good night's, and the warnings that stand out."""
    previous = fetch_one(con, PREVIOUS_RUN_SQL, {"run_id": run_id, "ran": list(RAN_STATUSES)})
    before = _previous_digest(previous[1] if previous else None)
    linkage = report["stages"].get("linkage", {})
    linked = "records" in linkage
    digest: dict[str, Any] = {
        "previous_run_id": previous[0] if previous else None,
        "sources": _sources(con, run_id, previous[0] if previous else None),
        "persons": _persons(con, run_id) if linked else {},
        "review": linkage.get("review_queue", {}),
        "alerts": report["stages"].get("alerts", {}).get("by_rule_and_status", {}),
        "seconds": stage_seconds | {"whole run": round(report["seconds"], 1)},
        "link_seconds": linkage.get("stage_seconds", {}),
        "versions": _versions(project, linkage.get("model_version")),
    }
    digest["warnings"] = _warnings(report, digest, before)
    return digest


def _sources(con: duckdb.DuckDBPyConnection, run_id: str, previous: str | None) -> list[dict]:
    rows = con.execute(
        """SELECT t.source, t.status, t.rows_read, t.rows_quarantined, p.rows_read
           FROM source_night t
           LEFT JOIN source_night p ON p.source = t.source AND p.run_id = $previous
           WHERE t.run_id = $run_id ORDER BY t.source""",
        {"run_id": run_id, "previous": previous},
    ).fetchall()
    return [
        {
            "source": source,
            "status": status,
            "rows_read": read,
            "rows_quarantined": quarantined,
            "previous_rows_read": before,
        }
        for source, status, read, quarantined, before in rows
    ]


def _persons(con: duckdb.DuckDBPyConnection, run_id: str) -> dict[str, Any]:
    persons, largest, with_5 = fetch_one(con, CLUSTER_SQL) or (0, 0, 0)
    events = con.execute(
        "SELECT event, count(*) FROM person_id_history WHERE run_id = $run_id GROUP BY ALL",
        {"run_id": run_id},
    ).fetchall()
    changes = {event: 0 for event in ("created", "merged", "split", "retired")}
    changes |= {event: int(n) for event, n in events}
    linked_edges = fetch_one(con, "SELECT count(*) FROM edge WHERE linked")
    return {
        "persons": int(persons),
        "largest_person_records": int(largest),
        "persons_with_5_or_more_records": int(with_5),
        "linked_edges": int(linked_edges[0]) if linked_edges else 0,
        "id_changes": changes,
    }


def _versions(project: ProjectConfig, model_version: str | None) -> dict[str, str]:
    versions = {"model": model_version or "none"}
    versions |= {name: sha256_of(path)[:12] for name, path in config_files(project)}
    return versions


def _previous_digest(report_path: str | None) -> dict[str, Any]:
    """The last good night's digest, from its report.json (empty if it has none)."""
    if report_path is None:
        return {}
    path = Path(report_path).with_name("report.json")
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("digest") or {}
    except (OSError, ValueError):
        return {}


def _warnings(report: dict[str, Any], digest: dict[str, Any], before: dict[str, Any]) -> list:
    warnings = []
    if report["status"] not in ("complete", "unlinked"):
        warnings.append(f"the night is {report['status']}: not every source was used")
    for source in report["sources"]:
        if source["error"]:
            warnings.append(f"{source['source']} skipped: {source['error']}")
    for source in digest["sources"]:
        now, then = source["rows_read"], source["previous_rows_read"]
        if then and now is not None and now < then * (1 - ROWS_FALL):
            warnings.append(
                f"{source['source']}: {now:,} rows read, {1 - now / then:.0%} fewer than"
                f" the last good night's {then:,}"
            )
    linkage = report["stages"].get("linkage", {})
    if "skipped" in linkage:
        warnings.append(f"not linked: {linkage['skipped']}")
    warnings += _jumps(digest, before)
    return warnings


def _jumps(digest: dict[str, Any], before: dict[str, Any]) -> list[str]:
    found = []
    largest = digest["persons"].get("largest_person_records")
    largest_before = before.get("persons", {}).get("largest_person_records")
    if largest and largest_before and largest >= max(MIN_JUMP_BASE, SIZE_JUMP * largest_before):
        found.append(
            f"the largest person holds {largest} records (last good night: {largest_before}):"
            " look for a wrong chain of links"
        )
    items, items_before = _review_items(digest), _review_items(before)
    if items and items_before and items_before >= MIN_JUMP_BASE:
        if items >= QUEUE_JUMP * items_before:
            found.append(f"{items:,} review items (last good night: {items_before:,})")
    return found


def _review_items(digest: dict[str, Any]) -> int:
    """Items for people to review: queued and past the cap (the cap hides growth)."""
    review = digest.get("review", {})
    return int(review.get("queued", 0)) + int(review.get("past_cap", 0))
