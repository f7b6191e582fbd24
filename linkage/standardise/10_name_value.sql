-- Every distinct raw name with the role whose rules apply to it. Names repeat heavily
-- across records, so the name rules (11_name.sql) run once per value, not once per row.
CREATE OR REPLACE TEMP TABLE std_name_value AS
WITH
staged AS (
    SELECT
        forename_raw,
        middle_names_raw,
        preferred_forename_raw,
        surname_raw,
        other_surnames_raw
    FROM std_bounded
),

forename_raw_value AS (
    SELECT forename_raw AS raw FROM staged
    UNION
    SELECT middle_names_raw FROM staged
    UNION
    SELECT preferred_forename_raw FROM staged
),

surname_raw_value AS (
    SELECT surname_raw AS raw FROM staged
    UNION
    -- other_surnames_raw holds zero or more surnames joined with '|'
    SELECT unnest(string_split(other_surnames_raw, '|')) FROM staged
),

final AS (
    SELECT 'forename' AS role, raw FROM forename_raw_value WHERE raw IS NOT NULL
    UNION ALL
    SELECT 'surname' AS role, raw FROM surname_raw_value WHERE raw IS NOT NULL
)

SELECT * FROM final;
