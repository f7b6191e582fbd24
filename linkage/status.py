"""What the nightly runs did: recent runs, the last good night, and which nights to replay."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from linkage.lock import LockHolder, is_stale, lock_path_of, read_holder
from linkage.warehouse import connect_warehouse

GOOD_STATUSES = ("complete", "partial")  # a night whose records and index were published
RAN_STATUSES = (*GOOD_STATUSES, "unlinked")  # its records are in (not linked: no model yet)


@dataclass(frozen=True)
class RunRow:
    run_id: str
    run_date: date
    status: str  # complete | partial | unlinked | failed | running | interrupted
    seconds: float | None
    sources_used: int
    sources_skipped: int
    rows_read: int | None
    rows_quarantined: int | None
    persons: int | None
    review_items: int | None


@dataclass(frozen=True)
class WarehouseStatus:
    runs: list[RunRow]  # every run, newest first
    last_good: RunRow | None
    in_progress: LockHolder | None  # the lock's holder: the warehouse cannot be read now


RUNS_SQL = """
WITH sources AS (
    SELECT run_id,
        count(*) FILTER (status = 'used') AS used,
        count(*) FILTER (status <> 'used') AS skipped,
        sum(rows_read) AS rows_read,
        sum(rows_quarantined) AS rows_quarantined
    FROM source_night GROUP BY run_id
)
SELECT r.run_id, r.run_date, r.status,
       round(epoch(r.finished_at - r.started_at), 1) AS seconds,
       coalesce(s.used, 0), coalesce(s.skipped, 0), s.rows_read, s.rows_quarantined,
       l.persons, l.review_items
FROM run r
LEFT JOIN sources s USING (run_id)
LEFT JOIN link_run l USING (run_id)
ORDER BY r.started_at DESC
"""


def warehouse_status(warehouse: Path) -> WarehouseStatus:
    """Every run, newest first, and the last good night; only the lock holder while a run
    holds the warehouse (DuckDB lets no other process open it then)."""
    holder = read_holder(lock_path_of(warehouse))
    if holder is not None and not is_stale(holder):  # a dead holder's lock is cleared later
        return WarehouseStatus([], None, holder)
    if not warehouse.exists():
        return WarehouseStatus([], None, None)
    with connect_warehouse(warehouse, read_only=True) as con:
        rows = [RunRow(*row) for row in con.execute(RUNS_SQL).fetchall()]
    # nothing holds the lock, so a run still marked running was killed
    rows = [_interrupted(row) if row.status == "running" else row for row in rows]
    last_good = next((row for row in rows if row.status in GOOD_STATUSES), None)
    return WarehouseStatus(rows, last_good, None)


def _interrupted(row: RunRow) -> RunRow:
    return RunRow(**(vars(row) | {"status": "interrupted"}))


def nights_to_replay(
    status: WarehouseStatus, first: date, last: date
) -> tuple[list[date], list[date]]:
    """(nights in [first, last] without a good run, in order; nights already good)."""
    good = {row.run_date for row in status.runs if row.status in RAN_STATUSES}
    nights = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    return [night for night in nights if night not in good], [n for n in nights if n in good]


def status_text(status: WarehouseStatus, limit: int = 10) -> str:
    """The newest `limit` runs as a table, then the last good night."""
    if status.in_progress is not None:
        return f"a run is in progress: {status.in_progress.describe()}"
    if not status.runs:
        return "no runs yet"
    lines = [
        "| night | run | outcome | seconds | sources used/skipped | rows read | quarantined"
        " | persons | review items |",
        "|---|---|---|---:|---|---:|---:|---:|---:|",
    ]
    for row in status.runs[:limit]:
        cells = [
            row.run_date.isoformat(),
            row.run_id,
            row.status,
            _number(row.seconds),
            f"{row.sources_used}/{row.sources_skipped}",
            _number(row.rows_read),
            _number(row.rows_quarantined),
            _number(row.persons),
            _number(row.review_items),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    good = status.last_good
    lines.append("")
    lines.append(
        f"last good night: {good.run_date} (run {good.run_id}, {good.status})"
        if good
        else "no good night yet"
    )
    return "\n".join(lines)


def _number(value: float | int | None) -> str:
    if value is None:
        return ""
    return f"{value:,.1f}" if isinstance(value, float) else f"{value:,}"
