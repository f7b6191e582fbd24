"""The errors real extracts carry: one small function per kind of corruption.

The rates live in `linkage.generate.rates` (re-exported here as RATES): per record, by
agency, among the records each corruption can apply to.
"""

from __future__ import annotations

import random
import unicodedata
from datetime import date

from linkage.generate.names import NICKNAMES
from linkage.generate.rates import ELIGIBILITY, RATES

__all__ = [
    "ELIGIBILITY",
    "RATES",
    "PLACEHOLDER_DOB",
    "CORRECTABLE",
    "has_accent",
    "strip_accents",
    "typo",
    "nickname",
    "is_mac",
    "mac_variant",
    "day_month_swapped",
    "dob_digit_typo",
    "with_extra_whitespace",
    "postcode_without_space",
]

PLACEHOLDER_DOB = date(1900, 1, 1)
# Corruptions an agency can later fix (a "corrected_record" change removes the tag).
CORRECTABLE = (
    "typo_forename",
    "typo_surname",
    "chi_miskeyed",
    "scn_miskeyed",
    "dob_day_month_swap",
    "dob_digit_typo",
    "dob_missing",
    "dob_placeholder",
    "name_swap",
    "baby_forename",
    "moved_old_address",
)
TYPO_LETTERS = "abcdeghiklmnorstuwy"
LOWER_CASE_MACS = {"Macdonald", "Mackenzie", "Mackay", "Mackintosh"}


def has_accent(text: str) -> bool:
    return not text.isascii()


def strip_accents(text: str) -> str:
    """Seònaid -> Seonaid."""
    decomposed = unicodedata.normalize("NFD", text)
    return "".join(c for c in decomposed if unicodedata.category(c) != "Mn")


def typo(rng: random.Random, text: str) -> str:
    """Insert, delete, substitute or transpose one letter (never the first)."""
    if len(text) < 3:
        return text + rng.choice(TYPO_LETTERS)
    position = rng.randrange(1, len(text) - 1)
    letter = rng.choice(TYPO_LETTERS)
    kind = rng.randrange(4)
    if kind == 0:
        result = text[:position] + letter + text[position:]
    elif kind == 1:
        result = text[:position] + text[position + 1 :]
    elif kind == 2:
        result = text[:position] + letter + text[position + 1 :]
    else:
        result = text[: position - 1] + text[position] + text[position - 1] + text[position + 1 :]
    # a swap of two equal letters, or a substitution by the same letter, changes nothing
    return result if result != text else text[:position] + text[position + 1 :]


def nickname(rng: random.Random, forename: str) -> str | None:
    """A known-as form of the forename, or None if it has none."""
    options = NICKNAMES.get(forename)
    return rng.choice(options) if options else None


def is_mac(surname: str) -> bool:
    """MacDonald, McLeod, Macdonald: a Mac/Mc prefix glued to the rest of the name."""
    if surname.startswith("Mc"):
        return surname[2:3].isupper()
    if surname.startswith("Mac") and len(surname) > 5 and " " not in surname:
        return surname[3:4].isupper() or surname in LOWER_CASE_MACS
    return False


def mac_variant(rng: random.Random, surname: str) -> str:
    """MacDonald -> McDonald / Macdonald / Mc Donald / Mac Donald / M'Donald."""
    rest = surname[3:] if surname.startswith("Mac") else surname[2:]
    rest = rest[:1].upper() + rest[1:]
    options = [f"Mac{rest}", f"Mc{rest}", f"Mac{rest.lower()}", f"Mc {rest}", f"Mac {rest}"]
    options = [option for option in options if option != surname]
    return rng.choice(options)


def day_month_swapped(dob: date) -> date | None:
    """The date with day and month exchanged, when that is a different valid date."""
    if dob.day > 12 or dob.day == dob.month:
        return None
    return date(dob.year, dob.day, dob.month)


def dob_digit_typo(rng: random.Random, dob: date, latest: date) -> date:
    """One digit of the day, month or year keyed wrongly (still a valid date, not after latest)."""
    text = f"{dob.day:02d}{dob.month:02d}{dob.year:04d}"
    while True:
        position = rng.choice((0, 1, 2, 3, 6, 7))  # not the century
        digit = str((int(text[position]) + rng.randrange(1, 10)) % 10)
        candidate = text[:position] + digit + text[position + 1 :]
        try:
            typed = date(int(candidate[4:]), int(candidate[2:4]), int(candidate[:2]))
        except ValueError:
            continue
        if typed != dob and typed <= latest:
            return typed


def with_extra_whitespace(rng: random.Random, text: str) -> str:
    """A doubled inner space, or a trailing or leading space."""
    if " " in text and rng.random() < 0.5:
        return text.replace(" ", "  ", 1)
    return text + " " if rng.random() < 0.7 else " " + text


def postcode_without_space(postcode: str) -> str:
    return postcode.replace(" ", "")
