"""The nightly flow: a table of contents of the run. The work lives in `linkage`."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from linkage import night as stages
from linkage.alerts import AlertOutcome
from linkage.config import ProjectConfig, SourceConfig, load_project
from linkage.explain import dashboards_for_run
from linkage.export import ExportSummary
from linkage.index import LinkOutcome
from linkage.lock import warehouse_lock
from linkage.report import RunReport

# Tasks share the run's DuckDB connection, so nothing is cached between runs (NO_CACHE).


@task(cache_policy=NO_CACHE, retries=1, retry_delay_seconds=5)
def intake_source(night: stages.Night, config: SourceConfig) -> stages.SourceIntake:
    return stages.intake_source(night, config)


@task(cache_policy=NO_CACHE)
def standardise(
    night: stages.Night, intakes: list[stages.SourceIntake]
) -> list[stages.SourceIntake]:
    return stages.standardise_night(night, intakes)


@task(cache_policy=NO_CACHE)
def validate_source(night: stages.Night, intake: stages.SourceIntake) -> stages.SourceIntake:
    return stages.validate_source(night, intake)


@task(cache_policy=NO_CACHE)
def publish(night: stages.Night, intakes: list[stages.SourceIntake]) -> str:
    return stages.publish_night(night, intakes)


@task(cache_policy=NO_CACHE)
def link(night: stages.Night) -> LinkOutcome | None:
    return stages.link_night(night)


@task(cache_policy=NO_CACHE)
def raise_alerts(night: stages.Night, outcome: LinkOutcome | None) -> AlertOutcome | None:
    return stages.alert_night(night, outcome)


@task(cache_policy=NO_CACHE)  # no retry: a failure has aborted the night's transaction
def export(night: stages.Night, outcome: LinkOutcome | None) -> ExportSummary | None:
    return stages.export_night(night, outcome)


@task(cache_policy=NO_CACHE)
def write_report(
    night: stages.Night,
    intakes: list[stages.SourceIntake],
    status: str,
    outcome: LinkOutcome | None,
    alerts: AlertOutcome | None = None,
    exports: ExportSummary | None = None,
) -> RunReport:
    report = stages.build_report(night, intakes, status, outcome, alerts, exports)
    stages.finish_night(night, intakes, report)
    # the same report in Prefect's UI, beside the run (the latest under one key)
    create_markdown_artifact(
        key="nightly-report", markdown=report.to_markdown(), description=f"run {night.run_id}"
    )
    return report


@task(cache_policy=NO_CACHE)
def dashboards(project: ProjectConfig, run_id: str) -> list[Path]:
    """Splink dashboards of the riskiest persons (reads the warehouse once it is closed)."""
    return dashboards_for_run(project, run_id)


def write_dashboards(project: ProjectConfig, run_id: str) -> None:
    """A convenience for analysts: its failure is logged, not a failed run."""
    state = dashboards(project, run_id, return_state=True)
    if state.is_failed():
        get_run_logger().warning("run %s: dashboards not written: %s", run_id, state.message)


FULL_REBUILD = "a full rebuild was asked for"
NIGHT_TIMEZONE = "Europe/London"  # the schedule's, and the night a run without a date takes


def scheduled_night() -> date:
    """The date this flow run was scheduled for, in Europe/London (today, run by hand)."""
    scheduled = flow_run.scheduled_start_time
    if scheduled is None:
        return datetime.now(ZoneInfo(NIGHT_TIMEZONE)).date()
    return scheduled.astimezone(ZoneInfo(NIGHT_TIMEZONE)).date()


@flow(name="nightly", log_prints=False)
def nightly(config_path: Path, run_date: date | None = None, full: bool = False) -> RunReport:
    """Pull, validate and standardise every extract; link into persons; alert; export.

    Rows unchanged since a source's last good night are carried and only the records a
    change reaches are re-linked; `full` puts every row and record through the whole
    night (a full rebuild, after a change the intake and link versions do not see)."""
    project = load_project(config_path)
    run_date = run_date or scheduled_night()
    run_id = stages.new_run_id(run_date)
    rebuild = FULL_REBUILD if full else None
    with warehouse_lock(project.warehouse, run_id):  # one run at a time per warehouse
        return _night(project, stages.start_night(project, run_date, run_id, rebuild))


def link_alert_export(
    night: stages.Night,
) -> tuple[LinkOutcome | None, AlertOutcome | None, ExportSummary | None]:
    """The night's index, alerts and exports, published together: all or none."""
    with stages.published_together(night):
        outcome = link(night)
        stages.link_progress(night, outcome)
        alerts = raise_alerts(night, outcome)
        exports = export(night, outcome)
    stages.output_progress(night, alerts, exports)
    return outcome, alerts, exports


def _night(project: ProjectConfig, night: stages.Night) -> RunReport:
    logger = get_run_logger()
    logger.info("run %s for night %s", night.run_id, night.run_date)
    try:
        intakes = [intake_source(night, config) for config in project.source_configs()]
        intakes = standardise(night, intakes)
        intakes = [validate_source(night, intake) for intake in intakes]
        status = publish(night, intakes)
        stages.intake_progress(night, intakes)
        outcome, alerts, exports = link_alert_export(night)
    except Exception:
        stages.fail_night(night)  # the published index is untouched; the run is marked failed
        raise
    report = write_report(night, intakes, status, outcome, alerts, exports)
    write_dashboards(project, night.run_id)

    logger.info("run %s %s in %.1f s", night.run_id, report.status, report.seconds)
    return report
