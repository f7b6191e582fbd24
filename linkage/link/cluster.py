"""Scored edges -> persons, never breaking a hard constraint.

Edges are merged strongest first (union-find). A merge is refused when the joined person
would hold two different valid values of one identifier (CHI, SCN, PNC id) or two
records of a source that guarantees one record per person; chaining can then never glue
two people together through one weak record. Refused merges, and edges in the doubtful
band between the review and link thresholds that would join two persons, go to review
with the reason.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import pandas as pd

IDENTIFIERS = ("chi", "scn", "pnc_id")


@dataclass
class _Person:
    keys: list[str]
    identifiers: dict[str, str] = field(default_factory=dict)
    exclusive_sources: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class ReviewItem:
    record_key_l: str
    record_key_r: str
    match_probability: float
    reason: str


@dataclass
class Clustering:
    person_of: dict[str, str]  # record_key -> provisional person key (its first record)
    review: list[ReviewItem]
    refused: int


def _conflict(a: _Person, b: _Person) -> str | None:
    for name in IDENTIFIERS:
        if (
            name in a.identifiers
            and name in b.identifiers
            and a.identifiers[name] != b.identifiers[name]
        ):
            return f"different {name}"
    shared = a.exclusive_sources & b.exclusive_sources
    if shared:
        return f"two records of one-record-per-person source {sorted(shared)[0]}"
    return None


def cluster_records(
    records: pd.DataFrame,
    edges: pd.DataFrame,
    link_threshold: float,
    review_threshold: float,
    exclusive_sources: Iterable[str],
) -> Clustering:
    """Cluster records (record_key, source, identifiers) along edges (pairs + probabilities)."""
    exclusive = set(exclusive_sources)
    persons: dict[str, _Person] = {}
    parent: dict[str, str] = {}
    for row in records.itertuples(index=False):
        key = row.record_key
        parent[key] = key
        ids = {
            name: getattr(row, name) for name in IDENTIFIERS if isinstance(getattr(row, name), str)
        }
        persons[key] = _Person([key], ids, {row.source} if row.source in exclusive else set())

    def root(key: str) -> str:
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    review: list[ReviewItem] = []
    refused = 0
    ordered = edges.sort_values(
        ["match_weight", "record_key_l", "record_key_r"], ascending=[False, True, True]
    )
    for edge in ordered.itertuples(index=False):
        left, right = root(edge.record_key_l), root(edge.record_key_r)
        if left == right:
            continue
        if edge.match_probability < link_threshold:
            if edge.match_probability >= review_threshold:
                review.append(
                    ReviewItem(
                        edge.record_key_l,
                        edge.record_key_r,
                        float(edge.match_probability),
                        "doubtful link",
                    )
                )
            continue
        reason = _conflict(persons[left], persons[right])
        if reason:
            refused += 1
            review.append(
                ReviewItem(
                    edge.record_key_l,
                    edge.record_key_r,
                    float(edge.match_probability),
                    f"refused: {reason}",
                )
            )
            continue
        keep, absorb = sorted((left, right))  # deterministic whatever the edge order
        parent[absorb] = keep
        kept, absorbed = persons[keep], persons.pop(absorb)
        kept.keys += absorbed.keys
        kept.identifiers = absorbed.identifiers | kept.identifiers
        kept.exclusive_sources |= absorbed.exclusive_sources
    person_of = {key: root(key) for key in parent}
    return Clustering(person_of, review, refused)
