"""Time `standardise` on synthetic staged rows generated in DuckDB SQL.

    .venv/bin/python benchmarks/standardise_bench.py --rows 1000000 [--threads 2]
        [--unique-addresses] [--one-line-addresses] [--postcode-format as_written] [--json PATH]

Prints seconds and rows per second, and writes the figures as JSON (--json PATH).
Values are drawn deterministically from small lists (hash of the row number), so names
repeat as they do in real extracts while addresses, dates and identifiers mostly do not.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import duckdb

from linkage.stage import STAGED_COLUMNS
from linkage.standardise import standardise

FORENAMES = [
    "John",
    "JAMES",
    "mr william",
    "Bill",
    "Seònaid",
    "Mary-Jane",
    "Catherine",
    "Kate",
    "Alexander",
    "Sandy",
    "Robert",
    "Rab",
    "Margaret",
    "Peggy",
    "Elizabeth",
    "Liz",
    "Thomas",
    "Tam",
    "David",
    "Fiona",
    "Iain",
    "Eilidh",
    "Morag",
    "Baby of",
    "Dr Andrew",
    "Aoife",
    "Ruaridh",
    "Hamish",
    "Kirsty",
    "Ewan",
    "Callum Iain",
    "Lewis",
    "Ava",
]
SURNAMES = [
    "Smith",
    "McDonald",
    "Mac Donald",
    "MACDONALD",
    "O'Brien",
    "Smith-Jones",
    "Brown",
    "van der Berg",
    "de la Cruz",
    "Campbell",
    "Stewart",
    "Robertson",
    "Thomson",
    "Anderson",
    "MacLeod",
    "McLeod",
    "Murray",
    "Paterson",
    "Fraser",
    "Mackay",
    "Ross",
    "Kerr",
    "Johnstone",
    "Reid",
    "Scott",
    "Grant",
    "Hamilton",
    "Mackenzie",
    "Sinclair",
]
STREETS = [
    "Kelvin St.",
    "Great Western Rd",
    "Byres Road",
    "Dumbarton Rd",
    "Hyndland Ave",
    "Princes St",
    "Leith Walk",
    "St Vincent St",
    "Queen Margaret Dr",
    "Park Gdns",
    "Clyde Pl",
    "Royal Cres",
    "Marchmont Terr",
    "Morningside Rd",
]
TOWNS = ["Glasgow", "Edinburgh", "Dundee", "Aberdeen", "Inverness", "Stirling", "Perth"]


def make_staged(
    con: duckdb.DuckDBPyConnection,
    rows: int,
    unique_addresses: bool = False,
    one_line_addresses: bool = False,
) -> None:
    """Create staged_record with `rows` synthetic rows (lists bound as parameters).

    unique_addresses gives every row its own address text: the worst case for the
    per-distinct-value address step. one_line_addresses writes town and postcode into the
    address text, with no town or postcode column, as a police free-text line.
    """
    con.execute(f"CREATE OR REPLACE TABLE staged_record ({STAGED_COLUMNS})")
    con.execute(
        """
        INSERT INTO staged_record BY NAME
        WITH
        numbered AS (
            SELECT i, CAST(hash(i) >> 1 AS BIGINT) AS h FROM range($rows) AS r(i)
        ),
        generated AS (
            SELECT
                DATE '2026-11-01' AS run_date,
                ['health', 'education', 'police', 'socialwork'][1 + i % 4] AS source,
                CAST(i AS VARCHAR) AS source_record_id,
                'bench.csv' AS source_file,
                'sha' AS file_sha256,
                i + 1 AS source_row_number,
                i + 2 AS source_line_number,
                $forenames[1 + h % len($forenames)] AS forename_raw,
                CASE WHEN h % 3 = 0 THEN $forenames[1 + (h >> 8) % len($forenames)] END
                    AS middle_names_raw,
                NULL AS preferred_forename_raw,
                $surnames[1 + (h >> 16) % len($surnames)] AS surname_raw,
                CASE WHEN h % 5 = 0 THEN $surnames[1 + (h >> 24) % len($surnames)] END
                    AS other_surnames_raw,
                strftime(DATE '1930-01-01' + CAST((h >> 32) % 32000 AS INTEGER), '%d/%m/%Y')
                    AS date_of_birth_raw,
                DATE '1930-01-01' + CAST((h >> 32) % 32000 AS INTEGER) AS date_of_birth,
                ['M', 'F', 'X'][1 + (h >> 40) % 3] AS sex_raw,
                ['M', 'F', NULL][1 + (h >> 40) % 3] AS sex,
                CASE WHEN $unique_addresses THEN 'Flat ' || i || ', ' ELSE '' END
                    || CAST(1 + (h >> 12) % 300 AS VARCHAR) || ' '
                    || $streets[1 + (h >> 20) % len($streets)]
                    || CASE WHEN h % 4 = 0 THEN ', Flat ' || (h % 4) || '/' || (h % 3) ELSE '' END
                    AS address_raw,
                $towns[1 + (h >> 28) % len($towns)] AS town_raw,
                chr(65 + CAST((h >> 36) % 26 AS INTEGER)) || CAST((h >> 44) % 90 AS VARCHAR)
                    || ' ' || CAST((h >> 50) % 10 AS VARCHAR) || 'QQ' AS postcode_raw,
                map_from_entries([
                    ('chi', lpad(CAST(h % 10000000000 AS VARCHAR), 10, '0')),
                    ('scn', CASE WHEN i % 4 = 1
                        THEN lpad(CAST(h % 1000000000 AS VARCHAR), 9, '0') END),
                    ('police_id', CASE WHEN i % 4 = 2 THEN 'P' || i END),
                    ('social_work_id', CASE WHEN i % 4 = 3 THEN 'SW ' || i END)
                ])::MAP(VARCHAR, VARCHAR) AS identifiers_raw,
                NULL AS concern_type,
                NULL AS concern_status,
                NULL::DATE AS concern_opened,
                NULL::DATE AS concern_closed
            FROM numbered
        ),
        final AS (
            SELECT
                * REPLACE (
                    CASE
                        WHEN $one_line THEN concat_ws(', ', address_raw, town_raw, postcode_raw)
                        ELSE address_raw
                    END AS address_raw,
                    CASE WHEN NOT $one_line THEN town_raw END AS town_raw,
                    CASE WHEN NOT $one_line THEN postcode_raw END AS postcode_raw
                )
            FROM generated
        )
        SELECT * FROM final
        """,
        {
            "rows": rows,
            "forenames": FORENAMES,
            "surnames": SURNAMES,
            "streets": STREETS,
            "towns": TOWNS,
            "unique_addresses": unique_addresses,
            "one_line": one_line_addresses,
        },
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--unique-addresses", action="store_true")
    parser.add_argument("--one-line-addresses", action="store_true")
    parser.add_argument("--postcode-format", choices=["uk", "as_written"], default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    con = duckdb.connect()
    con.execute(f"SET threads = {int(args.threads)}")
    make_staged(con, args.rows, args.unique_addresses, args.one_line_addresses)
    # only passed when asked for, so the script also times code from before the setting
    setting = {"postcode_format": args.postcode_format} if args.postcode_format else {}
    started = time.perf_counter()
    rows = standardise(con, **setting)
    seconds = time.perf_counter() - started
    figures = {
        "benchmark": "standardise",
        "rows": rows,
        "threads": args.threads,
        "unique_addresses": args.unique_addresses,
        "one_line_addresses": args.one_line_addresses,
        "postcode_format": args.postcode_format or "uk",
        "seconds": round(seconds, 2),
        "rows_per_second": round(rows / seconds),
    }
    print(json.dumps(figures))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
