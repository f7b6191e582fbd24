"""Scored edges -> persons, never breaking a hard constraint.

Edges are merged strongest first (union-find). A merge is refused when the joined person
would hold two different valid values of one identifier the registry calls a hard
constraint (CHI, SCN, PNC id, ...) or two records of a source that guarantees one record
per person, so chaining can never glue two people together. Guards protect precision
where Fellegi-Sunter is weakest:

- pairs only a shared identifier (or an analyst) may link, kept apart so no third record
  can chain them (GUARDS): possible twins (random-pair u never sees twins, so the shared
  surname, address and birth date outweigh the forename), possible relatives (birth dates
  far apart) and possible namesakes (one agency, unrelated addresses);
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

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from linkage.identifiers import default_registry
from linkage.link.model import ELSE_GAMMA, GuardLevels, default_guard_levels

# A record is ambiguous when its edge to another person is within this many match-weight
# bits (a factor of 8 in likelihood) of its best edge into its own.
AMBIGUITY_MARGIN_BITS = 3.0


@dataclass(frozen=True)
class ClusterSettings:
    link_threshold: float = 0.95  # match probability at or above which records are linked
    review_threshold: float = 0.5  # edges between this and link_threshold go to review
    weak_link: float = 0.99  # persons held together by a weaker edge are flagged
    exclusive_sources: frozenset[str] = frozenset()  # one record per person
    # identifier types where two different values prove two people (the registry's)
    hard_identifiers: tuple[str, ...] = field(
        default_factory=lambda: tuple(default_registry().hard_constraints())
    )
    guard: GuardLevels = field(default_factory=default_guard_levels)  # the model's levels


@dataclass(frozen=True)
class Decisions:
    """Reviewed pairs: (record_key_l, record_key_r) with record_key_l < record_key_r."""

    matches: frozenset[tuple[str, str]] = frozenset()
    non_matches: frozenset[tuple[str, str]] = frozenset()

    def apart(self) -> Apart:
        """record key -> the records it must never share a person with, and why."""
        return _apart(self.non_matches, "reviewed apart")


# record key -> {record it must never share a person with: why}
Apart = dict[str, dict[str, str]]


def _apart(pairs: frozenset[tuple[str, str]] | set[tuple[str, str]], reason: str) -> Apart:
    partners: Apart = {}
    for left, right in pairs:
        partners.setdefault(left, {})[right] = reason
        partners.setdefault(right, {})[left] = reason
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
    exclusive_sources: frozenset[str]


NOBODY = _Person({}, frozenset())  # a record with no identifier and no exclusive source


def _conflict(a: _Person, b: _Person) -> str | None:
    for name in sorted(a.identifiers.keys() & b.identifiers.keys()):
        if a.identifiers[name] != b.identifiers[name]:
            return f"different {name}"
    shared = a.exclusive_sources & b.exclusive_sources
    if shared:
        return f"two records of one-record-per-person source {sorted(shared)[0]}"
    return None


def possible_twins(edges: pd.DataFrame, guard: GuardLevels) -> pd.Series:
    """Same surname and date of birth, no shared identifier, and something only twins
    explain: unrelated forenames, different sexes, or two records of one agency where a
    forename is missing (newborn twins not yet named)."""
    if not {"gamma_date_of_birth", "gamma_surname", "gamma_forename"} <= set(edges.columns):
        return pd.Series(False, index=edges.index)
    same_birth = edges["gamma_date_of_birth"].isin(guard.birth_same)
    same_surname = edges["gamma_surname"].isin(guard.surname_same)
    # an agency may hold many rows of one person with forename typos (police incidents), so
    # within one agency only a missing forename says twins: newborns not yet named
    unnamed_at_one_agency = _one_source(edges) & (edges["gamma_forename"] == -1)
    only_twins_explain = _differs(edges, "forename") | _differs(edges, "sex")
    only_twins_explain |= unnamed_at_one_agency
    return same_birth & same_surname & only_twins_explain & ~_shared_identifier(edges, guard)


def _one_source(edges: pd.DataFrame) -> pd.Series:
    """Both records of the pair come from one source (record_key is '<source>:<id>')."""
    return (
        edges["record_key_l"].str.partition(":")[0] == edges["record_key_r"].str.partition(":")[0]
    )


def possible_relatives(edges: pd.DataFrame, guard: GuardLevels) -> pd.Series:
    """Birth dates far apart (both known), no shared identifier: a father and son of one
    name at one address, say, whom names and address alone would join."""
    return _differs(edges, "date_of_birth") & ~_shared_identifier(edges, guard)


def possible_namesakes(edges: pd.DataFrame, guard: GuardLevels) -> pd.Series:
    """Two records of one agency at unrelated addresses, no shared identifier.

    An agency rarely holds two live records of one person at two addresses at once (a
    re-registration repeats the address), while two people of one name and birth date do
    turn up in a large population. Across agencies a different address is common (one
    agency has not caught up with a move), so this guard stays within one source.
    """
    unrelated_address = _differs(edges, "address")
    return unrelated_address & _one_source(edges) & ~_shared_identifier(edges, guard)


def _differs(edges: pd.DataFrame, comparison: str) -> pd.Series:
    """The pair reached the comparison's else level (False where the model lacks it)."""
    column = f"gamma_{comparison}"
    if column not in edges.columns:
        return pd.Series(False, index=edges.index)
    return edges[column] == ELSE_GAMMA


def _shared_identifier(edges: pd.DataFrame, guard: GuardLevels) -> pd.Series:
    shared = pd.Series(False, index=edges.index)
    for name in guard.identifiers:
        if f"gamma_{name}" in edges.columns:
            shared |= edges[f"gamma_{name}"] > 0
    return shared


# Pairs the model's score never links by itself, and why: each is kept apart (no third
# record can chain them) and, if the model would have linked it, reviewed.
GUARDS = {
    "possible twins": possible_twins,
    "possible relatives: birth dates far apart": possible_relatives,
    "possible namesakes: one agency, unrelated addresses": possible_namesakes,
}


def cluster_records(
    records: pd.DataFrame,
    edges: pd.DataFrame,
    settings: ClusterSettings,
    decisions: Decisions = Decisions(),
) -> Clustering:
    """Cluster records (record_key, source, identifiers) along scored edges."""
    edges = _apply_decisions(edges, decisions, set(records["record_key"].tolist()))
    reviewable = edges["match_probability"] >= settings.review_threshold
    guarded = pd.Series(False, index=edges.index)
    apart: Apart = {}
    review: list[ReviewItem] = []
    for reason, guard in GUARDS.items():
        hit = guard(edges, settings.guard) & ~guarded
        guarded |= hit
        review += [
            ReviewItem(e.record_key_l, e.record_key_r, float(e.match_probability), reason)
            for e in edges[hit & reviewable].itertuples(index=False)
        ]
        # kept apart, not just unlinked: a record that matches both (one with no forename
        # or no birth date) must not chain them into one person
        pairs = set(zip(*_columns(edges[hit], ["record_key_l", "record_key_r"]), strict=True))
        for key, partners in _apart(pairs - decisions.matches, reason).items():
            apart.setdefault(key, {}).update(partners)
    candidates = edges[~guarded & reviewable]
    for key, partners in decisions.apart().items():
        apart.setdefault(key, {}).update(partners)
    facts = _RecordFacts.of(records, settings.exclusive_sources, settings.hard_identifiers)
    first = _union_by_component(facts, records, candidates, settings, apart)
    ambiguous = _ambiguous_records(facts, candidates, first)
    final = _recluster_without(ambiguous, first, facts, candidates, settings, apart)
    review += final.review
    review += _ambiguity_reviews(candidates, ambiguous, settings)
    review += _weak_persons(candidates, final.person_of, settings)
    return Clustering(final.person_of, _sorted(review), len(final.refused_edges), ambiguous)


def _union_by_component(
    facts: _RecordFacts,
    records: pd.DataFrame,
    edges: pd.DataFrame,
    settings: ClusterSettings,
    apart: Apart,
) -> _UnionResult:
    """The merge loop's result, looping only where a merge could be refused.

    Merges never cross a connected component of the candidate edges. In a component with
    at most one value of each hard identifier, at most one record of each one-record-per-
    person source and no record kept apart from another, the loop refuses nothing: its
    persons are the connected components of its edges at or above the link threshold
    (each named by its smallest record key, as _Roots does), and its other edges whose ends
    stay apart are doubtful links. Only the other components (a few percent) go through the
    loop. Array operations, so about linear in edges.
    """
    if edges.empty:
        return _union(facts, edges, settings, set(), apart, keys=facts.keys)
    keys, left, right = _factorized(edges)
    component = _labels(left, right, len(keys))
    nodes = pd.DataFrame({"record_key": keys, "component": component})
    looped = _conflicted(nodes, records, settings, apart)
    in_loop = np.isin(component[left], looped)
    result = _union(facts, edges[in_loop], settings, set(), apart, keys=facts.keys)

    strong = ~in_loop & (edges["match_probability"] >= settings.link_threshold).to_numpy()
    person = _labels(left[strong], right[strong], len(keys))
    root = nodes.groupby(person)["record_key"].transform("min").to_numpy()
    free = ~np.isin(component, looped)
    result.person_of.update(zip(keys[free].tolist(), root[free].tolist(), strict=True))
    weak = ~in_loop & ~strong & (root[left] != root[right])
    result.review += [
        ReviewItem(key_l, key_r, float(probability), "doubtful link")
        for key_l, key_r, probability in zip(
            *_columns(edges[weak], ["record_key_l", "record_key_r", "match_probability"]),
            strict=True,
        )
    ]
    return result


def _labels(left: np.ndarray, right: np.ndarray, nodes: int) -> np.ndarray:
    """Connected-component label of every node (scipy: compiled, linear in edges)."""
    graph = coo_matrix((np.ones(len(left), dtype=np.int8), (left, right)), shape=(nodes, nodes))
    return connected_components(graph, directed=False)[1]


def _conflicted(
    nodes: pd.DataFrame, records: pd.DataFrame, settings: ClusterSettings, apart: Apart
) -> np.ndarray:
    """Components where the loop could refuse a merge: two values of a hard identifier,
    two records of a one-record-per-person source, or a record kept apart from another."""
    held = [name for name in settings.hard_identifiers if name in records.columns]
    facts = nodes.merge(records[["record_key", "source", *held]], on="record_key", how="left")
    by_component = facts.groupby("component")
    conflicted = [by_component[name].nunique().loc[lambda n: n > 1].index for name in held]
    exclusive = facts[facts["source"].isin(sorted(settings.exclusive_sources))]
    repeated = exclusive.groupby(["component", "source"]).size().loc[lambda n: n > 1]
    conflicted.append(repeated.index.get_level_values("component"))
    conflicted.append(facts.loc[facts["record_key"].isin(list(apart)), "component"])
    return np.unique(np.concatenate([np.asarray(labels) for labels in conflicted]))


def _recluster_without(
    ambiguous: set[str],
    first: _UnionResult,
    facts: _RecordFacts,
    edges: pd.DataFrame,
    settings: ClusterSettings,
    apart: Apart,
) -> _UnionResult:
    """Cluster again, without the ambiguous records, the components that held them.

    Merges never cross a connected component of the candidate edges, and inside one the
    outcome depends only on its own edges in their global order, so components without an
    ambiguous record come out exactly as before. Re-clustering only the *persons* that held
    an ambiguous record is not enough: a merge refused because of an identifier the
    ambiguous record had brought into its person must be reconsidered, and review items on
    edges leaving those persons must be kept (at 1M records: 88 doubtful links and 4 refusals
    were lost). At 1M records: 23 components, a few hundred of 278k edges.
    """
    if not ambiguous:
        return first
    component = _components(edges)
    affected = {component[key] for key in ambiguous}
    inside = [component[key] in affected for key in edges["record_key_l"].tolist()]
    again = _union(facts, edges[inside], settings, ambiguous, apart, keys=None)
    person_of = dict(first.person_of)
    for key, root in component.items():
        if root in affected:
            person_of[key] = again.person_of.get(key, key)
    review = [item for item in first.review if component[item.record_key_l] not in affected]
    refused = [edge for edge in first.refused_edges if component[edge[0]] not in affected]
    refused += again.refused_edges
    return _UnionResult(person_of, review + again.review, refused)


def _components(edges: pd.DataFrame) -> dict[str, int]:
    """Record -> a label of its connected component over the edges, ignoring constraints."""
    keys, left, right = _factorized(edges)
    return dict(zip(keys.tolist(), _labels(left, right, len(keys)).tolist(), strict=True))


def _factorized(edges: pd.DataFrame) -> tuple[pd.Index, np.ndarray, np.ndarray]:
    """The edges' record keys, and each edge's ends as positions among them."""
    codes, keys = pd.factorize(pd.concat([edges["record_key_l"], edges["record_key_r"]]))
    return keys, codes[: len(edges)], codes[len(edges) :]


def _apply_decisions(edges: pd.DataFrame, decisions: Decisions, present: set[str]) -> pd.DataFrame:
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
            if left in present and right in present  # a decided record may have left since
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
    refused_edges: list[tuple[str, str, float]]


@dataclass(frozen=True)
class _RecordFacts:
    """What the merge loop needs to know of each record, read once from the records."""

    keys: list[str]
    identifiers: dict[str, dict[str, str]]  # only records holding an identifier
    exclusive_source: dict[str, str]  # records of a one-record-per-person source

    @classmethod
    def of(
        cls, records: pd.DataFrame, exclusive_sources: frozenset[str], hard: tuple[str, ...]
    ) -> _RecordFacts:
        identifiers: dict[str, dict[str, str]] = {}
        for name in hard:
            if name not in records.columns:
                continue
            held = records[records[name].notna()]
            for key, value in zip(*_columns(held, ["record_key", name]), strict=True):
                identifiers.setdefault(key, {})[name] = value
        exclusive = records[records["source"].isin(sorted(exclusive_sources))]
        return cls(
            records["record_key"].tolist(),
            identifiers,
            dict(zip(*_columns(exclusive, ["record_key", "source"]), strict=True)),
        )

    def person(self, key: str) -> _Person:
        """The record as a person of its own (shared, never mutated)."""
        source = self.exclusive_source.get(key)
        if source is None and key not in self.identifiers:
            return NOBODY
        return _Person(
            self.identifiers.get(key, {}), frozenset((source,)) if source else frozenset()
        )


def _union(
    facts: _RecordFacts,
    edges: pd.DataFrame,
    settings: ClusterSettings,
    detached: set[str],
    apart: Apart,
    keys: list[str] | None = None,
) -> _UnionResult:
    """Merge along edges strongest first; person_of covers `keys` (all records by default)
    or, with keys=None, only the records the merges touched."""
    # Only records on an edge ever get state: the others stay persons of their own.
    roots = _Roots()
    root = roots.find
    persons: dict[str, _Person] = {}

    def person(key: str) -> _Person:  # merged persons are kept; lone records are looked up
        found = persons.get(key)
        return facts.person(key) if found is None else found

    # per person, its records that a reviewed non-match keeps from some other record
    constrained: dict[str, set[str]] = {key: {key} for key in apart}

    def kept_apart(left: str, right: str) -> str | None:
        for key in constrained.get(left, ()):
            for other, reason in apart[key].items():
                if root(other) == right:
                    return reason
        return None

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
        held_apart = apart and (kept_apart(left, right) or kept_apart(right, left))
        if held_apart:
            # a refusal like any other: a record matching both sides is ambiguous
            refused.append((key_l, key_r, float(weight)))
            review.append(ReviewItem(key_l, key_r, float(probability), f"refused: {held_apart}"))
            continue
        reviewed = weight >= REVIEWED_MATCH_WEIGHT
        reason = None if reviewed else _conflict(person(left), person(right))
        if reason:
            refused.append((key_l, key_r, float(weight)))
            review.append(ReviewItem(key_l, key_r, float(probability), f"refused: {reason}"))
            continue
        keep, absorb = roots.join(left, right)
        kept, absorbed = person(keep), person(absorb)
        persons.pop(absorb, None)
        if absorbed is not NOBODY:
            persons[keep] = _Person(
                absorbed.identifiers | kept.identifiers,
                kept.exclusive_sources | absorbed.exclusive_sources,
            )
        if absorb in constrained:
            constrained.setdefault(keep, set()).update(constrained.pop(absorb))
    person_of = {} if keys is None else dict(zip(keys, keys, strict=True))
    person_of.update((key, root(key)) for key in roots.parent)
    return _UnionResult(person_of, review, refused)


class _Roots:
    """Union-find over record keys; a key never joined is its own root."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, key: str) -> str:
        path = []
        while (up := self.parent.get(key, key)) != key:
            path.append(key)
            key = up
        for step in path:
            self.parent[step] = key
        return key

    def join(self, a: str, b: str) -> tuple[str, str]:
        """Join the sets of a and b; the smaller root stays (order-independent).

        Returns (kept root, absorbed root); they are equal if a and b were already joined."""
        root_a, root_b = self.find(a), self.find(b)
        keep, absorb = (root_a, root_b) if root_a <= root_b else (root_b, root_a)
        if keep != absorb:
            self.parent[absorb] = keep
        return keep, absorb


def _columns(frame: pd.DataFrame, names: list[str]) -> list[list]:
    """Columns as Python lists: iterating rows of Arrow-backed strings (itertuples) costs
    about 0.5 us a value, several seconds a link at a million records."""
    return [frame[name].tolist() for name in names]


def _ambiguous_records(facts: _RecordFacts, edges: pd.DataFrame, first: _UnionResult) -> set[str]:
    """Records without identifiers whose refused edge is about as strong as their best kept one."""
    if not first.refused_edges:
        return set()
    with_identifier = facts.identifiers
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
    keys, left, right = _factorized(inside)
    strong = (inside["match_probability"] >= settings.weak_link).to_numpy()
    part = _labels(left[strong], right[strong], len(keys))
    bridging = inside[~strong & (part[left] != part[right])]  # the only tie between parts
    return [
        ReviewItem(key_l, key_r, float(probability), "weak link")
        for key_l, key_r, probability in zip(
            *_columns(bridging, ["record_key_l", "record_key_r", "match_probability"]),
            strict=True,
        )
    ]


def _sorted(review: list[ReviewItem]) -> list[ReviewItem]:
    unique = {(r.record_key_l, r.record_key_r, r.reason): r for r in review}
    return sorted(unique.values(), key=lambda r: (r.record_key_l, r.record_key_r, r.reason))
