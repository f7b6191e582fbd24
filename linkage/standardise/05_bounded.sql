-- Every value as sent, bounded before any rule reads it; the steps after this read
-- std_bounded, never std_staged. A value longer than max_text_length characters
-- (schemas/validation.yaml, in std_setting) is damage: a blob in a column, a field that
-- swallowed a line. Its row is quarantined by the field's `<field>_length` check, which
-- reads the `<field>_too_long` column marked here, so the value need not be read whole:
-- it is cut to one character past the bound (cut_to_bound). The name and address rules
-- then cost the same for a megabyte as for 201 characters (read whole, a 100,000-character
-- forename took 43 s, and a megabyte ran the disk full with spilled intermediate rows).
-- Identifiers are cut inside their map; the final select (runner.py) marks and nulls them
-- per registered type. Every field in validation.yaml's bounded_fields is marked here.
CREATE OR REPLACE TEMP VIEW std_bounded AS
WITH
staged AS (
    SELECT std_staged.*, setting.max_text_length AS bound
    FROM std_staged, std_setting AS setting
),

marked AS (
    SELECT
        staged.*,
        too_long(source_record_id, bound) AS record_id_too_long,
        too_long(forename_raw, bound) AS forename_too_long,
        too_long(middle_names_raw, bound) AS middle_names_too_long,
        too_long(preferred_forename_raw, bound) AS preferred_forename_too_long,
        too_long(surname_raw, bound) AS surname_too_long,
        too_long(other_surnames_raw, bound) AS other_surnames_too_long,
        too_long(date_of_birth_raw, bound) AS date_of_birth_too_long,
        too_long(sex_raw, bound) AS sex_too_long,
        too_long(address_raw, bound) AS address_too_long,
        too_long(town_raw, bound) AS town_too_long,
        too_long(postcode_raw, bound) AS postcode_too_long,
        too_long(concern_type, bound) AS concern_type_too_long,
        too_long(concern_status, bound) AS concern_status_too_long,
        too_long(concern_opened_raw, bound) AS concern_opened_too_long,
        too_long(concern_closed_raw, bound) AS concern_closed_too_long,
        coalesce(
            list_bool_or(list_transform(
                map_values(identifiers_raw), lambda value: too_long(value, bound)
            )),
            false
        ) AS identifier_too_long
    FROM staged
),

final AS (
    SELECT
        * EXCLUDE (bound, identifier_too_long) REPLACE (
            cut_to_bound(source_record_id, bound, record_id_too_long) AS source_record_id,
            cut_to_bound(forename_raw, bound, forename_too_long) AS forename_raw,
            cut_to_bound(middle_names_raw, bound, middle_names_too_long) AS middle_names_raw,
            cut_to_bound(preferred_forename_raw, bound, preferred_forename_too_long)
                AS preferred_forename_raw,
            cut_to_bound(surname_raw, bound, surname_too_long) AS surname_raw,
            cut_to_bound(other_surnames_raw, bound, other_surnames_too_long) AS other_surnames_raw,
            cut_to_bound(date_of_birth_raw, bound, date_of_birth_too_long) AS date_of_birth_raw,
            cut_to_bound(sex_raw, bound, sex_too_long) AS sex_raw,
            cut_to_bound(address_raw, bound, address_too_long) AS address_raw,
            cut_to_bound(town_raw, bound, town_too_long) AS town_raw,
            cut_to_bound(postcode_raw, bound, postcode_too_long) AS postcode_raw,
            cut_to_bound(concern_type, bound, concern_type_too_long) AS concern_type,
            cut_to_bound(concern_status, bound, concern_status_too_long) AS concern_status,
            cut_to_bound(concern_opened_raw, bound, concern_opened_too_long) AS concern_opened_raw,
            cut_to_bound(concern_closed_raw, bound, concern_closed_too_long) AS concern_closed_raw,
            -- rebuilt only on the rare row that needs it: a map rebuild costs a second a
            -- million rows
            CASE
                WHEN identifier_too_long
                    THEN map_from_entries(list_transform(
                        map_entries(identifiers_raw),
                        lambda entry: {
                            'key': entry.key,
                            'value': cut_to_bound(entry.value, bound, too_long(entry.value, bound))
                        }
                    ))
                ELSE identifiers_raw
            END AS identifiers_raw
        )
    FROM marked
)

SELECT * FROM final;
