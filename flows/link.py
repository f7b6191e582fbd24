"""Re-link the warehouse's current records (after training a new model), without intake."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from prefect import flow, get_run_logger

from flows.nightly import FULL_REBUILD, link_alert_export, write_dashboards, write_report
from linkage import night as stages
from linkage.config import ProjectConfig, load_project
from linkage.lock import warehouse_lock
from linkage.report import RunReport


@flow(name="link")
def relink(config_path: Path) -> RunReport:
    """Link the canonical records already in the warehouse (after training, say): only
    what changed since the published index, unless the model or settings changed."""
    return _relink(load_project(config_path), full=None)


@flow(name="rebuild")
def rebuild(config_path: Path) -> RunReport:
    """Re-derive every person from the current records (weekly, say); the report says how
    far the incrementally kept index had drifted from it."""
    return _relink(load_project(config_path), full=FULL_REBUILD)


def _relink(project: ProjectConfig, full: str | None) -> RunReport:
    run_id = stages.new_run_id(date.today())  # today's run, of the last published night
    with warehouse_lock(project.warehouse, run_id):
        run_date = stages.last_published_night(project)
        return _link_night(project, stages.start_night(project, run_date, run_id, full))


def _link_night(project: ProjectConfig, night: stages.Night) -> RunReport:
    try:
        outcome, alerts, exports = link_alert_export(night)
        status = stages.mark_linked(night)
    except Exception:
        stages.fail_night(night)
        raise
    report = write_report(night, [], status, outcome, alerts, exports)
    write_dashboards(project, night.run_id)
    get_run_logger().info("run %s: re-link %s", night.run_id, report.status)
    return report
