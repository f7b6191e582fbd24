"""The run's story: counts per stage and source, written as JSON and Markdown.

Reports carry counts, statuses and run ids only: never names, dates of birth or
identifiers, so they can be mailed round and attached to tickets.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


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


@dataclass
class RunReport:
    run_id: str
    run_date: str
    status: str
    seconds: float
    sources: list[SourceReport]
    stages: dict[str, Any] = field(default_factory=dict)  # later stages add their counts

    def to_markdown(self) -> str:
        lines = [
            f"# Nightly run {self.run_id}",
            "",
            f"Night {self.run_date}: **{self.status}** in {self.seconds:.1f} s",
            "",
            "| source | status | read | accepted | quarantined | flagged |",
            "|---|---|---:|---:|---:|---:|",
        ]
        for source in self.sources:
            lines.append(
                f"| {source.source} | {source.status} | {source.rows_read} | "
                f"{source.rows_accepted} | {source.rows_quarantined} | {source.rows_flagged} |"
            )
        for source in self.sources:
            if source.error:
                lines += ["", f"**{source.source} skipped:** {source.error}"]
            if source.quarantine_reasons:
                lines += ["", f"Quarantine reasons for {source.source}:"]
                lines += [f"- {reason}: {n}" for reason, n in source.quarantine_reasons.items()]
            if source.flag_reasons:
                lines += ["", f"Flags for {source.source} (rows kept):"]
                lines += [f"- {reason}: {n}" for reason, n in source.flag_reasons.items()]
        for stage, counts in self.stages.items():
            lines += ["", f"## {stage}", "", "```", json.dumps(counts, indent=2), "```"]
        return "\n".join(lines) + "\n"

    def write(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "report.json").write_text(
            json.dumps(asdict(self), indent=2, default=str), encoding="utf-8"
        )
        path = directory / "report.md"
        path.write_text(self.to_markdown(), encoding="utf-8")
        return path
