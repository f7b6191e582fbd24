"""Which persons meet which alert rule, on which records, and how confidently: set-based.

Each step is one SQL statement over tables of the connection, for every person at once
(a Python loop runs only over rules, a handful):

1. `alert_rule`, `alert_condition`: the rules as tables;
2. `alert_concern`: linked records carrying a concern, with when each stops counting;
3. `alert_candidate`: the concerns meeting each condition, of persons the rule's age fits
   and who have candidates for all of its conditions;
4. `alert_bottleneck`: from each candidate record, the weakest edge on the strongest path
   to every record of its person (`alert_link` holds the persons' linked edges);
5. `alert_match`: per rule and person, one candidate per condition, all of different
   agencies, the combination as strongly linked as possible;
6. `alert_tonight`: per firing match and receiving agency, that agency's own records
   (`alert_person_record`) linked to the records relied on at the rule's confidence.

The callers (linkage/alerts.py) fill `alert_concern` and `alert_person_age`, then after
step 3 `alert_person_record` and `alert_link`, from the warehouse; or from data frames
when matching the generator's truth (steps 1 to 5 only).
"""

from __future__ import annotations

from datetime import date

import duckdb

from linkage.config import AlertRule

# Every table the steps create; all temporary, dropped by drop_match_tables.
MATCH_TABLES = [
    "alert_rule", "alert_condition", "alert_concern", "alert_person_age", "alert_candidate",
    "alert_source", "alert_person_record", "alert_link", "alert_bottleneck", "alert_match",
    "alert_tonight",
]  # fmt: skip

RULE_DDL = """
CREATE OR REPLACE TEMP TABLE alert_rule (
    rule_id VARCHAR, rule_position INTEGER, description VARCHAR, conditions INTEGER,
    max_age INTEGER, min_confidence DOUBLE,
    notify VARCHAR[]  -- NULL: the holders of the records relied on
)
"""

CONDITION_DDL = """
CREATE OR REPLACE TEMP TABLE alert_condition (
    rule_id VARCHAR, condition_no INTEGER,
    agencies VARCHAR[],  -- NULL: `any` or `other` (agencies are always distinct in a match)
    concern_types VARCHAR[],  -- NULL: any type
    closed_within_days INTEGER, opened_within_days INTEGER
)
"""

CONCERN_DDL = """
CREATE OR REPLACE TEMP TABLE alert_concern (
    person_id VARCHAR, record_key VARCHAR, source VARCHAR, concern_type VARCHAR,
    opened DATE, ends_on DATE  -- ends_on: when it stopped counting; NULL while open
)
"""

PERSON_AGE_DDL = "CREATE OR REPLACE TEMP TABLE alert_person_age (person_id VARCHAR, age INTEGER)"

PERSON_RECORD_DDL = """
CREATE OR REPLACE TEMP TABLE alert_person_record (
    person_id VARCHAR, record_key VARCHAR, source VARCHAR, source_record_id VARCHAR
)
"""

LINK_DDL = """
CREATE OR REPLACE TEMP TABLE alert_link (
    record_key_l VARCHAR, record_key_r VARCHAR, match_probability DOUBLE
)
"""

MATCH_DDL = """
CREATE OR REPLACE TEMP TABLE alert_match (
    rule_id VARCHAR, person_id VARCHAR,
    record_keys VARCHAR[],  -- one per condition, in condition order
    holders VARCHAR[],  -- the agencies of those records
    confidence DOUBLE  -- the weakest link between them
)
"""


def load_rules(con: duckdb.DuckDBPyConnection, rules: list[AlertRule]) -> None:
    """The rules and their conditions as the tables `alert_rule` and `alert_condition`."""
    con.execute(RULE_DDL)
    con.execute(CONDITION_DDL)
    for position, rule in enumerate(rules):
        notify = None if rule.notify == "holders" else rule.notify
        con.execute(
            "INSERT INTO alert_rule VALUES ($rule_id, $position, $description, $conditions,"
            " $max_age, $min_confidence, $notify)",
            {"rule_id": rule.id, "position": position, "description": rule.description,
             "conditions": len(rule.conditions), "max_age": rule.max_age,
             "min_confidence": rule.min_confidence, "notify": notify},
        )  # fmt: skip
        for number, condition in enumerate(rule.conditions, start=1):
            con.execute(
                "INSERT INTO alert_condition VALUES ($rule_id, $number, $agencies, $types,"
                " $closed_within_days, $opened_within_days)",
                {
                    "rule_id": rule.id,
                    "number": number,
                    "agencies": _listed(condition.agencies),
                    "types": _listed(condition.types),
                    "closed_within_days": condition.closed_within_days,
                    "opened_within_days": condition.opened_within_days,
                },
            )


def _listed(choice: list[str] | str) -> list[str] | None:
    return choice if isinstance(choice, list) else None


CANDIDATE_SQL = """
CREATE OR REPLACE TEMP TABLE alert_candidate AS
WITH counting AS (
    -- a concern counts while open, and for closed_within_days after it stopped
    SELECT c.rule_id, c.condition_no, k.person_id, k.record_key, k.source
    FROM alert_condition c
    JOIN alert_concern k
      ON (c.agencies IS NULL OR list_contains(c.agencies, k.source))
     AND (c.concern_types IS NULL OR list_contains(c.concern_types, k.concern_type))
     AND (k.ends_on IS NULL OR k.ends_on >= $night - c.closed_within_days)
     -- an opening date missing or unreadable counts as recent (linkage/concerns.py)
     AND (c.opened_within_days IS NULL OR k.opened IS NULL
          OR k.opened >= $night - c.opened_within_days)
),
of_age AS (
    -- a rule with max_age needs the person's known age on the night
    SELECT counting.*, r.conditions
    FROM counting
    JOIN alert_rule r USING (rule_id)
    LEFT JOIN alert_person_age a USING (person_id)
    WHERE r.max_age IS NULL OR a.age <= r.max_age
),
complete AS (
    -- only a person with candidates for every condition, of enough agencies, can meet it
    SELECT rule_id, person_id
    FROM of_age
    GROUP BY rule_id, person_id, conditions
    HAVING count(DISTINCT condition_no) = conditions AND count(DISTINCT source) >= conditions
)
SELECT o.rule_id, o.condition_no, o.person_id, o.record_key, o.source
FROM of_age o
SEMI JOIN complete c ON c.rule_id = o.rule_id AND c.person_id = o.person_id
"""


def find_candidates(con: duckdb.DuckDBPyConnection, run_date: date) -> None:
    """`alert_candidate`: per rule and condition, the concerns that meet it on the night."""
    con.execute(CANDIDATE_SQL, {"night": run_date})
    con.execute(
        "CREATE OR REPLACE TEMP TABLE alert_source AS"
        " SELECT DISTINCT record_key FROM alert_candidate"
    )


BOTTLENECK_SQL = """
CREATE OR REPLACE TEMP TABLE alert_bottleneck AS
WITH RECURSIVE link AS (
    SELECT record_key_l AS record_key_from, record_key_r AS record_key_to, match_probability
    FROM alert_link
    UNION ALL
    SELECT record_key_r, record_key_l, match_probability FROM alert_link
),
widest(source_key, record_key, width) USING KEY (source_key, record_key) AS (
    -- widest-path relaxation from every source at once: each round extends the paths
    -- improved in the last one by an edge, and keeps a record's width only if it grew
    SELECT record_key, record_key, CAST('infinity' AS DOUBLE) FROM alert_source
    UNION
    SELECT reached.source_key, reached.record_key, reached.width
    FROM (
        SELECT w.source_key, l.record_key_to AS record_key,
               max(least(w.width, l.match_probability)) AS width
        FROM widest w
        JOIN link l ON l.record_key_from = w.record_key
        GROUP BY ALL
    ) reached
    LEFT JOIN recurring.widest known
      ON known.source_key = reached.source_key AND known.record_key = reached.record_key
    WHERE known.width IS NULL OR reached.width > known.width
)
SELECT source_key, record_key, width FROM widest WHERE source_key <> record_key
"""

CERTAIN_BOTTLENECK_SQL = """
CREATE OR REPLACE TEMP TABLE alert_bottleneck AS
SELECT DISTINCT a.record_key AS source_key, b.record_key, 1.0::DOUBLE AS width
FROM alert_candidate a JOIN alert_candidate b USING (person_id)
WHERE a.record_key <> b.record_key
"""


def find_bottlenecks(con: duckdb.DuckDBPyConnection, certain: bool = False) -> None:
    """`alert_bottleneck`: from each `alert_source` record to every record it is linked to,
    the weakest edge on the strongest path (the maximin over paths of `alert_link`).

    Two records are as surely one person as the weakest link of the best chain between
    them; it is what merging the person's edges strongest first would join them at.
    Records not linked have no row. `certain`: every pair of candidates of one person is
    surely linked (matching the generator's truth).
    """
    con.execute(CERTAIN_BOTTLENECK_SQL if certain else BOTTLENECK_SQL)


def best_assignments(con: duckdb.DuckDBPyConnection, rules: list[AlertRule]) -> None:
    """`alert_match`: per rule and person, the strongest-linked records that meet it."""
    con.execute(MATCH_DDL)
    for rule in rules:
        con.execute(assignment_sql(len(rule.conditions)), {"rule_id": rule.id})


def assignment_sql(conditions: int) -> str:
    """One join of the candidates per condition, the combination kept per person being the
    one whose weakest pairwise link is strongest; on a tie, the smallest record keys in
    condition order (the first combination of sorted candidates)."""
    numbers = range(1, conditions + 1)
    pairs = [(i, j) for i in numbers for j in numbers if i < j]
    joins = [
        f"JOIN alert_candidate c{j} ON c{j}.rule_id = c1.rule_id"
        f" AND c{j}.person_id = c1.person_id AND c{j}.condition_no = {j}"
        + "".join(f" AND c{j}.source <> c{i}.source" for i in range(1, j))
        for j in numbers[1:]
    ]
    joins += [
        f"LEFT JOIN alert_bottleneck b{i}_{j}"
        f" ON b{i}_{j}.source_key = c{i}.record_key AND b{i}_{j}.record_key = c{j}.record_key"
        for i, j in pairs
    ]
    links = [f"coalesce(b{i}_{j}.width, 0.0)" for i, j in pairs]
    weakest = f"least({', '.join(links)})" if links else "1.0::DOUBLE"
    keys = ", ".join(f"c{n}.record_key" for n in numbers)
    key_order = ", ".join(f"record_keys[{n}]" for n in numbers)
    join_lines = "\n    ".join(joins)
    return f"""
INSERT INTO alert_match
WITH combination AS (
    SELECT c1.rule_id, c1.person_id, [{keys}] AS record_keys,
           [{", ".join(f"c{n}.source" for n in numbers)}] AS holders,
           {weakest} AS confidence
    FROM alert_candidate c1
    {join_lines}
    WHERE c1.rule_id = $rule_id AND c1.condition_no = 1
),
strongest AS (
    SELECT * FROM combination
    QUALIFY row_number() OVER (
        PARTITION BY person_id ORDER BY confidence DESC, {key_order}) = 1
)
SELECT rule_id, person_id, record_keys, holders, confidence FROM strongest
"""


TONIGHT_DDL = """
CREATE OR REPLACE TEMP TABLE alert_tonight (
    rule_id VARCHAR, person_id VARCHAR, recipient VARCHAR, confidence DOUBLE,
    record_keys VARCHAR[], holders VARCHAR[], recipient_record_ids VARCHAR[]
)
"""

TONIGHT_SQL = """
INSERT INTO alert_tonight
WITH firing AS (
    SELECT m.*, r.min_confidence, coalesce(r.notify, m.holders) AS recipients
    FROM alert_match m JOIN alert_rule r USING (rule_id)
    WHERE m.confidence >= r.min_confidence
),
addressed AS (
    SELECT DISTINCT rule_id, person_id, unnest(recipients) AS recipient FROM firing
),
relied_on AS (
    SELECT rule_id, person_id, unnest(record_keys) AS relied_key FROM firing
),
named_record AS (
    -- a recipient is named only its own records linked to a record the alert relies on
    -- at the rule's confidence
    SELECT DISTINCT a.rule_id, a.person_id, a.recipient, li.record_key, li.source_record_id
    FROM addressed a
    JOIN firing f USING (rule_id, person_id)
    JOIN alert_person_record li ON li.person_id = a.person_id AND li.source = a.recipient
    JOIN relied_on k ON k.rule_id = a.rule_id AND k.person_id = a.person_id
    LEFT JOIN alert_bottleneck b ON b.source_key = k.relied_key AND b.record_key = li.record_key
    WHERE li.record_key = k.relied_key OR b.width >= f.min_confidence
)
SELECT f.rule_id, f.person_id, n.recipient,
       -- rounded as Python's round(x, 6) does (correctly); round() can differ at a half
       CAST(format('{:.6f}', f.confidence) AS DOUBLE) AS confidence,
       f.record_keys, list_sort(f.holders) AS holders,
       list(n.source_record_id ORDER BY n.source_record_id) AS recipient_record_ids
FROM firing f
JOIN named_record n USING (rule_id, person_id)
GROUP BY ALL
"""


def address_alerts(con: duckdb.DuckDBPyConnection) -> None:
    """`alert_tonight`: one row per (rule, person, recipient) firing tonight."""
    con.execute(TONIGHT_DDL)
    con.execute(TONIGHT_SQL)


def drop_match_tables(con: duckdb.DuckDBPyConnection) -> None:
    for table in MATCH_TABLES:
        con.execute(f"DROP TABLE IF EXISTS temp.{table}")
