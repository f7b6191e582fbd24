"""Incremental link: re-score and re-cluster only what changed since the published index.

A record has changed when the model's input for it (its columns of canonical_record) hashes
differently from when it was last linked (`link_input`). Tonight's pairs touching a changed
record are scored as a full prediction would score them: the blocks are joined for the
changed records only, and Splink scores that small set with the term frequencies of the
whole population as the last full link took them (`link_term_frequency`), so every stored
score, old or new, uses one snapshot and an explanation adds up to it. Pairs between two
unchanged records keep their stored scores; a full rebuild takes a new snapshot.

Clustering never merges across a connected component of the edges (linkage/link/cluster.py),
and person ids only pass between clusters and published persons that share records. So
re-clustering every record connected to a change, through tonight's edges, reviewed
matches or a shared published person, gives the persons a full link would, and every other
person keeps its records and its id untouched.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from splink.internals.blocking_rule_creator import BlockingRuleCreator

from linkage.extract import quote_identifier
from linkage.identifiers import IdentifierRegistry
from linkage.link.cluster import Decisions
from linkage.link.codes import EDGE_CODES, RecordCodes
from linkage.link.model import term_frequency_columns
from linkage.link.predict import score_pairs
from linkage.link.train import model_input

INPUT_TABLE = "link_input"  # record_key, input_hash: what each record was last linked on


@dataclass(frozen=True)
class RecordChanges:
    """Records new or changed since the published index was linked, and records gone."""

    changed: list[str]
    removed: list[str]


def input_hash_sql(columns: list[str]) -> str:
    """record_key and the hash of the model's columns, for every canonical record."""
    values = ", ".join(f"{quote_identifier(c)} := {quote_identifier(c)}" for c in columns)
    return f"SELECT record_key, hash(struct_pack({values})) AS input_hash FROM canonical_record"


def hash_model_inputs(con: duckdb.DuckDBPyConnection, columns: list[str]) -> None:
    """Tonight's input hash of every canonical record (temp table tonight_input): what
    record_changes compares and save_link_input keeps."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE tonight_input AS {input_hash_sql(columns)}")


def record_changes(con: duckdb.DuckDBPyConnection) -> RecordChanges:
    """What changed in canonical_record (tonight_input) since the last link (set-based)."""
    changed = con.execute(
        f"SELECT t.record_key FROM tonight_input t LEFT JOIN {INPUT_TABLE} l USING (record_key)"
        " WHERE l.input_hash IS DISTINCT FROM t.input_hash ORDER BY 1"
    ).fetchall()
    removed = con.execute(
        f"SELECT record_key FROM {INPUT_TABLE} WHERE record_key NOT IN"
        " (SELECT record_key FROM tonight_input) ORDER BY 1"
    ).fetchall()
    return RecordChanges([row[0] for row in changed], [row[0] for row in removed])


def save_link_input(con: duckdb.DuckDBPyConnection, changes: RecordChanges | None) -> None:
    """What tonight's records were linked on (inside the publish transaction): all of it
    after a full link, only the changed and removed records' after an incremental one."""
    if changes is None:
        con.execute(f"CREATE OR REPLACE TABLE {INPUT_TABLE} AS SELECT * FROM tonight_input")
        return
    keys = pa.table({"record_key": _keys(changes.changed + changes.removed)})
    con.register("input_changed", keys)
    try:
        con.execute(
            f"DELETE FROM {INPUT_TABLE} WHERE record_key IN (SELECT record_key FROM input_changed)"
        )
        con.execute(
            f"INSERT INTO {INPUT_TABLE} SELECT * FROM tonight_input"
            " WHERE record_key IN (SELECT record_key FROM input_changed)"
        )
    finally:
        con.unregister("input_changed")


TF_TABLE = "link_term_frequency"  # column_name, value, tf: the snapshot scores use


def save_term_frequencies(
    con: duckdb.DuckDBPyConnection, columns: list[str], new_values_only: bool = False
) -> None:
    """Term frequencies (each value's share of its column's non-null values over every
    canonical record, as Splink computes them): a full link's replace the snapshot; an
    incremental link adds only values the snapshot has never seen (a new surname)."""
    if not new_values_only:
        con.execute(f"DELETE FROM {TF_TABLE}")
    for column in columns:
        name = quote_identifier(column)
        unseen = (
            f" AND CAST({name} AS VARCHAR) NOT IN"
            f" (SELECT value FROM {TF_TABLE} WHERE column_name = $column)"
            if new_values_only
            else ""
        )
        con.execute(
            f"INSERT INTO {TF_TABLE} SELECT $column, CAST({name} AS VARCHAR),"
            f" CAST(count(*) AS DOUBLE) / (SELECT count({name}) FROM canonical_record)"
            f" FROM canonical_record WHERE {name} IS NOT NULL{unseen} GROUP BY {name}",
            {"column": column},
        )


def stored_term_frequencies(
    con: duckdb.DuckDBPyConnection, columns: list[str]
) -> dict[str, pd.DataFrame]:
    """The snapshot's table per column, shaped as Splink's lookups (value, tf_<column>);
    empty tables where there is none (a warehouse older than the snapshot, opened read-only)."""
    known = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = $table", {"table": TF_TABLE}
    ).fetchall()[0][0]
    if not known:
        return {column: pd.DataFrame() for column in columns}
    return {
        column: con.execute(
            f"SELECT value AS {quote_identifier(column)}, tf AS {quote_identifier('tf_' + column)}"
            f" FROM {TF_TABLE} WHERE column_name = $column",
            {"column": column},
        ).df()
        for column in columns
    }


def block_partners(con: duckdb.DuckDBPyConnection, rules: list[BlockingRuleCreator]) -> pa.Array:
    """Keys of the changed records (table changed_records) and of every record sharing a
    prediction block with one: all the records tonight's pairs touching a change involve."""
    partners = [
        "SELECT r.record_key FROM canonical_record l JOIN canonical_record r"
        f" ON ({rule.create_blocking_rule_dict('duckdb')['blocking_rule']})"
        " WHERE l.record_key IN (SELECT record_key FROM changed_records)"
        for rule in rules
    ]
    union = " UNION ".join(["SELECT record_key FROM changed_records", *partners])
    return con.sql(union).to_arrow_table()["record_key"].combine_chunks()


@dataclass
class Increment:
    """Tonight's work for an incremental link: the records a change reaches and their edges."""

    records: pd.DataFrame  # the affected records (model input)
    edges: pd.DataFrame  # every edge among them: stored ones and tonight's new scores
    previous: pa.Table  # record_key, person_id published for them and for removed records
    touched: pa.Table  # record_key: affected and removed records (what the publish replaces)
    scored: int  # pairs scored tonight (touching a changed record)


def increment(
    con: duckdb.DuckDBPyConnection,
    registry: IdentifierRegistry,
    changes: RecordChanges,
    model_path: Path,
    floor: float,
    rules: list[BlockingRuleCreator],
    decisions: Decisions,
) -> Increment:
    """Score the changed records' pairs and find every record they reach (set-based: the
    keys are joined in DuckDB). Only the records scored or re-clustered are read."""
    scratch = {
        "changed_records": pa.table({"record_key": _keys(changes.changed)}),
        "gone_records": pa.table({"record_key": _keys(changes.changed + changes.removed)}),
        "decided_pairs": pa.table(
            {
                "record_key_l": _keys([pair[0] for pair in sorted(decisions.matches)]),
                "record_key_r": _keys([pair[1] for pair in sorted(decisions.matches)]),
            }
        ),
        "decided_records": pa.table(
            {
                "record_key": _keys(
                    sorted({k for pair in decisions.matches | decisions.non_matches for k in pair})
                )
            }
        ),
    }
    for name, table in scratch.items():
        con.register(name, table)
    try:
        scored = _score_changed(con, registry, model_path, floor, rules, changes.changed)
        con.register("scored_pairs", scored[["record_key_l", "record_key_r"]])
        affected_keys = _affected_keys(con)
        con.register("affected_records", pa.table({"record_key": affected_keys}))
        kept = con.sql(KEPT_EDGES_SQL).df()
        touched = con.sql(
            "SELECT record_key FROM affected_records UNION"
            " SELECT record_key FROM gone_records WHERE record_key NOT IN"
            " (SELECT record_key FROM canonical_record)"
        ).to_arrow_table()
        previous = con.sql(
            "SELECT record_key, person_id FROM linked_index"
            " WHERE record_key IN (SELECT record_key FROM affected_records)"
            " OR record_key IN (SELECT record_key FROM gone_records)"
        ).to_arrow_table()
    finally:
        for name in [*scratch, "scored_pairs", "affected_records"]:
            con.unregister(name)
    return Increment(
        records=model_input(con, registry, affected_keys),
        edges=pd.concat([kept, scored], ignore_index=True) if len(scored) else kept,
        previous=previous,
        touched=touched,
        scored=len(scored),
    )


def _keys(values: list[str]) -> pa.Array:
    return pa.array(values, pa.string())


def _score_changed(
    con: duckdb.DuckDBPyConnection,
    registry: IdentifierRegistry,
    model_path: Path,
    floor: float,
    rules: list[BlockingRuleCreator],
    changed: list[str],
) -> pd.DataFrame:
    """Tonight's pairs touching a changed record, scored as a full prediction would."""
    if not changed:
        return pd.DataFrame(columns=["record_key_l", "record_key_r"])
    partners = model_input(con, registry, block_partners(con, rules))
    partners = partners.assign(changed_record=partners["record_key"].isin(changed))
    # the snapshot of the last full link, so every stored score uses the same frequencies
    columns = term_frequency_columns(json.loads(model_path.read_text(encoding="utf-8")))
    save_term_frequencies(con, columns, new_values_only=True)
    tf = stored_term_frequencies(con, columns)
    scored = score_pairs(partners, model_path, floor, rules, tf, touching="changed_record")
    return scored.drop(columns=EDGE_CODES)  # the partners' codes, not all records'


def _affected_keys(con: duckdb.DuckDBPyConnection) -> pa.Array:
    """Keys of every current record connected to a change through a kept or new edge, a
    reviewed match or a shared published person, in key order.

    Reached step by step from the seeds, each step joining only the last step's records
    with the ties (persons are a few records apart, so a few steps reach them all); a
    component wider than MAX_REACH_STEPS is left to connected components over the whole
    graph, so no chain of names costs more than that.
    """
    con.execute(f"CREATE OR REPLACE TEMP TABLE reach_all AS {SEEDS_SQL}")
    con.execute("CREATE OR REPLACE TEMP TABLE reach_frontier AS SELECT * FROM reach_all")
    try:
        for _ in range(MAX_REACH_STEPS):
            con.execute(f"CREATE OR REPLACE TEMP TABLE reach_next AS {REACH_STEP_SQL}")
            if not con.execute("SELECT count(*) FROM reach_next").fetchall()[0][0]:
                reached = con.sql("SELECT record_key FROM reach_all ORDER BY 1")
                return reached.to_arrow_table()["record_key"].combine_chunks()
            con.execute("INSERT INTO reach_all SELECT * FROM reach_next")
            con.execute("CREATE OR REPLACE TEMP TABLE reach_frontier AS SELECT * FROM reach_next")
        return _components_reach(con)
    finally:
        for table in ("reach_all", "reach_frontier", "reach_next"):
            con.execute(f"DROP TABLE IF EXISTS {table}")


def _components_reach(con: duckdb.DuckDBPyConnection) -> pa.Array:
    """_affected_keys by connected components over every current record (integer codes)."""
    keys = con.sql("SELECT record_key FROM canonical_record ORDER BY record_key")
    codes = RecordCodes(keys.to_arrow_table()["record_key"].combine_chunks(), None)
    coded = pa.table({"record_key": codes.keys, "code": np.arange(len(codes))})
    con.register("record_codes", coded)
    try:
        ends = con.sql(LINKS_SQL).fetchnumpy()
        seeds = con.sql(
            "SELECT code FROM record_codes WHERE record_key IN (SELECT record_key FROM reach_all)"
        ).fetchnumpy()["code"]
    finally:
        con.unregister("record_codes")
    graph = coo_matrix(
        (np.ones(len(ends["a"]), dtype=np.int8), (ends["a"], ends["b"])), shape=(len(codes),) * 2
    )
    label = connected_components(graph, directed=False)[1]
    affected = np.flatnonzero(np.isin(label, np.unique(label[seeds])))
    return codes.keys.take(pa.array(affected, pa.int64()))


MAX_REACH_STEPS = 64

# Every tie between two current records, as pairs of codes: stored edges not touching a
# changed or removed record, tonight's new pairs, reviewed matches, and each published
# person's records tied to its first one.
LINKS_SQL = """
WITH pairs AS (
    SELECT record_key_l, record_key_r FROM edge
    WHERE record_key_l NOT IN (SELECT record_key FROM gone_records)
      AND record_key_r NOT IN (SELECT record_key FROM gone_records)
    UNION ALL SELECT record_key_l, record_key_r FROM scored_pairs
    UNION ALL SELECT record_key_l, record_key_r FROM decided_pairs
),
members AS (
    SELECT c.code, min(c.code) OVER (PARTITION BY li.person_id) AS first_code
    FROM linked_index li JOIN record_codes c USING (record_key)
)
SELECT l.code AS a, r.code AS b
FROM pairs p
JOIN record_codes l ON l.record_key = p.record_key_l
JOIN record_codes r ON r.record_key = p.record_key_r
UNION ALL
SELECT code, first_code FROM members WHERE code <> first_code
"""

# Where re-clustering starts: changed records, records that shared a published person with
# a changed or removed one, and records of reviewed pairs (a decision re-clusters them).
SEEDS_SQL = """
SELECT record_key FROM canonical_record
WHERE record_key IN (SELECT record_key FROM changed_records)
   OR record_key IN (SELECT record_key FROM decided_records)
   OR record_key IN (
       SELECT record_key FROM linked_index WHERE person_id IN (
           SELECT person_id FROM linked_index
           WHERE record_key IN (SELECT record_key FROM gone_records)))
"""

# One step of the reach: current records tied to the last step's (reach_frontier) by the
# ties LINKS_SQL lists, not reached before.
REACH_STEP_SQL = """
WITH stored AS (
    SELECT record_key_l, record_key_r FROM edge
    WHERE (record_key_l IN (SELECT record_key FROM reach_frontier)
           OR record_key_r IN (SELECT record_key FROM reach_frontier))
      AND record_key_l NOT IN (SELECT record_key FROM gone_records)
      AND record_key_r NOT IN (SELECT record_key FROM gone_records)
),
pairs AS (
    SELECT * FROM stored
    UNION ALL SELECT record_key_l, record_key_r FROM scored_pairs
    UNION ALL SELECT record_key_l, record_key_r FROM decided_pairs
),
tied AS (
    SELECT record_key_r AS record_key FROM pairs
    WHERE record_key_l IN (SELECT record_key FROM reach_frontier)
    UNION ALL
    SELECT record_key_l FROM pairs WHERE record_key_r IN (SELECT record_key FROM reach_frontier)
    UNION ALL
    SELECT record_key FROM linked_index WHERE person_id IN (
        SELECT person_id FROM linked_index
        WHERE record_key IN (SELECT record_key FROM reach_frontier))
)
SELECT DISTINCT record_key FROM tied
WHERE record_key NOT IN (SELECT record_key FROM reach_all)
  AND record_key IN (SELECT record_key FROM canonical_record)
"""

# The stored edges among the affected records (tonight's new ones are added to them).
KEPT_EDGES_SQL = """
SELECT * EXCLUDE (linked, run_id, model_version) FROM edge
WHERE record_key_l IN (SELECT record_key FROM affected_records)
  AND record_key_l NOT IN (SELECT record_key FROM gone_records)
  AND record_key_r NOT IN (SELECT record_key FROM gone_records)
"""
