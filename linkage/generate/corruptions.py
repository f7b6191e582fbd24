"""The errors real extracts carry, each at a documented per-record rate by agency."""

from __future__ import annotations

import random
import unicodedata

from linkage.generate.names import NICKNAMES

# Per-record probabilities. Health is cleanest, police messiest.
RATES: dict[str, dict[str, float]] = {
    "typo_forename": {"health": 0.01, "education": 0.015, "police": 0.04, "socialwork": 0.03},
    "typo_surname": {"health": 0.01, "education": 0.015, "police": 0.04, "socialwork": 0.03},
    "nickname": {"health": 0.02, "education": 0.03, "police": 0.12, "socialwork": 0.08},
    "mac_variant": {"health": 0.05, "education": 0.1, "police": 0.3, "socialwork": 0.2},
    "accent_dropped": {"health": 0.3, "education": 0.1, "police": 0.8, "socialwork": 0.5},
    "name_swap": {"health": 0.002, "education": 0.002, "police": 0.01, "socialwork": 0.005},
    "middle_in_forename": {"health": 0.01, "education": 0.02, "police": 0.08, "socialwork": 0.03},
    "birth_surname": {"health": 0.05, "education": 0.0, "police": 0.2, "socialwork": 0.3},
    "moved_old_address": {"health": 0.03, "education": 0.05, "police": 0.15, "socialwork": 0.1},
    "dob_day_month_swap": {"health": 0.003, "education": 0.005, "police": 0.02, "socialwork": 0.01},
    "dob_typo": {"health": 0.003, "education": 0.005, "police": 0.02, "socialwork": 0.01},
    "dob_missing": {"health": 0.002, "education": 0.0, "police": 0.02, "socialwork": 0.01},
    "dob_placeholder": {"health": 0.002, "education": 0.0, "police": 0.01, "socialwork": 0.01},
    "id_miskeyed": {"health": 0.005, "education": 0.005, "police": 0.0, "socialwork": 0.03},
    "duplicate": {"health": 0.005, "education": 0.0, "police": 0.0, "socialwork": 0.01},
    "case_upper": {"health": 0.3, "education": 0.0, "police": 0.7, "socialwork": 0.2},
}


def strip_accents(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")


def typo(rng: random.Random, text: str) -> str:
    """Insert, delete, substitute or transpose one letter."""
    if len(text) < 3:
        return text
    i = rng.randrange(1, len(text) - 1)
    letter = rng.choice("ABCDEFGHIJKLMNOPRSTUWY")
    kind = rng.randrange(4)
    if kind == 0:
        return text[:i] + letter + text[i:]
    if kind == 1:
        return text[:i] + text[i + 1 :]
    if kind == 2:
        return text[:i] + letter + text[i + 1 :]
    return text[: i - 1] + text[i] + text[i - 1] + text[i + 1 :]


def mac_variant(rng: random.Random, surname: str) -> str | None:
    for prefix in ("MAC", "MC"):
        if surname.startswith(prefix) and len(surname) > len(prefix) + 2:
            rest = surname[len(prefix) :]
            return rng.choice([f"MC{rest}", f"MAC{rest}", f"MC {rest}", f"MAC {rest}"])
    return None


def nickname(rng: random.Random, forename: str) -> str | None:
    options = NICKNAMES.get(forename)
    return rng.choice(options) if options else None


def display_case(rng: random.Random, text: str, upper: bool) -> str:
    """Agencies key names in upper case or title case (Mc/Mac kept)."""
    if upper or not text:
        return text
    titled = " ".join(part.capitalize() for part in text.split(" "))
    for prefix in ("Mc", "Mac"):
        if (
            titled.startswith(prefix)
            and len(titled) > len(prefix) + 1
            and titled[len(prefix)] != " "
        ):
            titled = prefix + titled[len(prefix)].upper() + titled[len(prefix) + 1 :]
    if titled.startswith("O'") and len(titled) > 2:
        titled = "O'" + titled[2].upper() + titled[3:]
    return "-".join(p[:1].upper() + p[1:] for p in titled.split("-"))
