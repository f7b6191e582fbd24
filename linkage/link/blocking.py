"""Blocking on a budget: every prediction block's pairs counted before Splink predicts.

A block on equal values makes sum(n * (n - 1) / 2) pairs over its groups, so a block on
names alone grows with the square of a name's frequency: harmless where surnames are
varied, ruinous where a handful of surnames are shared by a quarter of people. Each
night every block is counted; one over budget (pairs per record,
`linkage.max_pairs_per_record`) is tightened into bounded alternatives (the same keys plus
year of birth; plus the place), or dropped when none fits, and the counts, actions and
reasons go into `blocking_rule_run` and the run report.

A full link counts from the records' hashed keys (PairCounter: one GROUP BY per block,
linear in records), which the link keeps; an incremental night counts from the published
counts and the groups the changed records left and joined (DeltaPairCounter), the same
figures without reading every record.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field

import duckdb
from splink.internals.blocking_rule_creator import BlockingRuleCreator

from linkage.extract import quote_identifier
from linkage.link.model import ModelShape, PredictionBlock, prediction_blocks
from linkage.warehouse import table_columns

BIRTH_YEAR = "year(date_of_birth)"
PLACES = ("postcode_outward", "postcode", "town")
# Below this many pairs a block is cheap whatever its pairs per record (small projects).
BUDGET_FLOOR_PAIRS = 100_000


@dataclass(frozen=True)
class BlockCount:
    """One block tonight: its pairs and what the budget made of it."""

    rule: str
    pairs: int
    pairs_per_record: float
    action: str  # kept | over budget | tightened (an alternative used instead) | dropped
    why: str = ""


BLOCK_COUNT_COLUMNS = ["rule", "pairs", "pairs_per_record", "action", "why"]


@dataclass
class BlockingPlan:
    """The blocks Splink predicts with tonight, and the counts that chose them."""

    blocks: list[PredictionBlock]
    counts: list[BlockCount] = field(default_factory=list)

    def changes(self) -> list[str]:
        """One line per block the budget changed (for link_run and the log)."""
        return [f"{c.rule}: {c.action} ({c.why})" for c in self.counts if c.action != "kept"]

    def as_rows(self) -> list[dict]:
        return [asdict(count) for count in self.counts]

    def rules(self) -> list[BlockingRuleCreator]:
        return [block.rule() for block in self.blocks]


def plan_blocking(
    con: duckdb.DuckDBPyConnection,
    table: str,
    shape: ModelShape,
    max_pairs_per_record: float,
    floor_pairs: int = BUDGET_FLOOR_PAIRS,
    count_pairs: Callable[[PredictionBlock], int] | None = None,
) -> BlockingPlan:
    """The shape's prediction blocks, each kept, tightened or dropped to fit the budget.
    Pairs are counted over `table` (the records Splink will read) on `con`, unless
    `count_pairs` counts them (DeltaPairCounter)."""
    records = int(con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0])
    budget = max(max_pairs_per_record * records, floor_pairs)
    plan = BlockingPlan(blocks=[])
    blocks = prediction_blocks(shape)
    if count_pairs is None:
        con.execute(f"DROP TABLE IF EXISTS {table}_block_key")
        count_pairs = PairCounter(con, table, f"{table}_block_key")
        count_pairs.hash_keys(blocks)  # one pass for every block
    for block in blocks:
        _fit(count_pairs, block, shape, budget, records, plan)
    return plan


def _fit(
    count_pairs: Callable[[PredictionBlock], int],
    block: PredictionBlock,
    shape: ModelShape,
    budget: float,
    records: int,
    plan: BlockingPlan,
) -> None:
    pairs = count_pairs(block)
    if pairs <= budget:
        plan.blocks.append(block)
        plan.counts.append(BlockCount(block.name, pairs, _per(pairs, records), "kept"))
        return
    over = f"{_per(pairs, records)} pairs per record, over the budget of {budget / records:g}"
    plan.counts.append(BlockCount(block.name, pairs, _per(pairs, records), "over budget", over))
    fitting: list[tuple[PredictionBlock, int]] = []
    for alternatives in _tightenings(block, shape):  # singly first, then together
        tighter_blocks = [block.tightened(*keys) for keys in alternatives]
        if isinstance(count_pairs, PairCounter):
            count_pairs.hash_keys(tighter_blocks)  # one pass for the alternatives
        for tighter in tighter_blocks:
            tighter_pairs = count_pairs(tighter)
            if tighter_pairs <= budget:
                fitting.append((tighter, tighter_pairs))
            else:  # recorded too: an incremental night counts it again from this count
                per = _per(tighter_pairs, records)
                plan.counts.append(
                    BlockCount(
                        tighter.name,
                        tighter_pairs,
                        per,
                        "over budget",
                        f"instead of {block.name}: {per} pairs per record, over the budget",
                    )
                )
        if fitting:
            break
    if not fitting:
        plan.counts[-1] = BlockCount(block.name, pairs, _per(pairs, records), "dropped", over)
        return
    for tighter, tighter_pairs in fitting:
        plan.blocks.append(tighter)
        plan.counts.append(
            BlockCount(
                tighter.name,
                tighter_pairs,
                _per(tighter_pairs, records),
                "tightened",
                f"instead of {block.name}",
            )
        )


def blocks_to_hash(shape: ModelShape, hashed_before: Iterable[str]) -> list[PredictionBlock]:
    """The shape's blocks, and the tightenings likely counted: those of a block bounded by
    no birth date, place or identifier (names alone grow with the square of a name), and
    those whose keys were hashed before (a block over budget last time likely is again).
    All are hashed in one pass, where a tightening added once the counts ask for it joins
    every record again."""
    blocks = prediction_blocks(shape)
    before = set(hashed_before)
    bounding = {"date_of_birth", *PLACES, *shape.identifiers}
    likely = []
    for block in blocks:
        singles, together = _tightenings(block, shape)
        unbounded = not block.columns & bounding
        for keys in singles + together:
            tighter = block.tightened(*keys)
            hashed = all(key_column(keys) in before for keys in tighter.key_sets)
            if hashed or (unbounded and keys in singles):
                likely.append(tighter)
    return blocks + likely


def _tightenings(block: PredictionBlock, shape: ModelShape) -> list[list[tuple[str, ...]]]:
    """Keys to add: year of birth or the place, each alone (every one that fits is used,
    so a pair missed by one may be found by the other); then both together."""
    place = next((column for column in PLACES if column in shape.filled), None)
    singles: list[tuple[str, ...]] = []
    if "date_of_birth" in shape.filled and "date_of_birth" not in block.columns:
        singles.append((BIRTH_YEAR,))
    if place is not None and not block.columns & set(PLACES):
        singles.append((place,))
    together = [tuple(key for keys in singles for key in keys)] if len(singles) == 2 else []
    return [singles, together]


def key_column(keys: tuple[str, ...]) -> str:
    """The name of the column holding the hash of these keys: the keys, joined."""
    return KEY_SEPARATOR.join(keys)


def keys_of_column(column: str) -> tuple[str, ...]:
    return tuple(column.split(KEY_SEPARATOR))


KEY_SEPARATOR = " + "


def key_hashes_sql(key_sets: Iterable[tuple[str, ...]]) -> str:
    """Select-list items hashing each key set of a record (NULL where a key is missing: a
    record with a missing key is in no group), named by key_column."""
    items = []
    for keys in dict.fromkeys(key_sets):  # distinct, in order
        held = " AND ".join(f"({key}) IS NOT NULL" for key in keys)
        column = quote_identifier(key_column(keys))
        items.append(f"CASE WHEN {held} THEN hash({', '.join(keys)}) END AS {column}")
    return ", ".join(items)


def block_key_sets(blocks: Iterable[PredictionBlock]) -> list[tuple[str, ...]]:
    return [keys for block in blocks for keys in block.key_sets]


class PairCounter:
    """Pairs a block makes among a table's records, from the sizes of the groups of its
    hashed keys: columns of `table` (record_key and one column per key set), added from
    `source` as blocks need them. A 64-bit hash joins two groups once in billions of
    keys; a count only weighs a block against the budget."""

    def __init__(self, con: duckdb.DuckDBPyConnection, source: str, table: str) -> None:
        self.con, self.source, self.table = con, source, table

    def __call__(self, block: PredictionBlock) -> int:
        self.hash_keys([block])
        keys, partner_keys = (quote_identifier(key_column(keys)) for keys in block.key_sets)
        if block.crossed is None:
            sql = (
                "SELECT coalesce(sum(n * (n - 1) // 2), 0) FROM"
                f" (SELECT count(*) AS n FROM {self.table} WHERE {keys} IS NOT NULL"
                f" GROUP BY {keys})"
            )
        else:
            sql = CROSSED_PAIRS_SQL.format(table=self.table, keys=keys, partner_keys=partner_keys)
        return int(self.con.execute(sql).fetchall()[0][0])

    def hash_keys(self, blocks: Iterable[PredictionBlock]) -> None:
        """Add the blocks' key sets the table lacks (creating it if need be)."""
        present = set(table_columns(self.con, self.table))
        missing = [keys for keys in block_key_sets(blocks) if key_column(keys) not in present]
        if not present:
            self.con.execute(
                f"CREATE TEMP TABLE {self.table} AS"
                f" SELECT record_key, {key_hashes_sql(missing)} FROM {self.source}"
            )
        elif missing:
            self.con.execute(
                f"CREATE OR REPLACE TEMP TABLE {self.table} AS"
                f" SELECT t.*, {key_hashes_sql(missing)}"
                f" FROM {self.table} t JOIN {self.source} USING (record_key)"
            )


# A crossed block's pairs: a record pairs with those whose keys equal its partner keys (its
# keys reordered). Grouped by keys, group v pairs with its mirror group m (the partner keys
# of v's records): n(v) * n(m) pairs, counted from the smaller of v and m; a group that is
# its own mirror (forename and surname alike) pairs within itself.
CROSSED_PAIRS_SQL = """
WITH groups AS (
    SELECT {keys} AS v, any_value({partner_keys}) AS m, count(*) AS n
    FROM {table} WHERE {keys} IS NOT NULL GROUP BY {keys}
)
SELECT coalesce(sum(CASE WHEN a.v = a.m THEN a.n * (a.n - 1) // 2 ELSE a.n * b.n END), 0)
FROM groups a JOIN groups b ON b.v = a.m
WHERE a.v <= a.m
"""


class BlockNotCounted(Exception):
    """A block the published plan has no count or no hashed keys for."""


class DeltaPairCounter:
    """A block's pairs tonight, as the published count plus what changed: the groups the
    changed and removed records left (their published keys, in `published`) and the ones
    the new and changed records join (`changed`), sized over the published keys.

    Tables: `published` (link_input: every record's hashed keys as last linked),
    `stale_records` (its rows that no longer hold: changed and removed records) and
    `changed` (tonight's rows of the new and changed records, hashed as `published`).
    """

    def __init__(
        self, con: duckdb.DuckDBPyConnection, counts: dict[str, int], published: str, changed: str
    ) -> None:
        self.con, self.counts, self.published, self.changed = con, counts, published, changed
        self.columns = set(table_columns(con, published))
        self.deltas: dict[tuple[str, str], int] = {}  # (keys, partner keys) -> change

    def __call__(self, block: PredictionBlock) -> int:
        if not self.counted(block):
            raise BlockNotCounted(block.name)
        columns = self._key_columns(block)
        if columns not in self.deltas:
            self.count_deltas([block])
        return self.counts[block.name] + self.deltas[columns]

    def counted(self, block: PredictionBlock) -> bool:
        """Whether the published plan counted this block and kept its hashed keys."""
        return block.name in self.counts and set(self._key_columns(block)) <= self.columns

    def count_deltas(self, blocks: Iterable[PredictionBlock]) -> None:
        """The change of every counted block's pairs, in one statement: one per block
        costs a third more, for a dozen scans of the published keys either way."""
        wanted = {self._key_columns(b) for b in blocks if self.counted(b)} - self.deltas.keys()
        if not wanted:
            return
        parts = [
            f"SELECT {i} AS block, * FROM ("
            + DELTA_PAIRS_SQL.format(
                published=self.published,
                changed=self.changed,
                keys=quote_identifier(keys),
                partner_keys=quote_identifier(partner_keys),
            )
            + ")"
            for i, (keys, partner_keys) in enumerate(sorted(wanted))
        ]
        rows = dict(self.con.execute(" UNION ALL ".join(parts)).fetchall())
        for i, columns in enumerate(sorted(wanted)):
            self.deltas[columns] = int(rows[i])

    @staticmethod
    def _key_columns(block: PredictionBlock) -> tuple[str, str]:
        keys, partner_keys = (key_column(keys) for keys in block.key_sets)
        return keys, partner_keys


# The change in a block's pairs: for every group a moved record left or joins (and its
# mirror group, for a crossed block; a plain block's groups are their own mirrors), its
# pairs after less its pairs before, counted as PairCounter counts them.
DELTA_PAIRS_SQL = """
WITH moved AS (
    SELECT {keys} AS v, {partner_keys} AS m, -1 AS d FROM stale_records
    WHERE {keys} IS NOT NULL
    UNION ALL
    SELECT {keys}, {partner_keys}, 1 FROM {changed} WHERE {keys} IS NOT NULL
),
groups AS (
    SELECT DISTINCT v, m FROM (SELECT v, m FROM moved UNION ALL SELECT m, v FROM moved)
),
before AS (
    SELECT {keys} AS v, count(*) AS n FROM {published}
    WHERE {keys} IN (SELECT v FROM groups) GROUP BY {keys}
),
sizes AS (
    SELECT g.v, g.m, coalesce(b.n, 0) AS n0, coalesce(b.n, 0) + coalesce(d.d, 0) AS n1
    FROM groups g
    LEFT JOIN before b USING (v)
    LEFT JOIN (SELECT v, sum(d) AS d FROM moved GROUP BY v) d USING (v)
)
SELECT coalesce(sum(CASE
    WHEN a.v = a.m THEN a.n1 * (a.n1 - 1) // 2 - a.n0 * (a.n0 - 1) // 2
    ELSE a.n1 * b.n1 - a.n0 * b.n0 END), 0)
FROM sizes a JOIN sizes b ON b.v = a.m
WHERE a.v <= a.m
"""


def _per(pairs: int, records: int) -> float:
    return round(pairs / max(records, 1), 2)
