"""Blocking on a budget: every prediction block's pairs counted before Splink predicts.

A block on equal values makes sum(n * (n - 1) / 2) pairs over its groups, so a block on
names alone grows with the square of a name's frequency: harmless where surnames are
varied, ruinous where a handful of surnames are shared by a quarter of people. Each
night every block is counted (one GROUP BY, linear in records); one over budget (pairs
per record, `linkage.max_pairs_per_record`) is tightened into bounded alternatives (the
same keys plus year of birth; plus the place), or dropped when none fits, and the counts,
actions and reasons go into `blocking_rule_run` and the run report.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import duckdb
from splink.internals.blocking_rule_creator import BlockingRuleCreator

from linkage.link.model import ModelShape, PredictionBlock, prediction_blocks

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
) -> BlockingPlan:
    """The shape's prediction blocks, each kept, tightened or dropped to fit the budget;
    pairs are counted over `table` (the records Splink will read) on `con`."""
    records = int(con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0])
    budget = max(max_pairs_per_record * records, floor_pairs)
    plan = BlockingPlan(blocks=[])
    count_pairs = PairCounter(con, table)
    for block in prediction_blocks(shape):
        _fit(count_pairs, block, shape, budget, records, plan)
    return plan


def _fit(
    count_pairs: PairCounter,
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
        for keys in alternatives:
            tighter = block.tightened(*keys)
            tighter_pairs = count_pairs(tighter)
            if tighter_pairs <= budget:
                fitting.append((tighter, tighter_pairs))
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


@dataclass(frozen=True)
class PairCounter:
    """Pairs a block makes among a table's records, from group sizes alone."""

    con: duckdb.DuckDBPyConnection
    table: str

    def __call__(self, block: PredictionBlock) -> int:
        held = " AND ".join(f"({key}) IS NOT NULL" for key in block.keys)
        groups = self._groups(block.keys, held)
        if block.crossed is None:
            sql = f"SELECT coalesce(sum(n * (n - 1) // 2), 0) FROM ({groups})"
        else:  # the crossed keys are these keys reordered: the same groups, joined swapped
            swapped = [block.keys.index(key) for key in block.crossed]
            join = " AND ".join(f"a.k{i} = b.k{j}" for i, j in enumerate(swapped))
            # each crossed pair is met from both of its records: halve the product
            sql = (
                f"WITH g AS ({groups}) SELECT coalesce(sum(a.n * b.n) // 2, 0)"
                f" FROM g a JOIN g b ON {join}"
            )
        return int(self.con.execute(sql).fetchall()[0][0])

    def _groups(self, keys: tuple[str, ...], held: str) -> str:
        named = ", ".join(f"{key} AS k{i}" for i, key in enumerate(keys))
        return f"SELECT {named}, count(*) AS n FROM {self.table} WHERE {held} GROUP BY ALL"


def _per(pairs: int, records: int) -> float:
    return round(pairs / max(records, 1), 2)
