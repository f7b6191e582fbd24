"""Configuration is data: loaded, validated, and explained when wrong."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer.main

from linkage.cli import app
from linkage.config import load_project, load_source
from linkage.errors import ConfigError
from linkage.schema import canonical_column_names
from tests.conftest import REPO, SAMPLE_DIR


def test_sample_project_loads_all_four_agencies() -> None:
    project = load_project(SAMPLE_DIR / "project.yaml")
    sources = {config.source: config for config in project.source_configs()}
    assert sorted(sources) == ["education", "health", "police", "socialwork"]
    assert sources["education"].one_record_per_person
    assert sources["education"].file.delimiter == "|"
    assert sources["socialwork"].file.encoding == "latin-1"


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        (
            "source: x\nfile: {pattern: a}\nrecord_id: id\nfields: {forname: A}\n",
            "fields.forname: Extra inputs are not permitted",
        ),
        (
            "source: X!\nfile: {pattern: a}\nrecord_id: id\nfields: {}\n",
            "source: String should match",
        ),
        ("source: x\nfile: {pattern: a, format: dbf}\nrecord_id: id\nfields: {}\n", "file.format"),
        (
            "source: x\nfile: {pattern: a}\nrecord_id: id\nfields: {sex: {codes: {M: M}}}\n",
            "exactly one of column, columns or constant",
        ),
        ("- not a mapping\n", "expected a mapping"),
        ("source: [unclosed\n", "not valid YAML"),
    ],
)
def test_bad_source_config_names_file_and_key(tmp_path: Path, yaml_text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError) as error:
        load_source(path)
    assert str(path) in str(error.value) and message in str(error.value)


PROJECT_YAML = (
    "landing_dir: l\nsources: s/*.yaml\nwarehouse: w.duckdb\noutput_dir: o\narchive_dir: a\n"
)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [("", "uk"), ("postcode_format: uk\n", "uk"), ("postcode_format: as_written\n", "as_written")],
)
def test_postcode_format_is_a_project_setting(tmp_path: Path, extra: str, expected: str) -> None:
    path = tmp_path / "project.yaml"
    path.write_text(PROJECT_YAML + extra)
    assert load_project(path).postcode_format == expected


def test_unknown_postcode_format_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "project.yaml"
    path.write_text(PROJECT_YAML + "postcode_format: danish\n")
    with pytest.raises(ConfigError, match="postcode_format"):
        load_project(path)


def test_missing_project_config_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_project(tmp_path / "nope.yaml")


def test_canonical_schema_is_declared_once() -> None:
    names = canonical_column_names()
    assert names[:3] == ["record_key", "source", "source_record_id"]
    assert len(names) == len(set(names))


def test_every_cli_command_is_documented_in_the_readme() -> None:
    readme = (REPO / "README.md").read_text()
    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    assert commands, "the CLI has commands"
    for name, command in commands.items():
        assert re.search(rf"`linkage {name}\b", readme), f"`linkage {name}` missing from README"
        for sub in getattr(command, "commands", {}):  # a group's commands: `linkage reviewer add`
            assert re.search(rf"`linkage {name} {sub}\b", readme), f"`linkage {name} {sub}`"


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("bounded_fields: {town: town}\nchecks: []\n", "max_text_length must be a whole number"),
        ("max_text_length: 0\nbounded_fields: {}\n", "max_text_length must be a whole number"),
        ("max_text_length: 200\nbounded_fields: [town]\n", "bounded_fields must map field"),
        ("max_text_length: 200\nbounded_fields: {Town!: town}\n", "bounded_fields must map field"),
        (
            "max_text_length: 200\nbounded_fields: {}\nchecks: [{name: x, colum: y}]\n",
            "checks[0]:",
        ),
    ],
    ids=["no-bound", "zero-bound", "fields-not-a-map", "bad-field-name", "check-typo"],
)
def test_a_bad_validation_rules_file_names_itself_and_the_entry(
    tmp_path: Path, yaml_text: str, message: str
) -> None:
    from linkage.validation_rules import validation_rules

    path = tmp_path / "validation.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError, match=re.escape(message)) as raised:
        validation_rules(path)
    assert str(path) in str(raised.value)


def test_the_validation_rules_bound_every_text_field() -> None:
    from linkage.validation_rules import validation_rules

    rules = validation_rules()
    assert rules.max_text_length == 200
    assert {"record_id", "forename", "other_surnames", "town", "postcode", "sex"} <= set(
        rules.bounded_fields
    )
