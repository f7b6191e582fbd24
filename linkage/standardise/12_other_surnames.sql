-- Other surnames, once per distinct other_surnames_raw ('BROWN|MAC LEAN'): each surname
-- standardised as a surname, followed by its parts when it has several.
CREATE OR REPLACE TEMP TABLE std_other_surnames AS
WITH
source AS (
    SELECT DISTINCT other_surnames_raw AS raw
    FROM std_staged
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
),

final AS (
    SELECT raw, flatten(list(surnames ORDER BY piece_no)) AS surnames
    FROM standardised
    GROUP BY raw
)

SELECT * FROM final;
