"""Identifiers as the agencies issue them: CHI, SCN, PNC, and opaque record references.

CHI: ten digits, DDMMYY of birth, two serial digits, a sex digit (odd male, even female)
and a modulus-11 check digit (weights 10..2; 11 -> 0; serials giving 10 are never issued).
SCN: nine digits, the ninth a modulus-11 check digit over the first eight (weights 9..2),
the same scheme as CHI (an assumption: the real SCN check is not published).
PNC: `YYYY/NNNNNNNL`, the letter the real PNC check character: (YY * 10**7 + serial) mod 23
indexed into "ZABCDEFGHJKLMNPQRTUVWXY".
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Callable
from datetime import date

PNC_CHECK_LETTERS = "ZABCDEFGHJKLMNPQRTUVWXY"
CHI_SERIALS = 500  # two serial digits x five sex digits per date of birth and sex


def mod11_check_digit(digits: str) -> int | None:
    """Modulus-11 check digit with weights len+1 down to 2; None when it would be 10."""
    weights = range(len(digits) + 1, 1, -1)
    total = sum(int(digit) * weight for digit, weight in zip(digits, weights, strict=True))
    check = 11 - total % 11
    if check == 11:
        return 0
    return None if check == 10 else check


def chi_check_digit(first9: str) -> int | None:
    """CHI check digit over the first nine digits (weights 10..2); None if never issued."""
    return mod11_check_digit(first9)


def is_valid_chi(chi: str) -> bool:
    """Ten digits whose last is the modulus-11 check digit of the first nine."""
    return len(chi) == 10 and chi.isdigit() and chi_check_digit(chi[:9]) == int(chi[9])


def scn_check_digit(first8: str) -> int | None:
    """SCN check digit over the first eight digits (weights 9..2); None if never issued."""
    return mod11_check_digit(first8)


def is_valid_scn(scn: str) -> bool:
    """Nine digits whose last is the modulus-11 check digit of the first eight."""
    return len(scn) == 9 and scn.isdigit() and scn_check_digit(scn[:8]) == int(scn[8])


def pnc_check_letter(year: int, serial: int) -> str:
    """The PNC check character for a year and a serial number."""
    return PNC_CHECK_LETTERS[((year % 100) * 10**7 + serial) % 23]


def is_valid_pnc(pnc: str) -> bool:
    """`YYYY/NNNNNNNL` with the right check letter."""
    year, _, rest = pnc.partition("/")
    if len(year) != 4 or len(rest) != 8 or not (year + rest[:7]).isdigit():
        return False
    return pnc_check_letter(int(year), int(rest[:7])) == rest[7]


def miskey(rng: random.Random, number: str, is_valid: Callable[[str], bool]) -> str:
    """One digit changed or two adjacent digits transposed, so that the check now fails."""
    while True:
        digits = list(number)
        position = rng.randrange(len(digits) - 1)
        if rng.random() < 0.5 and digits[position] != digits[position + 1]:
            digits[position], digits[position + 1] = digits[position + 1], digits[position]
        else:
            digits[position] = str((int(digits[position]) + rng.randrange(1, 10)) % 10)
        candidate = "".join(digits)
        if not is_valid(candidate):
            return candidate


def stable_hash(text: str) -> int:
    """A hash that, unlike hash(), is the same in every process."""
    return zlib.crc32(text.encode("utf-8"))


class OpaqueSequence:
    """Unique references that look random: serial * multiplier + offset mod 10**digits.

    The multiplier is odd and not a multiple of 5, so the map is a bijection on
    10**digits values: distinct serials never collide, yet ids show no order.
    """

    def __init__(self, prefix: str, digits: int, seed: int) -> None:
        rng = random.Random(f"{seed}:{prefix}")
        self.prefix, self.digits, self.modulus = prefix, digits, 10**digits
        self.multiplier = rng.randrange(10 ** (digits - 1), self.modulus) | 1
        while self.multiplier % 5 == 0:
            self.multiplier += 2
        self.offset = rng.randrange(self.modulus)
        self.issued = 0

    def next_number(self) -> int:
        if self.issued >= self.modulus:
            raise ValueError(f"{self.prefix} references exhausted at {self.modulus:,} ids")
        self.issued += 1
        return (self.issued * self.multiplier + self.offset) % self.modulus

    def next(self) -> str:
        return f"{self.prefix}{self.next_number():0{self.digits}d}"


class Issuer:
    """Hands out identifiers that are unique across the whole population.

    Chunks are generated in order and share one issuer, so its small state (counters, and
    one counter per date of birth and sex for CHI) makes ids unique at any size.
    """

    def __init__(self, seed: int) -> None:
        serials = [f"{pair:02d}{sex_digit}" for pair in range(100) for sex_digit in range(10)]
        random.Random(f"{seed}:chi").shuffle(serials)
        self._chi_serials = {
            "M": [s for s in serials if int(s[2]) % 2 == 1],
            "F": [s for s in serials if int(s[2]) % 2 == 0],
        }
        self._chi_used: dict[tuple[int, str], int] = {}
        self._sequences: dict[str, OpaqueSequence] = {}
        self._seed = seed
        self.people = 0
        self.households = 0

    def person_id(self) -> str:
        self.people += 1
        return f"P{self.people:08d}"

    def household_id(self) -> str:
        self.households += 1
        return f"H{self.households:08d}"

    def chi(self, dob: date, sex: str) -> str:
        """A valid CHI for this date of birth and sex that nobody else holds."""
        key = (dob.toordinal(), sex)
        used = self._chi_used.get(key, 0)
        start = key[0] * 37  # each birthday walks the serials from its own place
        serials = self._chi_serials[sex]
        prefix = f"{dob.day:02d}{dob.month:02d}{dob.year % 100:02d}"
        while used < CHI_SERIALS:
            serial = serials[(start + used) % CHI_SERIALS]
            used += 1
            check = chi_check_digit(prefix + serial)
            if check is not None:
                self._chi_used[key] = used
                return f"{prefix}{serial}{check}"
        raise ValueError(f"CHI serials exhausted for one date of birth and sex ({dob}, {sex})")

    def scn(self) -> str:
        """A valid SCN nobody else holds."""
        sequence = self._sequence("SCN", 8)
        while True:
            first8 = f"{sequence.next_number():08d}"
            check = scn_check_digit(first8)
            if check is not None:
                return f"{first8}{check}"

    def pnc(self, year: int) -> str:
        serial = self._sequence("PNC", 7).next_number()
        return f"{year}/{serial:07d}{pnc_check_letter(year, serial)}"

    def serial(self, name: str, digits: int) -> int:
        """The next number of the named sequence, unique and scattered over 10**digits."""
        return self._sequence(name, digits).next_number()

    def ref(self, prefix: str, digits: int) -> str:
        """The next opaque reference with this prefix (one sequence per prefix)."""
        return self._sequence(prefix, digits).next()

    def _sequence(self, prefix: str, digits: int) -> OpaqueSequence:
        if prefix not in self._sequences:
            self._sequences[prefix] = OpaqueSequence(prefix, digits, self._seed)
        return self._sequences[prefix]
