-- Name rules, once per distinct raw name (from 10_name_value.sql).
--   forename role: `words` are the name's words, hyphens dropped (MARY-JANE -> MARYJANE),
--                  `joined` is them space-separated.
--   surname role:  `words` are the surname's parts (SMITH-JONES -> SMITH, JONES), with a
--                  particle kept on its word (VAN DER BERG -> VANDERBERG) and Mc/Mac unified
--                  (MCDONALD, MAC DONALD, M'DONALD -> MACDONALD); `joined` is the parts run
--                  together (SMITHJONES). Parts go on to other_surnames so SMITH still matches.
-- A value with nothing left (MR, BABY OF, NOT KNOWN) has NULL words: the name is NULL.
--   control_characters: the control and invisible characters name_text removed from the
--                  value, as code points (['U+2028']), NULL when none; the record is
--                  flagged (name_control_characters), even when nothing else was left.
CREATE OR REPLACE TEMP TABLE std_name AS
WITH
source AS (
    SELECT role, raw, name_text(raw) AS text, name_control_characters(raw) AS control_characters
    FROM std_name_value
),

named AS (
    -- whole-value placeholders are no name at all; BABY only on forenames, as the
    -- surname of a newborn is real
    SELECT source.*
    FROM source
    WHERE NOT EXISTS (
        SELECT 1
        FROM std_ref_name_placeholder AS placeholder
        WHERE placeholder.letters = regexp_replace(source.text, '[^A-Z]', '', 'g')
          AND placeholder.applies_to IN (source.role, 'any')
    )
),

token AS (
    SELECT named.role, named.raw, token.token, token.pos
    FROM named,
        unnest(string_split(named.text, ' ')) WITH ORDINALITY AS token(token, pos)
    WHERE token.token <> ''
),

flagged AS (
    SELECT
        token.*,
        coalesce(title.kind = 'title', false) AS is_title,
        coalesce(title.kind = 'suffix', false) AS is_suffix,
        token.role = 'surname' AND particle.particle IS NOT NULL AS is_particle
    FROM token
    LEFT JOIN std_ref_name_title AS title
        ON title.token = token.token
    LEFT JOIN std_ref_surname_particle AS particle
        ON particle.particle = token.token
),

bounded AS (
    -- titles count only before the name (MR JOHN) and suffixes only after its first
    -- word (SMITH JNR), so a name that happens to be a suffix word on its own survives
    SELECT
        flagged.*,
        min(pos) FILTER (WHERE NOT is_title) OVER value_tokens AS first_pos,
        max(pos) FILTER (WHERE NOT is_suffix) OVER value_tokens AS last_pos
    FROM flagged
    WINDOW value_tokens AS (PARTITION BY role, raw)
),

kept AS (
    SELECT role, raw, token, pos, is_particle
    FROM bounded
    WHERE pos >= first_pos
      AND pos <= greatest(first_pos, last_pos)
),

worded AS (
    -- a particle belongs to the word after it: VAN DER BERG is one word, as is MAC DONALD
    SELECT
        role,
        raw,
        token,
        pos,
        count(*) FILTER (WHERE NOT is_particle) OVER (
            PARTITION BY role, raw ORDER BY pos
            ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
        ) AS word_no
    FROM kept
),

word AS (
    SELECT role, raw, word_no, string_agg(token, '' ORDER BY pos) AS word
    FROM worded
    GROUP BY role, raw, word_no
),

part AS (
    -- a hyphenated forename is one name; each part of a hyphenated surname is a surname
    SELECT word.role, word.raw, word.word_no, part.part, part.part_no
    FROM word,
        unnest(
            CASE word.role
                WHEN 'surname' THEN string_split(word.word, '-')
                ELSE [replace(word.word, '-', '')]
            END
        ) WITH ORDINALITY AS part(part, part_no)
),

unified AS (
    -- MC + letter is always the Mac prefix; MACK, MACE and MACHIN do not start with MC
    SELECT
        role,
        raw,
        word_no,
        part_no,
        CASE role
            WHEN 'surname' THEN regexp_replace(part, '^MC([A-Z])', 'MAC\1')
            ELSE part
        END AS part
    FROM part
),

listed AS (
    SELECT role, raw, list(part ORDER BY word_no, part_no) AS words
    FROM unified
    GROUP BY role, raw
),

final AS (
    -- every value has its row, so the flag of one with nothing left is not lost
    SELECT
        source.role,
        source.raw,
        listed.words,
        CASE source.role
            WHEN 'surname' THEN array_to_string(listed.words, '')
            ELSE array_to_string(listed.words, ' ')
        END AS joined,
        source.control_characters
    FROM source
    LEFT JOIN listed
        ON listed.role = source.role AND listed.raw = source.raw
)

SELECT * FROM final;
