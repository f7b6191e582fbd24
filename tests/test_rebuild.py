"""The drift between an incremental index and a full rebuild, group by group."""

from __future__ import annotations

import pyarrow as pa

from linkage.rebuild import index_drift


def partition(pairs: dict[str, str]) -> pa.Table:
    return pa.table({"record_key": list(pairs), "person_id": list(pairs.values())})


def test_each_kind_of_difference_is_counted_once_per_incremental_person():
    incremental = partition(
        {"a1": "P1", "a2": "P1"}  # same
        | {"b1": "P2", "b2": "P2", "b3": "P2"}  # split by the rebuild
        | {"c1": "P3", "c2": "P4"}  # merged by the rebuild
        | {"d1": "P5", "d2": "P5", "d3": "P6"}  # regrouped
        | {"e1": "P7"}  # gone from the rebuild
    )
    rebuilt = partition(
        {"a1": "Q1", "a2": "Q1"}
        | {"b1": "Q2", "b2": "Q3", "b3": "Q3"}
        | {"c1": "Q4", "c2": "Q4"}
        | {"d1": "Q5", "d2": "Q6", "d3": "Q6"}
        | {"f1": "Q7"}  # new to the rebuild
    )
    drift = index_drift(incremental, rebuilt)
    assert drift.persons == {
        "same": 1,
        "split by the rebuild": 1,
        "merged by the rebuild": 2,
        "regrouped": 2,
    }
    assert drift.differing_persons == 5
    assert drift.records_moved == 3 + 2 + 3
    assert (drift.records_only_incremental, drift.records_only_rebuilt) == (1, 1)


def test_identical_partitions_under_other_ids_do_not_drift():
    incremental = partition({"a": "P1", "b": "P1", "c": "P2"})
    rebuilt = partition({"a": "Q9", "b": "Q9", "c": "Q1"})
    drift = index_drift(incremental, rebuilt)
    assert drift.persons == {"same": 2}
    assert drift.differing_persons == 0 and drift.records_moved == 0
