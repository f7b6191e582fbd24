"""The training flow: fit the Splink model on the warehouse and save a new version."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from linkage.config import ProjectConfig, load_project
from linkage.link import train as training
from linkage.lock import warehouse_lock


@task(cache_policy=NO_CACHE)
def train_and_save(project: ProjectConfig, seed: int) -> Path:
    registry = project.identifier_registry()
    records = training.load_model_input(project.warehouse, registry)
    labels = training.reviewed_matches(project.warehouse)
    linker, report = training.train_model(
        records, seed=seed, labelled_matches=labels, registry=registry
    )
    return training.save_model(linker, records, project.model_dir, seed, len(labels), report)


@flow(name="train")
def train(config_path: Path, seed: int = 42) -> Path:
    """Train on the current canonical records; nightly runs use the saved model.

    What training used (comparisons, EM blocks, prior) is in the model's metadata.
    """
    project = load_project(config_path)
    with warehouse_lock(project.warehouse, f"train-{datetime.now(UTC):%Y%m%d-%H%M%S}"):
        model_path = train_and_save(project, seed)
    get_run_logger().info("saved model %s", model_path.name)
    return model_path
