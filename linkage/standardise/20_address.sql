-- Address rules, once per distinct raw address ('12a Kelvin St., Flat 2/1').
--   address_line: upper case, punctuation removed, lines run together
--   house_number: the first number naming the building (12, 12A, 7-9); flat positions
--                 (FLAT 3, 2/1, 3F2) say where inside it, so they are never the number
--   street_text:  the words after the house number; with no number, the first line that
--                 ends in a street type (ROSE COTTAGE, MAIN ST -> MAIN ST). Abbreviations
--                 are expanded per distinct street in 21_street.sql.
CREATE OR REPLACE TEMP TABLE std_address AS
WITH
source AS (
    SELECT DISTINCT address_raw AS raw
    FROM std_staged
    WHERE address_raw IS NOT NULL
),

cleaned AS (
    -- commas stay for now: they mark where one address line ends
    SELECT
        raw,
        ascii_upper(raw)
            .regexp_replace('[''.]', '', 'g')                          -- ST. -> ST, JOHN'S -> JOHNS
            .regexp_replace('([0-9]) *([/-]) *([0-9])', '\1\2\3', 'g') -- 2 / 1 -> 2/1, 7 - 9 -> 7-9
            .regexp_replace('(^|[^0-9])[/-]+|[/-]+($|[^0-9])', '\1 \2', 'g') -- / - only in numbers
            .regexp_replace('[^A-Z0-9,/-]+', ' ', 'g')                 -- other marks split words
            .regexp_replace(' *, *', ',', 'g')
            .regexp_replace('^[ ,]+|[ ,]+$', '', 'g') AS lined
    FROM source
),

building AS (
    -- flat positions (FLAT 3, 2/1, 3F2) go before looking for the house number
    SELECT
        raw,
        lined,
        lined
            .regexp_replace('\b(FLAT|FLT|APARTMENT|APT|UNIT|ROOM)\b *[A-Z0-9/-]*', '', 'g')
            .regexp_replace('\b[0-9]+(/[0-9]+|F[0-9]+)\b', '', 'g')
            .regexp_replace(' *, *', ',', 'g')
            .trim() AS building
    FROM cleaned
),

numbered AS MATERIALIZED (
    SELECT
        raw,
        lined,
        building,
        nullif(regexp_extract(building, '\b([0-9]+[A-Z]?(?:-[0-9]+[A-Z]?)?)\b', 1), '')
            AS house_number,
        -- the number may sit alone on its line: '12, KELVIN STREET'
        nullif(
            trim(regexp_extract(building, '\b[0-9]+[A-Z]?(?:-[0-9]+[A-Z]?)?\b[ ,]*([A-Z][A-Z ]*)', 1)),
            ''
        ) AS numbered_street
    FROM building
),

street_type_word AS (
    SELECT street_type AS word
    FROM std_ref_street_type
    UNION
    SELECT abbreviation.abbreviation
    FROM std_ref_street_abbreviation AS abbreviation
    JOIN std_ref_street_type AS street_type
        ON street_type.street_type = abbreviation.expansion
    WHERE abbreviation.position <> 'other'
),

unnumbered AS MATERIALIZED (
    -- filtered (and materialised) before the unnest: most addresses have a number
    SELECT raw, building FROM numbered WHERE house_number IS NULL
),

unnumbered_line AS (
    SELECT unnumbered.raw, trim(line.line) AS line, line.line_no
    FROM unnumbered,
        unnest(string_split(unnumbered.building, ',')) WITH ORDINALITY AS line(line, line_no)
),

unnumbered_street AS (
    SELECT unnumbered_line.raw, arg_min(unnumbered_line.line, unnumbered_line.line_no) AS street
    FROM unnumbered_line
    JOIN street_type_word
        ON street_type_word.word = string_split(unnumbered_line.line, ' ')[-1]
    WHERE regexp_full_match(unnumbered_line.line, '[A-Z ]+')
    GROUP BY unnumbered_line.raw
),

final AS (
    SELECT
        numbered.raw,
        nullif(replace(numbered.lined, ',', ' '), '') AS address_line,
        numbered.house_number,
        coalesce(numbered.numbered_street, unnumbered_street.street) AS street_text
    FROM numbered
    LEFT JOIN unnumbered_street
        ON unnumbered_street.raw = numbered.raw
)

SELECT * FROM final;
