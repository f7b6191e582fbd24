"""Shared fixtures: a real Prefect test API and tiny hand-made projects."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from prefect.testing.utilities import prefect_test_harness

from linkage.report import RunReport

REPO = Path(__file__).resolve().parent.parent
SAMPLE_DIR = REPO / "sample_data"
NIGHT_1 = "2026-11-01"
NIGHTS = sorted(p.name for p in (SAMPLE_DIR / "landing").iterdir() if p.is_dir())


os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # no telemetry from tests


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[None]:
    """One real (temporary, local) Prefect API for the whole test session."""
    with prefect_test_harness(server_startup_timeout=120):
        yield


CLINIC_CONFIG = """
source: clinic
description: A small clinic list used by the bad-input tests.
file:
  pattern: "{run_date}/clinic*.csv"
  delimiter: ","
  encoding: utf-8
record_id: id
fields:
  forename: first
  surname: last
  date_of_birth: {column: dob, formats: ["%d/%m/%Y"]}
  sex: {column: sex, codes: {M: M, F: F}}
  postcode: postcode
identifiers:
  chi: chi
"""

CLINIC_HEADER = "id,first,last,dob,sex,postcode,chi\n"


def make_project(
    root: Path, files: dict[str, bytes | str], source_config: str = CLINIC_CONFIG
) -> Path:
    """A project dir with one source config and the given landing files; returns its config."""
    (root / "sources").mkdir(parents=True, exist_ok=True)
    (root / "sources" / "clinic.yaml").write_text(textwrap.dedent(source_config))
    for relative, content in files.items():
        path = root / "landing" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    config = root / "project.yaml"
    config.write_text(
        "landing_dir: landing\nsources: sources/*.yaml\nwarehouse: warehouse/w.duckdb\n"
        "output_dir: output\narchive_dir: archive\n"
    )
    return config


def sample_project(root: Path, name: str = "project") -> Path:
    """A project config over the committed sample, with its own warehouse and outputs."""
    config = root / f"{name}.yaml"
    config.write_text(
        f"landing_dir: {SAMPLE_DIR / 'landing'}\nsources: {REPO / 'schemas/sources'}/*.yaml\n"
        f"warehouse: {name}/linkage.duckdb\noutput_dir: {name}/output\n"
        f"archive_dir: {name}/archive\nmodels_dir: {name}/models\n"
        f"alert_rules: {REPO / 'schemas/alerts.yaml'}\n"
        f"sharing_rules: {REPO / 'schemas/sharing.yaml'}\n"
    )
    return config


@dataclass
class LinkedSample:
    """The sample's nights run through the real flows, as `linkage demo` runs them."""

    config: Path
    warehouse: Path
    model_path: Path
    unlinked_first_night: RunReport  # the night-1 report before any model existed
    reports: list[RunReport]  # one per night; night 1's from the re-link after training
    index_by_night: dict[str, pd.DataFrame]  # night -> linked_index after that night


@pytest.fixture(scope="session")
def linked_sample(prefect_api, tmp_path_factory: pytest.TempPathFactory) -> LinkedSample:
    from flows.link import relink
    from flows.nightly import nightly
    from flows.train import train

    config = sample_project(tmp_path_factory.mktemp("linked"), "w")
    warehouse = config.parent / "w" / "linkage.duckdb"
    unlinked = nightly(config, date.fromisoformat(NIGHTS[0]))
    model_path = train(config, seed=7)
    reports = [relink(config)]
    index_by_night = {NIGHTS[0]: read_table(warehouse, "linked_index")}
    for night in NIGHTS[1:]:
        reports.append(nightly(config, date.fromisoformat(night)))
        index_by_night[night] = read_table(warehouse, "linked_index")
    return LinkedSample(config, warehouse, model_path, unlinked, reports, index_by_night)


def read_table(warehouse: Path, table: str) -> pd.DataFrame:
    """A published table, read with a connection of its own (sorted by its first column)."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(f"SELECT * FROM {table} ORDER BY ALL").df()
