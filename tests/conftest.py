"""Shared fixtures: a real Prefect test API and tiny hand-made projects."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect.testing.utilities import prefect_test_harness

REPO = Path(__file__).resolve().parent.parent
SAMPLE_DIR = REPO / "sample_data"
NIGHT_1 = "2026-11-01"


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
    )
    return config
