"""The link stage: canonical records -> scored edges -> persons -> the published index.

Reads `canonical_record`, scores pairs with the saved model, clusters them under the hard
constraints, gives every cluster a stable person id, then replaces `linked_index`,
`person`, `edge` and `link_review` and appends `person_id_history` in one transaction: a
failed link stage leaves the last published index as it was.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import date
from functools import partial
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa

from linkage.concerns import open_concern_records
from linkage.config import LinkageSettings, ProjectConfig
from linkage.errors import LinkageError
from linkage.extract import quote_identifier
from linkage.identifiers import IdentifierRegistry
from linkage.link.blocking import (
    BLOCK_COUNT_COLUMNS,
    BlockingPlan,
    BlockNotCounted,
    DeltaPairCounter,
    PairCounter,
    blocks_to_hash,
    plan_blocking,
)
from linkage.link.cluster import Clustering, ClusterSettings, cluster_records
from linkage.link.codes import EDGE_CODES, RecordCodes
from linkage.link.incremental import (
    CHANGED,
    COMPONENT_TABLE,
    INPUT_TABLE,
    TONIGHT,
    Increment,
    RecordChanges,
    compile_scoring,
    hash_records,
    next_component_label,
    record_changes,
    record_components,
    save_link_state,
    save_term_frequencies,
    stored_key_columns,
)
from linkage.link.incremental import increment as incremental_scope
from linkage.link.model import ModelShape, guard_levels, term_frequency_columns
from linkage.link.predict import edge_columns, score_pairs
from linkage.link.train import filled_input_columns, input_columns, latest_model, model_input
from linkage.persons import IdAssignment, assign_person_ids, person_number
from linkage.rebuild import index_drift
from linkage.review import load_decisions
from linkage.warehouse import PUBLISHED_TABLES, fetch_one, transaction

log = logging.getLogger(__name__)


class ModelNotFoundError(LinkageError):
    """No trained model to link with: nightly runs never train silently."""


@dataclass
class LinkOutcome:
    model_version: str
    records: int
    persons: int
    edges: int
    review_by_reason: dict[str, int]
    id_changes: dict[str, int]
    seconds: float
    persons_by_sources: dict[str, int] = field(default_factory=dict)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    blocking: list[dict] = field(default_factory=list)  # per block: pairs, action, why
    review_queue: dict[str, Any] = field(default_factory=dict)  # queued, past the cap, ...
    linked: str = "incremental"  # or why every record was linked
    records_relinked: int = 0  # records scored, clustered and replaced tonight
    # a full link's persons against the index it replaces (linkage/rebuild.py)
    drift: dict[str, Any] = field(default_factory=dict)


class _StageClock:
    """Seconds per stage of the link, for the run report and benchmarks."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def done(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[stage] = round(now - self._last, 2)
        self._last = now


@dataclass(frozen=True)
class LinkRun:
    """A link stage's run: the night it linked and the saved model it scored with."""

    run_id: str
    run_date: date
    model_version: str
    model_path: Path


def link_run(con: duckdb.DuckDBPyConnection, run_id: str) -> LinkRun | None:
    row = fetch_one(
        con,
        "SELECT run_date, model_version, model_path FROM link_run WHERE run_id = $run_id",
        {"run_id": run_id},
    )
    return None if row is None else LinkRun(run_id, row[0], row[1], Path(row[2]))


def published_link_run(con: duckdb.DuckDBPyConnection) -> LinkRun | None:
    """The link run whose person index is published, or None before the first.

    link_run's row commits with the index it published, so the latest is the one; a
    warehouse linked before link_run had linked_at: the run its index rows carry.
    """
    row = fetch_one(con, PUBLISHED_RUN_SQL)
    return None if row is None or row[0] is None else link_run(con, row[0])


PUBLISHED_RUN_SQL = """
SELECT coalesce(
    (SELECT run_id FROM link_run WHERE linked_at IS NOT NULL ORDER BY linked_at DESC LIMIT 1),
    (SELECT any_value(run_id) FROM linked_index)
)
"""


def resolve_model(project: ProjectConfig) -> Path:
    """The configured model, or the newest saved one."""
    model = project.linkage.model or latest_model(project.model_dir)
    if model is None or not model.exists():
        raise ModelNotFoundError(
            f"no trained model in {project.model_dir}: run `linkage train --config "
            f"{project.config_path}` once the warehouse holds a night's records"
        )
    return model


def model_version(model_path: Path) -> str:
    return model_path.stem.removeprefix("model-")


def cluster_settings(
    settings: LinkageSettings,
    exclusive_sources: set[str],
    registry: IdentifierRegistry,
    model_path: Path,
) -> ClusterSettings:
    """The clustering's thresholds, constraints and guard levels for a saved model."""
    model = json.loads(model_path.read_text(encoding="utf-8"))
    return ClusterSettings(
        link_threshold=settings.link_threshold,
        review_threshold=settings.review_threshold,
        weak_link=settings.weak_link,
        exclusive_sources=frozenset(exclusive_sources),
        hard_identifiers=tuple(registry.hard_constraints()),
        guard=guard_levels(model, registry),
    )


@contextmanager
def _long_lived_objects_set_aside() -> Iterator[None]:
    """Python's full collections skip the objects alive when the block starts.

    A night's process holds some 330,000 long-lived objects (Prefect, great-expectations,
    pandas), and a full collection walks them all: 0.2 s, more than a tenth of an
    incremental link, triggered by the link's own short-lived objects (Splink's SQL trees).
    Those are still collected; the night's objects are walked again after the block."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@_long_lived_objects_set_aside()
def link_warehouse(
    con: duckdb.DuckDBPyConnection,
    project: ProjectConfig,
    run_id: str,
    run_date: date,
    full: str | None = None,
) -> LinkOutcome:
    """Link the warehouse's canonical records and publish the index (one transaction).

    Incremental once an index is published (linkage/link/incremental.py): only the records
    a change since the last link reaches are scored, clustered and replaced. `full`, or
    any reason _why_full finds, links every record instead.
    """
    started = time.perf_counter()
    stage = _StageClock()
    model_path = resolve_model(project)
    exclusive = {c.source for c in project.source_configs() if c.one_record_per_person}
    registry = project.identifier_registry()
    settings = cluster_settings(project.linkage, exclusive, registry, model_path)
    decisions = load_decisions(con)
    shape = ModelShape(filled_input_columns(con, registry), registry)
    basis_of = partial(link_basis, model_path, clustering=settings, linkage=project.linkage)
    full = full or _why_full(con, run_id)
    blocking, basis, changes, full = _plan_tonight(con, project, registry, shape, basis_of, full)
    for change in blocking.changes():
        log.info("run %s: blocking on a budget: %s", run_id, change)
    stage.done("count blocks")
    increment = None
    if full:
        log.info("run %s: linking every record: %s", run_id, full)
        records = model_input(con, registry)
        stage.done("read records")
        edges = score_pairs(records, model_path, project.linkage.edge_floor, blocking.rules())
        stage.done("predict")
        clustering = cluster_records(records, edges, settings, decisions)
        stage.done("cluster")
        previous = con.sql("SELECT record_key, person_id FROM linked_index").to_arrow_table()
    else:
        assert changes is not None
        increment = incremental_scope(
            con,
            registry,
            changes,
            model_path,
            project.linkage.edge_floor,
            blocking.blocks,
            decisions,
        )
        edges, previous = increment.edges, increment.previous
        stage.done("predict")
        clustering = cluster_records(increment.records, edges, settings, decisions)
        stage.done("cluster")
    clusters = pa.table({"record_key": clustering.keys, "cluster_key": clustering.root})
    assignment = assign_person_ids(clusters, previous, _next_person_number(con))
    stage.done("person ids")
    drift = {}
    if full and previous.num_rows:
        drift = asdict(index_drift(previous, assignment.person_of))
        log.info("run %s: against the published index, %s", run_id, drift["persons"])
    version = model_version(model_path)
    open_concern_records(con, project, run_date, "review_open_concern")
    _publish(
        con,
        PublishedRun(
            run_id,
            run_date,
            version,
            model_path,
            blocking,
            project.linkage.review_cap,
            settings.guard.identifiers,
            basis,
        ),
        edges,
        clustering,
        assignment,
        registry,
        increment,
        changes,
    )
    if full:  # so the incremental nights on this basis never run Splink's Python
        compile_scoring(con, registry, model_path, project.linkage.edge_floor, blocking.blocks)
    stage.done("publish")
    outcome = LinkOutcome(
        model_version=version,
        records=_count(con, "SELECT count(*) FROM canonical_record"),
        linked=full or "incremental",
        drift=drift,
        records_relinked=len(records if increment is None else increment.records),
        persons=_count(con, "SELECT count(*) FROM person"),
        edges=_count(con, "SELECT count(*) FROM edge"),
        review_by_reason=dict(
            con.execute("SELECT reason, count(*) FROM link_review GROUP BY 1").fetchall()
        ),
        id_changes=assignment.event_counts(),
        seconds=round(time.perf_counter() - started, 2),
        persons_by_sources=_persons_by_sources(con),
        stage_seconds=stage.seconds,
        blocking=blocking.as_rows(),
        review_queue=review_queue_counts(con),
    )
    con.execute(
        "UPDATE link_run SET seconds = $seconds WHERE run_id = $run_id",
        {"seconds": outcome.seconds, "run_id": run_id},
    )
    log.info(
        "run %s linked %d records into %d persons (%d edges, %d for review)",
        run_id,
        outcome.records,
        outcome.persons,
        outcome.edges,
        sum(outcome.review_by_reason.values()),
    )
    return outcome


PRIORITY_NAMES = {1: "1 alert at stake", 2: "2 open concern", 3: "3 other"}


def review_queue_counts(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """The night's review items: queued, past the cap, recorded only; by priority and reason."""
    rows = con.execute(
        "SELECT priority, reason, queued, count(*) FROM link_review GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    counts: dict[str, Any] = {
        "queued": 0,
        "past_cap": 0,
        "recorded_only": 0,
        "queued_by_priority": {},
        "queued_by_reason": {},
        "past_cap_by_reason": {},
    }
    for priority, reason, queued, n in rows:
        if priority is None:
            counts["recorded_only"] += n
        elif queued:
            counts["queued"] += n
            by_priority = counts["queued_by_priority"]
            by_priority[PRIORITY_NAMES[priority]] = by_priority.get(PRIORITY_NAMES[priority], 0) + n
            counts["queued_by_reason"][reason] = counts["queued_by_reason"].get(reason, 0) + n
        else:
            counts["past_cap"] += n
            counts["past_cap_by_reason"][reason] = counts["past_cap_by_reason"].get(reason, 0) + n
    return counts


def _next_person_number(con: duckdb.DuckDBPyConnection) -> int:
    row = fetch_one(
        con, "SELECT max(person_id) FROM person_id_history WHERE event IN ('created', 'split')"
    )
    return 1 if row is None or row[0] is None else person_number(row[0]) + 1


def _plan_tonight(
    con: duckdb.DuckDBPyConnection,
    project: ProjectConfig,
    registry: IdentifierRegistry,
    shape: ModelShape,
    basis_of: Callable[[BlockingPlan], str],
    full: str | None,
) -> tuple[BlockingPlan, str, RecordChanges | None, str | None]:
    """Tonight's blocks, their link basis, what changed since the published index (None
    when every record is linked), and why every record is linked (None when incremental).

    Incrementally, the blocks are counted from the published counts and what changed; a
    block the published index never counted, or blocks on another basis than its, make
    the link full, and then every record's keys are hashed and counted."""
    columns = input_columns(con, registry)
    budget = project.linkage.max_pairs_per_record
    if not full:
        changes = record_changes(con, columns)
        published_basis, counts = _published_blocking(con)
        delta = DeltaPairCounter(con, counts, INPUT_TABLE, CHANGED)
        delta.count_deltas(blocks_to_hash(shape, stored_key_columns(con)))  # the likely ones
        try:
            blocking = plan_blocking(con, "canonical_record", shape, budget, count_pairs=delta)
        except BlockNotCounted as block:
            full = f"the published index has no count of the block {block}"
        else:
            basis = basis_of(blocking)
            if basis == published_basis:
                return blocking, basis, changes, None
            full = "the model, the blocking or the link settings changed since the last link"
    hash_records(con, columns, blocks_to_hash(shape, stored_key_columns(con)))
    count = PairCounter(con, "canonical_record", TONIGHT)
    blocking = plan_blocking(con, "canonical_record", shape, budget, count_pairs=count)
    return blocking, basis_of(blocking), None, full


def link_basis(
    model_path: Path, blocking: BlockingPlan, clustering: ClusterSettings, linkage: LinkageSettings
) -> str:
    """What tonight's links follow from besides the records: the model, the blocks, the
    settings and DuckDB's version (its hash keys the stored block keys). An index linked
    on another basis is not kept incrementally."""
    parts = [model_path.read_text(encoding="utf-8"), repr(clustering), linkage.model_dump_json()]
    parts.append(duckdb.__version__)
    for rule in blocking.rules():
        parts.append(rule.create_blocking_rule_dict("duckdb")["blocking_rule"])
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _why_full(con: duckdb.DuckDBPyConnection, run_id: str) -> str | None:
    """Why tonight must link every record, before counting the blocks; None to try
    incrementally (a changed basis, found once they are counted, is the other reason)."""
    if fetch_one(con, PUBLISHED_RUN_SQL) in (None, (None,)):
        return "no index published yet"
    if _count(con, f"SELECT count(*) FROM {INPUT_TABLE}") == 0:
        return "no record of what the published index was linked on"
    if _count(con, f"SELECT count(*) FROM {COMPONENT_TABLE}") == 0:
        return "no record of the published index's components"
    if _count(con, "SELECT count(*) FROM link_term_frequency") == 0:
        return "no term frequencies kept from the last full link"
    if _count(con, "SELECT count(*) FROM link_review WHERE identifiers_agree IS NULL"):
        return "review items published before they kept whether identifiers agree"
    last = fetch_one(
        con,
        "SELECT status FROM run WHERE run_id <> $run_id ORDER BY started_at DESC LIMIT 1",
        {"run_id": run_id},
    )
    if last is not None and last[0] in ("failed", "running"):
        return "the last run did not finish"
    return None


def _published_blocking(con: duckdb.DuckDBPyConnection) -> tuple[str | None, dict[str, int]]:
    """The published index's link basis and its blocks' pair counts."""
    basis = fetch_one(con, f"SELECT link_basis FROM link_run WHERE run_id = ({PUBLISHED_RUN_SQL})")
    counts = con.execute(
        f"SELECT rule, pairs FROM blocking_rule_run WHERE run_id = ({PUBLISHED_RUN_SQL})"
    ).fetchall()
    return (None if basis is None else basis[0]), {rule: int(pairs) for rule, pairs in counts}


def _count(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    row = fetch_one(con, sql)
    return 0 if row is None else int(row[0])


@dataclass(frozen=True)
class PublishedRun:
    """What the publish records of the link run itself."""

    run_id: str
    run_date: date
    model_version: str
    model_path: Path
    blocking: BlockingPlan
    review_cap: int
    identifier_comparisons: tuple[str, ...]  # equal identifiers: evidence against "twins"
    basis: str  # link_basis: what the index was linked with


def _new_review_items_sql(identifier_comparisons: tuple[str, ...]) -> str:
    """Tonight's review items (temp table new_review_items), each with whether an
    identifier agrees on its pair, from its edge's levels: kept with the item, so an item
    an incremental link carries forward is not looked up in every edge again."""
    agree = " OR ".join(
        f"coalesce(e.{quote_identifier('gamma_' + name)} > 0, false)"
        for name in identifier_comparisons
    )
    return (
        "CREATE OR REPLACE TEMP TABLE new_review_items AS"
        " SELECT n.record_key_l, n.record_key_r, n.match_probability, n.reason,"
        f" {agree or 'false'} AS identifiers_agree"
        " FROM new_review n LEFT JOIN new_edge e USING (record_key_l, record_key_r)"
    )


def _publish(
    con: duckdb.DuckDBPyConnection,
    run: PublishedRun,
    edges: pd.DataFrame,
    clustering: Clustering,
    assignment: IdAssignment,
    registry: IdentifierRegistry,
    increment: Increment | None = None,
    changes: RecordChanges | None = None,
) -> None:
    """Publish tonight's persons, edges and review items in one transaction: everything
    (increment None), or only the records an incremental link touched (those it
    re-clustered and the removed ones), the rest of the index kept as it is."""
    if set(EDGE_CODES) <= set(edges.columns):  # score_pairs gives them for all records
        ends = [edges[code].to_numpy() for code in EDGE_CODES]
    else:  # an incremental link's edges: codes among the records it re-clustered
        codes = RecordCodes.of(pd.DataFrame({"record_key": clustering.keys}))
        ends = [codes.codes_of(edges[key].tolist()) for key in ("record_key_l", "record_key_r")]
    columns = edge_columns(edges)
    edge_frame = pa.Table.from_pandas(edges[columns], preserve_index=False).append_column(
        "linked", pa.array(clustering.root[ends[0]] == clustering.root[ends[1]])
    )
    review = pd.DataFrame(
        [vars(item) for item in clustering.review],
        columns=["record_key_l", "record_key_r", "match_probability", "reason"],
    )
    blocks = pd.DataFrame(run.blocking.as_rows(), columns=BLOCK_COUNT_COLUMNS)
    frames = {
        "new_person_of": assignment.person_of,
        "new_edge": edge_frame,
        "new_review": review,
        "new_history": assignment.changes,
        "new_block_count": blocks,
    }
    if increment is not None:  # what it replaces, and the re-clustered records' values
        frames |= {
            "touched": increment.touched,
            "previous_person_of": increment.previous,
            "relinked_record": increment.records,
        }
    for name, frame in frames.items():
        con.register(name, frame)
    run_id, run_date, version = run.run_id, run.run_date, run.model_version
    params = {"run_id": run_id, "run_date": run_date, "version": version}
    gammas = [quote_identifier(c) for c in columns if c.startswith("gamma_")]
    try:
        with transaction(con):
            con.execute(_new_review_items_sql(run.identifier_comparisons))
            if increment is None:
                _replace_all(con, columns, gammas, params)
            else:
                _replace_touched(con, gammas, params)
            con.execute(PUBLISH_REVIEW_SQL, {"run_id": run_id, "cap": run.review_cap})
            person_sql, person_params = publish_person_sql(
                registry, "canonical_record" if increment is None else "relinked_record"
            )
            con.execute(person_sql, person_params | {"run_id": run_id})
            con.execute(
                "INSERT INTO person_id_history SELECT $run_id, $run_date, person_id, event,"
                " related_person_id, records, reason FROM new_history",
                {"run_id": run_id, "run_date": run_date},
            )
            con.execute(
                "INSERT INTO link_run SELECT $run_id, $run_date, $version, $path,"
                " (SELECT count(*) FROM linked_index),"
                " (SELECT count(*) FROM person),"
                " (SELECT count(*) FROM edge), (SELECT count(*) FROM link_review), NULL,"
                " $blocking_changes, $basis, now()",
                params
                | {
                    "path": str(run.model_path),
                    "blocking_changes": "; ".join(run.blocking.changes()) or None,
                    "basis": run.basis,
                },
            )
            con.execute(
                "INSERT INTO blocking_rule_run SELECT $run_id, $run_date, * FROM new_block_count",
                {"run_id": run_id, "run_date": run_date},
            )
            first_label = 0 if increment is None else next_component_label(con)
            components = record_components(clustering.keys, ends[0], ends[1], first_label)
            save_link_state(con, changes, components, input_columns(con, registry))
            if increment is None:  # a full link's scores: tonight's term frequencies
                save_term_frequencies(
                    con,
                    term_frequency_columns(json.loads(run.model_path.read_text(encoding="utf-8"))),
                )
    finally:
        for name in frames:
            con.unregister(name)


def _replace_all(
    con: duckdb.DuckDBPyConnection, columns: list[str], gammas: list[str], params: dict
) -> None:
    """A full link's index, edges and review items replace the published ones."""
    _empty_table(con, "linked_index")
    con.execute(PUBLISH_LINKED_INDEX_SQL, {"run_id": params["run_id"]})
    # re-created with the model's gamma columns (edge's DDL has the fixed ones only)
    con.execute("DROP TABLE edge")
    kept = [*columns[:4], "linked", "$run_id AS run_id", "$version AS model_version", *gammas]
    con.execute(
        f"CREATE TABLE edge AS SELECT {', '.join(kept)} FROM new_edge",
        {"run_id": params["run_id"], "version": params["version"]},
    )
    con.execute("CREATE OR REPLACE TEMP TABLE review_items AS SELECT * FROM new_review_items")
    con.execute("DELETE FROM link_review")
    _empty_table(con, "person")


def _replace_touched(con: duckdb.DuckDBPyConnection, gammas: list[str], params: dict) -> None:
    """An incremental link's records replace theirs; every other row stays as it is."""
    # The touched records are whole components of the stored edges (and removed records),
    # and a pair, stored or for review, never spans two: one end touched means both are.
    # The review items of untouched pairs are kept before link_review is rewritten.
    con.execute(
        "CREATE OR REPLACE TEMP TABLE review_items AS SELECT record_key_l, record_key_r,"
        " match_probability, reason, identifiers_agree FROM link_review"
        " WHERE record_key_l NOT IN (SELECT record_key FROM touched)"
        " UNION ALL SELECT * FROM new_review_items"
    )
    con.execute("DELETE FROM link_review")
    # one IN over a union: an OR of two INs costs twice as much. previous_person_of holds
    # the published persons of every touched record
    con.execute(
        "DELETE FROM person WHERE person_id IN (SELECT person_id FROM previous_person_of"
        " UNION ALL SELECT person_id FROM new_person_of)"
    )
    con.execute("DELETE FROM linked_index WHERE record_key IN (SELECT record_key FROM touched)")
    con.execute(PUBLISH_LINKED_INDEX_SQL, {"run_id": params["run_id"]})
    con.execute("DELETE FROM edge WHERE record_key_l IN (SELECT record_key FROM touched)")
    kept = ["record_key_l", "record_key_r", "match_weight", "match_probability", "linked"]
    con.execute(
        f"INSERT INTO edge BY NAME SELECT {', '.join(kept + gammas)}, $run_id AS run_id,"
        " $version AS model_version FROM new_edge",
        {"run_id": params["run_id"], "version": params["version"]},
    )


def _empty_table(con: duckdb.DuckDBPyConnection, table: str) -> None:
    """Empty a published table inside the publish transaction by re-creating it.

    DROP + CREATE takes well under a second and rolls back all the same, where deleting a
    million rows costs seconds at commit; it also drops the key index an older
    warehouse's table had.
    """
    con.execute(f"DROP TABLE {table}")
    con.execute(PUBLISHED_TABLES[table])


# A record's link confidence: its strongest linked edge inside its person (NULL if alone).
# Its source and id are read from its key (source:source_record_id; a source name has no
# colon), not joined from canonical_record.
PUBLISH_LINKED_INDEX_SQL = """
INSERT INTO linked_index
WITH linked_edges AS (
    SELECT record_key_l AS record_key, match_probability FROM new_edge WHERE linked
    UNION ALL
    SELECT record_key_r, match_probability FROM new_edge WHERE linked
),
confidence AS (
    SELECT record_key, max(match_probability) AS link_confidence
    FROM linked_edges GROUP BY record_key
)
SELECT p.person_id, p.record_key, split_part(p.record_key, ':', 1) AS source,
       substr(p.record_key, strpos(p.record_key, ':') + 1) AS source_record_id,
       confidence.link_confidence, $run_id
FROM new_person_of p
LEFT JOIN confidence USING (record_key)
"""

# The review queue, ranked by what is at stake: 1, the two sides' persons hold open
# concerns at two or more agencies (the link decides an alert); 2, an open concern on
# either side; 3, anything else. Possible twins with no concern and no identifier in
# common are recorded (priority NULL) but not queued. At most $cap items are queued.
PUBLISH_REVIEW_SQL = """
INSERT INTO link_review
WITH placed AS MATERIALIZED (  -- the persons of the items' records and of open concerns
    SELECT record_key, person_id FROM linked_index
    WHERE record_key IN (
        SELECT record_key_l FROM review_items UNION ALL SELECT record_key_r FROM review_items
        UNION ALL SELECT record_key FROM review_open_concern)
),
items AS (
    SELECT r.record_key_l, r.record_key_r, pl.person_id AS person_id_l,
           pr.person_id AS person_id_r, r.match_probability, r.reason, r.identifiers_agree
    FROM review_items r
    JOIN placed pl ON pl.record_key = r.record_key_l
    JOIN placed pr ON pr.record_key = r.record_key_r
),
concern_agencies AS (
    SELECT p.person_id, list(DISTINCT c.source) AS agencies
    FROM review_open_concern c JOIN placed p USING (record_key)
    GROUP BY p.person_id
),
weighed AS (
    SELECT i.*,
        list_sort(list_distinct(
            list_concat(coalesce(cl.agencies, []), coalesce(cr.agencies, []))
        )) AS agencies
    FROM items i
    LEFT JOIN concern_agencies cl ON cl.person_id = i.person_id_l
    LEFT JOIN concern_agencies cr ON cr.person_id = i.person_id_r
),
prioritised AS (
    SELECT *,
        CASE
            WHEN len(agencies) >= 2 THEN 1
            WHEN len(agencies) = 1 THEN 2
            WHEN reason LIKE '%possible twins%' AND NOT identifiers_agree THEN NULL
            ELSE 3
        END AS priority
    FROM weighed
)
SELECT record_key_l, record_key_r, person_id_l, person_id_r, match_probability, reason,
    $run_id, priority,
    CASE priority
        WHEN 1 THEN 'open concerns at ' || array_to_string(agencies, ', ')
        WHEN 2 THEN 'open concern at ' || agencies[1]
    END AS stake,
    priority IS NOT NULL AND row_number() OVER (
        PARTITION BY priority IS NULL
        ORDER BY priority, match_probability DESC, record_key_l, record_key_r, reason
    ) <= $cap AS queued,
    identifiers_agree
FROM prioritised
ORDER BY record_key_l, record_key_r, reason
"""

# Best-known values: the most frequent non-null value per field (ties: the smallest).
# Unsorted, as linked_index: every reader orders what it shows, and sorting a million wide
# rows costs half a second.
PUBLISH_PERSON_SQL = """
INSERT INTO person
WITH records AS MATERIALIZED (
    SELECT p.person_id, p.records AS n, c.record_key, c.source, c.forename, c.surname,
           CAST(c.date_of_birth AS DATE) AS date_of_birth, c.sex, c.postcode{identifier_columns}
    FROM new_person_of p JOIN {records} c USING (record_key)
),
-- Most persons have one record: theirs is the person row as it is (and no linked edge, so
-- no link confidence). Only the records of persons with several are voted on and grouped.
confidence AS (  -- as linked_index has it (its strongest linked edge)
    SELECT record_key, max(match_probability) AS link_confidence
    FROM (SELECT record_key_l AS record_key, match_probability FROM new_edge WHERE linked
          UNION ALL SELECT record_key_r, match_probability FROM new_edge WHERE linked)
    GROUP BY record_key
),
shared AS MATERIALIZED (
    SELECT r.*, confidence.link_confidence
    FROM records r LEFT JOIN confidence USING (record_key) WHERE r.n > 1
),
summary AS (
    SELECT
        person_id,
        list_sort(list(DISTINCT source)) AS sources,
        count(*) AS records,
        min(link_confidence) AS min_link_confidence,
        min(forename) AS forename_0, max(forename) AS forename_1,
        min(surname) AS surname_0, max(surname) AS surname_1,
        min(date_of_birth) AS date_of_birth_0, max(date_of_birth) AS date_of_birth_1,
        min(sex) AS sex_0, max(sex) AS sex_1,
        min(postcode) AS postcode_0, max(postcode) AS postcode_1
    FROM shared GROUP BY person_id
),
-- Where a person's records agree on a field, that is its value; only persons whose
-- records differ somewhere are voted on.
disputed AS (
    SELECT person_id FROM summary
    WHERE forename_0 <> forename_1 OR surname_0 <> surname_1
       OR date_of_birth_0 <> date_of_birth_1 OR sex_0 <> sex_1 OR postcode_0 <> postcode_1
),
field_values AS (
    UNPIVOT (
        SELECT person_id, forename, surname, CAST(date_of_birth AS VARCHAR) AS date_of_birth,
               sex, postcode
        FROM shared SEMI JOIN disputed USING (person_id)
    )
    ON forename, surname, date_of_birth, sex, postcode
    INTO NAME field VALUE value
),
votes AS (
    SELECT person_id, field, value, count(*) AS n FROM field_values GROUP BY ALL
),
best AS (
    SELECT person_id, field, first(value ORDER BY n DESC, value) AS value
    FROM votes GROUP BY ALL
),
voted AS (
    PIVOT best ON field IN ('forename', 'surname', 'date_of_birth', 'sex', 'postcode')
    USING first(value) GROUP BY person_id
),
identifier_lists AS (
    SELECT person_id, kind, list_sort(list(DISTINCT value)) AS held
    FROM ({identifier_values}) GROUP BY ALL
),
identifier_maps AS (
    SELECT
        person_id,
        -- sorted by kind (a person's kinds are distinct); 3x faster than list(... ORDER BY)
        map_from_entries(list_sort(list((kind, held)))) AS identifiers,
        list_sort(list(kind) FILTER (len(held) > 1 AND list_contains($hard, kind)))
            AS conflicting
    FROM identifier_lists GROUP BY person_id
),
persons AS (
    SELECT s.person_id,
           CASE WHEN forename_0 = forename_1 THEN forename_0 ELSE v.forename END AS forename,
           CASE WHEN surname_0 = surname_1 THEN surname_0 ELSE v.surname END AS surname,
           CASE WHEN date_of_birth_0 = date_of_birth_1 THEN date_of_birth_0
                ELSE CAST(v.date_of_birth AS DATE) END AS date_of_birth,
           CASE WHEN sex_0 = sex_1 THEN sex_0 ELSE v.sex END AS sex,
           CASE WHEN postcode_0 = postcode_1 THEN postcode_0 ELSE v.postcode END AS postcode,
           coalesce(i.identifiers, MAP {{}}) AS identifiers,
           coalesce(i.conflicting, []) AS conflicting, s.sources, s.records,
           s.min_link_confidence
    FROM summary s
    LEFT JOIN voted v USING (person_id)
    LEFT JOIN identifier_maps i USING (person_id)
    UNION ALL
    SELECT person_id, forename, surname, date_of_birth, sex, postcode,
           {lone_identifiers}, [], [source], 1, NULL
    FROM records WHERE n = 1
),
reviewed AS (
    SELECT person_id_l AS person_id FROM link_review
    UNION SELECT person_id_r FROM link_review
)
SELECT *, person_id IN (SELECT person_id FROM reviewed), $run_id
FROM persons
"""


def publish_person_sql(
    registry: IdentifierRegistry, records: str = "canonical_record"
) -> tuple[str, dict[str, Any]]:
    """The insert of new_person_of's persons (every person after a full link, the
    re-clustered ones after an incremental link) for the registry's identifier columns,
    and its parameters. `records` holds their records (canonical_record, or the
    re-clustered records as the link read them: reading a few from the table still scans
    every record's key)."""
    params: dict[str, Any] = {"hard": registry.hard_constraints()}
    selects, entries = [], []
    for position, name in enumerate(registry.names):
        params[f"kind{position}"] = name
        column = quote_identifier(name)
        selects.append(
            f"SELECT person_id, $kind{position} AS kind, {column} AS value"
            f" FROM shared WHERE {column} IS NOT NULL"
        )
        entries.append((name, f"{{'kind': $kind{position}, 'held': [{column}]}}"))
    values = " UNION ALL ".join(selects) or (
        "SELECT NULL::VARCHAR AS person_id, NULL::VARCHAR AS kind, NULL::VARCHAR AS value"
        " WHERE false"
    )
    columns = "".join(f", c.{quote_identifier(name)}" for name in registry.names)
    # a lone record's identifiers, as the map the grouped persons get (sorted by kind)
    lone = ", ".join(entry for _, entry in sorted(entries))
    lone_identifiers = (
        f"map_from_entries(list_filter([{lone}], lambda e: e.held[1] IS NOT NULL))"
        if entries
        else "MAP {}::MAP(VARCHAR, VARCHAR[])"
    )
    sql = PUBLISH_PERSON_SQL.format(
        records=records,
        identifier_values=values,
        identifier_columns=columns,
        lone_identifiers=lone_identifiers,
    )
    return sql, params


def _persons_by_sources(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """How many persons each combination of agencies knows (counts only)."""
    rows = con.execute(
        "SELECT array_to_string(sources, '+') AS sources, count(*) FROM person"
        " GROUP BY 1 ORDER BY 2 DESC, 1"
    ).fetchall()
    return {sources: int(n) for sources, n in rows}
