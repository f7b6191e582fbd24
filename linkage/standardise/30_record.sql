-- One row per staged record: every canonical field except the phonetic codes, which are
-- computed next in Python, once per distinct name, and the identifiers, checked per
-- registered type in the final select. Issue columns say why a field is NULL;
-- validation turns them into record_issue.
CREATE OR REPLACE TEMP TABLE std_record AS
WITH
staged AS (
    SELECT * FROM std_bounded
),

joined AS (
    -- the per-value results of the name and address steps
    SELECT
        staged.*,
        forename.words AS forename_words,
        middle.words AS middle_words,
        preferred.joined AS preferred_joined,
        surname.joined AS surname_joined,
        surname.words AS surname_parts,
        other.surnames AS other_surname_list,
        forename.control_characters AS forename_controls,
        middle.control_characters AS middle_names_controls,
        preferred.control_characters AS preferred_forename_controls,
        surname.control_characters AS surname_controls,
        other.control_characters AS other_surnames_controls,
        address.address_line AS address_joined,
        address.house_number AS address_house_number,
        address.town AS address_town,
        -- a postcode column wins over a postcode found in the address text
        coalesce(nullif(trim(staged.postcode_raw), ''), address.postcode) AS postcode_given,
        street.street AS address_street
    FROM staged
    LEFT JOIN std_name AS forename
        ON forename.role = 'forename' AND forename.raw = staged.forename_raw
    LEFT JOIN std_name AS middle
        ON middle.role = 'forename' AND middle.raw = staged.middle_names_raw
    LEFT JOIN std_name AS preferred
        ON preferred.role = 'forename' AND preferred.raw = staged.preferred_forename_raw
    LEFT JOIN std_name AS surname
        ON surname.role = 'surname' AND surname.raw = staged.surname_raw
    LEFT JOIN std_other_surnames AS other
        ON other.raw = staged.other_surnames_raw
    LEFT JOIN std_address AS address
        ON address.raw = staged.address_raw
    LEFT JOIN std_street AS street
        ON street.street_text = address.street_text
),

renamed AS (
    SELECT
        source || ':' || source_record_id AS record_key,
        source,
        source_record_id,

        forename_words[1] AS forename,
        -- words after the first in the forename field come before the recorded middle names
        nullif(array_to_string(list_concat(forename_words[2:], middle_words), ' '), '')
            AS middle_names,
        preferred_joined AS preferred_forename,
        surname_joined AS surname,
        nullif(
            list_filter(
                distinct_in_order(list_concat(
                    CASE WHEN len(surname_parts) > 1 THEN surname_parts END,
                    other_surname_list
                )),
                lambda name: name IS DISTINCT FROM surname_joined
            ),
            []
        ) AS other_surnames,
        -- the names that held control or invisible characters, and which ones (removed);
        -- the test first spares the strings on the rows (nearly all) that held none
        CASE
            WHEN coalesce(
                forename_controls,
                middle_names_controls,
                preferred_forename_controls,
                surname_controls,
                other_surnames_controls
            ) IS NOT NULL
                THEN concat_ws(
                    '; ',
                    'forename ' || array_to_string(forename_controls, ' '),
                    'middle_names ' || array_to_string(middle_names_controls, ' '),
                    'preferred_forename ' || array_to_string(preferred_forename_controls, ' '),
                    'surname ' || array_to_string(surname_controls, ' '),
                    'other_surnames ' || array_to_string(other_surnames_controls, ' ')
                )
        END AS name_control_issue,

        nullif(trim(date_of_birth_raw), '') AS date_of_birth_raw,
        date_of_birth,
        nullif(trim(sex_raw), '') AS sex_raw,
        CASE WHEN upper(trim(sex)) IN ('M', 'F') THEN upper(trim(sex)) END AS sex,

        address_joined AS address_line,
        address_house_number AS house_number,
        address_street AS street,
        -- a town column wins over a town found in the address text
        coalesce(
            nullif(ascii_upper(town_raw).regexp_replace('[^A-Z0-9]+', ' ', 'g').trim(), ''),
            address_town
        ) AS town,
        nullif(trim(postcode_raw), '') AS postcode_raw,
        compact_id(postcode_given) AS postcode_compact,
        CASE
            WHEN regexp_matches(compact_id(postcode_given), uk_postcode_pattern())
                THEN regexp_replace(compact_id(postcode_given), uk_postcode_pattern(), '\1 \2')
            WHEN postcode_as_written()
                THEN upper(regexp_replace(trim(postcode_given), '\s+', ' ', 'g'))
        END AS postcode_normal,

        -- checked per registered type in the final select (schemas/identifiers.yaml)
        identifiers_raw,

        nullif(trim(concern_type), '') AS concern_type,
        nullif(trim(concern_status), '') AS concern_status,
        nullif(trim(concern_opened_raw), '') AS concern_opened_raw,
        concern_opened,
        nullif(trim(concern_closed_raw), '') AS concern_closed_raw,
        concern_closed,

        -- which values as sent were over max_text_length (05_bounded.sql)
        COLUMNS('_too_long$'),

        source_file,
        file_sha256,
        source_row_number,
        source_line_number,
        run_date
    FROM joined
),

dob_checked AS (
    SELECT
        renamed.*,
        CASE
            WHEN date_of_birth_raw IS NULL THEN 'missing'
            WHEN date_of_birth IN (
                    SELECT TRY_CAST(value AS DATE) FROM std_ref_dob_placeholder WHERE form = 'date'
                 )
              OR date_of_birth_raw IN (
                    SELECT value FROM std_ref_dob_placeholder WHERE form = 'text'
                 )
                THEN 'placeholder'
            WHEN date_of_birth IS NULL THEN 'unparseable'
            WHEN date_of_birth < DATE '1900-01-01' THEN 'before 1900'
            WHEN date_of_birth > run_date THEN 'in the future'
        END AS dob_issue,
        -- a concern date as sent but not read, or not a real one: NULL, and flagged (an
        -- open concern with no opening date still counts as open: linkage/concerns.py)
        CASE
            WHEN concern_opened_raw IS NOT NULL AND concern_opened IS NULL THEN 'unparseable'
            WHEN concern_opened < DATE '1900-01-01' THEN 'before 1900'
            WHEN concern_opened > run_date THEN 'in the future'
        END AS concern_opened_issue,
        CASE  -- a closing date ahead is a planned closure, not an error
            WHEN concern_closed_raw IS NOT NULL AND concern_closed IS NULL THEN 'unparseable'
            WHEN concern_closed < DATE '1900-01-01' THEN 'before 1900'
        END AS concern_closed_issue
    FROM renamed
),

checked AS (
    SELECT
        -- identifiers (a CHI's date part) are judged against the date that survived its checks
        * REPLACE (
            CASE WHEN dob_issue IS NULL THEN date_of_birth END AS date_of_birth,
            CASE WHEN concern_opened_issue IS NULL THEN concern_opened END AS concern_opened,
            CASE WHEN concern_closed_issue IS NULL THEN concern_closed END AS concern_closed
        ),
        CASE
            WHEN NOT regexp_matches(postcode_compact, uk_postcode_pattern())
             AND NOT postcode_as_written()
                THEN 'not a UK postcode'
        END AS postcode_issue,
        CASE WHEN sex_raw IS NOT NULL AND sex IS NULL THEN 'unknown code' END AS sex_issue
    FROM dob_checked
),

final AS (
    SELECT
        checked.* EXCLUDE (postcode_normal, postcode_compact),
        -- a nickname resolves by sex where the same nickname serves both (ALEX, SAM)
        coalesce(nickname.canonical, checked.forename) AS forename_canonical,
        CASE WHEN postcode_issue IS NULL THEN postcode_normal END AS postcode,
        CASE
            WHEN postcode_issue IS NULL
                THEN nullif(regexp_extract(postcode_compact, uk_postcode_pattern(), 1), '')
        END AS postcode_outward,
        NULL::VARCHAR[] AS previous_postcodes  -- filled from earlier nights at publish
    FROM checked
    LEFT JOIN std_ref_nickname AS nickname
        ON nickname.nickname = checked.forename
       AND (nickname.sex IS NULL OR nickname.sex = checked.sex)
)

SELECT * FROM final;
