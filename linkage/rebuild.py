"""How far an incrementally kept person index has drifted from a full rebuild.

Incremental nights re-cluster only the persons a change touches, with the scores of
untouched pairs as they were when scored (term frequencies move a little as the population
does). A full rebuild re-derives every person from the current records. Before it publishes,
the two partitions of the records are compared group by group: records joined by either
partition form one group, and each group is one of

- same: one person in both;
- split by the rebuild: one incremental person, several rebuilt persons;
- merged by the rebuild: several incremental persons, one rebuilt person;
- regrouped: several of each;
- new to the rebuild / gone from it: records only one side holds.

Person ids play no part: the rebuild publishes with id history as any link does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb
import numpy as np
import pyarrow as pa
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

KINDS = ("same", "split by the rebuild", "merged by the rebuild", "regrouped")


@dataclass(frozen=True)
class IndexDrift:
    """Persons of the incremental index by what the rebuild made of them."""

    persons: dict[str, int] = field(default_factory=dict)  # incremental persons by kind
    records_moved: int = 0  # records whose rebuilt person is not "the same" as before
    records_only_incremental: int = 0
    records_only_rebuilt: int = 0

    @property
    def differing_persons(self) -> int:
        return sum(n for kind, n in self.persons.items() if kind != "same")


def index_drift(incremental: pa.Table, rebuilt: pa.Table) -> IndexDrift:
    """Compare two partitions, each a table of (record_key, person_id)."""
    con = duckdb.connect()
    try:
        con.register("incremental", incremental)
        con.register("rebuilt", rebuilt)
        only = con.execute(
            "SELECT (SELECT count(*) FROM incremental WHERE record_key NOT IN"
            " (SELECT record_key FROM rebuilt)),"
            " (SELECT count(*) FROM rebuilt WHERE record_key NOT IN"
            " (SELECT record_key FROM incremental))"
        ).fetchall()[0]
        both = con.sql(
            "SELECT dense_rank() OVER (ORDER BY i.person_id) - 1 AS a,"
            " dense_rank() OVER (ORDER BY r.person_id) - 1 AS b"
            " FROM incremental i JOIN rebuilt r USING (record_key)"
        ).fetchnumpy()
    finally:
        con.close()
    a, b = both["a"].astype(np.int64), both["b"].astype(np.int64)
    kind_of_group, group_of_a = _groups(a, b)
    kinds = kind_of_group[group_of_a]  # per incremental person
    persons = {kind: int(np.count_nonzero(kinds == k)) for k, kind in enumerate(KINDS)}
    record_kinds = kinds[a]
    return IndexDrift(
        persons={kind: n for kind, n in persons.items() if n},
        records_moved=int(np.count_nonzero(record_kinds != 0)),
        records_only_incremental=int(only[0]),
        records_only_rebuilt=int(only[1]),
    )


def _groups(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Groups of the bipartite graph persons(a) - records - persons(b): each group's kind
    (an index into KINDS) and each a-person's group."""
    if len(a) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    n_a, n_b = int(a.max()) + 1, int(b.max()) + 1
    graph = coo_matrix((np.ones(len(a), dtype=np.int8), (a, n_a + b)), shape=(n_a + n_b,) * 2)
    groups, label = connected_components(graph, directed=False)
    persons_a = np.bincount(label[:n_a], minlength=groups)
    persons_b = np.bincount(label[n_a:], minlength=groups)
    kind = np.full(groups, 3, dtype=np.int64)  # regrouped
    kind[(persons_a == 1) & (persons_b == 1)] = 0
    kind[(persons_a == 1) & (persons_b > 1)] = 1
    kind[(persons_a > 1) & (persons_b == 1)] = 2
    return kind, label[:n_a]
