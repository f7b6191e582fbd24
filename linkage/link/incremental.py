"""Incremental link: re-score and re-cluster only what changed since the published index.

A record has changed when the model's input for it (its columns of canonical_record) hashes
differently from when it was last linked (`link_input`, which also keeps each record's
hashed block keys). Only the records an intake wrote since (its journal, `canonical_change`)
can differ, so only they are hashed; a warehouse whose journal does not cover the time since
the last link, or whose record counts do not add up, has every record hashed.

Tonight's pairs touching a changed record are scored as a full prediction would score
them: the records sharing a block key with a changed record are found from the hashed
keys, and Splink scores that small set with the term frequencies of the whole population
as the last full link took them (`link_term_frequency`), so every stored score, old or new,
uses one snapshot and an explanation adds up to it. Pairs between two unchanged records
keep their stored scores; a full rebuild takes a new snapshot. The scoring runs the
statements Splink ran when the last full link recorded them (`link_scoring_sql`), without
Splink's Python, which costs more than scoring a night's few records.

Clustering never merges across a connected component of the edges (linkage/link/cluster.py),
and person ids only pass between clusters and published persons that share records. Each
record's component of the stored edges is kept (`link_component`), so re-clustering the
components a change touches (its records', its new partners', and those of reviewed pairs,
which a decision may join) gives the persons a full link would, and every other person keeps
its records and its id untouched. No step reads every record: all are lookups of the
changed records' keys and components.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from linkage.extract import quote_identifier
from linkage.identifiers import IdentifierRegistry
from linkage.link.blocking import (
    block_key_sets,
    key_column,
    key_hashes_sql,
    keys_of_column,
)
from linkage.link.cluster import Decisions, component_labels
from linkage.link.codes import EDGE_CODES
from linkage.link.model import COLUMN_IN_KEY, PredictionBlock, term_frequency_columns
from linkage.link.predict import CompiledScoring, score_pairs, scoring_key
from linkage.link.train import model_input
from linkage.warehouse import table_columns, transaction

log = logging.getLogger(__name__)

INPUT_TABLE = "link_input"  # record_key, input_hash, hashed block keys: as last linked
COMPONENT_TABLE = "link_component"  # record_key, component: of the stored edges
TONIGHT = "tonight_input"  # the same as INPUT_TABLE for every record tonight (temp)
CHANGED = "tonight_changed"  # INPUT_TABLE's row tonight of each new or changed record (temp)
JOURNAL_TABLE = "canonical_change"  # record_key: written by an intake since the last link
HASHED_COLUMNS_TABLE = "link_input_column"  # the columns INPUT_TABLE's hashes cover


@dataclass(frozen=True)
class RecordChanges:
    """Records new or changed since the published index was linked, and records gone."""

    changed: list[str]
    removed: list[str]


def hash_records(
    con: duckdb.DuckDBPyConnection, columns: list[str], blocks: Sequence[PredictionBlock] = ()
) -> None:
    """Tonight's input hash of every canonical record, and for a full link the blocks'
    hashed keys, in one pass (temp table tonight_input)."""
    keys = key_hashes_sql(block_key_sets(blocks)) if blocks else ""
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {TONIGHT} AS SELECT record_key,"
        f" {input_hash_sql(columns)} AS input_hash{', ' + keys if keys else ''}"
        " FROM canonical_record"
    )


def input_hash_sql(columns: list[str]) -> str:
    """A record's input hash: of its model columns, the key among them."""
    values = ", ".join(f"{quote_identifier(c)} := {quote_identifier(c)}" for c in columns)
    return f"hash(struct_pack({values}))"


def record_changes(con: duckdb.DuckDBPyConnection, columns: list[str]) -> RecordChanges:
    """What changed in canonical_record since the last link, set-based: the published rows
    that no longer hold (temp table stale_records) and the new and changed records (temp
    table tonight_changed, hashed as link_input's rows). An input hash covers the record's
    key, so a record whose hash is not among the published ones is new or changed.

    Only the records an intake wrote since the last link (canonical_change) are hashed,
    when the journal covers that whole time and the hashes cover tonight's columns;
    otherwise every record is hashed and joined with the published hashes."""
    present = set(table_columns(con, "canonical_record"))
    keys = [
        keys
        for keys in map(keys_of_column, stored_key_columns(con))
        if {c for key in keys for c in COLUMN_IN_KEY.findall(key)} <= present
    ]  # a key over a column gone since (an identifier type removed) counts no block now
    hashed = f", {key_hashes_sql(keys)}" if keys else ""
    if not (journal_covers(con, columns) and _changes_of_written(con, columns, hashed)):
        _changes_of_every_record(con, columns, hashed)
    changed = con.execute(f"SELECT record_key FROM {CHANGED} ORDER BY 1").fetchall()
    removed = con.execute(
        f"SELECT record_key FROM stale_records ANTI JOIN {CHANGED} USING (record_key) ORDER BY 1"
    ).fetchall()
    return RecordChanges([row[0] for row in changed], [row[0] for row in removed])


def journal_covers(con: duckdb.DuckDBPyConnection, columns: list[str]) -> bool:
    """Whether canonical_change holds every record written since the published index was
    linked: the last link's publish emptied it and wrote the columns its hashes cover
    (none in a warehouse older than the journal), and those are tonight's columns."""
    hashed = con.execute(
        f"SELECT column_name FROM {HASHED_COLUMNS_TABLE} ORDER BY position"
    ).fetchall()
    return bool(hashed) and [row[0] for row in hashed] == columns


def _changes_of_written(con: duckdb.DuckDBPyConnection, columns: list[str], hashed: str) -> bool:
    """From the journal: only the written records are hashed and looked up (their rows
    sit together at the end of the table, so the read skips the rest). False when the
    records do not add up to the published ones and the changes (a row written outside an
    intake, which no journal saw)."""
    written = f"record_key IN (SELECT record_key FROM {JOURNAL_TABLE})"
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE written_input AS SELECT record_key,"
        f" {input_hash_sql(columns)} AS input_hash{hashed} FROM canonical_record WHERE {written}"
    )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE written_published AS"
        f" SELECT * FROM {INPUT_TABLE} WHERE {written}"
    )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE stale_records AS"
        " SELECT * FROM written_published ANTI JOIN written_input USING (input_hash)"
    )
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {CHANGED} AS"
        " SELECT * FROM written_input ANTI JOIN written_published USING (input_hash)"
    )
    con.execute("DROP TABLE written_input")
    con.execute("DROP TABLE written_published")
    counts = con.execute(
        f"SELECT (SELECT count(*) FROM canonical_record), (SELECT count(*) FROM {INPUT_TABLE})"
        f" - (SELECT count(*) FROM stale_records) + (SELECT count(*) FROM {CHANGED})"
    ).fetchall()[0]
    if counts[0] == counts[1]:
        return True
    log.warning("records written outside an intake: every record's input is hashed tonight")
    return False


def _changes_of_every_record(
    con: duckdb.DuckDBPyConnection, columns: list[str], hashed: str
) -> None:
    """Every record hashed: one full join of tonight's hashes with the published ones."""
    # in one transaction: tonight_changed finds the records by their row ids in it
    with transaction(con):
        # tonight's hashes are joined as computed, and only the hashes of the published side:
        # materialising either costs more than the join
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE unmatched_input AS"
            f" SELECT p.input_hash AS published_hash, t.row_id, t.input_hash"
            f" FROM (SELECT input_hash FROM {INPUT_TABLE}) p"
            f" FULL JOIN (SELECT rowid AS row_id, {input_hash_sql(columns)} AS input_hash"
            "  FROM canonical_record) t ON p.input_hash = t.input_hash"
            " WHERE p.input_hash IS NULL OR t.input_hash IS NULL"
        )
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE stale_records AS SELECT * FROM {INPUT_TABLE}"
            " WHERE input_hash IN (SELECT published_hash FROM unmatched_input"
            "  WHERE published_hash IS NOT NULL)"
        )
        # by row id: a join on a million record keys costs four times more
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {CHANGED} AS"
            f" SELECT c.record_key, t.input_hash{hashed} FROM canonical_record c"
            " JOIN (SELECT row_id, input_hash FROM unmatched_input"
            "  WHERE row_id IS NOT NULL) t ON c.rowid = t.row_id"
        )
    con.execute("DROP TABLE unmatched_input")


def stored_key_columns(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The hashed block keys link_input keeps (none in a warehouse older than them)."""
    columns = table_columns(con, INPUT_TABLE)
    return [column for column in columns if column not in ("record_key", "input_hash")]


def save_link_state(
    con: duckdb.DuckDBPyConnection,
    changes: RecordChanges | None,
    components: pa.Table,
    columns: list[str],
) -> None:
    """What tonight's records were linked on and their components (inside the publish
    transaction): all of it after a full link; after an incremental one, the changed and
    removed records' rows replaced, and the re-clustered records' components. The journal
    of written records starts again, for hashes of these columns."""
    # re-created, not deleted from: a million journal rows (a first night's) delete slowly
    con.execute(f"CREATE OR REPLACE TABLE {JOURNAL_TABLE} (record_key VARCHAR)")
    con.execute(f"DELETE FROM {HASHED_COLUMNS_TABLE}")
    con.execute(
        f"INSERT INTO {HASHED_COLUMNS_TABLE}"
        " SELECT generate_subscripts($columns, 1), unnest($columns)",
        {"columns": columns},
    )
    con.register("new_component", components)
    try:
        if changes is None:
            con.execute(f"CREATE OR REPLACE TABLE {INPUT_TABLE} AS SELECT * FROM {TONIGHT}")
            con.execute(f"CREATE OR REPLACE TABLE {COMPONENT_TABLE} AS SELECT * FROM new_component")
            return
        # keyed by integers, not record keys: a probe of a million strings costs more
        con.execute(
            f"DELETE FROM {INPUT_TABLE} WHERE input_hash IN (SELECT input_hash FROM stale_records)"
        )
        con.execute(f"INSERT INTO {INPUT_TABLE} BY NAME SELECT * FROM {CHANGED}")
        # the re-clustered and removed records are whole components (touched_component)
        con.execute(
            f"DELETE FROM {COMPONENT_TABLE}"
            " WHERE component IN (SELECT component FROM touched_component)"
        )
        con.execute(f"INSERT INTO {COMPONENT_TABLE} SELECT * FROM new_component")
    finally:
        con.unregister("new_component")


def record_components(
    keys: pa.Array, left: np.ndarray, right: np.ndarray, first_label: int = 0
) -> pa.Table:
    """record_key, component: each record's connected component of the edges (their ends
    as codes of `keys`), labelled from first_label (so a night's new labels are unused)."""
    labels = component_labels(left, right, len(keys)).astype(np.int64) + first_label
    return pa.table({"record_key": keys, "component": labels})


def next_component_label(con: duckdb.DuckDBPyConnection) -> int:
    row = con.execute(f"SELECT coalesce(max(component) + 1, 0) FROM {COMPONENT_TABLE}").fetchall()
    return int(row[0][0])


TF_TABLE = "link_term_frequency"  # column_name, value, tf: the snapshot scores use


def save_term_frequencies(
    con: duckdb.DuckDBPyConnection, columns: list[str], changed: pd.DataFrame | None = None
) -> None:
    """Term frequencies (each value's share of its column's non-null values over every
    canonical record, as Splink computes them): a full link's replace the snapshot; an
    incremental link adds the values of the `changed` records the snapshot has never seen
    (a new surname). Only a changed record can hold one, since every other record's values
    were added when it was last linked, so its count among them is its count among all."""
    if changed is None:
        con.execute(f"DELETE FROM {TF_TABLE}")
    else:
        con.register("changed_values", changed[columns])
    values = "canonical_record" if changed is None else "changed_values"
    try:
        for column in columns:
            name = quote_identifier(column)
            unseen = (
                f" AND CAST({name} AS VARCHAR) NOT IN"
                f" (SELECT value FROM {TF_TABLE} WHERE column_name = $column)"
                if changed is not None
                else ""
            )
            con.execute(
                f"INSERT INTO {TF_TABLE} SELECT $column, CAST({name} AS VARCHAR),"
                f" CAST(count(*) AS DOUBLE) / (SELECT count({name}) FROM canonical_record)"
                f" FROM {values} WHERE {name} IS NOT NULL{unseen} GROUP BY {name}",
                {"column": column},
            )
    finally:
        if changed is not None:
            con.unregister("changed_values")


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


def block_partners(con: duckdb.DuckDBPyConnection, blocks: list[PredictionBlock]) -> pa.Array:
    """Keys of the new and changed records and of every unchanged record sharing a
    prediction block's keys with one (its partner keys, for a crossed block): all the
    records tonight's pairs touching a change involve, found from the hashed keys."""
    # one semi-join per key set (a UNION of them is twice as fast as one OR of them)
    partners = [
        f"SELECT record_key FROM {INPUT_TABLE} WHERE {quote_identifier(key_column(keys))}"
        f" IN (SELECT {quote_identifier(key_column(partner_keys))} FROM {CHANGED})"
        for keys, partner_keys in dict.fromkeys(block.key_sets for block in blocks)
    ]
    unchanged = (
        f"SELECT record_key FROM ({' UNION '.join(partners)})"
        " EXCEPT SELECT record_key FROM stale_records UNION "
        if partners
        else ""
    )
    keys = con.sql(f"{unchanged}SELECT record_key FROM {CHANGED}")
    return keys.to_arrow_table()["record_key"].combine_chunks()


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
    blocks: list[PredictionBlock],
    decisions: Decisions,
) -> Increment:
    """Score the changed records' pairs and find every record they reach (set-based: the
    keys are joined in DuckDB). Only the records the changes can reach are read."""
    decided = {key for pair in decisions.matches | decisions.non_matches for key in pair}
    # record_changes left the changed records (tonight_changed) and the published rows of
    # the changed and removed ones (stale_records) as tables; the decisions are registered
    con.register("decided_records", pa.table({"record_key": _keys(sorted(decided))}))
    try:
        scored, read = _score_changed(con, registry, model_path, floor, blocks, changes.changed)
        con.register("scored_pairs", scored[["record_key_l", "record_key_r"]])
        con.execute(TOUCHED_COMPONENTS_SQL)
        affected_keys = con.sql(AFFECTED_SQL).to_arrow_table()["record_key"].combine_chunks()
        con.register("affected_records", pa.table({"record_key": affected_keys}))
        kept = con.sql(KEPT_EDGES_SQL).df()
        previous = con.sql(  # of the affected and the removed records
            "SELECT record_key, person_id FROM linked_index WHERE record_key IN"
            " (SELECT record_key FROM affected_records UNION ALL"
            " SELECT record_key FROM stale_records)"
        ).to_arrow_table()
    finally:
        for name in ["decided_records", "scored_pairs", "affected_records"]:
            con.unregister(name)
    touched = pa.concat_arrays([affected_keys.cast(pa.string()), _keys(changes.removed)])
    return Increment(
        records=read[_is_in(read["record_key"], affected_keys)].reset_index(drop=True),
        edges=pd.concat([kept, scored], ignore_index=True) if len(scored) else kept,
        previous=previous,
        touched=pa.table({"record_key": touched}),
        scored=len(scored),
    )


def _keys(values: list[str]) -> pa.Array:
    return pa.array(values, pa.string())


def _is_in(keys: pd.Series | pa.Array, values: list[str] | pa.Array) -> np.ndarray:
    """Whether each key is one of the values (Arrow's hash lookup: pandas' isin is ten
    times slower over string keys)."""
    found = pc.is_in(pa.array(keys, pa.string()), value_set=pa.array(values, pa.string()))
    return found.to_numpy(zero_copy_only=False)


def _score_changed(
    con: duckdb.DuckDBPyConnection,
    registry: IdentifierRegistry,
    model_path: Path,
    floor: float,
    blocks: list[PredictionBlock],
    changed: list[str],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Tonight's pairs touching a changed record, scored as a full prediction would, and
    the records read for them: the changed ones, their block partners, and every current
    record of a component that one of them, or a removed or reviewed record, is in (temp
    table reachable), which holds every record the pairs can reach. One read of all of
    them: a read of a few thousand scattered records costs what one of thirty thousand does."""
    keys = block_partners(con, blocks) if changed else _keys([])
    con.register("partner_keys", pa.table({"record_key": keys}))
    try:
        con.execute(REACHABLE_SQL)
        wanted = con.sql(
            "SELECT record_key FROM partner_keys UNION SELECT record_key FROM reachable"
            " WHERE record_key NOT IN (SELECT record_key FROM stale_records)"
        ).to_arrow_table()["record_key"]
    finally:
        con.unregister("partner_keys")
    read = model_input(con, registry, wanted, also=registry.names)
    if not changed:
        return pd.DataFrame(columns=["record_key_l", "record_key_r"]), read
    partners = read[_is_in(read["record_key"], keys)].reset_index(drop=True)
    partners = partners.assign(changed_record=_is_in(partners["record_key"], changed))
    # the snapshot of the last full link, so every stored score uses the same frequencies
    columns = term_frequency_columns(json.loads(model_path.read_text(encoding="utf-8")))
    save_term_frequencies(con, columns, changed=partners[partners["changed_record"]])
    scored = _score_touching_changed(con, registry, model_path, floor, blocks, partners, columns)
    return scored.drop(columns=EDGE_CODES), read  # the partners' codes, not all records'


def _score_touching_changed(
    con: duckdb.DuckDBPyConnection,
    registry: IdentifierRegistry,
    model_path: Path,
    floor: float,
    blocks: list[PredictionBlock],
    partners: pd.DataFrame,
    tf_columns: list[str],
) -> pd.DataFrame:
    """score_pairs of the partners' pairs touching a changed record, with the stored term
    frequencies of the model's tf_columns: by the statements recorded for them, or by
    Splink, recording them."""
    tf = stored_term_frequencies(con, tf_columns)
    rules = [block.rule() for block in blocks]
    unread = [column for column in registry.names if column not in registry.matching()]
    # the model's columns only (identifiers it never compares are kept)
    scoring = (partners.drop(columns=unread, errors="ignore"), model_path, floor, rules, tf)
    compiled = compiled_scoring(con, scoring_key(*scoring, touching="changed_record"))
    recorded = not compiled.statements
    scored = score_pairs(*scoring, touching="changed_record", compiled=compiled)
    if recorded:
        save_compiled_scoring(con, compiled)
    return scored


def compile_scoring(
    con: duckdb.DuckDBPyConnection,
    registry: IdentifierRegistry,
    model_path: Path,
    floor: float,
    blocks: list[PredictionBlock],
) -> None:
    """Record, as a full link publishes, the statements the incremental nights on its
    basis will score with (Splink scoring no records), so none of them runs Splink."""
    partners = model_input(con, registry, [], also=registry.names)
    partners = partners.assign(changed_record=np.zeros(len(partners), dtype=bool))
    columns = term_frequency_columns(json.loads(model_path.read_text(encoding="utf-8")))
    _score_touching_changed(con, registry, model_path, floor, blocks, partners, columns)


SCORING_TABLE = "link_scoring_sql"  # key, position, statement: Splink's scoring, recorded


def compiled_scoring(con: duckdb.DuckDBPyConnection, key: str) -> CompiledScoring:
    """The statements recorded for this key (none yet: Splink scores and records them)."""
    rows = con.execute(
        f"SELECT statement FROM {SCORING_TABLE} WHERE key = $key ORDER BY position", {"key": key}
    ).fetchall()
    return CompiledScoring(key, [row[0] for row in rows])


def save_compiled_scoring(con: duckdb.DuckDBPyConnection, compiled: CompiledScoring) -> None:
    """Keep only these statements: a new key means the model, blocks or records changed."""
    con.execute(f"DELETE FROM {SCORING_TABLE}")
    con.execute(
        f"INSERT INTO {SCORING_TABLE} SELECT $key, generate_subscripts($statements, 1),"
        " unnest($statements)",
        {"key": compiled.key, "statements": compiled.statements},
    )


# Every record of a component (of the stored edges) that a removed, changed, reviewed or
# partner record is in: tonight's pairs touch no other component.
REACHABLE_SQL = f"""
CREATE OR REPLACE TEMP TABLE reachable AS
SELECT record_key, component FROM {COMPONENT_TABLE}
WHERE component IN (
    SELECT component FROM {COMPONENT_TABLE} WHERE record_key IN (
        SELECT record_key FROM stale_records
        UNION ALL SELECT record_key FROM decided_records
        UNION ALL SELECT record_key FROM partner_keys))
"""

# The components a change touches: the changed and removed records' published rows',
# tonight's new pairs', and reviewed records' (a decision re-clusters them).
TOUCHED_COMPONENTS_SQL = """
CREATE OR REPLACE TEMP TABLE touched_component AS
WITH seeds AS (
    SELECT record_key FROM stale_records
    UNION ALL SELECT record_key FROM decided_records
    UNION ALL SELECT record_key_l FROM scored_pairs
    UNION ALL SELECT record_key_r FROM scored_pairs
)
SELECT DISTINCT component FROM reachable
WHERE record_key IN (SELECT record_key FROM seeds)
"""

# Every current record tied to a change: the touched components' records and the new
# records (in no component yet).
AFFECTED_SQL = f"""
SELECT record_key FROM reachable
WHERE component IN (SELECT component FROM touched_component)
  AND record_key NOT IN (SELECT record_key FROM stale_records)
UNION
SELECT record_key FROM {CHANGED}
ORDER BY record_key
"""

# The stored edges among the affected records (tonight's new ones are added to them): a
# component holds every edge of its records, so one end affected means both are.
KEPT_EDGES_SQL = """
SELECT * EXCLUDE (linked, run_id, model_version) FROM edge
WHERE record_key_l IN (SELECT record_key FROM affected_records)
  AND record_key_l NOT IN (SELECT record_key FROM stale_records)
  AND record_key_r NOT IN (SELECT record_key FROM stale_records)
"""
