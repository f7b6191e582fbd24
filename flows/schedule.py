"""The nightly flow as a scheduled Prefect deployment: 02:00 Europe/London, one at a time.

`linkage schedule --config FILE` serves it: the process registers the deployment with the
Prefect server in PREFECT_API_URL and runs each scheduled (or manually triggered) run.
"""

from __future__ import annotations

from pathlib import Path

from prefect import serve
from prefect.deployments.runner import RunnerDeployment
from prefect.schedules import Cron

from flows.nightly import NIGHT_TIMEZONE, nightly

NIGHTLY_CRON = "0 2 * * *"  # in NIGHT_TIMEZONE: 02:00 in winter and in summer time


def nightly_deployment(config_path: Path, name: str = "nightly") -> RunnerDeployment:
    """The deployment: no run date, so each run takes its scheduled date (flows/nightly)."""
    return nightly.to_deployment(  # type: ignore[return-value]  # sync here: no event loop
        name=name,
        schedule=Cron(NIGHTLY_CRON, timezone=NIGHT_TIMEZONE),
        parameters={"config_path": str(Path(config_path).resolve())},
        concurrency_limit=1,  # with the warehouse lock: never two nights at once
        description="Pull, validate, standardise, link, alert and export: one night.",
    )


def serve_nightly(config_path: Path, name: str = "nightly") -> None:
    """Register the deployment and run its flow runs until stopped (Ctrl-C)."""
    serve(nightly_deployment(config_path, name), print_starting_message=False)
