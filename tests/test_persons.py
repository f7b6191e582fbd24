"""Stable person ids: hand-worked merges, splits and removals; then the sample's nights."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from linkage.persons import IdChange, assign_person_ids, format_person_id
from tests.conftest import NIGHTS, read_table, sample_project


def clusters(**groups: list[str]) -> pd.DataFrame:
    rows = [(key, cluster) for cluster, keys in groups.items() for key in keys]
    return pd.DataFrame(rows, columns=["record_key", "cluster_key"])


def published(**persons: list[str]) -> pd.DataFrame:
    rows = [(key, person) for person, keys in persons.items() for key in keys]
    return pd.DataFrame(rows, columns=["record_key", "person_id"])


def ids(assignment) -> dict[str, str]:  # noqa: ANN001
    person_of = assignment.person_of
    return dict(
        zip(person_of["record_key"].to_pylist(), person_of["person_id"].to_pylist(), strict=True)
    )


def test_first_run_mints_ids_in_record_order() -> None:
    result = assign_person_ids(clusters(b=["b"], a=["a", "c"]), published(), next_number=1)
    assert ids(result) == {"a": "P0000000001", "c": "P0000000001", "b": "P0000000002"}
    assert [c.event for c in result.change_list()] == ["created", "created"]


def test_unchanged_clusters_keep_their_ids_and_record_nothing() -> None:
    result = assign_person_ids(
        clusters(x=["a", "b"], y=["c"]), published(P7=["a", "b"], P9=["c"]), next_number=10
    )
    assert ids(result) == {"a": "P7", "b": "P7", "c": "P9"} and result.change_list() == []


def test_a_merge_keeps_the_larger_id_and_records_the_other_as_merged() -> None:
    result = assign_person_ids(
        clusters(x=["a", "b", "c"]), published(P1=["a"], P2=["b", "c"]), next_number=3
    )
    assert set(ids(result).values()) == {"P2"}
    assert result.change_list() == [IdChange("P1", "merged", "P2", 1, "linked to another person")]


def test_a_split_keeps_the_id_for_the_largest_part_and_mints_for_the_rest() -> None:
    result = assign_person_ids(
        clusters(x=["a"], y=["b", "c"]), published(P1=["a", "b", "c"]), next_number=5
    )
    assert ids(result) == {"a": format_person_id(5), "b": "P1", "c": "P1"}
    split = IdChange(format_person_id(5), "split", "P1", 1, "records split off")
    assert result.change_list() == [split]


def test_new_records_join_existing_persons_and_removed_ones_retire_ids() -> None:
    result = assign_person_ids(
        clusters(x=["a", "new"], y=["other"]), published(P1=["a"], P2=["gone"]), next_number=3
    )
    assert ids(result) == {"a": "P1", "new": "P1", "other": format_person_id(3)}
    assert {(c.person_id, c.event) for c in result.change_list()} == {
        (format_person_id(3), "created"),
        ("P2", "retired"),
    }


def test_the_same_inputs_give_the_same_ids_in_any_row_order() -> None:
    groups = clusters(x=["a", "b"], y=["c", "d"], z=["e"])
    previous = published(P1=["a", "c"], P2=["d"], P3=["e", "f"])
    first = assign_person_ids(groups, previous, next_number=4)
    second = assign_person_ids(groups.iloc[::-1], previous.iloc[::-1], next_number=4)
    assert ids(first) == ids(second) and first.change_list() == second.change_list()


# End to end: the sample's nights through the real flows (shared linked_sample fixture).


def test_every_record_is_in_the_index_exactly_once(linked_sample) -> None:
    index = linked_sample.index_by_night[NIGHTS[-1]]
    canonical = read_table(linked_sample.warehouse, "canonical_record")
    assert sorted(index.record_key) == sorted(canonical.record_key)
    assert index.record_key.is_unique and index.person_id.notna().all()


def test_persons_unaffected_by_a_night_keep_their_ids(linked_sample) -> None:
    for before, after in zip(NIGHTS, NIGHTS[1:], strict=False):
        old, new = linked_sample.index_by_night[before], linked_sample.index_by_night[after]
        old_sets = old.groupby("person_id").record_key.apply(frozenset)
        new_sets = new.groupby("person_id").record_key.apply(frozenset)
        same_records = set(old_sets) & set(new_sets)
        assert len(same_records) > 0.9 * len(old_sets)
        old_id = {records: pid for pid, records in old_sets.items()}
        new_id = {records: pid for pid, records in new_sets.items()}
        assert all(old_id[records] == new_id[records] for records in same_records)


def test_every_id_change_is_in_the_history(linked_sample) -> None:
    history = read_table(linked_sample.warehouse, "person_id_history")
    runs = {report.run_id for report in linked_sample.reports}
    assert set(history.run_id) <= runs
    for before, after in zip(NIGHTS, NIGHTS[1:], strict=False):
        old = set(linked_sample.index_by_night[before].person_id)
        new = set(linked_sample.index_by_night[after].person_id)
        night_run = linked_sample.reports[NIGHTS.index(after)].run_id
        changes = history[history.run_id == night_run]
        assert new - old == set(changes[changes.event.isin(["created", "split"])].person_id)
        assert old - new == set(changes[changes.event.isin(["merged", "retired"])].person_id)


@pytest.mark.usefixtures("prefect_api")
def test_the_same_inputs_twice_give_identical_person_ids(linked_sample, tmp_path: Path) -> None:
    from flows.nightly import nightly

    indexes = []
    for attempt in range(2):
        config = sample_project(tmp_path, f"p{attempt}")
        models = tmp_path / f"p{attempt}" / "models"
        models.mkdir(parents=True)
        shutil.copy(linked_sample.model_path, models / linked_sample.model_path.name)
        nightly(config, date.fromisoformat(NIGHTS[0]))
        report = nightly(config, date.fromisoformat(NIGHTS[0]))  # the same night again
        assert report.stages["linkage"]["id_changes"] == {}
        indexes.append(read_table(tmp_path / f"p{attempt}" / "linkage.duckdb", "linked_index"))
    columns = ["person_id", "record_key", "link_confidence"]
    pd.testing.assert_frame_equal(indexes[0][columns], indexes[1][columns])
    pd.testing.assert_frame_equal(
        indexes[0][columns], linked_sample.index_by_night[NIGHTS[0]][columns]
    )


def chi_for(day: str, sex: str, serial: int) -> str:
    """A valid CHI for a dd/mm/yyyy birth date: DDMMYY, serial, sex digit, check digit."""
    from linkage.generate.identifiers import chi_check_digit

    d, m, y = day.split("/")
    for extra in range(serial, serial + 20):
        first9 = f"{d}{m}{y[2:]}{extra % 100:02d}{1 if sex == 'M' else 2}"
        check = chi_check_digit(first9)
        if check is not None:
            return first9 + str(check)
    raise AssertionError("no valid CHI")


FILLER_NAMES = [
    ("AILSA", "BALFOUR"),
    ("BRODIE", "CRANSTON"),
    ("CALUM", "DALGLEISH"),
    ("DAVINA", "ELPHINSTONE"),
    ("EWAN", "FORSYTH"),
    ("FIONA", "GILCHRIST"),
    ("GREGOR", "HALDANE"),
    ("HAMISH", "INGLIS"),
    ("ISLA", "JARDINE"),
    ("JOCK", "KINNAIRD"),
    ("KIRSTY", "LAMONT"),
    ("LACHLAN", "MUNRO"),
    ("MORAG", "NAIRN"),
    ("NIALL", "OGILVY"),
    ("OONAGH", "PATERSON"),
    ("PARLAN", "QUARRIE"),
    ("RHONA", "RANKIN"),
    ("SEUMAS", "SINCLAIR"),
    ("TORMOD", "TULLOCH"),
    ("UNA", "URQUHART"),
]


def clinic_night(people: list[tuple[str, str, str, str, str, str]]) -> str:
    """A clinic extract: id, forename, surname, date of birth, sex, postcode (CHI derived)."""
    from tests.conftest import CLINIC_HEADER

    rows = [CLINIC_HEADER]
    for n, (forename, surname) in enumerate(FILLER_NAMES):
        day = f"{n + 1:02d}/03/19{50 + n}"
        rows.append(f"f{n},{forename},{surname},{day},M,G{n + 1} 1AA,{chi_for(day, 'M', n)}\n")
    for record_id, forename, surname, day, sex, postcode in people:
        rows.append(f"{record_id},{forename},{surname},{day},{sex},{postcode},\n")
    return "".join(rows)


@pytest.mark.usefixtures("prefect_api")
def test_merges_and_splits_through_the_nightly_flow_keep_ids_and_write_history(
    linked_sample, tmp_path: Path
) -> None:
    from flows.nightly import nightly
    from tests.conftest import make_project

    john = ("JOHN", "MACKINNON", "14/02/1990", "M", "G12 8QQ")
    mary = ("MARY", "ROBERTSON", "05/06/1985", "F", "EH1 1AA")
    peter = ("PETER", "ABERNETHY", "21/09/1970", "M", "AB10 1XY")
    config = make_project(
        tmp_path,
        {
            "2026-11-01/clinic.csv": clinic_night(
                [("a1", *john), ("a2", *john), ("b1", *mary), ("b2", *peter)]
            ),
            # b2 corrected to Mary (a merge); a2 turns out to be someone else (a split)
            "2026-11-02/clinic.csv": clinic_night(
                [("a1", *john), ("a2", *peter), ("b1", *mary), ("b2", *mary)]
            ),
        },
    )
    models = tmp_path / "warehouse" / "models"
    models.mkdir(parents=True)
    shutil.copy(linked_sample.model_path, models / linked_sample.model_path.name)
    warehouse = tmp_path / "warehouse" / "w.duckdb"

    nightly(config, date(2026, 11, 1))
    night_1 = read_table(warehouse, "linked_index").set_index("source_record_id").person_id
    assert night_1["a1"] == night_1["a2"] and night_1["b1"] != night_1["b2"]

    report = nightly(config, date(2026, 11, 2))
    night_2 = read_table(warehouse, "linked_index").set_index("source_record_id").person_id
    assert night_2["b1"] == night_2["b2"] and night_2["a1"] != night_2["a2"]
    assert night_2["a1"] == night_1["a1"]  # the split keeps the id on the largest part (tie: first)
    assert night_2["b1"] in {night_1["b1"], night_1["b2"]}
    assert all(night_2[f"f{n}"] == night_1[f"f{n}"] for n in range(len(FILLER_NAMES)))

    history = read_table(warehouse, "person_id_history")
    tonight = history[history.run_id == report.run_id]
    merged_id = ({night_1["b1"], night_1["b2"]} - {night_2["b1"]}).pop()
    assert tonight[["person_id", "event", "related_person_id"]].values.tolist() == sorted(
        [[night_2["a2"], "split", night_1["a1"]], [merged_id, "merged", night_2["b1"]]]
    )
