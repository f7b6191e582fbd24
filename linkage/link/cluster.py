"""Scored edges -> persons, never breaking a hard constraint.

Edges are merged strongest first (union-find). A merge is refused when the joined person
would hold two different valid values of one identifier (CHI, SCN, PNC id) or two
records of a source that guarantees one record per person, so chaining can never glue two
people together. Three guards protect precision where Fellegi-Sunter is weakest:

- possible twins: a pair agreeing on surname and date of birth but with unrelated forenames is never
  linked on the model's say-so (random-pair u never sees twins, so the shared surname,
  address and birth date outweigh the forename); it needs a shared identifier;
- ambiguous records: a record without identifiers that links as strongly to two persons
  who cannot be one (a father and son of one name, a record with no date of birth) is
  attached to neither;
- weak links: a person held together only by an edge below `weak_link` is flagged.

Everything refused, doubtful or flagged goes to review with its reason. An analyst's
decision on a pair (`Decisions`) outranks the model: a reviewed match links whatever the
score and the guards say; a reviewed non-match keeps the two records apart for good.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from linkage.link.model import EXACT_GAMMA, IDENTIFIERS

# A record is ambiguous when its edge to another person is within this many match-weight
# bits (a factor of 8 in likelihood) of its best edge into its own.
AMBIGUITY_MARGIN_BITS = 3.0


@dataclass(frozen=True)
class ClusterSettings:
    link_threshold: float = 0.95  # match probability at or above which records are linked
    review_threshold: float = 0.5  # edges between this and link_threshold go to review
    weak_link: float = 0.99  # persons held together by a weaker edge are flagged
    exclusive_sources: frozenset[str] = frozenset()  # one record per person


@dataclass(frozen=True)
class Decisions:
    """Reviewed pairs: (record_key_l, record_key_r) with record_key_l < record_key_r."""

    matches: frozenset[tuple[str, str]] = frozenset()
    non_matches: frozenset[tuple[str, str]] = frozenset()

    def apart(self) -> dict[str, set[str]]:
        """record key -> the records it must never share a person with."""
        partners: dict[str, set[str]] = {}
        for left, right in self.non_matches:
            partners.setdefault(left, set()).add(right)
            partners.setdefault(right, set()).add(left)
        return partners


REVIEWED_MATCH_WEIGHT = 1000.0  # merged before any scored edge


@dataclass(frozen=True)
class ReviewItem:
    record_key_l: str
    record_key_r: str
    match_probability: float
    reason: str


@dataclass
class Clustering:
    person_of: dict[str, str]  # record_key -> cluster key (its smallest record key)
    review: list[ReviewItem]
    refused: int
    ambiguous: set[str] = field(default_factory=set)


@dataclass
class _Person:
    identifiers: dict[str, str]
    exclusive_sources: set[str]


def _conflict(a: _Person, b: _Person) -> str | None:
    for name in IDENTIFIERS:
        if name in a.identifiers and name in b.identifiers:
            if a.identifiers[name] != b.identifiers[name]:
                return f"different {name}"
    shared = a.exclusive_sources & b.exclusive_sources
    if shared:
        return f"two records of one-record-per-person source {sorted(shared)[0]}"
    return None


def possible_twins(edges: pd.DataFrame) -> pd.Series:
    """Same surname and date of birth, unrelated forenames, no shared identifier."""
    same_birth = edges["gamma_date_of_birth"] == EXACT_GAMMA["date_of_birth"]
    same_surname = edges["gamma_surname"] == EXACT_GAMMA["surname"]
    unrelated_forename = edges["gamma_forename"] == 0
    shared_identifier = pd.Series(False, index=edges.index)
    for name in IDENTIFIERS:
        shared_identifier |= edges[f"gamma_{name}"] > 0
    return same_birth & same_surname & unrelated_forename & ~shared_identifier


def cluster_records(
    records: pd.DataFrame,
    edges: pd.DataFrame,
    settings: ClusterSettings,
    decisions: Decisions = Decisions(),
) -> Clustering:
    """Cluster records (record_key, source, identifiers) along scored edges."""
    edges = _apply_decisions(edges, decisions)
    twins = possible_twins(edges) & (edges["match_probability"] >= settings.review_threshold)
    review = [
        ReviewItem(e.record_key_l, e.record_key_r, float(e.match_probability), "possible twins")
        for e in edges[twins].itertuples(index=False)
    ]
    candidates = edges[~twins & (edges["match_probability"] >= settings.review_threshold)]
    apart = decisions.apart()
    first = _union(records, candidates, settings, set(), apart)
    ambiguous = _ambiguous_records(records, candidates, first)
    final = _union(records, candidates, settings, ambiguous, apart) if ambiguous else first
    review += final.review
    review += _ambiguity_reviews(candidates, ambiguous, settings)
    review += _weak_persons(candidates, final.person_of, settings)
    return Clustering(final.person_of, _sorted(review), final.refused, ambiguous)


def _apply_decisions(edges: pd.DataFrame, decisions: Decisions) -> pd.DataFrame:
    """Drop reviewed non-matches; add or promote reviewed matches above every scored edge."""
    if not decisions.matches and not decisions.non_matches:
        return edges
    pairs = list(zip(edges["record_key_l"], edges["record_key_r"], strict=True))
    decided = decisions.matches | decisions.non_matches
    kept = edges[[pair not in decided for pair in pairs]]
    reviewed = pd.DataFrame(
        [
            {"record_key_l": left, "record_key_r": right, "match_probability": 1.0}
            | {"match_weight": REVIEWED_MATCH_WEIGHT}
            for left, right in sorted(decisions.matches)
        ],
        columns=["record_key_l", "record_key_r", "match_probability", "match_weight"],
    )
    gammas = [column for column in edges.columns if column.startswith("gamma_")]
    reviewed[gammas] = -1  # no levels: not a scored pair, so no guard applies
    return pd.concat([kept, reviewed.astype(kept.dtypes.to_dict())], ignore_index=True)


@dataclass
class _UnionResult:
    person_of: dict[str, str]
    review: list[ReviewItem]
    refused: int
    refused_edges: list[tuple[str, str, float]]


def _union(
    records: pd.DataFrame,
    edges: pd.DataFrame,
    settings: ClusterSettings,
    detached: set[str],
    apart: dict[str, set[str]],
) -> _UnionResult:
    # Only records on a candidate edge (or under a decision) can join anyone: every other
    # record stays its own person, so per-record state is built for those alone.
    nodes = set(edges["record_key_l"].tolist()) | set(edges["record_key_r"].tolist()) | set(apart)
    persons: dict[str, _Person] = {}
    parent: dict[str, str] = {}
    identifier_columns = list(IDENTIFIERS)
    touched = records[records["record_key"].isin(nodes)]
    for key, source, *values in zip(
        *_columns(touched, ["record_key", "source", *identifier_columns]), strict=True
    ):
        parent[key] = key
        ids = {n: v for n, v in zip(identifier_columns, values, strict=True) if isinstance(v, str)}
        exclusive = {source} if source in settings.exclusive_sources else set()
        persons[key] = _Person(ids, exclusive)

    def root(key: str) -> str:
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    # per person, its records that a reviewed non-match keeps from some other record
    constrained: dict[str, set[str]] = {key: {key} for key in apart}

    def kept_apart(left: str, right: str) -> bool:
        return any(
            other in parent and root(other) == right  # a decided record may have left since
            for key in constrained.get(left, ())
            for other in apart[key]
        )

    review: list[ReviewItem] = []
    refused: list[tuple[str, str, float]] = []
    ordered = edges.sort_values(
        ["match_weight", "record_key_l", "record_key_r"], ascending=[False, True, True]
    )
    for key_l, key_r, weight, probability in zip(
        *_columns(ordered, ["record_key_l", "record_key_r", "match_weight", "match_probability"]),
        strict=True,
    ):
        if key_l in detached or key_r in detached:
            continue
        left, right = root(key_l), root(key_r)
        if left == right:
            continue
        if probability < settings.link_threshold:
            review.append(ReviewItem(key_l, key_r, float(probability), "doubtful link"))
            continue
        if kept_apart(left, right) or kept_apart(right, left):
            review.append(ReviewItem(key_l, key_r, float(probability), "refused: reviewed apart"))
            continue
        reviewed = weight >= REVIEWED_MATCH_WEIGHT
        reason = None if reviewed else _conflict(persons[left], persons[right])
        if reason:
            refused.append((key_l, key_r, float(weight)))
            review.append(ReviewItem(key_l, key_r, float(probability), f"refused: {reason}"))
            continue
        keep, absorb = sorted((left, right))  # deterministic whatever the edge order
        parent[absorb] = keep
        kept, absorbed = persons[keep], persons.pop(absorb)
        kept.identifiers = absorbed.identifiers | kept.identifiers
        kept.exclusive_sources |= absorbed.exclusive_sources
        if absorb in constrained:
            constrained.setdefault(keep, set()).update(constrained.pop(absorb))
    all_keys = records["record_key"].tolist()
    person_of = dict(zip(all_keys, all_keys, strict=True))
    person_of.update((key, root(key)) for key in parent)
    return _UnionResult(person_of, review, len(refused), refused)


def _columns(frame: pd.DataFrame, names: list[str]) -> list[list]:
    """Columns as Python lists: iterating rows of Arrow-backed strings (itertuples) costs
    about 0.5 us a value, several seconds a link at a million records."""
    return [frame[name].tolist() for name in names]


def _ambiguous_records(records: pd.DataFrame, edges: pd.DataFrame, first: _UnionResult) -> set[str]:
    """Records without identifiers whose refused edge is about as strong as their best kept one."""
    if not first.refused_edges:
        return set()
    with_identifier = set()
    for name in IDENTIFIERS:
        with_identifier |= set(records.loc[records[name].notna(), "record_key"].tolist())
    best_inside: dict[str, float] = {}
    person_of = first.person_of
    for key_l, key_r, weight in zip(
        *_columns(edges, ["record_key_l", "record_key_r", "match_weight"]), strict=True
    ):
        if person_of[key_l] == person_of[key_r]:
            for key in (key_l, key_r):
                best_inside[key] = max(best_inside.get(key, float("-inf")), weight)
    ambiguous = set()
    for key_l, key_r, weight in first.refused_edges:
        for key in (key_l, key_r):
            if key in with_identifier or key not in best_inside:
                continue
            if weight >= best_inside[key] - AMBIGUITY_MARGIN_BITS:
                ambiguous.add(key)
    return ambiguous


def _ambiguity_reviews(
    edges: pd.DataFrame, ambiguous: set[str], settings: ClusterSettings
) -> list[ReviewItem]:
    strong = edges["match_probability"] >= settings.link_threshold
    touching = edges["record_key_l"].isin(ambiguous) | edges["record_key_r"].isin(ambiguous)
    reason = "ambiguous: matches two persons who cannot be one"
    return [
        ReviewItem(e.record_key_l, e.record_key_r, float(e.match_probability), reason)
        for e in edges[strong & touching].itertuples(index=False)
    ]


def _weak_persons(
    edges: pd.DataFrame, person_of: dict[str, str], settings: ClusterSettings
) -> list[ReviewItem]:
    """Edges below weak_link that are the only tie between parts of a person."""
    # dict lookups, not Series.map(dict), which turns the million-entry dict into a Series
    same_person = [
        person_of[key_l] == person_of[key_r]
        for key_l, key_r in zip(*_columns(edges, ["record_key_l", "record_key_r"]), strict=True)
    ]
    inside = edges[
        (edges["match_probability"] >= settings.link_threshold)
        & pd.Series(same_person, index=edges.index, dtype=bool)
    ]
    weak = inside[inside["match_probability"] < settings.weak_link]
    if weak.empty:
        return []
    strong = inside[inside["match_probability"] >= settings.weak_link]
    strong_parent: dict[str, str] = {}

    def root(key: str) -> str:
        strong_parent.setdefault(key, key)
        while strong_parent[key] != key:
            key = strong_parent[key]
        return key

    for key_l, key_r in zip(*_columns(strong, ["record_key_l", "record_key_r"]), strict=True):
        a, b = root(key_l), root(key_r)
        if a != b:
            strong_parent[max(a, b)] = min(a, b)
    return [
        ReviewItem(e.record_key_l, e.record_key_r, float(e.match_probability), "weak link")
        for e in weak.itertuples(index=False)
        if root(e.record_key_l) != root(e.record_key_r)
    ]


def _sorted(review: list[ReviewItem]) -> list[ReviewItem]:
    unique = {(r.record_key_l, r.record_key_r, r.reason): r for r in review}
    return sorted(unique.values(), key=lambda r: (r.record_key_l, r.record_key_r, r.reason))
