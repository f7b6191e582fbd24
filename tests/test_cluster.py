"""Clustering respects hard constraints and guards, whatever the scores say."""

from __future__ import annotations

import math

import pandas as pd
import pyarrow as pa
import pytest

from linkage.link.cluster import ClusterSettings, cluster_records
from linkage.link.model import EXACT_GAMMA

SETTINGS = ClusterSettings(link_threshold=0.9, review_threshold=0.5, weak_link=0.95)
# Levels of a typical strong pair: forename, surname and date of birth all exact.
EXACT = {f"gamma_{name}": level for name, level in EXACT_GAMMA.items()}


def records(*rows: tuple[str, str, str | None, str | None]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"record_key": k, "source": s, "chi": chi, "scn": scn, "pnc_id": None}
            for k, s, chi, scn in rows
        ]
    )


def edge(left: str, right: str, probability: float, **levels: int) -> dict:
    weight = math.log2(probability / (1 - probability)) if probability < 1 else 40.0
    return (
        {"record_key_l": left, "record_key_r": right}
        | {"match_probability": probability, "match_weight": weight}
        | EXACT
        | {"gamma_chi": -1, "gamma_scn": -1, "gamma_pnc_id": -1}
        | {f"gamma_{name}": level for name, level in levels.items()}
    )


def edges(*rows: tuple) -> pd.DataFrame:
    return pd.DataFrame([row if isinstance(row, dict) else edge(*row) for row in rows])


def persons(result) -> list[list[str]]:  # noqa: ANN001
    groups: dict[str, list[str]] = {}
    for key, person in result.person_of.items():
        groups.setdefault(person, []).append(key)
    return sorted(sorted(group) for group in groups.values())


def reasons(result) -> list[str]:  # noqa: ANN001
    return [item.reason for item in result.review]


def test_strong_edges_join_records() -> None:
    result = cluster_records(
        records(("h:1", "health", "1", None), ("p:1", "police", None, None)),
        edges(("h:1", "p:1", 0.99)),
        SETTINGS,
    )
    assert persons(result) == [["h:1", "p:1"]] and result.review == []


def test_a_weak_record_cannot_chain_two_chis_together() -> None:
    # police record p:1 looks like both health records, but much more like h:1
    result = cluster_records(
        records(
            ("h:1", "health", "111", None),
            ("h:2", "health", "222", None),
            ("p:1", "police", None, None),
        ),
        edges(("h:1", "p:1", 0.9999), ("h:2", "p:1", 0.91)),
        SETTINGS,
    )
    assert persons(result) == [["h:1", "p:1"], ["h:2"]]
    assert result.refused == 1 and reasons(result) == ["refused: different chi"]


def test_a_record_as_like_two_people_who_cannot_be_one_joins_neither() -> None:
    # father and son of one name: a police record with no date of birth fits both
    result = cluster_records(
        records(
            ("h:father", "health", "111", None),
            ("h:son", "health", "222", None),
            ("p:1", "police", None, None),
        ),
        edges(("h:father", "p:1", 0.995), ("h:son", "p:1", 0.99)),
        SETTINGS,
    )
    assert persons(result) == [["h:father"], ["h:son"], ["p:1"]]
    assert result.ambiguous == {"p:1"}
    assert set(reasons(result)) == {"ambiguous: matches two persons who cannot be one"}


def test_possible_twins_are_not_linked_without_a_shared_identifier() -> None:
    twins = records(("h:1", "health", None, None), ("h:2", "health", None, None))
    unrelated_forenames = edge("h:1", "h:2", 0.999, forename=0)
    result = cluster_records(twins, edges(unrelated_forenames), SETTINGS)
    assert persons(result) == [["h:1"], ["h:2"]] and reasons(result) == ["possible twins"]

    same_chi = edge("h:1", "h:2", 0.999, forename=0, chi=1)
    result = cluster_records(twins, edges(same_chi), SETTINGS)
    assert persons(result) == [["h:1", "h:2"]]


def test_one_record_per_person_sources_stay_apart() -> None:
    # twins at school: two pupils, never one person, even if a health record bridges them
    result = cluster_records(
        records(
            ("e:1", "education", None, None),
            ("e:2", "education", None, None),
            ("h:1", "health", None, None),
        ),
        edges(("e:1", "h:1", 0.99999), ("e:2", "h:1", 0.95), ("e:1", "e:2", 0.93)),
        ClusterSettings(0.9, 0.5, 0.95, frozenset({"education"})),
    )
    assert persons(result) == [["e:1", "h:1"], ["e:2"]]
    assert all(reason.startswith("refused: two records") for reason in reasons(result))


def test_doubtful_edges_go_to_review_not_into_persons() -> None:
    result = cluster_records(
        records(("h:1", "health", None, None), ("p:1", "police", None, None)),
        edges(("h:1", "p:1", 0.7)),
        SETTINGS,
    )
    assert persons(result) == [["h:1"], ["p:1"]]
    assert [(r.reason, r.match_probability) for r in result.review] == [("doubtful link", 0.7)]


def test_a_person_held_together_by_one_weak_edge_is_flagged() -> None:
    result = cluster_records(
        records(*[(f"h:{i}", "health", None, None) for i in range(3)]),
        edges(("h:0", "h:1", 0.999), ("h:1", "h:2", 0.92)),
        SETTINGS,
    )
    assert persons(result) == [["h:0", "h:1", "h:2"]]
    assert [(r.record_key_l, r.record_key_r, r.reason) for r in result.review] == [
        ("h:1", "h:2", "weak link")
    ]


def test_same_edges_in_any_order_give_the_same_persons() -> None:
    recs = records(*[(f"h:{i}", "health", None, None) for i in range(6)])
    scored = edges(
        ("h:0", "h:1", 0.99), ("h:1", "h:2", 0.95), ("h:3", "h:4", 0.92), ("h:4", "h:5", 0.6)
    )
    first = cluster_records(recs, scored, SETTINGS)
    second = cluster_records(recs, scored.iloc[::-1], SETTINGS)
    assert first.person_of == second.person_of and first.review == second.review


def test_records_in_any_row_order_or_arrow_chunking_give_the_same_persons() -> None:
    # model_input's frames come from Arrow, in several chunks a column at a million records
    recs = records(
        ("h:1", "health", "111", None),
        ("h:2", "health", "222", None),
        ("p:1", "police", None, None),
        ("e:1", "education", None, "9"),
    )
    scored = edges(("h:1", "p:1", 0.9999), ("h:2", "p:1", 0.91), ("e:1", "h:2", 0.999))
    table = pa.Table.from_pandas(recs, preserve_index=False)
    chunked = pa.concat_tables([table.slice(0, 2), table.slice(2)]).to_pandas()
    first = cluster_records(recs, scored, SETTINGS)
    for other in (recs.iloc[::-1].reset_index(drop=True), chunked):
        again = cluster_records(other, scored, SETTINGS)
        assert again.person_of == first.person_of and again.review == first.review
    assert persons(first) == [["e:1", "h:2"], ["h:1", "p:1"]]


def test_without_an_ambiguous_record_a_merge_it_blocked_goes_ahead() -> None:
    # p:a (no identifier) joins h:F (CHI 1) and p:r; p:r-h:S is then refused (CHI 1 vs 2)
    # only because p:a brought CHI 1 in. p:a is ambiguous (p:a-h:Z is refused about as
    # strongly as its best edge), so it is detached: nothing keeps p:r from h:S any more,
    # and the doubtful edge p:r-h:T, which leaves p:a's first person, stays in review.
    result = cluster_records(
        records(
            ("h:F", "health", "1", None),
            ("h:S", "health", "2", None),
            ("h:T", "health", "4", None),
            ("h:Z", "health", "3", None),
            ("p:a", "police", None, None),
            ("p:r", "police", None, None),
        ),
        edges(
            ("h:F", "p:a", 0.999999),
            ("p:a", "p:r", 0.999998),
            ("h:Z", "p:a", 0.999996),
            ("h:S", "p:r", 0.99),
            ("h:T", "p:r", 0.6),
        ),
        SETTINGS,
    )
    assert result.ambiguous == {"p:a"}
    assert persons(result) == [["h:F"], ["h:S", "p:r"], ["h:T"], ["h:Z"], ["p:a"]]
    assert ("h:T", "p:r", "doubtful link") in {
        (item.record_key_l, item.record_key_r, item.reason) for item in result.review
    }


# Levels in the full model: a sex comparison's else level is 0, an address's else level 0.
ONE_TYPO = EXACT_GAMMA["forename"] - 5  # "One typo"


def test_one_agencys_rows_with_a_forename_typo_still_link() -> None:
    """Police holds many rows of one person; a typo between two is not a twin."""
    rows = records(("p:1", "police", None, None), ("p:2", "police", None, None))
    result = cluster_records(rows, edges(edge("p:1", "p:2", 0.999, forename=ONE_TYPO)), SETTINGS)
    assert persons(result) == [["p:1", "p:2"]]


@pytest.mark.parametrize(
    ("case", "left", "right", "levels", "reason"),
    [
        ("boy and girl", "h:1", "p:1", {"sex": 0}, "possible twins"),
        ("unnamed newborns", "h:1", "h:2", {"forename": -1}, "possible twins"),
        (
            "father and son of one name",
            "h:1",
            "p:1",
            {"date_of_birth": 0},
            "possible relatives: birth dates far apart",
        ),
        (
            "namesakes at one agency",
            "h:1",
            "h:2",
            {"address": 0},
            "possible namesakes: one agency, unrelated addresses",
        ),
    ],
)
def test_pairs_only_an_identifier_can_link_are_kept_apart(
    case: str, left: str, right: str, levels: dict[str, int], reason: str
) -> None:
    del case
    people = records(
        (left, left.split(":")[0], None, None), (right, right.split(":")[0], None, None)
    )
    result = cluster_records(people, edges(edge(left, right, 0.999, **levels)), SETTINGS)
    assert persons(result) == [[left], [right]] and reasons(result) == [reason]


def test_a_record_matching_both_twins_cannot_chain_them() -> None:
    """A nameless record links to twin A and twin B: kept apart, they stay two people."""
    people = records(("h:a", "health", None, None), ("h:b", "health", None, None))
    people = pd.concat([people, records(("p:x", "police", None, None))], ignore_index=True)
    result = cluster_records(
        people,
        edges(
            edge("h:a", "h:b", 0.999, forename=0),
            edge("h:a", "p:x", 0.999, forename=-1),
            edge("h:b", "p:x", 0.998, forename=-1),
        ),
        SETTINGS,
    )
    assert persons(result) == [["h:a"], ["h:b"], ["p:x"]]  # p:x is ambiguous: joins neither
    assert "possible twins" in reasons(result)
