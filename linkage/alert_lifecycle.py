"""Alert lifecycle across nights, as one SQL statement: new, ongoing, resolved.

An open alert (new or ongoing) follows its person through person-id merges
(person_id_history). Keyed by (rule, person, recipient): the open alert with the smallest
id whose key fires tonight carries on (`ongoing`; still `new` when its own night is
re-run), any other open alert with that key is resolved as merged into it, and an open
alert whose key does not fire is resolved as cleared. Keys firing with no open alert get
new ids, numbered in key order. Closed alerts stay as they are.
"""

from __future__ import annotations

from datetime import date

import duckdb

ALERT_ID_PREFIX = "A"

NEXT_ALERTS_SQL = """
CREATE OR REPLACE TEMP TABLE alert_next AS
WITH RECURSIVE latest_merge AS (
    -- where a merged-away person id went (its latest merge, if it was merged twice)
    SELECT person_id, related_person_id
    FROM person_id_history
    WHERE event = 'merged'
    QUALIFY row_number() OVER (
        PARTITION BY person_id ORDER BY run_date DESC NULLS FIRST, run_id DESC NULLS FIRST) = 1
),
open_alert AS (
    SELECT * FROM alert WHERE status IN ('new', 'ongoing')
),
merge_chain(start_id, person_id, seen) AS (
    -- follow each open alert's person id through merges; a cycle stops where it repeats
    SELECT DISTINCT person_id, person_id, CAST([] AS VARCHAR[]) FROM open_alert
    UNION ALL
    SELECT c.start_id, m.related_person_id, list_append(c.seen, c.person_id)
    FROM merge_chain c
    JOIN latest_merge m ON m.person_id = c.person_id
    WHERE NOT list_contains(c.seen, c.person_id)
),
followed AS (
    SELECT start_id, person_id FROM merge_chain
    QUALIFY row_number() OVER (PARTITION BY start_id ORDER BY len(seen) DESC) = 1
),
carried AS (
    -- open alerts under their person's id of tonight; the first of a key to fire carries on
    SELECT o.* REPLACE (f.person_id AS person_id),
           t.rule_id IS NOT NULL AS fires,
           row_number() OVER (
               PARTITION BY o.rule_id, f.person_id, o.recipient ORDER BY o.alert_id
           ) AS position
    FROM open_alert o
    JOIN followed f ON f.start_id IS NOT DISTINCT FROM o.person_id
    LEFT JOIN alert_tonight t
      ON t.rule_id = o.rule_id AND t.person_id = f.person_id AND t.recipient = o.recipient
),
ongoing AS (
    SELECT c.alert_id, t.rule_id, t.person_id, t.recipient,
           CASE WHEN c.status = 'new' AND c.last_run_date = $run_date THEN 'new'
                ELSE 'ongoing' END AS status,  -- re-running a night keeps its new alerts new
           t.confidence, t.record_keys, t.holders, t.recipient_record_ids,
           c.first_run_id, c.first_run_date, $run_id AS last_run_id,
           $run_date AS last_run_date, c.resolved_run_id, c.note
    FROM carried c
    JOIN alert_tonight t
      ON t.rule_id = c.rule_id AND t.person_id = c.person_id AND t.recipient = c.recipient
    WHERE c.position = 1
),
resolved AS (
    SELECT c.* EXCLUDE (fires, position) REPLACE (
        'resolved' AS status,
        $run_id AS resolved_run_id,
        CASE WHEN c.fires THEN 'merged with another alert' ELSE 'condition cleared' END AS note
    )
    FROM carried c
    WHERE NOT (c.fires AND c.position = 1)
),
raised AS (
    SELECT printf('%s%010d', $prefix, $next_number - 1 + row_number() OVER (
               ORDER BY t.rule_id, t.person_id, t.recipient)) AS alert_id,
           t.rule_id, t.person_id, t.recipient, 'new' AS status, t.confidence, t.record_keys,
           t.holders, t.recipient_record_ids, $run_id AS first_run_id,
           $run_date AS first_run_date, $run_id AS last_run_id, $run_date AS last_run_date,
           CAST(NULL AS VARCHAR) AS resolved_run_id, CAST(NULL AS VARCHAR) AS note
    FROM alert_tonight t
    ANTI JOIN carried c
      ON c.fires AND c.rule_id = t.rule_id AND c.person_id = t.person_id
     AND c.recipient = t.recipient
),
closed AS (
    SELECT * FROM alert WHERE NOT coalesce(status IN ('new', 'ongoing'), false)
)
SELECT {columns} FROM (
    SELECT * FROM closed
    UNION ALL BY NAME SELECT * FROM resolved
    UNION ALL BY NAME SELECT * FROM ongoing
    UNION ALL BY NAME SELECT * FROM raised
)
ORDER BY alert_id
"""


def next_alerts(
    con: duckdb.DuckDBPyConnection,
    columns: list[str],
    run_id: str,
    run_date: date,
    next_number: int,
) -> None:
    """`alert_next`: every alert after tonight, from `alert`, `alert_tonight` and the
    person-id merges of `person_id_history`; new ids count up from `next_number`."""
    con.execute(
        NEXT_ALERTS_SQL.format(columns=", ".join(columns)),
        {"run_id": run_id, "run_date": run_date, "next_number": next_number,
         "prefix": ALERT_ID_PREFIX},
    )  # fmt: skip


def next_alert_number(con: duckdb.DuckDBPyConnection) -> int:
    """One more than the largest alert number ever given."""
    rows = con.execute(
        "SELECT coalesce(max(CAST(alert_id[$start:] AS BIGINT)), 0) + 1 FROM alert",
        {"start": len(ALERT_ID_PREFIX) + 1},
    ).fetchall()
    return int(rows[0][0])
