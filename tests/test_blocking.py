"""Blocking on a budget: exact pair counts, and blocks over budget tightened or dropped."""

from __future__ import annotations

from datetime import date

import duckdb
import pandas as pd
import pytest

from linkage.identifiers import default_registry
from linkage.link.blocking import BlockNotCounted, DeltaPairCounter, PairCounter, plan_blocking
from linkage.link.model import ModelShape, PredictionBlock, filled_columns

COLUMNS = [
    "record_key",
    "forename_canonical",
    "forename_metaphone",
    "surname",
    "surname_metaphone",
    "date_of_birth",
    "postcode",
    "postcode_outward",
]


def island(people: int = 400) -> pd.DataFrame:
    """A population where two surnames and three forenames cover everyone (Lewis and
    Harris at its most extreme): a block on names alone is quadratic."""
    rows = []
    for i in range(people):
        forename = ["IAIN", "MARY", "DONALD"][i % 3]
        surname = ["MACLEOD", "MACDONALD"][i % 2]
        rows.append(
            (
                f"r{i}",
                forename,
                forename[:3],
                surname,
                surname[:4],
                date(1950 + i % 60, 1 + i % 12, 1 + i % 27),
                f"HS{i % 40} {i % 7}AB",
                f"HS{i % 40}",
            )
        )
    return pd.DataFrame(rows, columns=COLUMNS)


def brute_force_pairs(records: pd.DataFrame, block: PredictionBlock) -> int:
    """Pairs by joining every record with every other under the block's Splink rule."""
    rule = block.rule().get_blocking_rule("duckdb").blocking_rule_sql
    with duckdb.connect() as con:
        con.register("records", records)
        return int(
            con.execute(
                f"SELECT count(*) FROM records l JOIN records r"
                f" ON ({rule}) AND l.record_key < r.record_key"
            ).fetchall()[0][0]
        )


@pytest.mark.parametrize(
    "block",
    [
        PredictionBlock(("forename_canonical", "surname")),
        PredictionBlock(("forename_canonical", "surname", "year(date_of_birth)")),
        PredictionBlock(("postcode", "forename_metaphone")),
        PredictionBlock(
            ("date_of_birth", "forename_metaphone", "surname_metaphone"),
            ("date_of_birth", "surname_metaphone", "forename_metaphone"),
        ),
    ],
    ids=lambda block: block.name,
)
def test_pairs_are_counted_exactly_from_group_sizes(block: PredictionBlock) -> None:
    records = island()
    records.loc[::5, "surname"] = None  # a missing key makes no pair
    records.loc[7, ["forename_metaphone", "surname_metaphone"]] = ["MACL", "IAI"]  # swapped
    records.loc[8, "date_of_birth"] = records.loc[7, "date_of_birth"]
    # forename and surname alike: a record pairs crossed with its own group
    records.loc[[9, 10, 11], ["forename_metaphone", "surname_metaphone"]] = "LEE"
    records.loc[[10, 11], "date_of_birth"] = records.loc[9, "date_of_birth"]
    with duckdb.connect() as con:
        con.register("records", records)
        counted = PairCounter(con, "records", "record_keys")(block)
    assert counted == brute_force_pairs(records, block)


def test_pairs_counted_from_what_changed_equal_a_count_of_everything() -> None:
    """An incremental night counts a block as the published count plus what the changed
    and removed records took away and the new and changed ones brought."""
    blocks = [
        PredictionBlock(("forename_canonical", "surname")),
        PredictionBlock(
            ("date_of_birth", "forename_metaphone", "surname_metaphone"),
            ("date_of_birth", "surname_metaphone", "forename_metaphone"),
        ),
    ]
    before = island()
    before.loc[[9, 10], ["forename_metaphone", "surname_metaphone"]] = "LEE"
    before.loc[10, "date_of_birth"] = before.loc[9, "date_of_birth"]
    after = before.drop(index=range(0, 40, 4)).copy()  # some leave
    after.loc[41, "surname"] = "MACLEOD"  # some change
    after.loc[[42, 43], ["forename_metaphone", "surname_metaphone"]] = ["MACD", "DON"]
    after.loc[43, "date_of_birth"] = after.loc[42, "date_of_birth"]
    after.loc[45, ["forename_metaphone", "surname_metaphone"]] = "LEE"
    after.loc[45, "date_of_birth"] = after.loc[9, "date_of_birth"]
    arrived = island(460).iloc[400:].assign(record_key=lambda f: "new" + f["record_key"])
    after = pd.concat([after, arrived], ignore_index=True)
    changed = after.merge(before, how="left", indicator=True)
    changed = changed[changed["_merge"] == "left_only"]
    stale = before[
        ~before["record_key"].isin(after["record_key"])
        | before["record_key"].isin(changed["record_key"])
    ]
    with duckdb.connect() as con:
        con.register("before", before)
        con.register("changed", changed.drop(columns="_merge"))
        con.register("after", after)
        published = PairCounter(con, "before", "published")
        published.hash_keys(blocks)
        counts = {block.name: published(block) for block in blocks}
        con.register("stale", stale[["record_key"]])
        con.execute(
            "CREATE TABLE stale_records AS"
            " SELECT * FROM published SEMI JOIN stale USING (record_key)"
        )
        PairCounter(con, "changed", "changed_keys").hash_keys(blocks)
        delta = DeltaPairCounter(con, counts, "published", "changed_keys")
        tonight = PairCounter(con, "after", "tonight")
        for block in blocks:
            assert delta(block) == tonight(block) == brute_force_pairs(after, block)
            assert delta(block) != counts[block.name], "the changes moved every count"
        together = DeltaPairCounter(con, counts, "published", "changed_keys")
        together.count_deltas(blocks)  # one statement for every block, as a night does
        assert len(together.deltas) == len(blocks)
        assert [together(block) for block in blocks] == [tonight(block) for block in blocks]
        with pytest.raises(BlockNotCounted):
            delta(PredictionBlock(("postcode", "forename_metaphone")))


def test_a_crossed_block_must_reorder_its_own_keys() -> None:
    """Counting halves the crossed pairs, which holds only when a pair matches both ways."""
    with pytest.raises(ValueError, match="reordered"):
        PredictionBlock(("forename_metaphone",), ("surname_metaphone",))
    tightened = PredictionBlock(("a", "b"), ("b", "a")).tightened("year(date_of_birth)")
    assert tightened.crossed == ("b", "a", "year(date_of_birth)")


def plan_for(records: pd.DataFrame, max_pairs_per_record: float):  # noqa: ANN201
    shape = ModelShape(filled_columns(records, minimum=1), default_registry())
    with duckdb.connect() as con:
        con.register("records", records)
        return plan_blocking(con, "records", shape, max_pairs_per_record, floor_pairs=0)


def test_a_names_block_over_budget_is_tightened_by_year_of_birth_and_by_place() -> None:
    plan = plan_for(island(), max_pairs_per_record=5)
    actions = {count.rule: (count.action, count.why) for count in plan.counts}
    over = actions["forename_canonical + surname"]
    assert over[0] == "over budget" and "pairs per record, over the budget of 5" in over[1]
    assert actions["forename_canonical + surname + year(date_of_birth)"][0] == "tightened"
    assert actions["forename_canonical + surname + postcode_outward"][0] == "tightened"
    names = [block.name for block in plan.blocks]
    assert "forename_canonical + surname" not in names
    assert all(count.pairs <= 5 * 400 for count in plan.counts if count.action != "over budget")


def test_a_block_nothing_can_bound_is_dropped_and_the_rest_kept() -> None:
    records = island()
    records["postcode"] = records["postcode_outward"] = None
    records["date_of_birth"] = date(2000, 1, 1)  # everyone born the same day: no bound
    plan = plan_for(records, max_pairs_per_record=1)
    dropped = [count.rule for count in plan.counts if count.action == "dropped"]
    assert "forename_canonical + surname" in dropped
    assert plan.blocks, "blocks within the budget are kept"
    assert all(count.pairs <= 400 for count in plan.counts if count.action in ("kept", "tightened"))


def test_within_budget_every_block_is_kept_as_the_model_has_it() -> None:
    plan = plan_for(island(), max_pairs_per_record=1000)
    assert {count.action for count in plan.counts} == {"kept"}
    assert plan.changes() == []


def test_pairs_per_block_are_recorded_every_link_run(linked_sample) -> None:  # noqa: ANN001
    with duckdb.connect(str(linked_sample.warehouse), read_only=True) as con:
        runs = con.execute(
            "SELECT count(DISTINCT run_id), count(*) FILTER (WHERE action = 'kept'),"
            " min(pairs) >= 0 FROM blocking_rule_run"
        ).fetchall()[0]
        changes = con.execute("SELECT DISTINCT blocking_changes FROM link_run").fetchall()
    assert runs[0] == len(linked_sample.reports) and runs[1] > 0 and runs[2]
    assert changes == [(None,)], "the sample's blocks are all within the default budget"
    blocking = linked_sample.reports[-1].stages["linkage"]["blocking"]
    assert {row["action"] for row in blocking} == {"kept"}
    assert any(row["rule"] == "forename_canonical + surname" for row in blocking)
