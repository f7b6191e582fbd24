"""The audit trail of a run: what went in, with what, and what came out, with checksums.

At the end of every run, table `run_audit` gets one row per input file (the archived copy,
with its rows read), per config file (project, sources, identifier registry, alert and
sharing rules), for the model the link used, and per output file (the run's report,
validation page and alert files, and the agencies' exports); each with its sha256 and
size. With table `run` (start, end, outcome) and `link_run` (counts) it says what a night
did. `verify_run` recomputes every checksum and names what is missing or changed.
Dashboards are written after the run closes the warehouse, and are not audited.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd

from linkage.config import ProjectConfig
from linkage.extract import sha256_of
from linkage.extract.load import ExtractedFile
from linkage.warehouse import connect_warehouse

AUDIT_DDL = """
CREATE TABLE IF NOT EXISTS run_audit (
    run_id VARCHAR, kind VARCHAR, name VARCHAR, path VARCHAR, sha256 VARCHAR,
    bytes BIGINT, rows BIGINT)"""
AUDIT_COLUMNS = ["run_id", "kind", "name", "path", "sha256", "bytes", "rows"]


@dataclass(frozen=True)
class AuditProblem:
    kind: str
    path: str
    problem: str  # missing | changed


def record_run(
    con: duckdb.DuckDBPyConnection,
    project: ProjectConfig,
    run_id: str,
    inputs: list[ExtractedFile],
) -> int:
    """Write the run's audit rows (replacing any from an earlier attempt); returns them."""
    rows = [
        *(_row(run_id, "input", f.source, f.archive_path, f.rows_read) for f in inputs),
        *(_row(run_id, "config", name, path) for name, path in config_files(project)),
        *_model_rows(con, run_id),
        *(_row(run_id, "output", name, path) for name, path in _output_files(project, run_id)),
    ]
    frame = pd.DataFrame(rows, columns=AUDIT_COLUMNS)
    con.execute(AUDIT_DDL)
    con.execute("DELETE FROM run_audit WHERE run_id = $run_id", {"run_id": run_id})
    con.register("new_audit", frame)
    try:
        con.execute("INSERT INTO run_audit SELECT * FROM new_audit")
    finally:
        con.unregister("new_audit")
    return len(frame)


def verify_run(warehouse: Path, run_id: str) -> tuple[int, list[AuditProblem]]:
    """(files checked, files missing or changed since the run recorded them)."""
    with connect_warehouse(warehouse, read_only=True) as con:
        recorded = con.execute(
            "SELECT kind, path, sha256 FROM run_audit WHERE run_id = $run_id ORDER BY ALL",
            {"run_id": run_id},
        ).fetchall()
    problems = []
    for kind, path, sha256 in recorded:
        file = Path(path)
        if not file.is_file():
            problems.append(AuditProblem(kind, path, "missing"))
        elif sha256_of(file) != sha256:
            problems.append(AuditProblem(kind, path, "changed"))
    return len(recorded), problems


def _row(run_id: str, kind: str, name: str, path: Path, rows: int | None = None) -> tuple:
    return (run_id, kind, name, str(path), sha256_of(path), path.stat().st_size, rows)


def config_files(project: ProjectConfig) -> list[tuple[str, Path]]:
    files: list[tuple[str, Path | None]] = [
        ("project", project.config_path),
        ("identifiers", project.identifiers),
        ("alert rules", project.alert_rules),
        ("sharing rules", project.sharing_rules),
    ]
    files += [(f"source {c.source}", c.config_path) for c in project.source_configs()]
    return [(name, path) for name, path in files if path is not None and path.is_file()]


def _model_rows(con: duckdb.DuckDBPyConnection, run_id: str) -> list[tuple]:
    found = con.execute(
        "SELECT model_version, model_path FROM link_run WHERE run_id = $run_id",
        {"run_id": run_id},
    ).fetchall()
    return [
        _row(run_id, "model", version, Path(path))
        for version, path in found
        if Path(path).is_file()
    ]


def _output_files(project: ProjectConfig, run_id: str) -> list[tuple[str, Path]]:
    """The run's own directory (without dashboards) and its exports, as (name, path)."""
    run_dir = project.output_dir / "runs" / run_id
    export_dir = project.output_dir / "exports" / run_id
    files = []
    for root in (run_dir, export_dir):
        for path in sorted(root.rglob("*")) if root.is_dir() else []:
            relative = path.relative_to(project.output_dir)
            if path.is_file() and "dashboards" not in relative.parts:
                files.append((str(relative), path))
    return files
