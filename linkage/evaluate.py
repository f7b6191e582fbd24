"""Truth-based measures of a person index: pairwise, B-cubed, merges, splits, twins.

All counts come from cell sizes (cluster x true person), never from enumerating pairs,
so evaluating a million records costs a few group-bys.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import duckdb

from linkage.extract import quote_identifier


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
