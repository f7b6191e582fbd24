"""The run's story: counts per stage and source, written as JSON and Markdown.

Reports carry counts, statuses and run ids only: never names, dates of birth or
identifiers, so they can be mailed round and attached to tickets.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import jinja2


@dataclass
class SourceReport:
    source: str
    status: str
    error: str | None
    files: list[dict[str, Any]]
    rows_read: int
    rows_accepted: int
    rows_quarantined: int
    rows_flagged: int
    quarantine_reasons: dict[str, int]  # check -> distinct rows quarantined by it
    flag_reasons: dict[str, int] = field(default_factory=dict)  # check -> rows flagged by it
    delta: dict[str, Any] = field(default_factory=dict)  # records carried, changed, new, removed


# A source's records against its last good night (linkage/carry.py), in report order.
DELTA_KINDS = ("carried", "changed", "new", "removed")


@dataclass
class RunReport:
    run_id: str
    run_date: str
    status: str
    seconds: float
    sources: list[SourceReport]
    stages: dict[str, Any] = field(default_factory=dict)  # later stages add their counts
    digest: dict[str, Any] = field(default_factory=dict)  # against the last good night

    def to_markdown(self) -> str:
        """The report for people (the HTML report has the same content)."""
        return "\n".join(_markdown(self)) + "\n"

    def to_html(self) -> str:
        return _HTML.render(report=self, digest=self.digest, count=_count, change=_change)

    def write(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "report.json").write_text(
            json.dumps(asdict(self), indent=2, default=str), encoding="utf-8"
        )
        (directory / "report.html").write_text(self.to_html(), encoding="utf-8")
        path = directory / "report.md"
        path.write_text(self.to_markdown(), encoding="utf-8")
        return path


def _count(value: Any) -> str:
    return "" if value is None else f"{value:,}" if isinstance(value, int) else str(value)


def _change(now: int | None, before: int | None) -> str:
    if now is None or before is None:
        return ""
    if before == 0:
        return f"{now - before:+,}"
    return f"{now - before:+,} ({(now - before) / before:+.1%})"


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_count(cell) for cell in row) + " |" for row in rows]
    return lines + [""]


def _markdown(report: RunReport) -> list[str]:
    digest = report.digest
    lines = [
        f"# Nightly run {report.run_id}",
        "",
        f"Night {report.run_date}: **{report.status}** in {report.seconds:.1f} s"
        + (
            f" (compared with run {digest['previous_run_id']})"
            if digest.get("previous_run_id")
            else ""
        ),
        "",
    ]
    if digest.get("warnings"):
        lines += ["## Stands out", ""] + [f"- {w}" for w in digest["warnings"]] + [""]
    before = {s["source"]: s["previous_rows_read"] for s in digest.get("sources", [])}
    lines += ["## Sources", ""] + _table(
        ["source", "status", "read", "change", "accepted", "quarantined", "flagged"]
        + ["unchanged", "changed", "new", "removed"],
        [
            [
                s.source,
                s.status,
                s.rows_read,
                _change(s.rows_read, before.get(s.source)),
                s.rows_accepted,
                s.rows_quarantined,
                s.rows_flagged,
                *(s.delta.get(kind, "") for kind in DELTA_KINDS),
            ]
            for s in report.sources
        ],
    )
    for source in report.sources:
        if source.delta.get("full") and source.status == "used":
            whole = f"{source.source}: every row through the whole intake: {source.delta['full']}"
            lines += [whole, ""]
    for source in report.sources:
        reasons = [*source.quarantine_reasons.items(), *source.flag_reasons.items()]
        if reasons:
            lines += [f"{source.source}: " + ", ".join(f"{r} {n:,}" for r, n in reasons), ""]
    persons = digest.get("persons", {})
    if persons:
        changes = persons["id_changes"]
        lines += ["## Persons", ""] + _table(
            [
                "persons",
                "new",
                "merged",
                "split",
                "retired",
                "linked edges",
                "largest",
                "with 5+ records",
            ],
            [
                [
                    persons["persons"],
                    changes["created"],
                    changes["merged"],
                    changes["split"],
                    changes["retired"],
                    persons["linked_edges"],
                    persons["largest_person_records"],
                    persons["persons_with_5_or_more_records"],
                ]
            ],
        )
    lines += _linking_lines(report.stages.get("linkage", {}))
    review = digest.get("review", {})
    if review:
        lines += ["## Review queue", ""] + _table(
            ["queued", "past the cap", "recorded only"],
            [[review.get("queued"), review.get("past_cap"), review.get("recorded_only")]],
        )
        lines += _table(
            ["queued by reason", "items"], list(review.get("queued_by_reason", {}).items())
        )
    if digest.get("alerts"):
        lines += ["## Alerts (all, by rule and status)", ""]
        lines += _table(["rule and status", "alerts"], list(digest["alerts"].items()))
    if digest.get("seconds"):
        lines += ["## Seconds", ""]
        lines += _table(["stage", "seconds"], list(digest["seconds"].items()))
    if digest.get("versions"):
        lines += ["## Versions", ""]
        lines += _table(["model or config", "version (sha256)"], list(digest["versions"].items()))
    return lines


def _linking_lines(linkage: dict[str, Any]) -> list[str]:
    """How tonight linked: incrementally (how many records) or in full (why), and a full
    link's drift from the index it replaced."""
    if "linked" not in linkage:
        return []
    if linkage["linked"] == "incremental":
        line = (
            f"Linked incrementally: {linkage['records_relinked']:,} of"
            f" {linkage['records']:,} records re-linked."
        )
    else:
        line = f"Linked every record: {linkage['linked']}."
    lines = [line, ""]
    drift = linkage.get("drift") or {}
    if drift:
        kinds = ", ".join(f"{kind} {n:,}" for kind, n in drift["persons"].items())
        lines += [f"Against the index it replaced, persons: {kinds}.", ""]
    return lines


# The HTML report's template, beside this module (autoescaped: error messages may hold <>).
_HTML = jinja2.Environment(autoescape=True).from_string(
    (Path(__file__).parent / "report.html.j2").read_text(encoding="utf-8")
)
