-- Address rules, once per distinct raw address ('12a Kelvin St., Flat 2/1', or one line as
-- police send it: '36 Marchmont Road, Inverness, IV47 8AH').
--   postcode:     a postcode written in the address, cut out first so it never becomes a
--                 street or house number: the last UK postcode (IV47 8AH, PH15AB); with
--                 postcode_format as_written and no UK postcode, a token such as 8000 or
--                 NO-0150 on a later line than the house number (see other_candidate).
--                 30_record.sql uses it only when the record has no postcode column value.
--   address_line: upper case, punctuation and the postcode removed, lines run together
--   house_number: the first number naming the building (12, 12A, 7-9); flat positions
--                 (FLAT 3, 2/1, 3F2) say where inside it, so they are never the number
--   street_text:  the words after the house number; with no number, the first line that
--                 ends in a street type (ROSE COTTAGE, MAIN ST -> MAIN ST). Abbreviations
--                 are expanded per distinct street in 21_street.sql.
--   town:         the last line after the street's line with no digits (INVERNESS); used
--                 by 30_record.sql only when the record has no town column value.
-- Lines are comma-separated parts; a line break in the text also ends a line.
CREATE OR REPLACE TEMP TABLE std_address AS
WITH
source AS (
    SELECT DISTINCT address_raw AS raw
    FROM std_bounded
    WHERE address_raw IS NOT NULL
),

marked AS (
    -- upper case, a line break ends a line; the rest of the cleaning waits for `cleaned`,
    -- and the rare paths below tidy only the rows they handle
    SELECT raw, ascii_upper(raw).replace(chr(13), '').replace(chr(10), ',') AS marked
    FROM source
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

street_type_list AS (
    SELECT list(word) AS words FROM street_type_word
),

uk_found AS (
    SELECT
        raw,
        marked,
        CASE
            WHEN regexp_matches(marked, last_uk_postcode_pattern())
                THEN regexp_extract(
                    marked, last_uk_postcode_pattern(), ['before', 'outward', 'inward', 'after']
                )
        END AS found
    FROM marked
),

uk_line AS (
    -- the words written before the postcode on its own line: none when the postcode
    -- starts a line ('..., G12 8QQ'), some when it is glued on ('12 HIGH ST PERTH PH1 5AB')
    SELECT
        raw,
        marked,
        found.outward || ' ' || found.inward AS postcode,
        found.after,
        string_split(
            found.before
                .regexp_replace('[''.]', '', 'g')
                .regexp_replace('\s+', ' ', 'g')
                .regexp_replace(' *, *', ',', 'g')
                .trim(),
            ','
        ) AS lines_before
    FROM uk_found
),

uk_glued AS (
    SELECT
        uk_line.*,
        string_split(lines_before[-1], ' ') AS line_words,
        -- the last street type with words after it: those words are the town
        list_max(list_filter(
            range(1, len(line_words)),
            lambda i: list_contains(street_type_list.words, line_words[i])
        )) AS street_end
    FROM uk_line, street_type_list
),

uk_cut AS (
    SELECT
        raw,
        marked,
        postcode,
        array_to_string(
            list_slice(lines_before, 1, len(lines_before) - 1)
            || [
                CASE
                    -- PARK ROAD NORTH is a street, not PARK ROAD in NORTH
                    WHEN array_to_string(line_words[street_end + 1:], ' ')
                            NOT IN ('NORTH', 'SOUTH', 'EAST', 'WEST')
                        THEN array_to_string(line_words[:street_end], ' ')
                            || ','
                            || array_to_string(line_words[street_end + 1:], ' ')
                    ELSE lines_before[-1]
                END
            ],
            ','
        ) || ',' || after AS remainder
    FROM uk_glued
),

other_source AS MATERIALIZED (
    -- as_written only, and only where no UK postcode was found; filtered before the unnest
    SELECT
        raw,
        marked.regexp_replace('[''.]', '', 'g').regexp_replace('\s+', ' ', 'g') AS marked
    FROM uk_cut
    WHERE postcode_as_written() AND postcode IS NULL
),

other_line AS (
    SELECT other_source.raw, trim(line.line) AS line, line.line_no
    FROM other_source,
        unnest(string_split(other_source.marked, ',')) WITH ORDINALITY AS line(line, line_no)
),

other_token AS (
    SELECT
        raw,
        line,
        line_no,
        regexp_matches(without_flat_position(line), '[0-9]') AS has_number,
        -- a token alone on its line ('8000'), or starting the line before a town ('8000 AARHUS')
        CASE WHEN regexp_full_match(line, '[A-Z0-9-]{3,8}') THEN line END AS own_line_token,
        nullif(regexp_extract(line, '^([A-Z0-9-]{3,8}) [A-Z][A-Z ]*$', 1), '') AS town_line_token
    FROM other_line
),

other_placed AS (
    SELECT
        other_token.*,
        -- the house number is the first number, so a postcode must come on a later line
        min(line_no) FILTER (WHERE has_number) OVER address_lines AS house_line_no,
        max(line_no) FILTER (WHERE NOT regexp_full_match(line, '[A-Z ]*')) OVER address_lines
            AS last_line_not_town,
        max(line_no) OVER address_lines AS line_count
    FROM other_token
    WINDOW address_lines AS (PARTITION BY raw)
),

other_candidate AS (
    -- own line: only towns may follow it; town line: the address's last line
    SELECT
        raw,
        -- a line has at most one of the two: own_line_token has no space
        arg_max(coalesce(own_line_token, town_line_token), line_no) AS postcode,
        max(line_no) AS line_no
    FROM other_placed
    WHERE line_no > house_line_no
      AND (
            (line_no = last_line_not_town AND regexp_matches(own_line_token, '[0-9]'))
            OR (line_no = line_count AND regexp_matches(town_line_token, '[0-9]'))
      )
    GROUP BY raw
),

other_cut AS (
    SELECT
        other_line.raw,
        other_candidate.postcode,
        string_agg(
            CASE
                WHEN other_line.line_no = other_candidate.line_no
                    THEN substr(other_line.line, len(other_candidate.postcode) + 1)
                ELSE other_line.line
            END,
            ',' ORDER BY other_line.line_no
        ) AS remainder
    FROM other_line
    JOIN other_candidate
        ON other_candidate.raw = other_line.raw
    GROUP BY other_line.raw, other_candidate.postcode
),

cut AS (
    SELECT
        uk_cut.raw,
        coalesce(uk_cut.postcode, other_cut.postcode) AS postcode,
        coalesce(uk_cut.remainder, other_cut.remainder, uk_cut.marked) AS remainder
    FROM uk_cut
    LEFT JOIN other_cut
        ON other_cut.raw = uk_cut.raw
),

cleaned AS (
    -- commas stay for now: they mark where one address line ends
    SELECT
        raw,
        postcode,
        remainder
            .regexp_replace('[''.]', '', 'g')                          -- ST. -> ST, JOHN'S -> JOHNS
            .regexp_replace('([0-9]) *([/-]) *([0-9])', '\1\2\3', 'g') -- 2 / 1 -> 2/1, 7 - 9 -> 7-9
            .regexp_replace('(^|[^0-9])[/-]+|[/-]+($|[^0-9])', '\1 \2', 'g') -- / - only in numbers
            .regexp_replace('[^A-Z0-9,/-]+', ' ', 'g')                 -- other marks split words
            .regexp_replace(' *(, *)+', ',', 'g')
            .regexp_replace('^[ ,]+|[ ,]+$', '', 'g') AS lined
    FROM cut
),

building AS (
    -- flat positions (FLAT 3, 2/1, 3F2) go before looking for the house number
    SELECT
        raw,
        postcode,
        lined,
        without_flat_position(lined)
            .regexp_replace(' *, *', ',', 'g')
            .trim() AS building
    FROM cleaned
),

numbered AS MATERIALIZED (
    SELECT
        raw,
        postcode,
        lined,
        building,
        nullif(regexp_extract(building, '\b([0-9]+[A-Z]?(?:-[0-9]+[A-Z]?)?)\b', 1), '')
            AS house_number,
        CASE
            -- abroad the number may follow the street and end its line: 'VESTERGADE 12'
            WHEN postcode_as_written()
             AND regexp_matches(building, '^([^0-9]*,)?[A-Z][A-Z ]* [0-9]+[A-Z]?(-[0-9]+[A-Z]?)?(,|$)')
                THEN regexp_extract(building, '^(?:[^0-9]*,)?([A-Z][A-Z ]*) [0-9]', 1)
            -- the number may sit alone on its line: '12, KELVIN STREET'
            ELSE nullif(
                trim(regexp_extract(building, '\b[0-9]+[A-Z]?(?:-[0-9]+[A-Z]?)?\b[ ,]*([A-Z][A-Z ]*)', 1)),
                ''
            )
        END AS numbered_street
    FROM building
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

streeted AS (
    SELECT
        numbered.raw,
        numbered.postcode,
        numbered.lined,
        numbered.house_number,
        coalesce(numbered.numbered_street, unnumbered_street.street) AS street_text,
        list_transform(string_split(numbered.building, ','), lambda line: trim(line)) AS lines
    FROM numbered
    LEFT JOIN unnumbered_street
        ON unnumbered_street.raw = numbered.raw
),

anchored AS (
    -- the first line is the building or street; a town comes after it, after the house
    -- number's line and after the street's line
    SELECT
        streeted.*,
        greatest(
            1,
            list_position(list_transform(lines, lambda line: regexp_matches(line, '[0-9]')), true),
            list_position(list_transform(lines, lambda line: contains(line, street_text)), true)
        ) AS street_line_no
    FROM streeted
),

final AS (
    SELECT
        raw,
        nullif(replace(lined, ',', ' '), '') AS address_line,
        house_number,
        street_text,
        postcode,
        list_filter(
            lines,
            lambda line, line_no: line_no > street_line_no
                AND regexp_full_match(line, '[A-Z][A-Z ]*')
        )[-1] AS town
    FROM anchored
)

SELECT * FROM final;
