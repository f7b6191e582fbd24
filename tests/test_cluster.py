"""Clustering respects hard constraints, whatever the scores say."""

from __future__ import annotations

import pandas as pd

from linkage.link.cluster import cluster_records


def records(*rows: tuple[str, str, str | None, str | None]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"record_key": k, "source": s, "chi": chi, "scn": scn, "pnc_id": None}
            for k, s, chi, scn in rows
        ]
    )


def edges(*rows: tuple[str, str, float]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "record_key_l": left,
                "record_key_r": right,
                "match_probability": p,
                "match_weight": p * 20,
            }
            for left, right, p in rows
        ]
    )


def persons(result) -> list[list[str]]:  # noqa: ANN001
    groups: dict[str, list[str]] = {}
    for key, person in result.person_of.items():
        groups.setdefault(person, []).append(key)
    return sorted(sorted(group) for group in groups.values())


def test_strong_edges_join_records() -> None:
    result = cluster_records(
        records(("h:1", "health", "1", None), ("p:1", "police", None, None)),
        edges(("h:1", "p:1", 0.99)),
        0.9,
        0.5,
        [],
    )
    assert persons(result) == [["h:1", "p:1"]] and result.review == []


def test_a_weak_record_cannot_chain_two_chis_together() -> None:
    # police record p:1 looks like both health records; they hold different CHIs
    result = cluster_records(
        records(
            ("h:1", "health", "111", None),
            ("h:2", "health", "222", None),
            ("p:1", "police", None, None),
        ),
        edges(("h:1", "p:1", 0.98), ("h:2", "p:1", 0.97)),
        0.9,
        0.5,
        [],
    )
    assert persons(result) == [["h:1", "p:1"], ["h:2"]]
    assert result.refused == 1 and result.review[0].reason == "refused: different chi"


def test_one_record_per_person_sources_stay_apart() -> None:
    # twins at school: two pupils, never one person, even if a health record bridges them
    result = cluster_records(
        records(
            ("e:1", "education", None, None),
            ("e:2", "education", None, None),
            ("h:1", "health", None, None),
        ),
        edges(("e:1", "h:1", 0.99), ("e:2", "h:1", 0.95), ("e:1", "e:2", 0.93)),
        0.9,
        0.5,
        ["education"],
    )
    assert persons(result) == [["e:1", "h:1"], ["e:2"]]
    assert all(item.reason.startswith("refused: two records") for item in result.review)


def test_doubtful_edges_go_to_review_not_into_persons() -> None:
    result = cluster_records(
        records(("h:1", "health", None, None), ("p:1", "police", None, None)),
        edges(("h:1", "p:1", 0.7)),
        0.9,
        0.5,
        [],
    )
    assert persons(result) == [["h:1"], ["p:1"]]
    assert [(r.reason, r.match_probability) for r in result.review] == [("doubtful link", 0.7)]


def test_same_edges_in_any_order_give_the_same_persons() -> None:
    recs = records(*[(f"h:{i}", "health", None, None) for i in range(6)])
    scored = edges(
        ("h:0", "h:1", 0.99), ("h:1", "h:2", 0.95), ("h:3", "h:4", 0.92), ("h:4", "h:5", 0.6)
    )
    first = cluster_records(recs, scored, 0.9, 0.5, [])
    second = cluster_records(recs, scored.iloc[::-1], 0.9, 0.5, [])
    assert first.person_of == second.person_of
