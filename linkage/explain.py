"""Why records were linked: person explanations, waterfall charts and offline dashboards.

Everything here reads the published index (`person`, `linked_index`, `edge`, `link_review`,
`person_id_history`) and the saved Splink model each link run recorded in `link_run`; it
never writes to the warehouse. Explanations and charts carry names, dates of birth and
identifiers, so they are written only where the caller says; logs carry counts only.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pandas as pd
from splink import Linker

from linkage.config import ProjectConfig
from linkage.errors import LinkageError
from linkage.extract import quote_identifier
from linkage.index import LinkRun, link_run, published_link_run
from linkage.link.incremental import stored_term_frequencies
from linkage.link.model import term_frequency_columns
from linkage.link.predict import load_linker
from linkage.link.train import model_input
from linkage.schema import base_columns
from linkage.warehouse import fetch_one

if TYPE_CHECKING:
    from splink.internals.splink_dataframe import SplinkDataFrame

log = logging.getLogger(__name__)

# What an analyst needs to judge a link; the full record stays in canonical_record.
RECORD_COLUMNS = [
    "record_key",  # <source>:<source_record_id>
    "link_confidence",
    "forename",
    "middle_names",
    "surname",
    "date_of_birth",
    "sex",
    "postcode",
    "identifiers",  # every registered identifier the record holds, as 'type value; ...'
]
REVIEW_COLUMNS = [
    "record_key_l",
    "record_key_r",
    "person_id_l",
    "person_id_r",
    "match_probability",
    "reason",
]
HISTORY_COLUMNS = [
    "run_date",
    "run_id",
    "event",
    "person_id",
    "related_person_id",
    "records",
    "reason",
]
GAMMA_PREFIX = "gamma_"
COMPARISON_VIEWER_FILE = "comparison_viewer.html"
CLUSTER_STUDIO_FILE = "cluster_studio.html"


@dataclass(frozen=True)
class EdgeExplanation:
    """One scored pair of the person's records, with each comparison's level in words."""

    record_key_l: str
    record_key_r: str
    match_weight: float
    match_probability: float
    linked: bool
    levels: dict[str, str]  # comparison -> label_for_charts of the level the pair reached


@dataclass(frozen=True)
class PersonExplanation:
    """A person as published, the evidence that holds its records together, and its history."""

    person_id: str
    summary: dict[str, Any]  # the person row
    records: list[dict[str, Any]]  # RECORD_COLUMNS
    edges: list[EdgeExplanation]  # strongest first
    review: list[dict[str, Any]]  # REVIEW_COLUMNS
    history: list[dict[str, Any]]  # HISTORY_COLUMNS, oldest first
    run: LinkRun

    def to_markdown(self, waterfall_files: list[str] | None = None) -> str:
        """The explanation as Markdown; waterfall_files (one per edge) become chart links."""
        sections = [
            _summary_markdown(self),
            _table_markdown("Records", RECORD_COLUMNS, self.records),
            _edges_markdown(self.edges, waterfall_files),
            _table_markdown("Review items", REVIEW_COLUMNS, self.review),
            _table_markdown("Person id history", HISTORY_COLUMNS, self.history),
        ]
        return "\n\n".join(sections) + "\n"


@dataclass(frozen=True)
class RiskyPerson:
    """A person chosen for the dashboards, and why."""

    person_id: str
    reason: str
    records: int
    min_link_confidence: float | None
    needs_review: bool

    @property
    def label(self) -> str:
        confidence = (
            "" if self.min_link_confidence is None else f", weakest {self.min_link_confidence:.8g}"
        )
        flagged = ", flagged" if self.needs_review else ""
        return f"{self.person_id}: {self.reason} ({self.records} records{confidence}{flagged})"


# ---------------------------------------------------------------------------------------
# Opening the published index
# ---------------------------------------------------------------------------------------


@contextmanager
def read_warehouse(path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """The warehouse opened read-only (explanations never write)."""
    if not path.exists():
        raise LinkageError(f"{path}: no warehouse yet: run `linkage nightly` first")
    con = duckdb.connect(str(path), read_only=True)
    try:
        yield con
    finally:
        con.close()


def level_labels(model_path: Path) -> dict[str, dict[int, str]]:
    """comparison -> gamma value -> the level's label_for_charts, from a saved Splink model.

    Splink numbers a comparison's levels from the top: the null level is -1, the others
    count down to 0 (the else level).
    """
    labels: dict[str, dict[int, str]] = {}
    for comparison in _read_model(model_path)["comparisons"]:
        levels = comparison["comparison_levels"]
        scored = [level for level in levels if not level.get("is_null_level")]
        by_gamma = {
            len(scored) - 1 - position: level["label_for_charts"]
            for position, level in enumerate(scored)
        }
        for level in levels:
            if level.get("is_null_level"):
                by_gamma[-1] = level["label_for_charts"]
        labels[comparison["output_column_name"]] = by_gamma
    return labels


def _read_model(model_path: Path) -> dict[str, Any]:
    try:
        return json.loads(model_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LinkageError(
            f"{model_path}: the saved model this link run used is missing: restore it, or "
            "re-link with `linkage link` to explain links under the current model"
        ) from None


# ---------------------------------------------------------------------------------------
# Explaining one person
# ---------------------------------------------------------------------------------------


def explain_person(con: duckdb.DuckDBPyConnection, person_id: str) -> PersonExplanation:
    """The person's summary, records, edges (with level labels), review items and id history."""
    summary = _person_row(con, person_id)
    run = _run_of(con, summary["run_id"])
    labels = level_labels(run.model_path)
    params = {"person_id": person_id}
    return PersonExplanation(
        person_id=person_id,
        summary=summary,
        records=_rows(con, person_records_sql(con), params),
        edges=[_explain_edge(row, labels) for row in _rows(con, PERSON_EDGES_SQL, params)],
        review=_rows(con, PERSON_REVIEW_SQL, params),
        history=_rows(con, PERSON_HISTORY_SQL, params),
        run=run,
    )


def _person_row(con: duckdb.DuckDBPyConnection, person_id: str) -> dict[str, Any]:
    rows = _rows(con, "SELECT * FROM person WHERE person_id = $person_id", {"person_id": person_id})
    if rows:
        return rows[0]
    last = fetch_one(con, LAST_ID_EVENT_SQL, {"person_id": person_id})
    if last is None:
        raise LinkageError(
            f"person {person_id!r} is not in the person index and never was: check the id "
            "(person ids look like P0000000123)"
        )
    event, related, run_date, reason = last
    into = f" into {related}" if related else ""
    raise LinkageError(
        f"person {person_id} is no longer in the person index: {event}{into} on {run_date}"
        f" ({reason})"
    )


def _run_of(con: duckdb.DuckDBPyConnection, run_id: str) -> LinkRun:
    run = link_run(con, run_id)
    if run is None:
        raise LinkageError(
            f"link run {run_id} is missing from link_run: re-link with `linkage link`"
        )
    return run


def _explain_edge(row: dict[str, Any], labels: dict[str, dict[int, str]]) -> EdgeExplanation:
    levels = {
        column.removeprefix(GAMMA_PREFIX): _level_label(labels, column, row[column])
        for column in row
        if column.startswith(GAMMA_PREFIX)
    }
    return EdgeExplanation(
        record_key_l=row["record_key_l"],
        record_key_r=row["record_key_r"],
        match_weight=float(row["match_weight"]),
        match_probability=float(row["match_probability"]),
        linked=bool(row["linked"]),
        levels=levels,
    )


def _level_label(labels: dict[str, dict[int, str]], column: str, gamma: int | None) -> str:
    if gamma is None:
        return ""
    comparison = column.removeprefix(GAMMA_PREFIX)
    return labels.get(comparison, {}).get(int(gamma), f"level {gamma}")


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    result = con.execute(sql, params)
    columns = [description[0] for description in result.description]
    return [dict(zip(columns, row, strict=True)) for row in result.fetchall()]


def person_records_sql(con: duckdb.DuckDBPyConnection) -> str:
    """The person's records, RECORD_COLUMNS; identifiers are the canonical record's columns
    beyond the base ones (one per registered type, whatever the registry was)."""
    base = {column.name for column in base_columns()}
    present = [row[0] for row in con.execute("DESCRIBE canonical_record").fetchall()]
    held = [
        f"CASE WHEN {quote_identifier(name)} IS NOT NULL"
        f" THEN '{name} ' || {quote_identifier(name)} END"
        for name in present
        if name not in base and name.isidentifier()
    ]
    identifiers = f"nullif(concat_ws('; ', {', '.join(held)}), '')" if held else "NULL"
    columns = [c for c in RECORD_COLUMNS if c != "identifiers"]
    return f"""
SELECT {", ".join(columns)}, {identifiers} AS identifiers
FROM linked_index
JOIN canonical_record USING (record_key)
WHERE person_id = $person_id
ORDER BY record_key
"""


# Every stored edge between two of the person's records, linked or not.
PERSON_EDGES_SQL = """
WITH members AS (
    SELECT record_key FROM linked_index WHERE person_id = $person_id
)
SELECT * EXCLUDE (run_id, model_version)
FROM edge
WHERE record_key_l IN (SELECT record_key FROM members)
  AND record_key_r IN (SELECT record_key FROM members)
ORDER BY match_weight DESC, record_key_l, record_key_r
"""

PERSON_REVIEW_SQL = f"""
SELECT {", ".join(REVIEW_COLUMNS)}
FROM link_review
WHERE $person_id IN (person_id_l, person_id_r)
ORDER BY match_probability DESC, record_key_l, record_key_r
"""

# The id's own events, and those of ids merged into it or split from it.
PERSON_HISTORY_SQL = f"""
SELECT {", ".join(HISTORY_COLUMNS)}
FROM person_id_history
WHERE person_id = $person_id OR related_person_id = $person_id
ORDER BY run_date, run_id, person_id, event
"""

LAST_ID_EVENT_SQL = """
SELECT event, related_person_id, run_date, reason
FROM person_id_history
WHERE person_id = $person_id
ORDER BY run_date DESC, run_id DESC
LIMIT 1
"""


# ---------------------------------------------------------------------------------------
# Markdown
# ---------------------------------------------------------------------------------------


def _summary_markdown(explanation: PersonExplanation) -> str:
    person = explanation.summary
    facts = [
        f"- best-known: {_cell(person['forename'])} {_cell(person['surname'])}, born "
        f"{_cell(person['date_of_birth'])}, sex {_cell(person['sex'])}, "
        f"postcode {_cell(person['postcode'])}",
        f"- identifiers: {_identifiers_cell(person['identifiers'])}"
        + (
            f" (conflicting: {_cell(person['conflicting_identifiers'])})"
            if person["conflicting_identifiers"]
            else ""
        ),
        f"- {person['records']} records from {_cell(person['sources'])}; weakest link "
        f"confidence {_cell(person['min_link_confidence'])}; "
        f"{'needs review' if person['needs_review'] else 'no review needed'}",
        f"- published by run {explanation.run.run_id} with model {explanation.run.model_path.name}",
    ]
    return f"# Person {explanation.person_id}\n\n" + "\n".join(facts)


def _edges_markdown(edges: list[EdgeExplanation], waterfall_files: list[str] | None) -> str:
    if not edges:
        return "## Edges\n\nNo scored pairs between this person's records."
    comparisons = list(edges[0].levels)
    columns = ["#", "record_key_l", "record_key_r", "linked", "match_weight", "match_probability"]
    columns += comparisons + (["waterfall"] if waterfall_files else [])
    rows = []
    for number, edge in enumerate(edges, start=1):
        row: dict[str, Any] = {
            "#": number,
            "record_key_l": edge.record_key_l,
            "record_key_r": edge.record_key_r,
            "linked": "yes" if edge.linked else "no",
            "match_weight": f"{edge.match_weight:.2f}",
            "match_probability": edge.match_probability,
        } | edge.levels
        if waterfall_files:
            row["waterfall"] = f"[chart]({waterfall_files[number - 1]})"
        rows.append(row)
    return _table_markdown("Edges", columns, rows)


def _table_markdown(title: str, columns: list[str], rows: list[dict[str, Any]]) -> str:
    if not rows:
        return f"## {title}\n\nNone."
    lines = [f"## {title}", "", "| " + " | ".join(columns) + " |"]
    lines.append("|" + "---|" * len(columns))
    lines += ["| " + " | ".join(_cell(row[column]) for column in columns) + " |" for row in rows]
    return "\n".join(lines)


def _identifiers_cell(identifiers: dict[str, list[str]] | None) -> str:
    held = sorted((identifiers or {}).items())
    return "; ".join(f"{kind} {', '.join(values)}" for kind, values in held) or "none"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.8g}"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    return str(value).replace("|", "\\|")


# ---------------------------------------------------------------------------------------
# Waterfall charts
# ---------------------------------------------------------------------------------------


def waterfall_chart_html(
    con: duckdb.DuckDBPyConnection, model_path: Path, record_key_l: str, record_key_r: str
) -> str:
    """Splink's waterfall chart for one pair of records: a self-contained, offline page."""
    return waterfall_charts_html(con, model_path, [(record_key_l, record_key_r)])[0]


def waterfall_charts_html(
    con: duckdb.DuckDBPyConnection, model_path: Path, pairs: list[tuple[str, str]]
) -> list[str]:
    """One offline waterfall chart per pair, all scored by one linker."""
    if not pairs:
        return []
    keys = sorted({key for pair in pairs for key in pair})
    linker, records = _population_linker(con, model_path, keys)
    by_key = records.set_index("record_key", drop=False)
    charts = []
    for record_key_l, record_key_r in pairs:
        scored = _score_pair(linker, by_key, record_key_l, record_key_r)
        chart = linker.visualisations.waterfall_chart(scored)
        charts.append(_offline(chart.to_html(inline=True), "waterfall chart"))
    return charts


def _population_linker(
    con: duckdb.DuckDBPyConnection, model_path: Path, record_keys: list[str]
) -> tuple[Linker, pd.DataFrame]:
    """A linker to score these records with the population's term frequencies.

    Term-frequency adjustments (SMITH agreeing says less than GALBRAITH) need the whole
    population: the snapshot the published scores used (link/incremental.py), and then
    the linker holds only these records; else every record, to count them tonight.
    """
    stored = stored_term_frequencies(con, term_frequency_columns(_read_model(model_path)))
    snapshot = all(len(table) for table in stored.values())
    records = model_input(con, record_keys=record_keys if snapshot else None)
    linker = load_linker(records, model_path)
    for column, table in stored.items():
        if snapshot:
            lookup = linker._db_api.register(table)
            linker.table_management.register_term_frequency_lookup(lookup, column)
        else:
            linker.table_management.compute_tf_table(column)
    return linker, records


def _score_pair(
    linker: Linker, by_key: pd.DataFrame, record_key_l: str, record_key_r: str
) -> list[dict[str, Any]]:
    left = _register_record(linker, by_key, record_key_l, "explain_record_l")
    right = _register_record(linker, by_key, record_key_r, "explain_record_r")
    return linker.inference.score_pair(left, right).as_record_list()


def _register_record(
    linker: Linker, by_key: pd.DataFrame, record_key: str, table: str
) -> SplinkDataFrame:
    if record_key not in by_key.index:
        raise LinkageError(f"record {record_key!r} is not in canonical_record")
    record = by_key.loc[[record_key]].reset_index(drop=True)
    return linker.table_management.register_table(record, table, overwrite=True)


# ---------------------------------------------------------------------------------------
# Dashboards
# ---------------------------------------------------------------------------------------


def write_dashboards(
    con: duckdb.DuckDBPyConnection, model_path: Path, out_dir: Path, max_clusters: int = 20
) -> list[Path]:
    """Splink's comparison viewer and cluster studio for the riskiest persons, offline.

    Blocking, scoring and rendering see only the chosen persons' records and the stored
    edges between them (`riskiest_persons` says who is chosen, in what order), so they stay
    fast on a 1M-record index; only the term frequencies are counted over every record.
    Returns the dashboards written: none if no chosen person has an edge.
    """
    started = time.perf_counter()
    chosen = riskiest_persons(con, max_clusters)
    if not chosen:
        log.info("dashboards: no person at risk: none written")
        return []
    person_ids = [person.person_id for person in chosen]
    members = con.execute(CHOSEN_RECORDS_SQL, {"person_ids": person_ids}).df()
    stored_edges = con.execute(CHOSEN_EDGES_SQL, {"person_ids": person_ids}).df()
    if stored_edges.empty:
        log.info("dashboards: no edges among %d chosen persons: none written", len(chosen))
        return []
    linker, records = _population_linker(con, model_path, members["record_key"].tolist())
    chosen_records = records.merge(members, on="record_key")
    predictions = _predict_stored_edges(linker, chosen_records, stored_edges)
    clusters = linker.table_management.register_table(
        chosen_records, "explain_clusters", overwrite=True
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    viewer, studio = out_dir / COMPARISON_VIEWER_FILE, out_dir / CLUSTER_STUDIO_FILE
    linker.visualisations.comparison_viewer_dashboard(predictions, str(viewer), overwrite=True)
    linker.visualisations.cluster_studio_dashboard(
        predictions,
        clusters,
        str(studio),
        cluster_ids=person_ids,
        cluster_names=[person.label for person in chosen],
        overwrite=True,
    )
    paths = [_make_offline(viewer, "comparison viewer"), _make_offline(studio, "cluster studio")]
    log.info(
        "dashboards: %d persons, %d records, %d edges in %.1f s",
        len(chosen),
        len(chosen_records),
        len(stored_edges),
        time.perf_counter() - started,
    )
    return paths


def riskiest_persons(con: duckdb.DuckDBPyConnection, max_clusters: int = 20) -> list[RiskyPerson]:
    """The persons most worth an analyst's look, riskiest first, then their review partners.

    Four ranked lists: conflicting identifiers (more than one CHI, SCN or PNC id: most
    likely two people merged, the worst error), flagged for review (weakest link first),
    weakest link (lowest `min_link_confidence`), largest (most records, where a wrong
    chain shows). Persons are taken round-robin, one from each list in that order per
    round, skipping persons already taken, until `max_clusters`: no one kind crowds the
    others out. Then each chosen person's review partners (the other side of its
    `link_review` items) are added, so both sides of a doubtful link are on screen.
    """
    # A list can meet at most max_clusters - 1 persons already taken before its next pick.
    ranked = _rows(con, RISK_LISTS_SQL, {"depth": 2 * max_clusters})
    lists = [
        [row for row in ranked if row["list_order"] == order]
        for order in sorted({row["list_order"] for row in ranked})
    ]
    chosen = [_risky(row) for row in _round_robin(lists, max_clusters)]
    if not chosen:
        return []
    partners = _rows(con, REVIEW_PARTNERS_SQL, {"person_ids": [p.person_id for p in chosen]})
    return chosen + [_risky(row | {"reason": "review partner"}) for row in partners]


def _round_robin(lists: list[list[dict[str, Any]]], limit: int) -> list[dict[str, Any]]:
    """One row from each list per turn, skipping persons already taken, up to limit."""
    taken: dict[str, dict[str, Any]] = {}
    queues = [iter(rows) for rows in lists]
    while queues and len(taken) < limit:
        for queue in list(queues):
            row = next((row for row in queue if row["person_id"] not in taken), None)
            if row is None:
                queues.remove(queue)
            elif len(taken) < limit:
                taken[row["person_id"]] = row
    return list(taken.values())


def _risky(row: dict[str, Any]) -> RiskyPerson:
    return RiskyPerson(
        person_id=row["person_id"],
        reason=row["reason"],
        records=int(row["records"]),
        min_link_confidence=row["min_link_confidence"],
        needs_review=bool(row["needs_review"]),
    )


def _predict_stored_edges(
    linker: Linker, chosen_records: pd.DataFrame, stored_edges: pd.DataFrame
) -> SplinkDataFrame:
    """Re-score the stored edges among the chosen records, with every intermediate column.

    The `edge` table keeps levels and scores only; the dashboards need Splink's full
    prediction rows, so the chosen records are re-blocked and scored, then kept to the
    pairs the link run stored.
    """
    records = linker.table_management.register_table(
        chosen_records.drop(columns="cluster_id"), "explain_records", overwrite=True
    )
    edges = linker.table_management.register_table(stored_edges, "explain_edges", overwrite=True)
    scored = linker.inference.predict_within(records, warning_mode="never")
    kept = scored.query_sql(
        f"SELECT * FROM {{this}} SEMI JOIN {edges.physical_name} USING (record_key_l, record_key_r)"
    )
    return linker.table_management.register_table_predict(kept)


# The four risk lists, each ranked (turn = its place in the list), riskiest first.
RISK_LISTS_SQL = """
WITH conflicting AS (
    SELECT person_id, 1 AS list_order, 'conflicting identifiers' AS reason,
           row_number() OVER (
               ORDER BY len(conflicting_identifiers) DESC, records DESC, person_id
           ) AS turn
    FROM person
    WHERE len(conflicting_identifiers) > 0
),
flagged AS (
    SELECT person_id, 2 AS list_order, 'flagged for review' AS reason,
           row_number() OVER (
               ORDER BY min_link_confidence NULLS LAST, records DESC, person_id
           ) AS turn
    FROM person
    WHERE needs_review
),
weakest AS (
    SELECT person_id, 3 AS list_order, 'weakest link' AS reason,
           row_number() OVER (ORDER BY min_link_confidence, records DESC, person_id) AS turn
    FROM person
    WHERE min_link_confidence IS NOT NULL
),
largest AS (
    SELECT person_id, 4 AS list_order, 'largest' AS reason,
           row_number() OVER (ORDER BY records DESC, min_link_confidence, person_id) AS turn
    FROM person
    WHERE records > 1
),
ranked AS (
    SELECT * FROM conflicting
    UNION ALL SELECT * FROM flagged
    UNION ALL SELECT * FROM weakest
    UNION ALL SELECT * FROM largest
)
SELECT r.list_order, r.turn, r.reason, p.person_id, p.records, p.min_link_confidence,
       p.needs_review
FROM ranked r JOIN person p USING (person_id)
WHERE r.turn <= $depth
ORDER BY r.list_order, r.turn
"""

REVIEW_PARTNERS_SQL = """
WITH chosen AS (
    SELECT unnest($person_ids) AS person_id
),
partners AS (
    SELECT person_id_r AS person_id
    FROM link_review WHERE person_id_l IN (SELECT person_id FROM chosen)
    UNION
    SELECT person_id_l
    FROM link_review WHERE person_id_r IN (SELECT person_id FROM chosen)
)
SELECT p.person_id, p.records, p.min_link_confidence, p.needs_review
FROM partners JOIN person p USING (person_id)
WHERE person_id NOT IN (SELECT person_id FROM chosen)
ORDER BY person_id
"""

# The chosen persons' records, each with its person as Splink's cluster_id.
CHOSEN_RECORDS_SQL = """
SELECT record_key, person_id AS cluster_id
FROM linked_index
WHERE person_id IN (SELECT unnest($person_ids))
ORDER BY record_key
"""

CHOSEN_EDGES_SQL = """
WITH chosen_records AS (
    SELECT record_key FROM linked_index WHERE person_id IN (SELECT unnest($person_ids))
)
SELECT record_key_l, record_key_r
FROM edge
WHERE record_key_l IN (SELECT record_key FROM chosen_records)
  AND record_key_r IN (SELECT record_key FROM chosen_records)
ORDER BY record_key_l, record_key_r
"""


# ---------------------------------------------------------------------------------------
# Offline HTML
# ---------------------------------------------------------------------------------------

# Anything the browser would fetch from elsewhere: a script, stylesheet, frame or module.
REMOTE_RESOURCE = re.compile(
    r"""<(?:script|link|iframe|img)\b[^>]*\b(?:src|href)\s*=\s*["']?(?:https?:)?//[^"'\s>]*"""
    r"""|\bimport\s*(?:\(|[^;'"]*\bfrom)\s*["'](?:https?:)?//[^"']*""",
    re.IGNORECASE,
)
# Splink's dashboard templates ask Google for a web font: the page works without it, and
# opening a dashboard of personal data should not tell a third party it was opened.
REMOTE_FONT = re.compile(
    r"""<link\b[^>]*\bhref=["']https://fonts\.(?:googleapis|gstatic)\.com[^>]*>\s*""",
    re.IGNORECASE,
)


def remote_resources(html: str) -> list[str]:
    """What an HTML page would load from the network (empty for a page that works offline)."""
    return REMOTE_RESOURCE.findall(html)


def _offline(html: str, what: str) -> str:
    """The page without its web-font links; an error if it would still load anything."""
    html = REMOTE_FONT.sub("", html)
    remote = remote_resources(html)
    if remote:
        raise LinkageError(
            f"Splink's {what} would load {remote[0]!r} from the network: find the offline "
            "option of this Splink version before publishing it"
        )
    return html


def _make_offline(path: Path, what: str) -> Path:
    """Rewrite a dashboard Splink wrote so it opens offline."""
    path.write_text(_offline(path.read_text(encoding="utf-8"), what), encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------
# Entry points for the CLI and the nightly flow
# ---------------------------------------------------------------------------------------


def explain_in_project(
    project: ProjectConfig, person_id: str, out_dir: Path | None = None
) -> PersonExplanation:
    """Explain a person of the project's published index.

    With out_dir, also write explanation.md and one waterfall chart per edge there.
    """
    with read_warehouse(project.warehouse) as con:
        explanation = explain_person(con, person_id)
        if out_dir is not None:
            write_explanation(con, explanation, out_dir)
    return explanation


def write_explanation(
    con: duckdb.DuckDBPyConnection, explanation: PersonExplanation, out_dir: Path
) -> list[Path]:
    """explanation.md plus waterfall-<n>.html for edge n; returns the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    pairs = [(edge.record_key_l, edge.record_key_r) for edge in explanation.edges]
    charts = waterfall_charts_html(con, explanation.run.model_path, pairs)
    names = [f"waterfall-{number}.html" for number in range(1, len(charts) + 1)]
    for name, html in zip(names, charts, strict=True):
        (out_dir / name).write_text(html, encoding="utf-8")
    markdown = out_dir / "explanation.md"
    markdown.write_text(explanation.to_markdown(names), encoding="utf-8")
    return [markdown, *(out_dir / name for name in names)]


def dashboards_for_run(project: ProjectConfig, run_id: str) -> list[Path]:
    """The run's dashboards, in <output_dir>/runs/<run_id>/dashboards/.

    None if the run did not publish the current index (e.g. no model yet, linking skipped).
    """
    with read_warehouse(project.warehouse) as con:
        run = published_link_run(con)
        if run is None or run.run_id != run_id:
            log.info("run %s did not publish the person index: no dashboards", run_id)
            return []
        return write_dashboards(con, run.model_path, run_dashboard_dir(project, run_id))


def dashboards_for_project(project: ProjectConfig, out_dir: Path | None = None) -> list[Path]:
    """Dashboards of the published index (default: its run's dashboards directory)."""
    with read_warehouse(project.warehouse) as con:
        run = published_link_run(con)
        if run is None:
            raise LinkageError(
                f"{project.warehouse}: no linked run yet: train a model (`linkage train`) "
                "and link (`linkage link`) first"
            )
        return write_dashboards(
            con, run.model_path, out_dir or run_dashboard_dir(project, run.run_id)
        )


def run_dashboard_dir(project: ProjectConfig, run_id: str) -> Path:
    return project.output_dir / "runs" / run_id / "dashboards"
