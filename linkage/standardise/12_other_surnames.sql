-- Other surnames, once per distinct other_surnames_raw ('BROWN|MAC LEAN'): each surname
-- standardised as a surname, followed by its parts when it has several; and the control
-- characters removed from the value (NULL when none; see name_control_pattern).
CREATE OR REPLACE TEMP TABLE std_other_surnames AS
WITH
source AS (
    SELECT DISTINCT other_surnames_raw AS raw
    FROM std_bounded
    WHERE other_surnames_raw IS NOT NULL
),

piece AS (
    SELECT source.raw, piece.piece, piece.piece_no
    FROM source,
        unnest(string_split(source.raw, '|')) WITH ORDINALITY AS piece(piece, piece_no)
),

standardised AS (
    SELECT
        piece.raw,
        piece.piece_no,
        [name.joined] || CASE WHEN len(name.words) > 1 THEN name.words ELSE [] END AS surnames
    FROM piece
    JOIN std_name AS name
        ON name.role = 'surname' AND name.raw = piece.piece
    WHERE name.words IS NOT NULL
),

listed AS (
    SELECT raw, flatten(list(surnames ORDER BY piece_no)) AS surnames
    FROM standardised
    GROUP BY raw
),

final AS (
    SELECT
        source.raw,
        listed.surnames,
        name_control_characters(source.raw) AS control_characters
    FROM source
    LEFT JOIN listed
        ON listed.raw = source.raw
)

SELECT * FROM final;
