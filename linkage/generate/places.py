"""Scottish towns, postcodes, streets and dwellings; schools and GP practices by district.

A postcode unit is one street (or part of one) with 15-40 dwellings: houses, or tenement
flats that share a close number ("Flat 2/1" in Glasgow, "3F2" in Edinburgh). Postcodes are
issued through the shared Issuer so they are unique across chunks.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from itertools import accumulate

from linkage.generate.identifiers import stable_hash

# (town, [postcode districts], residents in thousands, share of dwellings that are flats)
TOWNS: list[tuple[str, list[str], int, float]] = [
    ("Glasgow", [f"G{n}" for n in (1, 2, 3, 4, 5, 11, 12, 13, 14, 15, 20, 21, 22, 23, 31, 32,
                                    33, 34, 40, 41, 42, 43, 44, 45, 46, 51, 52, 53)], 620, 0.7),
    ("Edinburgh", [f"EH{n}" for n in range(1, 18)], 520, 0.6),
    ("Aberdeen", [f"AB{n}" for n in (10, 11, 12, 15, 16, 21, 22, 24, 25)], 200, 0.5),
    ("Dundee", [f"DD{n}" for n in (1, 2, 3, 4, 5)], 150, 0.5),
    ("Paisley", ["PA1", "PA2", "PA3"], 77, 0.4),
    ("East Kilbride", ["G74", "G75"], 75, 0.2),
    ("Livingston", ["EH53", "EH54"], 57, 0.15),
    ("Hamilton", ["ML3"], 54, 0.3),
    ("Dunfermline", ["KY11", "KY12"], 55, 0.2),
    ("Cumbernauld", ["G67", "G68"], 50, 0.25),
    ("Kirkcaldy", ["KY1", "KY2"], 50, 0.3),
    ("Inverness", ["IV1", "IV2", "IV3"], 48, 0.2),
    ("Perth", ["PH1", "PH2"], 47, 0.3),
    ("Ayr", ["KA7", "KA8"], 46, 0.3),
    ("Kilmarnock", ["KA1", "KA3"], 46, 0.25),
    ("Coatbridge", ["ML5"], 43, 0.3),
    ("Greenock", ["PA15", "PA16"], 41, 0.5),
    ("Glenrothes", ["KY6", "KY7"], 39, 0.15),
    ("Airdrie", ["ML6"], 37, 0.3),
    ("Stirling", ["FK7", "FK8", "FK9"], 37, 0.3),
    ("Falkirk", ["FK1", "FK2"], 35, 0.3),
    ("Irvine", ["KA11", "KA12"], 34, 0.2),
    ("Dumfries", ["DG1", "DG2"], 33, 0.2),
    ("Motherwell", ["ML1"], 32, 0.3),
    ("Wishaw", ["ML2"], 30, 0.3),
    ("Elgin", ["IV30"], 24, 0.15),
    ("Arbroath", ["DD11"], 23, 0.2),
    ("Musselburgh", ["EH21"], 21, 0.3),
    ("Peterhead", ["AB42"], 19, 0.15),
    ("Galashiels", ["TD1"], 12, 0.2),
    ("Fort William", ["PH33"], 10, 0.2),
    ("Kirkwall", ["KW15"], 9, 0.1),
    ("Oban", ["PA34"], 8, 0.2),
    ("Stornoway", ["HS1"], 8, 0.1),
    ("Lerwick", ["ZE1"], 7, 0.1),
    ("Portree", ["IV51"], 3, 0.05),
]  # fmt: skip
GAELIC_AREA_TOWNS = {"Stornoway", "Portree", "Oban", "Fort William", "Inverness"}
# Inward codes never use C, I, K, M, O or V.
INWARD_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"

STREET_ROOTS = (
    "Kelvin High Church Main Station Park Victoria Queen King Albert Union George Princes "
    "Bruce Wallace Argyle Clyde Forth Tay Dee Lomond Ness Holly Rowan Birch Oak Elm Beech Mill "
    "Bridge School Manse Muir Glen Craig Burn Loch Hawthorn Thistle Heather Bank Castle Abbey "
    "Kirk Market Lochside Hillside Riverside Broomhill Woodside Springfield Ashgrove Belmont "
    "Braeside Carrick Dalziel Dunlop Fernbank Gilmour Hamilton Hunter Inchview Kilbride Lennox "
    "Marchmont Montgomery Morningside Netherton Northfield Polwarth Randolph Rosebank Seafield "
    "Southfield Strathmore Torrance Viewfield Westfield Whitehill Wilton Wyndford"
).split()
# (street type, the abbreviation agencies use)
STREET_TYPES: list[tuple[str, str]] = [
    ("Street", "St"), ("Road", "Rd"), ("Avenue", "Ave"), ("Crescent", "Cres"),
    ("Drive", "Dr"), ("Gardens", "Gdns"), ("Place", "Pl"), ("Terrace", "Terr"),
    ("Court", "Ct"), ("Lane", "Ln"), ("Square", "Sq"), ("Grove", "Gr"), ("Way", "Way"),
    ("Wynd", "Wynd"), ("Brae", "Brae"), ("View", "Vw"), ("Park", "Pk"),
]  # fmt: skip
STREET_TYPE_WEIGHTS = list(accumulate([30, 25, 12, 8, 9, 6, 6, 5, 3, 3, 2, 2, 2, 1, 1, 1, 1]))
ABBREVIATIONS = dict(STREET_TYPES)

SCHOOL_WORDS = (
    "Springfield Hillside Woodside Riverside Westfield Northfield Braeside Castlehill "
    "Kirkhill Newlands Parkhead Burnside Eastwood Southpark Greenhill Ashgrove Mossend "
    "Hawthorn Rowanbank Lochview Broomhill Glenwood Kingsway Whitehill Seaview Highfield"
).split()
SAINTS = "Mungo Ninian Andrew Columba Margaret Bride Aidan Kentigern Ninian Modan".split()


@dataclass(slots=True, frozen=True)
class Address:
    """One dwelling."""

    number: str  # "12", "12A"
    street: str  # "Kelvin Street"
    street_type: str  # "Street"
    flat: str  # "Flat 2/1", "3F2" or ""
    town: str
    postcode: str
    district: str  # outward code, e.g. "G12"

    def street_line(self, abbreviate: bool = False) -> str:
        """`12 Kelvin Street`, or `12 Kelvin St` when abbreviated."""
        if abbreviate:
            short = ABBREVIATIONS[self.street_type]
            return f"{self.number} {self.street[: -len(self.street_type)]}{short}"
        return f"{self.number} {self.street}"


def _district_table() -> tuple[list[tuple[str, str]], list[float]]:
    districts, weights = [], []
    for town, codes, thousands, _ in TOWNS:
        for code in codes:
            districts.append((town, code))
            weights.append(thousands / len(codes))
    return districts, list(accumulate(weights))


DISTRICTS, DISTRICT_WEIGHTS = _district_table()
FLAT_SHARE = {town: flats for town, _, _, flats in TOWNS}


class PostcodeIssuer:
    """Unique inward codes per district, handed out in a seeded, scattered order."""

    def __init__(self, seed: int) -> None:
        self._seed = seed
        self._used: dict[str, int] = {}

    def postcode(self, district: str) -> str:
        used = self._used.get(district, 0)
        capacity = 9 * len(INWARD_LETTERS) ** 2
        if used >= capacity:
            raise ValueError(f"postcodes exhausted in district {district}")
        self._used[district] = used + 1
        # a fixed odd multiplier coprime with the capacity scatters the codes
        code = (used * 2917 + stable_hash(f"{self._seed}:{district}")) % capacity
        digit, letters = divmod(code, len(INWARD_LETTERS) ** 2)
        first, second = divmod(letters, len(INWARD_LETTERS))
        return f"{district} {digit + 1}{INWARD_LETTERS[first]}{INWARD_LETTERS[second]}"


class NumericPostcodeIssuer(PostcodeIssuer):
    """4-digit area codes (as in Australia, Denmark or Norway): one per district, shared by
    every street in it, so a postcode narrows a search far less than a UK unit postcode.

    The district stays the UK one inside the generator (it picks schools and GP practices);
    only the code the agencies see changes.
    """

    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        self._offset = stable_hash(f"{seed}:numeric-postcodes") % 9000
        self._index = {district: index for index, (_, district) in enumerate(DISTRICTS)}

    def postcode(self, district: str) -> str:
        # 7919 is prime and does not divide 9000, so distinct districts get distinct codes
        return f"{1000 + (self._index[district] * 7919 + self._offset) % 9000}"


class AddressBook:
    """The dwellings of one chunk: postcode units made on demand, dwellings handed out once."""

    def __init__(self, rng: random.Random, postcodes: PostcodeIssuer) -> None:
        self._rng = rng
        self._postcodes = postcodes
        self._vacant: list[Address] = []
        self.occupied: list[Address] = []

    def vacant_dwelling(self) -> Address:
        if not self._vacant:
            self._vacant = self._postcode_unit()
        address = self._vacant.pop()
        self.occupied.append(address)
        return address

    def occupied_dwelling(self) -> Address:
        """A dwelling someone already lives at (for households that share)."""
        if not self.occupied:
            return self.vacant_dwelling()
        return self._rng.choice(self.occupied)

    def _postcode_unit(self) -> list[Address]:
        rng = self._rng
        town, district = rng.choices(DISTRICTS, cum_weights=DISTRICT_WEIGHTS)[0]
        postcode = self._postcodes.postcode(district)
        street_type = rng.choices(STREET_TYPES, cum_weights=STREET_TYPE_WEIGHTS)[0][0]
        street = f"{rng.choice(STREET_ROOTS)} {street_type}"
        dwellings = rng.randint(15, 40)
        first_number = rng.randrange(1, 120)
        side = rng.choice((1, 2))  # odd or even side of the street, or both
        if rng.random() < FLAT_SHARE[town]:
            units = _tenement(rng, town, dwellings, first_number, side)
        else:
            units = [(str(first_number + side * i), "") for i in range(dwellings)]
        addresses = [
            Address(_with_suffix(rng, number), street, street_type, flat, town, postcode, district)
            for number, flat in units
        ]
        rng.shuffle(addresses)
        return addresses


def _tenement(
    rng: random.Random, town: str, dwellings: int, first_number: int, side: int
) -> list[tuple[str, str]]:
    """Closes of flats: each number holds 4-8 flats, named in the town's way."""
    units: list[tuple[str, str]] = []
    number = first_number
    while len(units) < dwellings:
        floors = rng.randint(2, 4)
        for floor in range(floors):
            for position in (1, 2):
                units.append((str(number), _flat_name(town, floor, position)))
        number += side
    return units[:dwellings]


def _flat_name(town: str, floor: int, position: int) -> str:
    if town == "Edinburgh":
        return f"{floor}F{position}" if floor else f"Flat G{position}"
    if town in ("Glasgow", "Paisley", "Greenock", "Dundee"):
        return f"Flat {floor}/{position}"
    return f"Flat {floor * 2 + position}"


def _with_suffix(rng: random.Random, number: str) -> str:
    return number + "A" if rng.random() < 0.02 else number


def gp_practice(district: str, household_key: int) -> str:
    """One of the two or three GP practices serving a district (5-digit practice code)."""
    practices = 2 + stable_hash(district) % 2
    return f"{(stable_hash(district) * 7 + household_key % practices) % 90000 + 10000:05d}"


def school_name(town: str, district: str, secondary: bool, household_key: int) -> str:
    """A primary or secondary school serving a district (a catholic one for some homes)."""
    key = stable_hash(district + ("S" if secondary else "P"))
    if household_key % 5 == 0:  # denominational schools draw from the same districts
        saint = SAINTS[key % len(SAINTS)]
        return f"St {saint}'s {'RC High School' if secondary else 'Primary School'}"
    word = SCHOOL_WORDS[key % len(SCHOOL_WORDS)]
    if secondary:
        return (f"{town} Academy", f"{word} High School", f"{town} Grammar School")[key % 3]
    return f"{word} Primary School"


def gaelic_rate(town: str, rates: dict[str, float]) -> float:
    return rates["gaelic_area"] if town in GAELIC_AREA_TOWNS else rates["default"]
