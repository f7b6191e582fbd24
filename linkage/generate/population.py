"""generate_population: seeded chunks of households -> every night's extracts + truth.

Memory stays bounded at any size: a chunk of households is built, evolved through every
night and appended to every night's files before the next chunk is made.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from linkage.generate import configs
from linkage.generate.chunk import Chunk, Shared, build_chunk
from linkage.generate.extracts import ExtractSpec, extract_specs, formatted_row
from linkage.generate.identifiers import Issuer
from linkage.generate.names import DEFAULT_NAME_DIVERSITY, NamePicker
from linkage.generate.nights import NightlyChanges
from linkage.generate.places import NumericPostcodeIssuer, PostcodeIssuer
from linkage.generate.truth import (
    TRUTH_COLUMNS,
    change_row,
    concern_rows,
    person_row,
    record_row,
)
from linkage.generate.variants import DEFAULT_VARIANT, Variant, variant_named


@dataclass
class GenerationSummary:
    """What was generated: first-night residents, households, and records per night."""

    people: int
    households: int
    out_dir: Path
    variant: str = DEFAULT_VARIANT
    name_diversity: str = DEFAULT_NAME_DIVERSITY
    records: dict[str, dict[str, int]] = field(default_factory=dict)  # night -> source -> n
    people_added: int = 0  # births and arrivals after the first night
    seconds: float = 0.0


def generate_population(
    out_dir: Path,
    people: int,
    seed: int,
    nights: int = 3,
    start_date: date = date(2026, 11, 1),
    chunk_size: int = 20_000,
    progress: Callable[[int], None] | None = None,
    variant: str = DEFAULT_VARIANT,
    write_config: bool = True,
    name_diversity: str = DEFAULT_NAME_DIVERSITY,
) -> GenerationSummary:
    """Write `nights` nightly full extracts of every agency, and the truth, into out_dir.

    Same seed, people, nights, start date, chunk size, variant and name diversity give
    byte-identical files. `name_diversity` (`normal` or `low`, see names.py) changes only
    how names are drawn: `low` is an island population where a quarter of people carry one
    of six surnames and forenames come from a smaller, steeper pool. `progress` is called
    with the number of first-night residents done after each chunk. `write_config` also
    writes out_dir/config/, a project config that reads these files (the committed sample
    passes False: it has its own project.yaml).
    """
    if people < 1 or nights < 1 or chunk_size < 1:
        raise ValueError("people, nights and chunk_size must all be at least 1")
    chosen = variant_named(variant)
    started = time.perf_counter()
    out_dir = Path(out_dir)
    night_dates = [start_date + timedelta(days=offset) for offset in range(nights)]
    names = NamePicker(name_diversity)
    shared = Shared(seed, night_dates, Issuer(seed), _postcode_issuer(chosen, seed), names, chosen)
    specs = extract_specs(chosen)
    summary = GenerationSummary(
        people=0, households=0, out_dir=out_dir, variant=chosen.name, name_diversity=name_diversity
    )
    summary.records = {night.isoformat(): dict.fromkeys(specs, 0) for night in night_dates}
    if write_config:
        configs.write_config(out_dir / "config", chosen, specs)
    with OutputFiles(out_dir, night_dates, specs, chosen.national_ids) as output:
        chunk_index = 0
        while summary.people < people:
            size = min(chunk_size, people - summary.people)
            chunk = build_chunk(shared, chunk_index, size)
            households_at_start = len(chunk.households)
            people_at_start = len(chunk.people)
            output.write_night(chunk, 0, summary)
            for night in range(1, nights):
                changes = NightlyChanges(chunk, night, night_dates[night]).apply()
                output.write_changes(night, changes)
                output.write_night(chunk, night, summary)
            output.write_people(chunk)
            summary.people += people_at_start
            summary.households += households_at_start
            summary.people_added += len(chunk.people) - people_at_start
            chunk_index += 1
            if progress is not None:
                progress(summary.people)
    summary.seconds = round(time.perf_counter() - started, 2)
    return summary


def _postcode_issuer(variant: Variant, seed: int) -> PostcodeIssuer:
    return NumericPostcodeIssuer(seed) if variant.numeric_postcodes else PostcodeIssuer(seed)


class OutputFiles:
    """Every output file, open for appending chunk after chunk; headers written once."""

    def __init__(
        self,
        out_dir: Path,
        nights: list[date],
        specs: dict[str, ExtractSpec],
        national_ids: bool,
    ) -> None:
        self.out_dir, self.nights, self.specs = out_dir, nights, specs
        self.national_ids = national_ids
        self._stack = ExitStack()
        self.extracts: dict[tuple[int, str], Any] = {}
        self.truth: dict[str, Any] = {}

    def __enter__(self) -> OutputFiles:
        for index, night in enumerate(self.nights):
            folder = self.out_dir / "landing" / night.isoformat()
            folder.mkdir(parents=True, exist_ok=True)
            for source, spec in self.specs.items():
                self.extracts[index, source] = self._writer(
                    folder / spec.file_name, spec.encoding, spec.delimiter, spec.columns
                )
        truth_dir = self.out_dir / "truth"
        truth_dir.mkdir(parents=True, exist_ok=True)
        for name, columns in TRUTH_COLUMNS.items():
            self.truth[name] = self._writer(truth_dir / name, "utf-8", ",", columns)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stack.close()

    def _writer(self, path: Path, encoding: str, delimiter: str, columns: tuple[str, ...]) -> Any:
        # strict encoding: a name latin-1 cannot hold is a bug in names.py, not a "?"
        handle = self._stack.enter_context(path.open("w", encoding=encoding, newline=""))
        writer = csv.writer(handle, delimiter=delimiter, lineterminator="\n")
        writer.writerow(columns)
        return writer

    def write_night(self, chunk: Chunk, night: int, summary: GenerationSummary) -> None:
        """Every record present tonight, in record-id order, and its truth."""
        today = self.nights[night]
        label = today.isoformat()
        records_truth, concerns_truth = self.truth["records.csv"], self.truth["concerns.csv"]
        for source, spec in self.specs.items():
            records = chunk.records[source]
            present = sorted((r for r in records if r.present), key=lambda r: r.record_id)
            self.extracts[night, source].writerows(formatted_row(r, today, spec) for r in present)
            records_truth.writerows(record_row(label, r) for r in present)
            for record in present:
                concerns_truth.writerows(concern_rows(label, record))
            summary.records[label][source] += len(present)

    def write_changes(self, night: int, changes: list) -> None:
        label = self.nights[night].isoformat()
        self.truth["changes.csv"].writerows(change_row(label, change) for change in changes)

    def write_people(self, chunk: Chunk) -> None:
        self.truth["people.csv"].writerows(
            person_row(p, self.nights, self.national_ids) for p in chunk.people
        )
