"""The run audit: every input, config, model and output file with its checksum, verified."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from typer.testing import CliRunner

from linkage.cli import app
from tests.conftest import CLINIC_HEADER, make_project, read_table


def test_a_run_records_its_files_and_verify_finds_changes(prefect_api, tmp_path: Path) -> None:
    from flows.nightly import nightly

    config = make_project(
        tmp_path, {"2026-11-01/clinic.csv": CLINIC_HEADER + "1,Ann,Lee,01/02/2010,F,AB1 2CD,\n"}
    )
    report = nightly(config, date(2026, 11, 1))
    audit = read_table(tmp_path / "warehouse" / "w.duckdb", "run_audit")
    assert set(audit.run_id) == {report.run_id}
    inputs = audit[audit.kind == "input"]
    assert list(inputs.name) == ["clinic"] and list(inputs.rows) == [1]
    assert {"project", "identifiers", "source clinic"} <= set(audit[audit.kind == "config"].name)
    outputs = set(audit[audit.kind == "output"].name)
    assert {f"runs/{report.run_id}/report.json", f"runs/{report.run_id}/report.md"} <= outputs
    assert audit.sha256.str.fullmatch("[0-9a-f]{64}").all()

    verify = ["verify", "--config", str(config), "--run-id", report.run_id]
    result = CliRunner().invoke(app, verify)
    assert result.exit_code == 0 and f"{len(audit)} files checked, 0 missing" in result.output

    report_md = tmp_path / "output" / "runs" / report.run_id / "report.md"
    report_md.write_text(report_md.read_text() + "edited\n")
    (tmp_path / "output" / "runs" / report.run_id / "report.json").unlink()
    result = CliRunner().invoke(app, verify)
    assert result.exit_code == 1
    assert f"changed: output {report_md}" in result.output
    assert "missing: output" in result.output and "2 missing or changed" in result.output


def test_a_linked_night_audits_its_model_and_exports(linked_sample) -> None:
    audit = read_table(linked_sample.warehouse, "run_audit")
    last = audit[audit.run_id == linked_sample.reports[-1].run_id]
    assert list(last[last.kind == "model"].path) == [str(linked_sample.model_path)]
    assert {"alert rules", "sharing rules"} <= set(last[last.kind == "config"].name)
    exports = last[(last.kind == "output") & last.name.str.startswith("exports/")]
    assert exports.name.str.endswith("/manifest.json").sum() >= 2
    assert sorted(last[last.kind == "input"].name.unique()) == sorted(
        source.source for source in linked_sample.reports[-1].sources
    )
