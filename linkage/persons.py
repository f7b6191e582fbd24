"""Clusters -> stable person ids, with every change recorded.

Each cluster inherits the id of the published person it shares most records with. A merge
keeps one id (the largest share) and records the others as merged into it; a split keeps
the id for the largest part and mints new ids for the rest. Ids are opaque sequence
numbers (P0000000001), minted in a deterministic order, so the same inputs always give the
same ids and an id says nothing about the person.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple, TypeAlias

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

ID_PREFIX = "P"
ID_DIGITS = 10
ID_FORMAT = f"{ID_PREFIX}%0{ID_DIGITS}d"  # format_person_id, for DuckDB's printf


class IdChange(NamedTuple):
    person_id: str
    event: str  # created | split | merged | retired
    related_person_id: str | None  # split from / merged into
    records: int  # records of the person this change concerns
    reason: str


# record_key, cluster_key / record_key, person_id: an Arrow table (cheap to hand to DuckDB
# at a million rows) or a pandas frame
Table: TypeAlias = pa.Table | pd.DataFrame


@dataclass
class IdAssignment:
    person_of: pa.Table  # record_key, person_id, records (the person's; in no order)
    # IdChange's columns, in CHANGES_SQL's order: a table, as a first link makes a million
    changes: pa.Table

    def change_list(self) -> list[IdChange]:
        return [IdChange(**row) for row in self.changes.to_pylist()]

    def event_counts(self) -> dict[str, int]:
        counts = pc.value_counts(self.changes["event"]).to_pylist()
        return {count["values"]: count["counts"] for count in counts}


def format_person_id(number: int) -> str:
    return f"{ID_PREFIX}{number:0{ID_DIGITS}d}"


def person_number(person_id: str) -> int:
    return int(person_id.removeprefix(ID_PREFIX))


def assign_person_ids(clusters: Table, previous: Table, next_number: int) -> IdAssignment:
    """clusters (record_key, cluster_key) + previous (record_key, person_id) -> stable ids.

    cluster_key is anything that sorts as the clusters' smallest record keys do: the key
    itself, or its record code (linkage/link/codes.py), which groups and sorts faster.
    Set-based in DuckDB: only the contested clusters and persons (a merge or a split: a few
    hundred a night) go through the greedy choice in Python; at 1M records this takes
    about 2 s where a per-cluster loop in pandas took 12.
    """
    con = duckdb.connect()
    try:
        con.register("clusters_in", clusters)
        con.register("previous_in", previous)
        con.execute("CREATE TEMP VIEW clusters AS SELECT record_key, cluster_key FROM clusters_in")
        con.execute("CREATE TEMP VIEW previous AS SELECT record_key, person_id FROM previous_in")
        con.execute(OVERLAP_SQL)
        contested = con.sql(CONTESTED_SQL).to_arrow_table()
        clusters_l, persons_l = (column.to_pylist() for column in contested.columns)
        chosen = _greedy(list(zip(clusters_l, persons_l, strict=True)))
        columns = [[cluster for cluster, _ in chosen], [person for _, person in chosen]]
        con.register("contested_choice", pa.table(columns, schema=contested.schema))
        con.execute(INHERITED_SQL)
        con.execute(NAMED_SQL, {"id_format": ID_FORMAT, "next_number": next_number})
        person_of = con.sql(
            "SELECT record_key, person_id, records FROM clusters JOIN named USING (cluster_key)"
        ).to_arrow_table()
        changes = con.sql(CHANGES_SQL).to_arrow_table()
    finally:
        con.close()
    return IdAssignment(person_of, changes)


def _greedy(overlap: list[tuple[Any, str]]) -> list[tuple[Any, str]]:
    """Largest overlap first, each cluster and each published id taken at most once."""
    id_of_cluster: dict[Any, str] = {}
    taken: set[str] = set()
    for cluster_key, person_id in overlap:
        if cluster_key not in id_of_cluster and person_id not in taken:
            id_of_cluster[cluster_key] = person_id
            taken.add(person_id)
    return list(id_of_cluster.items())


# How many records each cluster shares with each published person.
OVERLAP_SQL = """
CREATE TEMP TABLE overlap AS
WITH shared AS (
    SELECT c.cluster_key, p.person_id, count(*) AS shared
    FROM clusters c JOIN previous p USING (record_key)
    GROUP BY ALL
)
SELECT *,
    count(*) OVER (PARTITION BY cluster_key) = 1
        AND count(*) OVER (PARTITION BY person_id) = 1 AS uncontested
FROM shared
"""

# A pair alone on both sides inherits whatever the order; the rest in the greedy order.
CONTESTED_SQL = """
SELECT cluster_key, person_id FROM overlap WHERE NOT uncontested
ORDER BY shared DESC, person_id, cluster_key
"""

INHERITED_SQL = """
CREATE TEMP TABLE inherited AS
SELECT cluster_key, person_id FROM overlap WHERE uncontested
UNION ALL
SELECT cluster_key, person_id FROM contested_choice
"""

# Every cluster's id: inherited, or minted in cluster-key order.
NAMED_SQL = """
CREATE TEMP TABLE named AS
WITH sizes AS (SELECT cluster_key, count(*) AS records FROM clusters GROUP BY ALL),
unnamed AS (
    SELECT s.cluster_key, s.records,
        $next_number - 1 + row_number() OVER (ORDER BY s.cluster_key) AS number
    FROM sizes s ANTI JOIN inherited USING (cluster_key)
)
SELECT s.cluster_key, s.records, i.person_id, false AS minted
FROM sizes s JOIN inherited i USING (cluster_key)
UNION ALL
SELECT cluster_key, records, printf($id_format, number), true FROM unnamed
"""

# Minted ids (split off a published person, or new), then published ids no cluster kept
# (merged into the cluster that holds most of their records, or retired).
CHANGES_SQL = """
WITH largest_source AS (
    SELECT cluster_key, first(person_id ORDER BY shared DESC, person_id) AS parent
    FROM overlap GROUP BY ALL
),
destination AS (
    SELECT person_id, first(cluster_key ORDER BY shared DESC, cluster_key) AS cluster_key
    FROM overlap GROUP BY ALL
),
previous_sizes AS (SELECT person_id, count(*) AS records FROM previous GROUP BY ALL),
minted AS (
    SELECT n.person_id,
        CASE WHEN l.parent IS NULL THEN 'created' ELSE 'split' END AS event,
        l.parent AS related_person_id, n.records,
        CASE WHEN l.parent IS NULL THEN 'new person' ELSE 'records split off' END AS reason,
        0 AS part, n.cluster_key AS sort_cluster, NULL AS sort_person
    FROM named n LEFT JOIN largest_source l USING (cluster_key)
    WHERE n.minted
),
dropped AS (
    SELECT p.person_id,
        CASE WHEN d.cluster_key IS NULL THEN 'retired' ELSE 'merged' END,
        n.person_id, p.records,
        CASE WHEN d.cluster_key IS NULL THEN 'records removed'
             ELSE 'linked to another person' END,
        1, NULL, p.person_id
    FROM previous_sizes p
    ANTI JOIN inherited USING (person_id)
    LEFT JOIN destination d USING (person_id)
    LEFT JOIN named n ON n.cluster_key = d.cluster_key
)
SELECT person_id, event, related_person_id, records, reason
FROM (SELECT * FROM minted UNION ALL SELECT * FROM dropped)
ORDER BY part, sort_cluster, sort_person
"""
