"""Incremental link: re-score and re-cluster only what changed since the published index.

A record has changed when the model's input for it (its columns of canonical_record) hashes
differently from when it was last linked (`link_input`). Tonight's pairs touching a changed
record are scored as a full prediction would score them: the blocks are joined for the
changed records only, and Splink scores that small set with term frequencies taken from
the whole population. Pairs between two unchanged records keep their stored scores.

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
import pyarrow.compute as pc
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from splink.internals.blocking_rule_creator import BlockingRuleCreator

from linkage.extract import quote_identifier
from linkage.link.cluster import Decisions
from linkage.link.codes import EDGE_CODES, RecordCodes
from linkage.link.predict import score_pairs

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


def record_changes(con: duckdb.DuckDBPyConnection, columns: list[str]) -> RecordChanges:
    """What changed in canonical_record since the last link (one pass, set-based)."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE tonight_input AS {input_hash_sql(columns)}")
    changed = con.execute(
        f"SELECT t.record_key FROM tonight_input t LEFT JOIN {INPUT_TABLE} l USING (record_key)"
        " WHERE l.input_hash IS DISTINCT FROM t.input_hash ORDER BY 1"
    ).fetchall()
    removed = con.execute(
        f"SELECT record_key FROM {INPUT_TABLE} WHERE record_key NOT IN"
        " (SELECT record_key FROM tonight_input) ORDER BY 1"
    ).fetchall()
    return RecordChanges([row[0] for row in changed], [row[0] for row in removed])


def save_link_input(con: duckdb.DuckDBPyConnection) -> None:
    """What tonight's records were linked on (inside the publish transaction)."""
    con.execute(f"CREATE OR REPLACE TABLE {INPUT_TABLE} AS SELECT * FROM tonight_input")


def term_frequencies(records: pd.DataFrame, columns: list[str]) -> dict[str, pd.DataFrame]:
    """Splink's term frequency table of each column, over every record (as Splink computes
    it from its input: a value's share of the column's non-null values)."""
    tables = {}
    with duckdb.connect() as con:
        con.register("records", records[columns])
        for column in columns:
            name = quote_identifier(column)
            tables[column] = con.sql(
                f"SELECT {name}, CAST(count(*) AS DOUBLE) /"
                f" (SELECT count({name}) FROM records) AS {quote_identifier('tf_' + column)}"
                f" FROM records WHERE {name} IS NOT NULL GROUP BY {name}"
            ).df()
    return tables


def block_partners(
    records: pd.DataFrame, changed: list[str], rules: list[BlockingRuleCreator]
) -> pd.DataFrame:
    """The changed records and every record sharing a prediction block with one of them:
    all the records tonight's pairs touching a change can involve."""
    conditions = [rule.create_blocking_rule_dict("duckdb")["blocking_rule"] for rule in rules]
    with duckdb.connect() as con:
        con.register("records", records)
        con.register("changed", pa.table({"record_key": pa.array(changed, pa.string())}))
        partners = " UNION ".join(
            f"SELECT r.record_key FROM records l JOIN records r ON ({condition})"
            " WHERE l.record_key IN (SELECT record_key FROM changed)"
            for condition in conditions
        )
        keys = con.sql(
            f"SELECT record_key FROM changed{' UNION ' + partners if partners else ''}"
        ).to_arrow_table()
    return records[records["record_key"].isin(keys["record_key"].to_pylist())]


def affected_records(
    keys: pa.Array,
    edges: pd.DataFrame,
    previous: pa.Table,
    decisions: Decisions,
    seeds: list[str],
) -> np.ndarray:
    """Codes (positions in `keys`, the records in key order) of every record connected to a
    seed through an edge, a reviewed match or a shared published person."""
    codes = pd.Index(keys.to_pylist())
    left = [codes.get_indexer(edges["record_key_l"]), codes.get_indexer(edges["record_key_r"])]
    matched = sorted(decisions.matches)
    left += [
        codes.get_indexer([pair[0] for pair in matched]),
        codes.get_indexer([pair[1] for pair in matched]),
    ]
    members = codes.get_indexer(previous["record_key"].to_pylist())
    person = pd.factorize(pd.Series(previous["person_id"].to_pylist()))[0]
    anchor = np.full(person.max() + 1 if len(person) else 0, -1, dtype=np.int64)
    present = members >= 0
    anchor[person[present]] = members[present]
    ends_l = np.concatenate([left[0], left[2], members[present]])
    ends_r = np.concatenate([left[1], left[3], anchor[person[present]]])
    kept = (ends_l >= 0) & (ends_r >= 0)
    n = len(codes)
    graph = coo_matrix(
        (np.ones(int(kept.sum()), dtype=np.int8), (ends_l[kept], ends_r[kept])), shape=(n, n)
    )
    label = connected_components(graph, directed=False)[1]
    seed_codes = codes.get_indexer(seeds)
    touched = np.unique(label[seed_codes[seed_codes >= 0]])
    return np.flatnonzero(np.isin(label, touched))


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
    records: pd.DataFrame,
    changes: RecordChanges,
    model_path: Path,
    floor: float,
    rules: list[BlockingRuleCreator],
    decisions: Decisions,
) -> Increment:
    """Score the changed records' pairs and find every record they reach."""
    tf_columns = tf_adjustment_columns(model_path)
    partners = block_partners(records, changes.changed, rules)
    scored = pd.DataFrame()
    if changes.changed:
        scored = score_pairs(
            partners, model_path, floor, rules, term_frequencies(records, tf_columns)
        ).drop(columns=EDGE_CODES)  # codes of the partners, not of all records
        changed = scored["record_key_l"].isin(changes.changed)
        scored = scored[changed | scored["record_key_r"].isin(changes.changed)]
    gone = pa.table({"record_key": pa.array(changes.changed + changes.removed, pa.string())})
    con.register("gone_records", gone)
    try:
        kept = con.sql(
            "SELECT * EXCLUDE (linked, run_id, model_version) FROM edge"
            " WHERE record_key_l NOT IN (SELECT record_key FROM gone_records)"
            " AND record_key_r NOT IN (SELECT record_key FROM gone_records)"
        ).df()
        previous = con.sql("SELECT record_key, person_id FROM linked_index").to_arrow_table()
        orphaned = con.sql(  # records that shared a published person with a removed one
            "SELECT record_key FROM linked_index WHERE person_id IN (SELECT person_id FROM"
            " linked_index WHERE record_key IN (SELECT record_key FROM gone_records))"
        ).fetchall()
    finally:
        con.unregister("gone_records")
    edges = pd.concat([kept, scored], ignore_index=True) if len(scored) else kept
    decided = [key for pair in decisions.matches | decisions.non_matches for key in pair]
    seeds = changes.changed + [row[0] for row in orphaned] + decided
    codes = RecordCodes.of(records)
    affected = affected_records(codes.keys, edges, previous, decisions, seeds)
    affected_keys = set(codes.keys.take(pa.array(affected, pa.int64())).to_pylist())
    inside = edges["record_key_l"].isin(affected_keys)
    touched = sorted(affected_keys | set(changes.removed))
    was = pc.is_in(previous["record_key"], value_set=pa.array(touched, pa.string()))
    return Increment(
        records=records[records["record_key"].isin(affected_keys)],
        edges=edges[inside].reset_index(drop=True),
        previous=previous.filter(was),
        touched=pa.table({"record_key": pa.array(touched, pa.string())}),
        scored=len(scored),
    )


def tf_adjustment_columns(model_path: Path) -> list[str]:
    """The columns the model's comparison levels adjust for term frequency."""
    settings = json.loads(model_path.read_text(encoding="utf-8"))
    return sorted(
        {
            level["tf_adjustment_column"]
            for comparison in settings["comparisons"]
            for level in comparison["comparison_levels"]
            if level.get("tf_adjustment_column")
        }
    )
