-- Small reusable rules, defined once for the steps that follow.
-- Temporary macros: they live on the connection and never land in the warehouse file.

-- A value written in another script (Cyrillic, Greek, Arabic, Chinese, full-width Latin
-- ...) as its Latin transliteration (anyascii, registered by runner.py): Олександр ->
-- Oleksandr, Ｓｍｉｔｈ -> Smith, so it is still a name, not nothing. Latin letters, their
-- accents and typographic punctuation are left to ascii_upper. Only a value that is not
-- ASCII (its byte length differs) is searched, and only one with a character past those
-- blocks calls Python.
CREATE OR REPLACE TEMP MACRO latin_script(text) AS
    CASE
        WHEN strlen(text) <> length(text) AND regexp_matches(
            text, '[^\x{0}-\x{24F}\x{300}-\x{36F}\x{1E00}-\x{1EFF}\x{2000}-\x{206F}]'
        ) THEN transliterate(text)
        ELSE text
    END;

-- Upper-case ASCII. strip_accents handles combining accents (Seònaid -> Seonaid); the
-- letters it leaves alone are folded by hand, and typographic apostrophes become plain.
-- (A chain of replace() is several times faster than one translate() in DuckDB.)
CREATE OR REPLACE TEMP MACRO ascii_upper(text) AS
    upper(strip_accents(latin_script(text)))
        .replace('’', '''').replace('‘', '''').replace('`', '''').replace('´', '''')
        .replace('Ø', 'O').replace('Ł', 'L').replace('Đ', 'D').replace('Ð', 'D')
        .replace('ẞ', 'SS').replace('Æ', 'AE').replace('Œ', 'OE').replace('Þ', 'TH');

-- Characters no one types into a name, removed without a space so a word they sit in
-- stays one word (Lu<U+2028>cy is LUCY, not LU and CY); names holding them are flagged.
--   zero-width and other invisible format characters (category Cf: U+200B-U+200D, U+2060,
--     U+FEFF, soft hyphen, direction marks): they never separate words, so removing them
--     joins exactly what the reader saw joined.
--   line and paragraph separators U+2028, U+2029 and NEL U+0085, VT, FF, FS-US
--     (U+001C-U+001F): line ends to Unicode and to Python's splitlines, but a name field is
--     one line. They come from damage (0x85 is what a mis-decoded cp1252 ellipsis or UTF-8
--     byte leaves) or from rich-text conversions, as likely inside a word as between two;
--     a split would invent a middle name, a join at worst keeps one wrong word, which the
--     flag shows.
--   every other C0 and C1 control (U+0000-U+001F, U+007F-U+009F), for the same reasons.
--   the replacement character U+FFFD: a letter the sender's system could not decode
--     (Se<U+FFFD>naid). Joining keeps one word close to the name; a split would invent a
--     forename SE and a middle name NAID.
-- Tab, line feed and carriage return are left out: they are ordinary whitespace (a name
-- typed over two lines of a form, a tab pasted from a spreadsheet) and separate words as a
-- space does, unflagged.
CREATE OR REPLACE TEMP MACRO name_control_pattern() AS
    '[\x{0}-\x{8}\x{B}\x{C}\x{E}-\x{1F}\x{7F}-\x{9F}\x{2028}\x{2029}\x{FFFD}\p{Cf}]';

-- The control characters in a name as their code points (['U+2028']), or NULL for none.
CREATE OR REPLACE TEMP MACRO name_control_characters(raw) AS
    CASE
        WHEN regexp_matches(raw, name_control_pattern())
            THEN list_transform(
                list_sort(list_distinct(regexp_extract_all(raw, name_control_pattern()))),
                lambda character: printf('U+%04X', unicode(character))
            )
    END;

-- A name as space-separated upper-case words of A-Z, keeping hyphens inside words.
CREATE OR REPLACE TEMP MACRO name_text(raw) AS
    ascii_upper(regexp_replace(raw, name_control_pattern(), '', 'g'))
        .regexp_replace('(^|[^A-Z])M'' *([A-Z])', '\1MAC\2', 'g')  -- M'DONALD: the old Mac prefix
        .replace('''', '')                                         -- O'BRIEN -> OBRIEN
        .regexp_replace('[^A-Z-]+', ' ', 'g')                      -- any other mark splits words
        .regexp_replace(' *-[- ]*', '-', 'g')                      -- SMITH - JONES -> SMITH-JONES
        .regexp_replace('^[ -]+|[ -]+$', '', 'g');                 -- a hyphen must join two words

-- A value longer than `bound` characters (schemas/validation.yaml max_text_length). Its
-- byte length is free to read and never less than its length in characters, so characters
-- are counted only past it. NULL is not too long.
CREATE OR REPLACE TEMP MACRO too_long(text, bound) AS
    CASE WHEN strlen(text) > bound THEN length(text) > bound ELSE false END;

-- A value cut to one character past `bound` when too_long (given, as it is marked
-- anyway): rules then read at most that, and too_long still holds of what is left.
CREATE OR REPLACE TEMP MACRO cut_to_bound(text, bound, is_too_long) AS
    CASE WHEN is_too_long THEN left(text, bound + 1) ELSE text END;

-- Identifiers: upper case with every space removed; empty -> NULL.
CREATE OR REPLACE TEMP MACRO compact_id(raw) AS
    nullif(upper(regexp_replace(raw, '\s+', '', 'g')), '');

-- A number a spreadsheet wrote as a float (1201011234.0) read as its digits.
CREATE OR REPLACE TEMP MACRO integer_digits(value) AS
    regexp_replace(value, '^([0-9]+)\.0+$', '\1');

-- A fixed-length numeric identifier with the leading zeros a spreadsheet dropped put back
-- (201011234 -> 0201011234), or NULL when it is not such a value. A spreadsheet drops every
-- leading zero, so a short value still starting with 0 was cut some other way, and 0 (an
-- empty numeric cell) never becomes an identifier.
CREATE OR REPLACE TEMP MACRO with_leading_zeros(value, id_length) AS
    CASE
        WHEN regexp_full_match(value, '[1-9][0-9]*') AND length(value) < id_length
            THEN lpad(value, id_length, '0')
    END;

-- A UK postcode with all whitespace removed: outward code (G12, EH3, SW1A) + inward (8QQ).
CREATE OR REPLACE TEMP MACRO uk_postcode_pattern() AS
    '^([A-Z]{1,2}[0-9][A-Z0-9]?)([0-9][A-Z]{2})$';

-- The last UK postcode written inside upper-case text, space optional: groups are the text
-- before it, outward code, inward code, text after it (the greedy first group makes it the last).
CREATE OR REPLACE TEMP MACRO last_uk_postcode_pattern() AS
    '^(.*)\b([A-Z]{1,2}[0-9][A-Z0-9]?) *([0-9][A-Z]{2})\b(.*)$';

-- The project's postcode_format setting (std_setting is written by runner.py, bound).
CREATE OR REPLACE TEMP MACRO postcode_as_written() AS
    (SELECT postcode_format = 'as_written' FROM std_setting);

-- Address text without flat positions (FLAT 3, 2/1, 3F2): they say where inside the
-- building, so they are never the house number (or a postcode).
CREATE OR REPLACE TEMP MACRO without_flat_position(text) AS
    text
        .regexp_replace('\b(FLAT|FLT|APARTMENT|APT|UNIT|ROOM)\b *[A-Z0-9/-]*', '', 'g')
        .regexp_replace('\b[0-9]+(/[0-9]+|F[0-9]+)\b', '', 'g');

-- Digit n (1-based) of a string of digits.
CREATE OR REPLACE TEMP MACRO digit_at(digits, n) AS
    CAST(substr(digits, n, 1) AS INTEGER);

-- CHI modulus-11 check: weights 10..2 over digits 1-9, check = 11 - (sum mod 11) with
-- 11 meaning 0. A result of 10 matches no single digit, so such stems never pass.
CREATE OR REPLACE TEMP MACRO chi_check_digit_ok(digits) AS
    digit_at(digits, 10) = (
        11 - list_sum(list_transform(range(1, 10), lambda i: digit_at(digits, i) * (11 - i))) % 11
    ) % 11;

CREATE OR REPLACE TEMP MACRO chi_shape_ok(digits) AS
    regexp_full_match(digits, '[0-9]{10}');

-- The CHI itself when its shape and check digit pass. A date or sex disagreement does not
-- drop it: the agency may have keyed the wrong date of birth rather than the wrong CHI.
CREATE OR REPLACE TEMP MACRO valid_chi(digits) AS
    CASE WHEN chi_shape_ok(digits) AND chi_check_digit_ok(digits) THEN digits END;

-- Why a CHI is doubtful, or NULL. Digits 1-6 are DDMMYY of the date of birth; digit 9 is
-- odd for males and even for females. Unknown date of birth or sex cannot disagree.
CREATE OR REPLACE TEMP MACRO chi_issue(digits, date_of_birth, sex) AS
    CASE
        WHEN digits IS NULL THEN NULL
        WHEN NOT chi_shape_ok(digits) THEN 'not 10 digits'
        WHEN NOT chi_check_digit_ok(digits) THEN 'check digit fails'
        WHEN substr(digits, 1, 6) <> strftime(date_of_birth, '%d%m%y')
            THEN 'date part does not match date of birth'
        WHEN (digit_at(digits, 9) % 2 = 1) <> (sex = 'M')
            THEN 'sex digit does not match sex'
    END;

-- NHS number (England and Wales): 10 digits with the same modulus-11 check digit as CHI,
-- and no date or sex inside it.
CREATE OR REPLACE TEMP MACRO valid_nhs_number(digits) AS
    CASE WHEN chi_shape_ok(digits) AND chi_check_digit_ok(digits) THEN digits END;

CREATE OR REPLACE TEMP MACRO nhs_number_issue(digits) AS
    CASE
        WHEN digits IS NULL THEN NULL
        WHEN NOT chi_shape_ok(digits) THEN 'not 10 digits'
        WHEN NOT chi_check_digit_ok(digits) THEN 'check digit fails'
    END;

-- A list without repeats, first occurrence kept, so output order is stable.
CREATE OR REPLACE TEMP MACRO distinct_in_order(items) AS
    list_filter(items, lambda item, i: list_position(items, item) = i);
