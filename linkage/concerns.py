"""Which concerns are open on a night: one definition, read by exports and the review queue.

A concern counts as open when it is not closed (by status or by a closing date on or
before the night). A concern of an event source (`concern.open_for_days`, e.g. police
incidents) counts only that long after it opened; a concern with no status at all is
taken as an event of the last EVENT_OPEN_DAYS days. A concern whose opening date is
missing or could not be read (flagged at intake) counts as open: a needless alert costs
a look, a missed one can cost a child.
"""

from __future__ import annotations

from datetime import date

import duckdb
import pandas as pd

from linkage.config import ProjectConfig

EVENT_OPEN_DAYS = 90
EVENT_DAYS_TABLE = "concern_event_days"

OPEN_ON_MACRO = f"""
CREATE OR REPLACE TEMP MACRO concern_open_on(
    concern_type, status, opened, closed, open_for_days, night
) AS
    concern_type IS NOT NULL
    AND coalesce(status, '') <> 'closed'
    AND (closed IS NULL OR closed > night)
    AND coalesce(CASE
        WHEN open_for_days IS NOT NULL THEN opened >= night - CAST(open_for_days AS INTEGER)
        WHEN status = 'open' THEN true
        ELSE opened >= night - {EVENT_OPEN_DAYS}
    END, true)  -- no (readable) opening date: counted as open, not as expired
"""

# Records with a concern open on $night, with their source (needs define_open_concern).
OPEN_CONCERN_RECORDS_SQL = f"""
SELECT c.record_key, c.source, c.concern_type
FROM canonical_record c
LEFT JOIN {EVENT_DAYS_TABLE} e USING (source)
WHERE concern_open_on(
    c.concern_type, c.concern_status, c.concern_opened, c.concern_closed,
    e.open_for_days, CAST($night AS DATE)
)
"""


def define_open_concern(con: duckdb.DuckDBPyConnection, project: ProjectConfig) -> None:
    """The macro concern_open_on and the table of event sources' days, for this session."""
    con.execute(OPEN_ON_MACRO)
    frame = pd.DataFrame(
        list(project.event_concern_days().items()), columns=["source", "open_for_days"]
    ).astype({"source": "string", "open_for_days": "int64"})
    con.register("event_days_frame", frame)
    try:
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {EVENT_DAYS_TABLE} AS SELECT * FROM event_days_frame"
        )
    finally:
        con.unregister("event_days_frame")


def open_concern_records(
    con: duckdb.DuckDBPyConnection, project: ProjectConfig, night: date, table: str
) -> None:
    """Create TEMP TABLE `table` of the records with a concern open on the night."""
    define_open_concern(con, project)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {table} AS {OPEN_CONCERN_RECORDS_SQL}", {"night": night}
    )
