-- Street names with abbreviations expanded, once per distinct street text. Where a word
-- sits matters: ST at the end is STREET, anywhere else SAINT (ST VINCENT ST).
CREATE OR REPLACE TEMP TABLE std_street AS
WITH
source AS (
    SELECT DISTINCT street_text
    FROM std_address
    WHERE street_text IS NOT NULL
),

token AS (
    SELECT
        source.street_text,
        token.token,
        token.pos,
        len(string_split(source.street_text, ' ')) AS token_count
    FROM source,
        unnest(string_split(source.street_text, ' ')) WITH ORDINALITY AS token(token, pos)
),

expanded AS (
    SELECT
        token.street_text,
        token.pos,
        coalesce(abbreviation.expansion, token.token) AS word
    FROM token
    LEFT JOIN std_ref_street_abbreviation AS abbreviation
        ON abbreviation.abbreviation = token.token
       AND (
            abbreviation.position = 'any'
            OR (abbreviation.position = 'last' AND token.pos = token.token_count)
            OR (abbreviation.position = 'other' AND token.pos < token.token_count)
       )
),

final AS (
    SELECT street_text, string_agg(word, ' ' ORDER BY pos) AS street
    FROM expanded
    GROUP BY street_text
)

SELECT * FROM final;
