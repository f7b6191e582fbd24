"""Truth-based measures of a person index: pairwise, B-cubed, merges, splits, twins.

All counts come from cell sizes (cluster x true person), never from enumerating pairs,
so evaluating a million records costs a few group-bys.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, fields
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb

from linkage.config import ProjectConfig
from linkage.errors import LinkageError
from linkage.extract import quote_identifier
from linkage.index import published_link_run
from linkage.warehouse import fetch_one, open_warehouse

log = logging.getLogger(__name__)


class EvaluationError(LinkageError):
    """Nothing to evaluate: no warehouse, no published index, or no truth for its night."""


@dataclass(frozen=True)
class Evaluation:
    records: int
    true_persons: int
    predicted_persons: int
    pairwise_precision: float
    pairwise_recall: float
    pairwise_f1: float
    bcubed_precision: float
    bcubed_recall: float
    wrong_person_merges: int  # predicted persons holding records of two or more true people
    split_persons: int  # true people whose records sit in two or more predicted persons
    twins_merged: int  # twin pairs whose records share a predicted person

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


EVALUATION_SQL = """
WITH joined AS (
    SELECT p.record_key, p.person_id, t.true_person_id
    FROM predicted p JOIN truth t USING (record_key)
),
cells AS (
    SELECT person_id, true_person_id, count(*) AS n FROM joined GROUP BY ALL
),
cluster_sizes AS (SELECT person_id, sum(n) AS n FROM cells GROUP BY ALL),
truth_sizes AS (SELECT true_person_id, sum(n) AS n FROM cells GROUP BY ALL),
pair_counts AS (
    SELECT
        (SELECT sum(n * (n - 1) / 2) FROM cells) AS true_positive,
        (SELECT sum(n * (n - 1) / 2) FROM cluster_sizes) AS predicted_pairs,
        (SELECT sum(n * (n - 1) / 2) FROM truth_sizes) AS true_pairs
),
bcubed AS (
    SELECT
        sum(c.n * c.n / cs.n) / sum(c.n) AS precision,
        sum(c.n * c.n / ts.n) / sum(c.n) AS recall
    FROM cells c
    JOIN cluster_sizes cs USING (person_id)
    JOIN truth_sizes ts USING (true_person_id)
)
SELECT
    (SELECT count(*) FROM joined) AS records,
    (SELECT count(*) FROM truth_sizes) AS true_persons,
    (SELECT count(*) FROM cluster_sizes) AS predicted_persons,
    coalesce(true_positive / nullif(predicted_pairs, 0), 1.0) AS pairwise_precision,
    coalesce(true_positive / nullif(true_pairs, 0), 1.0) AS pairwise_recall,
    bcubed.precision AS bcubed_precision,
    bcubed.recall AS bcubed_recall,
    (SELECT count(*) FROM (SELECT person_id FROM cells GROUP BY 1 HAVING count(*) > 1))
        AS wrong_person_merges,
    (SELECT count(*) FROM (SELECT true_person_id FROM cells GROUP BY 1 HAVING count(*) > 1))
        AS split_persons,
    (SELECT count(*) FROM twin_pair tp
      WHERE EXISTS (
        SELECT 1 FROM joined a JOIN joined b USING (person_id)
        WHERE a.true_person_id = tp.first_id AND b.true_person_id = tp.second_id))
        AS twins_merged
FROM pair_counts, bcubed
"""


def evaluate(
    con: duckdb.DuckDBPyConnection, predicted_table: str, truth_dir: Path, night: str
) -> Evaluation:
    """Compare predicted_table (record_key, person_id) with the generator's truth for a night."""
    table = quote_identifier(predicted_table)
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW predicted AS SELECT record_key, person_id FROM {table}"
    )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE truth AS"
        " SELECT source || ':' || source_record_id AS record_key, person_id AS true_person_id"
        " FROM read_csv($path, all_varchar = true) WHERE night = $night",
        {"path": str(truth_dir / "records.csv"), "night": night},
    )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE twin_pair AS"
        " SELECT person_id AS first_id, split_part(tag, ':', 2) AS second_id"
        " FROM (SELECT person_id, unnest(string_split(hard_cases, ';')) AS tag"
        "       FROM read_csv($path, all_varchar = true))"
        " WHERE tag LIKE 'twin:%' AND person_id < split_part(tag, ':', 2)",
        {"path": str(truth_dir / "people.csv")},
    )
    row = con.execute(EVALUATION_SQL).fetchall()[0]
    if not row[0]:  # nothing joined: every measure would be undefined
        raise EvaluationError(
            f"{truth_dir / 'records.csv'}: no record of {predicted_table} is in the truth of"
            f" night {night}: evaluate against the night the extracts were generated for"
        )
    names = [
        "records",
        "true_persons",
        "predicted_persons",
        "pairwise_precision",
        "pairwise_recall",
        "bcubed_precision",
        "bcubed_recall",
        "wrong_person_merges",
        "split_persons",
        "twins_merged",
    ]
    values = dict(zip(names, row, strict=True))
    precision, recall = float(values["pairwise_precision"]), float(values["pairwise_recall"])
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return Evaluation(
        records=int(values["records"]),
        true_persons=int(values["true_persons"]),
        predicted_persons=int(values["predicted_persons"]),
        pairwise_precision=precision,
        pairwise_recall=recall,
        pairwise_f1=f1,
        bcubed_precision=float(values["bcubed_precision"]),
        bcubed_recall=float(values["bcubed_recall"]),
        wrong_person_merges=int(values["wrong_person_merges"]),
        split_persons=int(values["split_persons"]),
        twins_merged=int(values["twins_merged"]),
    )


@dataclass(frozen=True)
class RunEvaluation:
    """One link run's published index measured against the truth, as saved with the run."""

    run_id: str
    night: str
    truth_dir: str
    evaluated_at: str
    index_records: int  # records in the published index (`evaluation.records` found in truth)
    evaluation: Evaluation
    path: Path  # the run's evaluation.json

    def as_dict(self) -> dict[str, str | float | int]:
        context: dict[str, str | float | int] = {
            "run_id": self.run_id,
            "night": self.night,
            "truth_dir": self.truth_dir,
            "evaluated_at": self.evaluated_at,
            "index_records": self.index_records,
        }
        return context | self.evaluation.as_dict()

    def to_markdown(self) -> str:
        lines = [
            f"# Evaluation of run {self.run_id} (night {self.night})",
            "",
            "| measure | value |",
            "|---|---:|",
        ]
        for name, value in self.evaluation.as_dict().items():
            shown = f"{value:.4f}" if isinstance(value, float) else f"{value:,}"
            lines.append(f"| {name.replace('_', ' ')} | {shown} |")
        return "\n".join([*lines, "", f"saved: {self.path}"]) + "\n"


_SQL_TYPES = {"int": "BIGINT", "float": "DOUBLE"}
# The warehouse's evaluation history: one row per evaluation, appended, never rewritten.
EVALUATION_CONTEXT_COLUMNS = {
    "run_id": "VARCHAR",
    "night": "DATE",
    "truth_dir": "VARCHAR",
    "evaluated_at": "TIMESTAMP",
    "index_records": "BIGINT",
}


def evaluation_columns() -> dict[str, str]:
    """Column -> SQL type of the `evaluation` table: the run's context, then every measure."""
    measures = {f.name: _SQL_TYPES[str(f.type)] for f in fields(Evaluation)}
    return EVALUATION_CONTEXT_COLUMNS | measures


def evaluate_run(
    project: ProjectConfig, truth_dir: Path, night: date | None = None
) -> RunEvaluation:
    """Evaluate the published `linked_index` against the truth; save it with its link run.

    The night defaults to the one the published index's link run linked. The result goes
    to `<output_dir>/runs/<run_id>/evaluation.json` and a new row of table `evaluation`.
    """
    for name in ("records.csv", "people.csv"):
        if not (truth_dir / name).exists():
            raise EvaluationError(f"{truth_dir / name}: truth file not found")
    if not project.warehouse.exists():
        raise EvaluationError(f"{project.warehouse}: no warehouse: run `linkage nightly` first")
    con = open_warehouse(project.warehouse)
    try:
        run_id, run_night = published_run(con, project)
        truth_night = night.isoformat() if night else run_night
        evaluation = evaluate(con, "linked_index", truth_dir, truth_night)
        result = RunEvaluation(
            run_id=run_id,
            night=truth_night,
            truth_dir=str(truth_dir.resolve()),
            evaluated_at=datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="seconds"),
            index_records=_count(con, "SELECT count(*) FROM linked_index"),
            evaluation=evaluation,
            path=project.output_dir / "runs" / run_id / "evaluation.json",
        )
        _save(con, result)
    finally:
        con.close()
    log.info("run %s evaluated against the truth of night %s", result.run_id, result.night)
    return result


def published_run(con: duckdb.DuckDBPyConnection, project: ProjectConfig) -> tuple[str, str]:
    """(run_id, night) of the link run whose index is published."""
    run = published_link_run(con)
    if run is None:
        raise EvaluationError(
            f"{project.warehouse}: no published person index: train a model and run"
            f" `linkage link --config {project.config_path}` first"
        )
    return run.run_id, run.run_date.isoformat()


def _count(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    row = fetch_one(con, sql)
    return 0 if row is None else int(row[0])


def _save(con: duckdb.DuckDBPyConnection, result: RunEvaluation) -> None:
    result.path.parent.mkdir(parents=True, exist_ok=True)
    result.path.write_text(json.dumps(result.as_dict(), indent=2) + "\n")
    columns = evaluation_columns()
    ddl = ", ".join(f"{quote_identifier(name)} {kind}" for name, kind in columns.items())
    con.execute(f"CREATE TABLE IF NOT EXISTS evaluation ({ddl})")
    names = ", ".join(quote_identifier(name) for name in columns)
    values = ", ".join(f"${name}" for name in columns)
    con.execute(f"INSERT INTO evaluation ({names}) VALUES ({values})", result.as_dict())
