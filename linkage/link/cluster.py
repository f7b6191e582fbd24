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
import pyarrow as pa
import pyarrow.compute as pc
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from linkage.identifiers import default_registry
from linkage.link.codes import EDGE_CODES, RecordCodes
from linkage.link.guards import GUARDS
from linkage.link.model import GuardLevels, default_guard_levels

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


# record code -> {record it must never share a person with: why}
Apart = dict[int, dict[int, str]]


def _apart(pairs: set[tuple[int, int]], reason: str) -> Apart:
    partners: Apart = {}
    for left, right in pairs:
        partners.setdefault(left, {})[right] = reason
        partners.setdefault(right, {})[left] = reason
    return partners


REVIEWED_MATCH_WEIGHT = 1000.0  # merged before any scored edge
EDGE_KEYS = ["record_key_l", "record_key_r"]


@dataclass(frozen=True)
class ReviewItem:
    record_key_l: str
    record_key_r: str
    match_probability: float
    reason: str


@dataclass
class Clustering:
    keys: pa.Array  # the records' keys in code order (linkage/link/codes.py)
    root: np.ndarray  # per record code: the code of its cluster's smallest record
    review: list[ReviewItem]
    refused: int
    ambiguous: set[str] = field(default_factory=set)

    def clusters(self) -> pa.Table:
        """record_key, cluster_key (the cluster's smallest record key), in key order."""
        return pa.table({"record_key": self.keys, "cluster_key": self.keys.take(self.root)})

    @property
    def person_of(self) -> dict[str, str]:
        """record_key -> cluster key, as a dict (a million Python strings at scale)."""
        clusters = self.clusters()
        return dict(
            zip(
                clusters["record_key"].to_pylist(),
                clusters["cluster_key"].to_pylist(),
                strict=True,
            )
        )


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


def cluster_records(
    records: pd.DataFrame,
    edges: pd.DataFrame,
    settings: ClusterSettings,
    decisions: Decisions = Decisions(),
) -> Clustering:
    """Cluster records (record_key, source, identifiers) along scored edges.

    The edges may carry their ends' record codes (record_code_l, record_code_r, as
    score_pairs gives them); otherwise they are looked up from the keys.
    """
    codes = RecordCodes.of(records)
    edges = _apply_decisions(edges, decisions, codes)
    scored = _Edges.of(edges, codes)
    reviewable = scored.probability >= settings.review_threshold
    guarded = np.zeros(len(scored), dtype=bool)
    apart: Apart = {}
    review: list[_Item] = []
    matches = _code_pairs(decisions.matches, codes)
    for reason, guard in GUARDS.items():
        hit = guard(edges, settings.guard).to_numpy(dtype=bool) & ~guarded
        guarded |= hit
        review += scored.items(hit & reviewable, reason)
        # kept apart, not just unlinked: a record that matches both (one with no forename
        # or no birth date) must not chain them into one person
        pairs = set(zip(scored.left[hit].tolist(), scored.right[hit].tolist(), strict=True))
        for key, partners in _apart(pairs - matches, reason).items():
            apart.setdefault(key, {}).update(partners)
    candidates = scored.subset(~guarded & reviewable)
    reviewed_apart = _apart(_code_pairs(decisions.non_matches, codes), "reviewed apart")
    for key, partners in reviewed_apart.items():
        apart.setdefault(key, {}).update(partners)
    facts = _RecordFacts.of(records, codes, settings.exclusive_sources, settings.hard_identifiers)
    component = component_labels(candidates.left, candidates.right, len(codes))
    first = _union_by_component(facts, candidates, component, settings, apart)
    ambiguous = _ambiguous_records(facts, candidates, first)
    final = _recluster_without(ambiguous, first, facts, candidates, component, settings, apart)
    review += final.review
    review += _ambiguity_reviews(candidates, ambiguous, settings)
    review += _weak_persons(candidates, final.person_of, settings)
    return Clustering(
        codes.keys,
        final.person_of,
        _sorted(review, codes),
        len(final.refused_edges),
        set(codes.keys_of(sorted(ambiguous))),
    )


def _code_pairs(pairs: frozenset[tuple[str, str]], codes: RecordCodes) -> set[tuple[int, int]]:
    """Pairs of record keys as pairs of codes, leaving out any with a record now gone."""
    if not pairs:
        return set()
    ordered = sorted(pairs)
    left = codes.codes_of(pair[0] for pair in ordered).tolist()
    right = codes.codes_of(pair[1] for pair in ordered).tolist()
    return {(a, b) for a, b in zip(left, right, strict=True) if a >= 0 and b >= 0}


# An edge's ends as record codes, its match weight and probability, and the review reason.
_Item = tuple[int, int, float, str]


@dataclass(frozen=True)
class _Edges:
    """Edges as arrays: the ends' record codes (left < right), weight and probability."""

    left: np.ndarray
    right: np.ndarray
    weight: np.ndarray
    probability: np.ndarray

    @classmethod
    def of(cls, edges: pd.DataFrame, codes: RecordCodes) -> _Edges:
        left, right = _end_codes(edges, codes)
        return cls(
            left,
            right,
            edges["match_weight"].to_numpy(dtype=np.float64),
            edges["match_probability"].to_numpy(dtype=np.float64),
        )

    def __len__(self) -> int:
        return len(self.left)

    def subset(self, rows: np.ndarray) -> _Edges:
        return _Edges(self.left[rows], self.right[rows], self.weight[rows], self.probability[rows])

    def items(self, rows: np.ndarray, reason: str) -> list[_Item]:
        """Review items for the edges in rows (a boolean mask)."""
        return [
            (left, right, probability, reason)
            for left, right, probability in zip(
                self.left[rows].tolist(),
                self.right[rows].tolist(),
                self.probability[rows].tolist(),
                strict=True,
            )
        ]


def _union_by_component(
    facts: _RecordFacts,
    edges: _Edges,
    component: np.ndarray,
    settings: ClusterSettings,
    apart: Apart,
) -> _UnionResult:
    """The merge loop's result, looping only where a merge could be refused.

    Merges never cross a connected component of the candidate edges (`component`: each
    record's). In a component with at most one value of each hard identifier, at most one
    record of each one-record-per-person source and no record kept apart from another, the
    loop refuses nothing: its persons are the connected components of its edges at or above
    the link threshold (each named by its smallest record code, as _Roots does), and its
    other edges whose ends stay apart are doubtful links. Only the other components (a few
    percent) go through the loop. Array operations, so about linear in edges.
    """
    records = len(component)
    looped = _conflicted(component, edges, facts, apart)
    in_loop = looped[component[edges.left]]
    result = _union(facts, edges.subset(in_loop), settings, set(), apart)

    strong = ~in_loop & (edges.probability >= settings.link_threshold)
    root = _smallest_member(component_labels(edges.left[strong], edges.right[strong], records))
    person_of = np.where(looped[component], np.arange(records), root)
    _set(person_of, result.person_of)
    weak = ~in_loop & ~strong & (root[edges.left] != root[edges.right])
    return _UnionResult(
        person_of, result.review + edges.items(weak, "doubtful link"), result.refused_edges
    )


def _set(person_of: np.ndarray, roots: dict[int, int]) -> None:
    """Write the loop's roots (record code -> root code) into the per-record array."""
    if roots:
        person_of[np.fromiter(roots.keys(), dtype=np.int64, count=len(roots))] = np.fromiter(
            roots.values(), dtype=np.int64, count=len(roots)
        )


def component_labels(left: np.ndarray, right: np.ndarray, nodes: int) -> np.ndarray:
    """Connected-component label of every node (scipy: compiled, linear in edges)."""
    graph = coo_matrix((np.ones(len(left), dtype=np.int8), (left, right)), shape=(nodes, nodes))
    return connected_components(graph, directed=False)[1]


def _smallest_member(label: np.ndarray) -> np.ndarray:
    """Per record: the smallest record code with its label (codes are positions)."""
    _, first, inverse = np.unique(label, return_index=True, return_inverse=True)
    return first[inverse]


def _conflicted(
    component: np.ndarray, edges: _Edges, facts: _RecordFacts, apart: Apart
) -> np.ndarray:
    """Per component label, whether the loop could refuse a merge in it: two values of a
    hard identifier, two records of a one-record-per-person source, or a record kept apart
    from another."""
    looped = np.zeros(len(component), dtype=bool)
    nodes = np.unique(np.concatenate([edges.left, edges.right]))
    labels = component[nodes]
    for name in facts.identifiers:
        distinct = _pair_counts(labels, facts.identifier_codes(name, nodes))[0]
        owners, values = np.unique(distinct, return_counts=True)
        looped[owners[values > 1]] = True  # two different values of the identifier
    owners, records = _pair_counts(labels, facts.exclusive_source[nodes])
    looped[owners[records > 1]] = True  # two records of one exclusive source
    if apart:
        looped[component[np.fromiter(apart.keys(), dtype=np.int64, count=len(apart))]] = True
    return looped


def _pair_counts(labels: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct (label, value) pairs where a value is held (>= 0): each pair's label,
    and how many records hold it."""
    held = values >= 0
    width = int(values.max(initial=0)) + 1  # one number per pair: label * width + value
    distinct, count = np.unique(
        labels[held].astype(np.int64) * width + values[held], return_counts=True
    )
    return distinct // width, count


def _recluster_without(
    ambiguous: set[int],
    first: _UnionResult,
    facts: _RecordFacts,
    edges: _Edges,
    component: np.ndarray,
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
    affected = np.zeros(len(component), dtype=bool)
    affected[component[np.fromiter(ambiguous, dtype=np.int64, count=len(ambiguous))]] = True
    again = _union(facts, edges.subset(affected[component[edges.left]]), settings, ambiguous, apart)
    person_of = first.person_of.copy()
    members = np.flatnonzero(affected[component])
    person_of[members] = members
    _set(person_of, again.person_of)
    review = [item for item in first.review if not affected[component[item[0]]]]
    refused = [edge for edge in first.refused_edges if not affected[component[edge[0]]]]
    return _UnionResult(person_of, review + again.review, refused + again.refused_edges)


def _end_codes(edges: pd.DataFrame, codes: RecordCodes) -> tuple[np.ndarray, np.ndarray]:
    """The codes of the edges' ends: given (score_pairs), or looked up from the keys."""
    if set(EDGE_CODES) <= set(edges.columns):
        left, right = (edges[name].to_numpy(dtype=np.int64) for name in EDGE_CODES)
        return left, right
    left, right = (codes.codes_of(edges[name]) for name in EDGE_KEYS)
    if (left < 0).any() or (right < 0).any():
        raise ValueError("an edge joins a record missing from the records")
    return left, right


def _apply_decisions(edges: pd.DataFrame, decisions: Decisions, codes: RecordCodes) -> pd.DataFrame:
    """Drop reviewed non-matches; add or promote reviewed matches above every scored edge."""
    if not decisions.matches and not decisions.non_matches:
        return edges
    # a pair of codes as one number, so the decided edges are found in one array operation
    left, right = _end_codes(edges, codes)
    decided = _code_pairs(decisions.matches | decisions.non_matches, codes)
    numbered = np.array([a * len(codes) + b for a, b in decided], dtype=np.int64)
    kept = edges[~np.isin(left * len(codes) + right, numbered)]
    present = sorted(_code_pairs(decisions.matches, codes))  # a decided record may have left
    ends = [codes.keys_of([pair[end] for pair in present]) for end in (0, 1)]
    reviewed = pd.DataFrame(
        {
            "record_key_l": ends[0],
            "record_key_r": ends[1],
            "match_probability": 1.0,
            "match_weight": REVIEWED_MATCH_WEIGHT,
        }
        | {code: [pair[end] for pair in present] for end, code in enumerate(EDGE_CODES)},
        columns=[*EDGE_KEYS, "match_probability", "match_weight", *EDGE_CODES],
    )
    gammas = [column for column in edges.columns if column.startswith("gamma_")]
    reviewed[gammas] = -1  # no levels: not a scored pair, so no guard applies
    reviewed = reviewed[[column for column in reviewed.columns if column in kept.columns]]
    return pd.concat([kept, reviewed.astype(kept.dtypes.to_dict())], ignore_index=True)


@dataclass
class _UnionResult:
    person_of: np.ndarray  # per record code: its person's root code
    review: list[_Item]
    refused_edges: list[tuple[int, int, float]]


@dataclass
class _LoopResult:
    person_of: dict[int, int]  # only the records the merges touched: code -> root code
    review: list[_Item]
    refused_edges: list[tuple[int, int, float]]


@dataclass(frozen=True)
class _RecordFacts:
    """What the merge loop needs to know of each record (by code), read once."""

    identifiers: dict[str, pa.Array]  # hard identifier -> values in code order
    with_identifier: np.ndarray  # per code: holds a hard identifier
    exclusive_source: np.ndarray  # per code: its one-record-per-person source's number, or -1
    exclusive_names: list[str]  # those sources, by number

    @classmethod
    def of(
        cls,
        records: pd.DataFrame,
        codes: RecordCodes,
        exclusive_sources: frozenset[str],
        hard: tuple[str, ...],
    ) -> _RecordFacts:
        identifiers = {
            name: codes.column(records, name) for name in hard if name in records.columns
        }
        with_identifier = np.zeros(len(codes), dtype=bool)
        for values in identifiers.values():
            with_identifier |= pc.is_valid(values).to_numpy(zero_copy_only=False)
        names = sorted(exclusive_sources)
        source = codes.column(records, "source")
        number = pc.index_in(source, value_set=pa.array(names, type=source.type))
        return cls(
            identifiers,
            with_identifier,
            pc.fill_null(number, -1).to_numpy().astype(np.int64),
            names,
        )

    def identifier_codes(self, name: str, records: np.ndarray) -> np.ndarray:
        """The records' values of a hard identifier as numbers (-1: none), equal if equal."""
        encoded = pc.dictionary_encode(self.identifiers[name].take(pa.array(records)))
        return pc.fill_null(encoded.indices, -1).to_numpy().astype(np.int64)

    def persons(self, records: np.ndarray) -> dict[int, _Person]:
        """The records (codes) that hold an identifier or are of an exclusive source, each
        as a person of its own (shared, never mutated); the others are NOBODY."""
        records = np.unique(records)
        held: dict[int, dict[str, str]] = {}
        for name, values in self.identifiers.items():
            found = values.take(pa.array(records)).to_pylist()
            for code, value in zip(records.tolist(), found, strict=True):
                if value is not None:
                    held.setdefault(code, {})[name] = value
        sources = self.exclusive_source[records]
        exclusive = {
            code: frozenset((self.exclusive_names[number],))
            for code, number in zip(records.tolist(), sources.tolist(), strict=True)
            if number >= 0
        }
        return {
            code: _Person(held.get(code, {}), exclusive.get(code, frozenset()))
            for code in held.keys() | exclusive.keys()
        }


def _union(
    facts: _RecordFacts,
    edges: _Edges,
    settings: ClusterSettings,
    detached: set[int],
    apart: Apart,
) -> _LoopResult:
    """Merge along edges strongest first; person_of holds the records the merges touched."""
    # Only records on an edge ever get state: the others stay persons of their own.
    roots = _Roots()
    root = roots.find
    alone = facts.persons(np.concatenate([edges.left, edges.right]))
    persons: dict[int, _Person] = {}

    def person(code: int) -> _Person:  # merged persons are kept; lone records are looked up
        found = persons.get(code)
        return alone.get(code, NOBODY) if found is None else found

    # per person, its records that a reviewed non-match keeps from some other record
    constrained: dict[int, set[int]] = {code: {code} for code in apart}

    def kept_apart(left: int, right: int) -> str | None:
        for code in constrained.get(left, ()):
            for other, reason in apart[code].items():
                if root(other) == right:
                    return reason
        return None

    review: list[_Item] = []
    refused: list[tuple[int, int, float]] = []
    order = np.lexsort((edges.right, edges.left, -edges.weight))  # strongest, then by keys
    for code_l, code_r, weight, probability in zip(
        edges.left[order].tolist(),
        edges.right[order].tolist(),
        edges.weight[order].tolist(),
        edges.probability[order].tolist(),
        strict=True,
    ):
        if code_l in detached or code_r in detached:
            continue
        left, right = root(code_l), root(code_r)
        if left == right:
            continue
        if probability < settings.link_threshold:
            review.append((code_l, code_r, probability, "doubtful link"))
            continue
        held_apart = apart and (kept_apart(left, right) or kept_apart(right, left))
        if held_apart:
            # a refusal like any other: a record matching both sides is ambiguous
            refused.append((code_l, code_r, weight))
            review.append((code_l, code_r, probability, f"refused: {held_apart}"))
            continue
        reviewed = weight >= REVIEWED_MATCH_WEIGHT
        reason = None if reviewed else _conflict(person(left), person(right))
        if reason:
            refused.append((code_l, code_r, weight))
            review.append((code_l, code_r, probability, f"refused: {reason}"))
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
    return _LoopResult({code: root(code) for code in roots.parent}, review, refused)


class _Roots:
    """Union-find over record codes; a code never joined is its own root."""

    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, code: int) -> int:
        path = []
        while (up := self.parent.get(code, code)) != code:
            path.append(code)
            code = up
        for step in path:
            self.parent[step] = code
        return code

    def join(self, a: int, b: int) -> tuple[int, int]:
        """Join the sets of a and b; the smaller root stays (order-independent).

        Returns (kept root, absorbed root); they are equal if a and b were already joined."""
        root_a, root_b = self.find(a), self.find(b)
        keep, absorb = (root_a, root_b) if root_a <= root_b else (root_b, root_a)
        if keep != absorb:
            self.parent[absorb] = keep
        return keep, absorb


def _ambiguous_records(facts: _RecordFacts, edges: _Edges, first: _UnionResult) -> set[int]:
    """Records without identifiers whose refused edge is about as strong as their best kept one."""
    if not first.refused_edges:
        return set()
    person_of = first.person_of
    inside = person_of[edges.left] == person_of[edges.right]
    best_inside = np.full(len(person_of), -np.inf)
    for end in (edges.left, edges.right):
        np.maximum.at(best_inside, end[inside], edges.weight[inside])
    ambiguous = set()
    for code_l, code_r, weight in first.refused_edges:
        for code in (code_l, code_r):
            if facts.with_identifier[code] or best_inside[code] == -np.inf:
                continue  # holds an identifier, or has no edge inside its person
            if weight >= best_inside[code] - AMBIGUITY_MARGIN_BITS:
                ambiguous.add(code)
    return ambiguous


def _ambiguity_reviews(
    edges: _Edges, ambiguous: set[int], settings: ClusterSettings
) -> list[_Item]:
    strong = edges.probability >= settings.link_threshold
    listed = np.fromiter(ambiguous, dtype=np.int64, count=len(ambiguous))
    touching = np.isin(edges.left, listed) | np.isin(edges.right, listed)
    return edges.items(strong & touching, "ambiguous: matches two persons who cannot be one")


def _weak_persons(edges: _Edges, person_of: np.ndarray, settings: ClusterSettings) -> list[_Item]:
    """Edges below weak_link that are the only tie between parts of a person."""
    linked = edges.probability >= settings.link_threshold
    inside = linked & (person_of[edges.left] == person_of[edges.right])
    if not (inside & (edges.probability < settings.weak_link)).any():
        return []
    strong = inside & (edges.probability >= settings.weak_link)
    part = component_labels(edges.left[strong], edges.right[strong], len(person_of))
    bridging = inside & ~strong & (part[edges.left] != part[edges.right])  # the only tie
    return edges.items(bridging, "weak link")


def _sorted(review: list[_Item], codes: RecordCodes) -> list[ReviewItem]:
    """One item per edge and reason, in key order (code order is key order)."""
    unique = {(left, right, reason): probability for left, right, probability, reason in review}
    ordered = sorted(unique)
    keys_l = codes.keys_of([left for left, _, _ in ordered])
    keys_r = codes.keys_of([right for _, right, _ in ordered])
    return [
        ReviewItem(key_l, key_r, float(unique[item]), item[2])
        for key_l, key_r, item in zip(keys_l, keys_r, ordered, strict=True)
    ]
