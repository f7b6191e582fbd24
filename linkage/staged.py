"""Output directories that appear only once the run that wrote them has committed.

A run writes each output directory (an export, the night's alert files) as a hidden
`.<name>.partial` sibling and moves it into place once the warehouse transaction that
records it commits, so what agencies pick up always matches the published state. A run
killed before its commit leaves only the hidden directory, which the next run removes; one
killed between its commit and the move has the move finished by the next run (`settle`).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import duckdb

from linkage.warehouse import after_commit, fetch_one

log = logging.getLogger(__name__)

PARTIAL = ".partial"


def staged(final: Path) -> Path:
    return final.with_name(f".{final.name}{PARTIAL}")


def stage_until_commit(con: duckdb.DuckDBPyConnection, final: Path) -> Path:
    """An empty staged directory for `final`, moved into place when `con` commits."""
    partial = staged(final)
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    after_commit(con, lambda: reveal(final))
    return partial


def reveal(final: Path) -> None:
    """Move a committed run's staged directory into place, replacing an older copy."""
    shutil.rmtree(final, ignore_errors=True)
    staged(final).rename(final)


# A leftover staged directory of run $run_id was committed if the warehouse records it.
COMMITTED_SQL = {
    "exports": "SELECT 1 FROM export_state WHERE run_id = $run_id LIMIT 1",
    "alerts": "SELECT 1 FROM link_run WHERE run_id = $run_id",
}


def settle(con: duckdb.DuckDBPyConnection, output_dir: Path) -> None:
    """Finish or remove what an earlier run killed mid-way left staged (the caller holds the
    warehouse lock, so no other run is writing)."""
    leftovers = [
        ("exports", partial, partial.with_name(partial.name[1 : -len(PARTIAL)]))
        for partial in output_dir.glob(f"exports/.*{PARTIAL}")
    ] + [
        ("alerts", partial, partial.with_name("alerts"))
        for partial in output_dir.glob(f"runs/*/.alerts{PARTIAL}")
    ]
    for kind, partial, final in leftovers:
        run_id = final.name if kind == "exports" else final.parent.name
        committed = fetch_one(con, COMMITTED_SQL[kind], {"run_id": run_id}) is not None
        if committed and not final.exists():
            reveal(final)
            log.warning("run %s: its %s were committed but not moved into place; now moved",
                        run_id, kind)  # fmt: skip
        else:
            shutil.rmtree(partial)
            log.info("run %s: removed the %s it left unfinished", run_id, kind)
