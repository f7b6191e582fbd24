"""Clusters -> stable person ids, with every change recorded.

Each cluster inherits the id of the published person it shares most records with. A merge
keeps one id (the largest share) and records the others as merged into it; a split keeps
the id for the largest part and mints new ids for the rest. Ids are opaque sequence
numbers (P0000000001), minted in a deterministic order, so the same inputs always give the
same ids and an id says nothing about the person.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import pandas as pd

ID_PREFIX = "P"
ID_DIGITS = 10


class IdChange(NamedTuple):  # a tuple: a first link records one per person, a million
    person_id: str
    event: str  # created | split | merged | retired
    related_person_id: str | None  # split from / merged into
    records: int  # records of the person this change concerns
    reason: str


@dataclass
class IdAssignment:
    person_of: pd.DataFrame  # record_key, person_id
    changes: list[IdChange]


def format_person_id(number: int) -> str:
    return f"{ID_PREFIX}{number:0{ID_DIGITS}d}"


def person_number(person_id: str) -> int:
    return int(person_id.removeprefix(ID_PREFIX))


def assign_person_ids(
    clusters: pd.DataFrame, previous: pd.DataFrame, next_number: int
) -> IdAssignment:
    """clusters (record_key, cluster_key) + previous (record_key, person_id) -> stable ids."""
    overlap = (
        clusters.merge(previous, on="record_key")
        .groupby(["cluster_key", "person_id"], as_index=False)
        .size()
        .rename(columns={"size": "shared"})
        .sort_values(["shared", "person_id", "cluster_key"], ascending=[False, True, True])
    )
    id_of_cluster: dict[str, str] = {}
    cluster_of_id: dict[str, str] = {}
    for cluster_key, person_id in zip(
        overlap["cluster_key"].tolist(), overlap["person_id"].tolist(), strict=True
    ):
        if cluster_key not in id_of_cluster and person_id not in cluster_of_id:
            id_of_cluster[cluster_key] = person_id
            cluster_of_id[person_id] = cluster_key

    # plain dicts: a label lookup on a Series costs ~5 us, a million of them on a first link;
    # built from lists (_as_dict), as Series.to_dict() iterates Arrow-backed strings one by one
    sizes = _as_dict(clusters.groupby("cluster_key").size())
    changes: list[IdChange] = []
    largest_source = _as_dict(
        overlap.drop_duplicates("cluster_key").set_index("cluster_key")["person_id"]
    )
    unnamed = sorted(set(sizes) - set(id_of_cluster))
    minted = [
        f"{ID_PREFIX}{n:0{ID_DIGITS}d}" for n in range(next_number, next_number + len(unnamed))
    ]
    id_of_cluster.update(zip(unnamed, minted, strict=True))
    for cluster_key, person_id in zip(unnamed, minted, strict=True):
        parent = largest_source.get(cluster_key)
        if parent is not None:
            changes.append(
                IdChange(person_id, "split", parent, sizes[cluster_key], "records split off")
            )
        else:
            changes.append(IdChange(person_id, "created", None, sizes[cluster_key], "new person"))

    # Published ids that no cluster inherited: merged into another person, or all gone.
    destination = _as_dict(
        overlap.drop_duplicates("person_id").set_index("person_id")["cluster_key"]
    )
    previous_sizes = _as_dict(previous.groupby("person_id").size())
    for person_id in sorted(set(previous_sizes) - set(cluster_of_id)):
        if person_id in destination:
            into = id_of_cluster[destination[person_id]]
            changes.append(
                IdChange(
                    person_id,
                    "merged",
                    into,
                    int(previous_sizes[person_id]),
                    "linked to another person",
                )
            )
        else:
            changes.append(
                IdChange(
                    person_id, "retired", None, int(previous_sizes[person_id]), "records removed"
                )
            )

    cluster_keys = clusters["cluster_key"].tolist()
    person_of = clusters.assign(person_id=[id_of_cluster[key] for key in cluster_keys])
    return IdAssignment(person_of[["record_key", "person_id"]], changes)


def _as_dict(series: pd.Series) -> dict:
    """A Series as a dict, from two lists (to_dict() costs ~1.5 s per 800k string keys)."""
    return dict(zip(series.index.tolist(), series.tolist(), strict=True))
