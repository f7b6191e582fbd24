"""The cluster around a pair as a small graph: who links to whom, and how strongly.

Laid out here (records on a circle, the pair under review first and opposite each other)
and drawn by the template as inline SVG, so the page needs no script library and works
offline. Colours come from the agency's place in the project's source list, so a style
sheet never names an agency.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

SIZE = 360  # the drawing is SIZE x SIZE
RADIUS = 130
PALETTE = ["#1b6ca8", "#c0392b", "#27865f", "#8e44ad", "#b9770e", "#2c3e50", "#d35400"]
MAX_NODES = 40  # a person this large is drawn as its first records; the table lists all


@dataclass(frozen=True)
class Node:
    record_key: str
    person_id: str
    x: float
    y: float
    colour: str
    in_pair: bool
    label: str  # short: the source record id


@dataclass(frozen=True)
class Link:
    key_l: str
    key_r: str
    x1: float
    y1: float
    x2: float
    y2: float
    match_probability: float
    linked: bool
    width: float
    in_pair: bool


@dataclass(frozen=True)
class Graph:
    nodes: list[Node]
    links: list[Link]
    left_out: int  # records beyond MAX_NODES, not drawn
    size: int = SIZE


def colour_of(source: str, sources: list[str]) -> str:
    position = sources.index(source) if source in sources else len(sources)
    return PALETTE[position % len(PALETTE)]


def layout(
    records: list[tuple[str, str, str, str]],  # record key, person id, source, label
    edges: list[tuple[str, str, float, bool]],  # key_l, key_r, match probability, linked
    pair: tuple[str, str] | None,
    sources: list[str],
) -> Graph:
    """Records on a circle grouped by person, the pair's two records first."""
    in_pair = set(pair or ())
    ordered = sorted(records, key=lambda r: (r[0] not in in_pair, r[1], r[0]))
    drawn, left_out = ordered[:MAX_NODES], max(0, len(ordered) - MAX_NODES)
    if pair is not None and len(drawn) > 1:
        # the pair's second record opposite the first
        second = next((r for r in drawn[1:] if r[0] in in_pair), None)
        if second is not None:
            rest = [r for r in drawn[1:] if r is not second]
            half = len(drawn) // 2
            drawn = [drawn[0], *rest[: half - 1], second, *rest[half - 1 :]]
    centre = SIZE / 2
    nodes = []
    for position, (key, person_id, source, label) in enumerate(drawn):
        angle = 2 * math.pi * position / max(len(drawn), 1) - math.pi
        radius = RADIUS if len(drawn) > 1 else 0
        nodes.append(
            Node(
                record_key=key,
                person_id=person_id,
                x=round(centre + radius * math.cos(angle), 1),
                y=round(centre + radius * math.sin(angle), 1),
                colour=colour_of(source, sources),
                in_pair=key in in_pair,
                label=label,
            )
        )
    at = {node.record_key: node for node in nodes}
    links = [
        Link(
            key_l=key_l,
            key_r=key_r,
            x1=at[key_l].x,
            y1=at[key_l].y,
            x2=at[key_r].x,
            y2=at[key_r].y,
            match_probability=probability,
            linked=linked,
            width=round(1 + 5 * probability, 1),
            in_pair={key_l, key_r} == in_pair,
        )
        for key_l, key_r, probability, linked in edges
        if key_l in at and key_r in at
    ]
    return Graph(nodes, sorted(links, key=lambda link: link.match_probability), left_out)
