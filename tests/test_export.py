"""Per-agency exports: only what schemas/sharing.yaml grants, a change file, safe CSVs.

The sample's warehouse comes from the shared `linked_sample` fixture (three nights run,
trained and linked); each test exports from its own copy so the shared one stays as the
link stage left it.
"""

from __future__ import annotations

import csv
import json
import logging
import shutil
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pandas as pd
import polars as pl
import pytest
from typer.testing import CliRunner

from linkage.cli import app
from linkage.concerns import EVENT_OPEN_DAYS
from linkage.config import ProjectConfig, SharingRules, load_project, load_sharing_rules
from linkage.errors import ConfigError
from linkage.export import (
    CHANGE_COLUMNS,
    ExportSummary,
    export_agency_slices,
    export_latest,
    sha256_of,
    write_safe_csv,
)
from linkage.staged import staged
from linkage.warehouse import open_warehouse
from tests.conftest import REPO, sample_project

AGENCIES = ["education", "health", "police", "socialwork"]

# The shipped schemas/sharing.yaml, spelt out: each agency's export columns, exactly.
EXPECTED_COLUMNS = {
    "education": ["known_to_health", "known_to_socialwork", "child_protection_elsewhere"],
    "health": [
        "known_to_education",
        "known_to_police",
        "known_to_socialwork",
        "child_protection_elsewhere",
        "missing_from_education",
    ],
    "police": ["known_to_socialwork", "child_protection_elsewhere", "missing_from_education"],
    "socialwork": [
        "known_to_health",
        "known_to_education",
        "known_to_police",
        "open_concern_elsewhere",
        "child_protection_elsewhere",
        "missing_from_education",
        "health_chi",
        "education_scn",
    ],
}
OWN = ["source_record_id", "person_id", "link_confidence"]


def copy_project(linked_sample, root: Path) -> ProjectConfig:
    """The sample project over a private copy of the linked warehouse."""
    config = sample_project(root, "w")
    (root / "w").mkdir(parents=True)
    shutil.copy(linked_sample.warehouse, root / "w" / "linkage.duckdb")
    wal = linked_sample.warehouse.with_name(linked_sample.warehouse.name + ".wal")
    if wal.exists():
        shutil.copy(wal, root / "w" / (wal.name))
    with duckdb.connect(str(root / "w" / "linkage.duckdb")) as con:
        con.execute("DROP TABLE IF EXISTS export_state")  # as if never exported before
    return load_project(config)


@dataclass
class Exported:
    project: ProjectConfig
    rules: SharingRules
    first: ExportSummary
    first_changes: dict[str, pd.DataFrame]  # the first export's change files
    again: ExportSummary  # the same run exported a second time

    def directory(self, agency: str) -> Path:
        return self.project.output_dir / "exports" / self.first.run_id / agency

    def index(self, agency: str) -> pd.DataFrame:
        return pd.read_parquet(self.directory(agency) / "index.parquet")

    def query(self, sql: str, params: dict | None = None) -> pd.DataFrame:
        with duckdb.connect(str(self.project.warehouse), read_only=True) as con:
            return con.execute(sql, params or {}).df()


@pytest.fixture(scope="module")
def exported(linked_sample, tmp_path_factory: pytest.TempPathFactory) -> Exported:
    project = copy_project(linked_sample, tmp_path_factory.mktemp("export"))
    first = export_latest(project)
    run_dir = project.output_dir / "exports" / first.run_id
    first_changes = {a: pd.read_parquet(run_dir / a / "changes.parquet") for a in AGENCIES}
    again = export_latest(project)
    rules = load_sharing_rules(project.sharing_rules)  # type: ignore[arg-type]
    return Exported(project, rules, first, first_changes, again)


# --- what each agency receives ------------------------------------------------------------


@pytest.mark.parametrize("agency", AGENCIES)
def test_each_agency_gets_its_own_ids_and_exactly_its_grants(exported, agency: str) -> None:
    expected = OWN + EXPECTED_COLUMNS[agency]
    assert list(exported.index(agency).columns) == expected
    with (exported.directory(agency) / "index.csv").open(newline="", encoding="utf-8") as f:
        assert next(csv.reader(f)) == expected


def test_sharing_rules_allow_and_bar_what_they_say(exported) -> None:
    columns = {agency: set(exported.index(agency).columns) for agency in AGENCIES}
    assert "health_chi" in columns["socialwork"] and "education_scn" in columns["socialwork"]
    assert "health_chi" not in columns["education"] | columns["police"] | columns["health"]
    assert "known_to_police" not in columns["education"]  # education is not told of police
    assert "open_concern_elsewhere" in columns["socialwork"]
    assert not any(
        "open_concern_elsewhere" in columns[a] for a in ["education", "health", "police"]
    )
    never_shared = exported.rules.never_shared["health"]
    for agency in AGENCIES:
        # no concern detail of any agency, and nothing Caldicott keeps in health
        assert not [c for c in columns[agency] if "concern_type" in c or "concern_status" in c]
        assert not {f"health_{column}" for column in never_shared} & columns[agency]
        assert set(columns[agency]) <= set(OWN) | set(exported.rules.flags) | {
            f"{holder}_{column}"
            for holder, granted in exported.rules.agencies[agency].fields.items()
            for column in granted
        }


@pytest.mark.parametrize("agency", AGENCIES)
def test_one_row_per_record_of_the_agency_in_the_index(exported, agency: str) -> None:
    linked = exported.query(
        "SELECT source_record_id, person_id FROM linked_index WHERE source = $agency"
        " ORDER BY source_record_id",
        {"agency": agency},
    )
    index = exported.index(agency)
    assert len(index) == len(linked) > 0
    assert index[["source_record_id", "person_id"]].values.tolist() == linked.values.tolist()
    by_agency = {export.agency: export.rows for export in exported.first.agencies}
    assert by_agency[agency] == len(linked)


def test_flags_and_fields_agree_with_the_warehouse_for_persons_known_to_several_agencies(
    exported,
) -> None:
    records = exported.query(
        """
        SELECT li.person_id, li.record_key, li.source, li.source_record_id, c.concern_type,
               c.concern_status, c.concern_opened, c.concern_closed, c.chi, c.scn
        FROM linked_index li JOIN canonical_record c USING (record_key)
        WHERE li.person_id IN (SELECT person_id FROM person WHERE len(sources) >= 2)
        """
    )
    run_date = (
        exported.query(
            "SELECT run_date FROM link_run WHERE run_id = $r", {"r": exported.first.run_id}
        )
        .run_date[0]
        .date()
    )
    by_person = dict(tuple(records.groupby("person_id")))
    event_days = {
        config.source: config.concern.open_for_days
        for config in exported.project.source_configs()
        if config.concern is not None and config.concern.open_for_days is not None
    }
    checked, true_flags = 0, set()
    for agency in AGENCIES:
        index = exported.index(agency).set_index("source_record_id")
        share = exported.rules.agencies[agency]
        for row in records[records.source == agency].itertuples():
            person = by_person[row.person_id]
            for flag in share.flags:
                expected = expected_flag(exported.rules, flag, agency, person, run_date, event_days)
                assert bool(index.at[row.source_record_id, flag]) is expected, (agency, flag)
                true_flags |= {flag} if expected else set()
            for holder, granted in share.fields.items():
                for column in granted:
                    values = sorted(set(person[person.source == holder][column].dropna()))
                    actual = index.at[row.source_record_id, f"{holder}_{column}"]
                    assert (actual if isinstance(actual, str) else None) == (
                        ";".join(values) or None
                    )
            checked += 1
    assert checked > 1000
    # the comparison is not vacuous: these flags are set for some rows of the sample
    assert {"known_to_health", "known_to_police", "child_protection_elsewhere"} <= true_flags
    assert {"open_concern_elsewhere", "known_to_socialwork"} <= true_flags


def expected_flag(
    rules: SharingRules,
    flag: str,
    agency: str,
    person: pd.DataFrame,
    run_date: date,
    event_days: dict[str, int],
) -> bool:
    """The flag worked out row by row in Python, independently of the export's SQL."""
    spec = rules.flags[flag]
    others = person[person.source != agency]
    if spec.known_to is not None:
        return bool((others.source == spec.known_to).any())
    pool = others if spec.concern_elsewhere else person
    for concern in pool.itertuples():
        if not isinstance(concern.concern_type, str):
            continue
        if spec.concern_types != "any" and concern.concern_type not in spec.concern_types:
            continue
        opened = None if pd.isna(concern.concern_opened) else concern.concern_opened.date()
        closed = None if pd.isna(concern.concern_closed) else concern.concern_closed.date()
        if concern.concern_status == "closed" or (closed is not None and closed <= run_date):
            continue
        if concern.source in event_days:  # an incident counts for its source's days
            days = event_days[concern.source]
        elif concern.concern_status == "open":
            return True
        else:  # no status: an event of the last EVENT_OPEN_DAYS
            days = EVENT_OPEN_DAYS
        if opened is not None and opened >= run_date - timedelta(days=days):
            return True
    return False


# --- manifest and change file -------------------------------------------------------------


@pytest.mark.parametrize("agency", AGENCIES)
def test_the_manifest_describes_the_files_it_sits_with(exported, agency: str) -> None:
    directory = exported.directory(agency)
    manifest = json.loads((directory / "manifest.json").read_text())
    files = sorted(p.name for p in directory.iterdir() if p.name != "manifest.json")
    assert files == ["changes.csv", "changes.parquet", "index.csv", "index.parquet"]
    assert sorted(manifest["files"]) == files
    for name in files:
        assert manifest["files"][name]["sha256"] == sha256_of(directory / name)
    model_version = exported.query(
        "SELECT model_version FROM link_run WHERE run_id = $r", {"r": exported.first.run_id}
    ).model_version[0]
    assert manifest["run_id"] == exported.first.run_id
    assert manifest["model_version"] == model_version
    assert manifest["rows"] == {"index": len(exported.index(agency)), "changes": 0}
    share = exported.rules.agencies[agency]
    assert manifest["granted"] == {"flags": share.flags, "fields": share.fields}
    assert manifest["columns"] == OWN + EXPECTED_COLUMNS[agency]


def test_a_first_export_lists_every_record_as_new_and_a_rerun_lists_nothing(exported) -> None:
    for first, again in zip(exported.first.agencies, exported.again.agencies, strict=True):
        assert first.changes == {"new_record": first.rows}
        assert again.changes == {} and again.rows == first.rows
        changes = pd.read_parquet(exported.directory(first.agency) / "changes.parquet")
        assert list(changes.columns) == CHANGE_COLUMNS and changes.empty
        with (exported.directory(first.agency) / "changes.csv").open(newline="") as f:
            assert list(csv.reader(f)) == [CHANGE_COLUMNS]
    state = exported.query("SELECT agency, count(*) AS n FROM export_state GROUP BY 1 ORDER BY 1")
    assert dict(state.values.tolist()) == {e.agency: e.rows for e in exported.first.agencies}


def test_a_failed_export_tells_no_agency_anything_so_the_retry_gives_the_same_changes(
    linked_sample, tmp_path: Path
) -> None:
    project = copy_project(linked_sample, tmp_path)
    run_id = linked_sample.reports[-1].run_id
    blocker = staged(project.output_dir / "exports" / run_id)
    blocker.parent.mkdir(parents=True)
    blocker.write_text("a file where the staged directory should go")
    with pytest.raises(OSError):
        export_latest(project)
    with duckdb.connect(str(project.warehouse), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM export_state").fetchall() == [(0,)]
    assert not (project.output_dir / "exports" / run_id).exists()
    blocker.unlink()
    retried = export_latest(project)
    assert all(export.changes == {"new_record": export.rows} for export in retried.agencies)


def test_change_files_name_only_the_agencies_the_receiver_may_know_of(exported) -> None:
    allowed = {"education": {"health", "socialwork"}, "police": {"socialwork"}}
    for agency, agencies in allowed.items():
        told = exported.first_changes[agency].known_agencies
        named = {name for value in told for name in value.split(";") if name}
        assert named and named <= agencies


def test_the_change_file_says_what_moved_and_why(
    linked_sample, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    project = copy_project(linked_sample, tmp_path)
    export_latest(project)
    con = open_warehouse(project.warehouse)
    cases = _stand_in_for_a_later_link_run(con)
    con.close()
    with caplog.at_level(logging.INFO, logger="linkage"):
        summary = export_latest(project)
    directory = project.output_dir / "exports" / summary.run_id
    changes = pd.read_parquet(directory / "socialwork" / "changes.parquet")
    merged, split, gone, new, moved = (
        cases[k] for k in ["merged", "split", "gone", "new", "moved"]
    )
    expected = [
        ("agencies_changed", merged.record, merged.into, merged.person,
         merged.into_agencies, merged.agencies, "newly linked to education"),
        ("person_id_changed", merged.record, merged.into, merged.person,
         merged.into_agencies, merged.agencies, f"merged into {merged.into}"),
        ("agencies_changed", split.record, "P9999999999", split.person,
         "", split.agencies, "no longer linked to health"),
        ("person_id_changed", split.record, "P9999999999", split.person,
         "", split.agencies, f"split from {split.person}"),
        ("removed_record", gone.record, None, gone.person, None, gone.agencies,
         "no longer in the index"),
        ("new_record", "SWC_NEW", new.person, None, new.agencies, None, "not in the last export"),
        ("person_id_changed", moved.record, moved.into, moved.person,
         moved.agencies, moved.agencies, "moved to another person"),
    ]  # fmt: skip
    actual = [tuple(None if pd.isna(v) else v for v in row) for row in changes.values.tolist()]
    assert sorted(actual, key=str) == sorted(expected, key=str)
    # the merge reaches the holder of the merged person's health records too
    health = pd.read_parquet(directory / "health" / "changes.parquet")
    assert f"merged into {merged.into}" in set(health.reason)
    # counts and run ids only at INFO: no person id or record id in the log
    logged = " ".join(record.getMessage() for record in caplog.records)
    assert summary.run_id in logged
    assert not any(case.person in logged or case.record in logged for case in cases.values())


@dataclass
class Case:
    record: str  # a socialwork source_record_id
    person: str  # its person before
    agencies: str  # the agencies socialwork was told the person is known to, before
    into: str = ""  # its person after
    into_agencies: str = ""


def _stand_in_for_a_later_link_run(con: duckdb.DuckDBPyConnection) -> dict[str, Case]:
    """Edit the published index as a later link run could have: one of each kind of change."""
    pick = """
        SELECT li.source_record_id, li.person_id, array_to_string(list_sort(
                   list_filter(p.sources, lambda s: s <> 'socialwork')), ';')
        FROM linked_index li JOIN person p USING (person_id)
        WHERE li.source = 'socialwork' AND p.sources = $sources AND p.records = $records
        ORDER BY li.source_record_id
    """
    pair = ["health", "socialwork"]
    singles = [Case(*row) for row in con.execute(pick, {"sources": pair, "records": 2}).fetchall()]
    merged, split, gone, moved = singles[:4]
    target = con.execute(  # a person known to education and health only
        "SELECT person_id FROM person WHERE sources = ['education', 'health'] ORDER BY 1 LIMIT 1"
    ).fetchall()[0][0]
    merged.into, merged.into_agencies = target, "education;health"
    moved.into = singles[4].person  # both persons keep their ids: no history event
    new = Case("SWC_NEW", singles[5].person, singles[5].agencies)
    run_id = "20261104-000000-handmd"
    history = [
        (merged.person, "merged", merged.into),
        ("P9999999999", "split", split.person),
    ]
    moves = [
        ("person_id = $person", {"into": merged.into, "person": merged.person}),
        ("source_record_id = $r", {"into": "P9999999999", "r": split.record}),
        ("source_record_id = $r", {"into": moved.into, "r": moved.record}),
    ]
    for where, params in moves:
        con.execute(f"UPDATE linked_index SET person_id = $into WHERE {where}", params)
    con.execute("DELETE FROM linked_index WHERE source_record_id = $r", {"r": gone.record})
    con.execute(
        "INSERT INTO linked_index VALUES ($p, 'socialwork:SWC_NEW', 'socialwork', 'SWC_NEW',"
        " NULL, $run_id)",
        {"p": new.person, "run_id": run_id},
    )
    con.execute("UPDATE linked_index SET run_id = $run_id", {"run_id": run_id})
    con.executemany(
        "INSERT INTO person_id_history VALUES (?, DATE '2026-11-04', ?, ?, ?, 1, 'hand-made')",
        [(run_id, *event) for event in history],
    )
    con.execute(
        "INSERT INTO link_run SELECT $run_id, DATE '2026-11-04', model_version, model_path,"
        " 0, 0, 0, 0, 0, NULL, link_basis, now() FROM link_run LIMIT 1",
        {"run_id": run_id},
    )
    return {"merged": merged, "split": split, "gone": gone, "new": new, "moved": moved}


# --- configuration and the command --------------------------------------------------------


def test_granting_health_concern_detail_to_police_is_rejected_naming_the_file(
    tmp_path: Path,
) -> None:
    shipped = (REPO / "schemas" / "sharing.yaml").read_text()
    bad = tmp_path / "sharing.yaml"
    bad.write_text(
        shipped.replace(
            "  police:\n    flags: [known_to_socialwork, child_protection_elsewhere,"
            " missing_from_education]\n",
            "  police:\n    flags: [known_to_socialwork]\n    fields:\n"
            "      health: [concern_type]\n",
        )
    )
    assert "health: [concern_type]" in bad.read_text()
    with pytest.raises(ConfigError) as error:
        load_sharing_rules(bad)
    assert str(bad) in str(error.value)
    assert "agencies.police.fields.health: ['concern_type'] never leave health" in str(error.value)
    # the export refuses before writing anything
    project = load_project(sample_project(tmp_path, "w")).model_copy(update={"sharing_rules": bad})
    con = open_warehouse(project.warehouse)
    try:
        with pytest.raises(ConfigError, match=str(bad)):
            export_agency_slices(con, project, "any-run")
    finally:
        con.close()
    assert not (project.output_dir / "exports").exists()


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("flags: {}\nagencies:\n  ../police: {}\n", "agencies.../police: not a source name"),
        (
            "flags:\n  person_id: {description: x, known_to: health}\n"
            "agencies:\n  police: {flags: [person_id]}\n",
            "agencies.police: export columns clash: ['person_id']",
        ),
    ],
)
def test_odd_agency_names_and_clashing_columns_are_refused(
    tmp_path: Path, yaml_text: str, message: str
) -> None:
    rules = tmp_path / "sharing.yaml"
    rules.write_text(yaml_text)
    project = load_project(sample_project(tmp_path, "w")).model_copy(
        update={"sharing_rules": rules}
    )
    con = open_warehouse(project.warehouse)
    try:
        with pytest.raises(ConfigError) as error:
            export_agency_slices(con, project, "any-run")
    finally:
        con.close()
    assert str(rules) in str(error.value) and message in str(error.value)


def test_export_command_exports_the_latest_linked_run(linked_sample, tmp_path: Path) -> None:
    project = copy_project(linked_sample, tmp_path)
    result = CliRunner().invoke(app, ["export", "--config", str(project.config_path)])
    assert result.exit_code == 0, result.output
    run_id = linked_sample.reports[-1].run_id
    for agency in AGENCIES:
        assert (project.output_dir / "exports" / run_id / agency / "manifest.json").exists()


# --- spreadsheet safety -------------------------------------------------------------------

INJECTION_CASES = [
    ("=SUM(A1)", "'=SUM(A1)"),
    ("+1", "'+1"),
    ("-1", "'-1"),
    ("@x", "'@x"),
    ("\tx", "'\tx"),
    ("\rx", "'\rx"),
    ("ok", "ok"),
    ("O'Brien", "O'Brien"),
]


def as_input(kind: str, rows: list[dict]) -> object:
    if kind == "pandas":
        return pd.DataFrame(rows)
    if kind == "polars":
        return pl.DataFrame(rows)
    return rows


def read_csv_rows(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


@pytest.mark.parametrize("kind", ["dicts", "pandas", "polars"])
@pytest.mark.parametrize(("value", "cell"), INJECTION_CASES)
def test_write_safe_csv_neutralises_formulas(tmp_path: Path, kind, value, cell) -> None:
    path = tmp_path / "out.csv"
    rows = [{"id": "r1", "value": value}]
    assert write_safe_csv(as_input(kind, rows), path) == 1
    assert read_csv_rows(path) == [["id", "value"], ["r1", cell]]


def test_write_safe_csv_keeps_numbers_and_marks_missing_and_booleans(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    rows = [{"n": -1, "x": -0.5, "flag": True, "missing": None, "nan": float("nan")}]
    write_safe_csv(rows, path, columns=["flag", "n", "x", "missing", "nan"])
    assert read_csv_rows(path)[1] == ["true", "-1", "-0.5", "", ""]
    frame = pd.DataFrame({"=header": ["a"], "b": [pd.NA]})
    write_safe_csv(frame, path)
    assert read_csv_rows(path) == [["'=header", "b"], ["a", ""]]
    write_safe_csv([], path, columns=["a", "b"])
    assert read_csv_rows(path) == [["a", "b"]]
    with pytest.raises(ValueError, match="row 1: keys \\['c'\\]"):
        write_safe_csv([{"a": 1, "c": 2}], path, columns=["a", "b"])


def test_a_real_export_row_round_trips_through_csv_reader(exported, tmp_path: Path) -> None:
    index = exported.index("socialwork")
    rows = read_csv_rows(exported.directory("socialwork") / "index.csv")
    assert rows[0] == list(index.columns) and len(rows) == len(index) + 1
    for frame_row, csv_row in zip(index.itertuples(index=False), rows[1:], strict=True):
        assert csv_row[:2] == [frame_row.source_record_id, frame_row.person_id]
        assert csv_row[3:9] == ["true" if v else "false" for v in frame_row[3:9]]
        assert csv_row[9] == (frame_row.health_chi or "")
    # the same row with a formula where its record id was: neutralised, the rest unchanged
    row = index.iloc[[0]].assign(source_record_id='=HYPERLINK("http://x","y")')
    path = tmp_path / "row.csv"
    write_safe_csv(row, path)
    [_, written] = read_csv_rows(path)
    assert written[0] == '\'=HYPERLINK("http://x","y")'
    assert written[1:] == rows[1][1:]
