"""Identifiers as agencies issue them: CHI (mod-11), SCN (mod-11), police and PNC refs."""

from __future__ import annotations

import random
from datetime import date


def mod11_check_digit(digits: str) -> int | None:
    """Modulus-11 check digit, weights len+1 down to 2; None when 10 (never issued)."""
    weights = range(len(digits) + 1, 1, -1)
    total = sum(int(digit) * weight for digit, weight in zip(digits, weights, strict=True))
    check = (11 - total % 11) % 11
    return None if check == 10 else check


def chi_check_digit(first9: str) -> int | None:
    """CHI check digit over the first nine digits (weights 10..2)."""
    return mod11_check_digit(first9)


def is_valid_chi(chi: str) -> bool:
    if len(chi) != 10 or not chi.isdigit():
        return False
    return chi_check_digit(chi[:9]) == int(chi[9])


def scn_check_digit(first8: str) -> int | None:
    """SCN check digit over the first eight digits (weights 9..2)."""
    return mod11_check_digit(first8)


def is_valid_scn(scn: str) -> bool:
    return len(scn) == 9 and scn.isdigit() and scn_check_digit(scn[:8]) == int(scn[8])


def miskey(rng: random.Random, number: str, is_valid) -> str:  # noqa: ANN001
    """Change one digit or swap two adjacent, so that the check digit fails."""
    while True:
        digits = list(number)
        i = rng.randrange(len(digits) - 1)
        if rng.random() < 0.5 and digits[i] != digits[i + 1]:
            digits[i], digits[i + 1] = digits[i + 1], digits[i]
        else:
            digits[i] = str((int(digits[i]) + rng.randrange(1, 10)) % 10)
        candidate = "".join(digits)
        if not is_valid(candidate):
            return candidate


REF_MULTIPLIERS = (7919, 7927, 7933, 7937, 7949, 7951, 7963, 7993)


def opaque_ref(prefix: str, person_id: str, ordinal: int, digits: int, salt: int) -> str:
    """A unique, opaque-looking reference for (person, ordinal).

    Multiplying by a number coprime with 10**digits is a bijection, so distinct
    (person, ordinal) pairs never collide, yet ids carry no visible order.
    """
    serial = int(person_id[1:]) * 64 + ordinal
    if serial >= 10**digits:
        raise ValueError(f"{digits}-digit references run out above {10**digits // 64} people")
    multiplier = REF_MULTIPLIERS[salt % len(REF_MULTIPLIERS)]  # primes, coprime with 10
    return f"{prefix}{(serial * multiplier) % 10**digits:0{digits}d}"


class IdentifierIssuer:
    """Issues CHIs and SCNs that are unique across the whole population.

    Memory is bounded by the number of distinct (date of birth, sex) pairs, not people:
    each pair has its own counter into a fixed shuffle of its ~455 valid serials.
    """

    def __init__(self, seed: int) -> None:
        combos = [f"{serial:02d}{digit}" for serial in range(100) for digit in "0123456789"]
        random.Random(seed).shuffle(combos)
        self._serials = {
            "M": [c for c in combos if int(c[2]) % 2 == 1],
            "F": [c for c in combos if int(c[2]) % 2 == 0],
        }
        self._issued: dict[tuple[date, str], int] = {}
        self._scn_counter = 0

    def chi(self, dob: date, sex: str) -> str:
        key = (dob, sex)
        position = self._issued.get(key, 0)
        for serial in self._serials[sex][position:]:
            position += 1
            check = chi_check_digit(f"{dob:%d%m%y}{serial}")
            if check is not None:
                self._issued[key] = position
                return f"{dob:%d%m%y}{serial}{check}"
        raise ValueError(f"CHI serials exhausted for one date of birth and sex ({dob}, {sex})")

    def scn(self) -> str:
        while True:
            self._scn_counter += 1
            first8 = f"{(self._scn_counter * 7919 + 10_000_019) % 10**8:08d}"
            check = scn_check_digit(first8)
            if check is not None:
                return first8 + str(check)
