"""Scottish names with realistic frequency skew: forenames by sex and birth era, surnames.

Lists are in order of popularity; weights fall off Zipf-like along each list, steeper in
older eras (when a few names dominated) than now. Names are held in their proper case
("MacDonald", "O'Neill", "Seònaid"); agencies choose how to key them. Every character is
in latin-1, because two of the extracts are latin-1 files.
"""

from __future__ import annotations

import random
from bisect import bisect_right
from itertools import accumulate


def _words(text: str) -> list[str]:
    return text.split()


# (first birth year of the era, male names, female names, Zipf exponent)
FORENAME_ERAS: list[tuple[int, list[str], list[str], float]] = [
    (
        0,
        _words(
            "John James William Robert David Thomas Alexander George Andrew Charles Peter Hugh "
            "Ian Donald Kenneth Archibald Duncan Walter Alan Gordon Norman Angus Joseph Samuel "
            "Francis Edward Henry Matthew Neil Malcolm Stewart Allan Colin Douglas Frederick "
            "Ronald Albert Arthur Harold Leslie Lawrence Murdo Roderick Alistair Hector Adam "
            "Patrick Daniel Michael Richard Gilbert Ernest Herbert Gavin Ewan Iain Hamish Finlay "
            "Robin Lachlan Dugald Wallace Gerald Bernard Leonard Cecil Sydney"
        ),
        _words(
            "Margaret Mary Elizabeth Agnes Isabella Jean Helen Catherine Janet Anne Christina "
            "Jessie Annie Sarah Marion Elsie Isobel Williamina Georgina Jemima Sheila Moira "
            "Irene Betty Joan Doris Ellen Euphemia Grace Rose Alice Barbara Dorothy Edith "
            "Flora Ina Mabel Nancy Olive Rachel Ruth Violet Winifred Wilma Hilda Evelyn "
            "Kathleen Bridget Frances Johan Lilias Marjory Muriel Robina Thomasina Vera Netta"
        ),
        0.9,
    ),
    (
        1950,
        _words(
            "John David James Robert William Alexander Thomas George Ian Andrew Kenneth Stephen "
            "Brian Alan Gordon Peter Michael Colin Graham Derek Douglas Charles Richard Norman "
            "Hugh Donald Malcolm Stewart Neil Gary Alistair Allan Raymond Ronald Edward Francis "
            "Joseph Patrick Walter Martin Frank Keith Roderick Iain Angus Robin Duncan Murray "
            "Fraser Bruce Kevin Paul Anthony Christopher Daniel Lindsay Gerard Archibald"
        ),
        _words(
            "Margaret Elizabeth Anne Mary Catherine Linda Susan Patricia Janet Christine Karen "
            "Helen Lorraine Fiona Alison Carol Moira Sandra Jacqueline Elaine Irene Isobel Jean "
            "Kathleen Maureen Sheila Brenda Evelyn Gillian Heather Jennifer Julie Lesley "
            "Marion Morag Pamela Rosemary Shona Valerie Wendy Yvonne Alice Ann Barbara Caroline "
            "Diane Dorothy Eileen Frances Joyce June Lynne Rhona Rosalind Sylvia Teresa"
        ),
        0.8,
    ),
    (
        1970,
        _words(
            "David John Paul Andrew Mark Stephen Scott Michael James Robert Craig Steven Gary "
            "Kevin Christopher Ross Martin Graeme Barry Stuart Darren Colin Alan Neil Brian "
            "Richard Iain Thomas William Alexander Derek Kenneth Grant Jason Lee Shaun Gordon "
            "Euan Fraser Douglas Jamie Daniel Ryan Peter Allan Gavin Keith Malcolm Matthew "
            "Jonathan Anthony Joseph Duncan Murray Calum Angus Campbell Greig"
        ),
        _words(
            "Nicola Claire Karen Lisa Laura Gillian Fiona Lynn Michelle Louise Pamela Kirsty "
            "Emma Joanne Susan Angela Donna Gemma Amanda Sarah Elaine Julie Lorraine Jacqueline "
            "Caroline Kelly Leanne Lynsey Natalie Suzanne Tracey Victoria Yvonne Alison Carol "
            "Catherine Debbie Elizabeth Heather Jennifer Katrina Lesley Mhairi Morag Rachel "
            "Rebecca Shona Stephanie Tracy Vicky Wendy Zoë Ailsa Ashley Jillian Kathleen"
        ),
        0.7,
    ),
    (
        1990,
        _words(
            "Ryan Jamie Lewis Andrew Callum Kyle Ross Scott Michael Jack Connor Liam Daniel "
            "Jordan Sean Cameron Matthew James Christopher Dylan Calum Euan David John Kieran "
            "Thomas Adam Craig Robert Mark Aidan Jordan Reece Nathan Fraser Blair Grant Greg "
            "Marc Nicholas Paul Rhys Robbie Stuart Steven Alexander William Joseph Ewan Finlay "
            "Josh Lee Martin Owen Alan Darren Declan Gary Harry Kerr Shaun Stephen"
        ),
        _words(
            "Rebecca Lauren Emma Amy Sophie Nicole Rachel Chloe Hannah Erin Megan Emily Laura "
            "Shannon Caitlin Jennifer Eilidh Ashley Kirsty Holly Sarah Jade Kayleigh Danielle "
            "Lucy Rachael Stephanie Abbie Courtney Gemma Heather Jessica Katie Leah Mhairi "
            "Natalie Samantha Ailsa Amber Bethany Catherine Charlotte Claire Eve Fiona Georgia "
            "Kelsey Kimberley Louise Morgan Nicola Olivia Robyn Siobhan Zoe Niamh Ellie"
        ),
        0.55,
    ),
    (
        2010,
        _words(
            "Jack Noah Oliver James Leo Harris Lewis Alexander Charlie Rory Lucas Logan Finlay "
            "Harry Archie Max Thomas Jacob Daniel Alfie Theo Callum Arran Muhammad Adam Aaron "
            "Ethan Joshua Matthew Oscar Cameron Ollie Freddie Luca Ruaridh Brodie Dylan Jamie "
            "Isaac Liam Samuel Mason Kai Blake Reuben Angus Hunter Jayden Lachlan Fraser Euan "
            "Calum Mohammed Innes Zachary Cole Rowan Arthur Louis Ryan Ewan Cillian Dominic"
        ),
        _words(
            "Olivia Emily Isla Sophie Freya Ava Amelia Grace Lily Ella Ellie Sofia Millie "
            "Jessica Evie Harper Rosie Isabella Mia Aria Orla Charlotte Lucy Emma Ivy Layla "
            "Hannah Chloe Poppy Brooke Eilidh Anna Daisy Georgia Skye Eva Florence Niamh Robyn "
            "Matilda Maisie Zara Holly Erin Lexi Alice Abigail Amber Ruby Sienna Kayla Cara "
            "Thea Esme Iona Maya Phoebe Zoë Kacey Heidi Elsie Violet Penelope Willow"
        ),
        0.4,
    ),
]

# Names come back into fashion: this share of forenames is drawn from another era.
CROSS_ERA_RATE = 0.15

# Gaelic forenames, with the accents that latin-1 extracts keep and others drop.
GAELIC_MALE = _words(
    "Calum Iain Ruairidh Eòghann Ùisdean Seumas Dòmhnall Tormod Aonghas Coinneach Niall "
    "Tòmas Pàdraig Alasdair Lachlann Murchadh Fionnlagh Seòras Ìomhar Dùghall Raghnall"
)
GAELIC_FEMALE = _words(
    "Eilidh Mòrag Seònaid Catrìona Màiri Ciorstaidh Sìne Peigi Raonaid Ealasaid Oighrig "
    "Màili Mairead Ishbel Beathag Anna Seasaidh Dìorbhail Ìseabail Curstaidh Rìoghnach"
)

# Surnames with counts per 10,000 people for the commonest (Scotland-like), then a tail
# whose weights fall off along the list.
COMMON_SURNAMES: dict[str, float] = {
    "Smith": 130, "Brown": 90, "Wilson": 82, "Campbell": 77, "Stewart": 76, "Thomson": 75,
    "Robertson": 73, "Anderson": 65, "MacDonald": 40, "Scott": 55, "Reid": 52, "Murray": 52,
    "Taylor": 51, "Clark": 48, "Ross": 42, "Watson": 41, "Morrison": 40, "Paterson": 39,
    "Young": 39, "Mitchell": 38, "Walker": 37, "Fraser": 36, "Miller": 36, "McDonald": 35,
    "Gray": 34, "Henderson": 34, "Hamilton": 34, "Johnston": 33, "Duncan": 32, "Graham": 31,
    "Ferguson": 31, "Kerr": 30, "Davidson": 30, "Bell": 30, "Cunningham": 28, "Martin": 28,
    "Kelly": 27, "Macdonald": 20, "MacKenzie": 20, "MacLeod": 20, "McLean": 18, "Simpson": 25,
}  # fmt: skip
TAIL_SURNAMES = _words(
    "Allan Grant Black White Russell Gibson Marshall Kennedy Gordon Wallace Craig Wright "
    "Hunter Buchanan Docherty Sinclair Munro Sutherland McKay MacKay Mackay McIntosh "
    "Mackintosh MacGregor McGregor MacMillan McMillan MacPherson McPherson MacIntyre McIntyre "
    "McKenzie Mackenzie McLeod MacLean Cameron Jamieson Milne Ritchie Mackie Wood Hill Crawford "
    "Muir Burns Hay Gillespie Lamont Dickson Boyd Little Bruce Mathieson Lawson Cochrane Harvey "
    "Rae Hutchison Forbes Kirk Weir Findlay Aitken Cairns Dunn Gallacher Gallagher Higgins Lynch "
    "Devlin Kane Barr Stevenson Wylie Lindsay Galbraith Logan Ramsay Baird Currie Watt Chalmers "
    "Douglas Hughes Napier Irvine Shaw Boyle Quinn McCallum MacCallum McLaughlin MacInnes "
    "McInnes MacLachlan McLachlan MacFarlane McFarlane MacNeil McNeil MacAulay McAulay MacEwan "
    "McEwan MacRae McRae MacKinnon McKinnon MacAskill MacQuarrie MacNab McNab MacNicol "
    "McAllister MacArthur McArthur McBeth MacDiarmid MacDougall McDougall McFadyen MacGillivray "
    "McGowan McGuire McHardy MacIver McIver McKellar McKie McLennan MacMaster McNaught "
    "MacQueen McQueen McTaggart McVicar McWhirter McGill McGinn McGuinness McCann McCulloch "
    "McCormick McCabe McConnell McKenna McManus McMahon McGeachie McColl McCrae McCue "
    "Johnstone Armstrong Adams Allison Baxter Beattie Blair Bowie Brady Brennan Burnett Carr "
    "Clarke Connelly Connolly Cook Cooper Coyle Dempster Dick Dougan Doyle Drummond Fairley "
    "Farrell Fyfe Gemmell Gibb Goodwin Gow Haddow Hall Harper Harris Hendry Hogg Holmes Hood "
    "Howie Jack Jackson Kay Kyle Lang Lees Leslie Liddell Love Lowe Malcolm Mann Marr Meikle "
    "Moffat Moore Morton Mowat Mullen Nelson Nicol Nicolson Park Porter Rafferty Reilly "
    "Richardson Roberts Robb Rodger Rose Sharkey Short Skinner Smart Somerville Steel Stirling "
    "Storrie Thompson Todd Turner Walsh Ward Wells Whyte Williamson Wilkie Wishart Yeats "
    "Bain Dow Ewing Fleming Gilchrist Inglis Laing Lyon Nairn Ogilvie Pollock Rennie Shearer "
    "Spence Strachan Tait Urquhart Veitch Brodie Cowan Cruickshank Dalgleish Elder Forsyth "
    "Geddes Hastie Imrie Kinnear Lockhart Melville Niven Orr Pringle Rankin Sharp Souter "
    "Tweedie Wardrop Wotherspoon Yule Peat Keir Hutcheson Carmichael Matheson Morrice Sim "
    "Christie Mair Masson Gunn Bremner Leask Flett Isbister Tulloch Manson Halcrow Rendall "
    "Khan Ahmed Ali Hussain Iqbal Shah Akhtar Singh Kaur Patel Chen Wang Nowak Kowalski "
    "Wisniewski Kaminski Lewandowski Rossi Coia Conti Nardini Crolla Fusco Verrecchia "
    "Müller Schmidt Da Silva Dos Santos"
)
# Surnames with apostrophes and particles, written here because they contain spaces.
PARTICLE_SURNAMES = [
    "O'Neill", "O'Brien", "O'Donnell", "O'Hara", "O'Connor", "O'Rourke", "O'Kane",
    "Van der Berg", "Van Dijk", "De la Cruz", "Di Rollo", "D'Agostino", "De Luca",
    "Ó Briain", "Mac an t-Saoir",
]  # fmt: skip

# Known-as forms: nicknames and anglicised forms of Gaelic names (~80 name groups).
NICKNAMES: dict[str, list[str]] = {
    "William": ["Bill", "Billy", "Will", "Willie", "Liam"],
    "James": ["Jim", "Jimmy", "Jamie", "Jas"],
    "John": ["Johnny", "Jack", "Jock"],
    "Alexander": ["Alex", "Sandy", "Ally", "Alec", "Sandro"],
    "Robert": ["Bob", "Bobby", "Rob", "Rab", "Robbie", "Bert"],
    "Thomas": ["Tom", "Tam", "Tommy"],
    "David": ["Dave", "Davie", "Davy"],
    "Michael": ["Mike", "Mick", "Mikey"],
    "Richard": ["Rick", "Richie", "Dick"],
    "Charles": ["Charlie", "Chic", "Chas"],
    "Andrew": ["Andy", "Drew", "Dand"],
    "Joseph": ["Joe", "Joey"],
    "Peter": ["Pete"],
    "Stephen": ["Steve", "Stevie"],
    "Steven": ["Steve", "Stevie"],
    "Kenneth": ["Ken", "Kenny"],
    "Donald": ["Don", "Donnie"],
    "Douglas": ["Doug", "Dougie"],
    "Christopher": ["Chris", "Kit"],
    "Daniel": ["Dan", "Danny"],
    "Matthew": ["Matt", "Matty"],
    "Samuel": ["Sam", "Sammy"],
    "Edward": ["Ed", "Eddie", "Ted"],
    "Francis": ["Frank", "Frankie"],
    "Anthony": ["Tony"],
    "Nicholas": ["Nick", "Nicky"],
    "Patrick": ["Pat", "Paddy"],
    "Hugh": ["Hughie"],
    "Archibald": ["Archie", "Baldy"],
    "Frederick": ["Fred", "Freddie"],
    "Ronald": ["Ron", "Ronnie"],
    "Gerald": ["Gerry"],
    "Gerard": ["Gerry", "Ged"],
    "Lawrence": ["Larry", "Laurie"],
    "Callum": ["Cal"],
    "Cameron": ["Cammy"],
    "Jonathan": ["Jon", "Jonny"],
    "Leonard": ["Len", "Lenny"],
    "Walter": ["Wattie", "Walt"],
    "Norman": ["Norrie"],
    "George": ["Geordie", "Dod"],
    "Oliver": ["Ollie"],
    "Joshua": ["Josh"],
    "Nathan": ["Nate"],
    "Elizabeth": ["Liz", "Lizzie", "Beth", "Betty", "Bessie", "Libby"],
    "Margaret": ["Maggie", "Peggy", "Meg", "Rita", "Maisie", "Greta", "Madge"],
    "Catherine": ["Kate", "Cathy", "Katie", "Cath"],
    "Katherine": ["Kate", "Kathy", "Katie"],
    "Mary": ["Molly", "Mamie", "May"],
    "Jennifer": ["Jen", "Jenny"],
    "Susan": ["Sue", "Susie"],
    "Rebecca": ["Becky", "Becca"],
    "Victoria": ["Vicky", "Tori"],
    "Jessica": ["Jess", "Jessie"],
    "Abigail": ["Abbie", "Abby"],
    "Samantha": ["Sam", "Sammy"],
    "Patricia": ["Pat", "Tricia", "Trish"],
    "Deborah": ["Debbie", "Deb"],
    "Jacqueline": ["Jackie", "Jacqui"],
    "Christine": ["Chris", "Chrissie"],
    "Christina": ["Tina", "Chrissie", "Kirsty"],
    "Helen": ["Nell", "Nellie"],
    "Isobel": ["Izzy", "Isa", "Bel"],
    "Isabella": ["Bella", "Izzy", "Isa"],
    "Janet": ["Jan", "Jenny", "Jessie", "Netta"],
    "Jean": ["Jeannie"],
    "Agnes": ["Nessie", "Aggie", "Nancy"],
    "Anne": ["Annie", "Nan"],
    "Amanda": ["Mandy"],
    "Caroline": ["Carol", "Caz"],
    "Nicola": ["Nicky", "Nic"],
    "Pamela": ["Pam"],
    "Sarah": ["Sally", "Sadie"],
    "Williamina": ["Mina", "Ina", "Wilma"],
    "Louise": ["Lou"],
    "Gillian": ["Gill", "Jill"],
    "Kathleen": ["Kath", "Kathy"],
    "Frances": ["Fran"],
    "Charlotte": ["Lottie", "Charlie"],
    "Olivia": ["Liv", "Livvy"],
    "Amelia": ["Millie"],
    "Emily": ["Em", "Emmy"],
    "Alexandra": ["Alex", "Lexie", "Sandra"],
    "Stephanie": ["Steph"],
    "Euphemia": ["Effie", "Phemie"],
    # Gaelic names and the English forms agencies often record instead
    "Seumas": ["James", "Hamish"],
    "Iain": ["John", "Ian"],
    "Dòmhnall": ["Donald"],
    "Eòghann": ["Ewan", "Hugh"],
    "Ùisdean": ["Hugh"],
    "Seòras": ["George"],
    "Tòmas": ["Thomas"],
    "Pàdraig": ["Patrick"],
    "Coinneach": ["Kenneth"],
    "Aonghas": ["Angus"],
    "Tormod": ["Norman"],
    "Ruairidh": ["Roderick", "Rory"],
    "Màiri": ["Mary"],
    "Seònaid": ["Janet", "Shona"],
    "Catrìona": ["Catherine", "Katrina"],
    "Mòrag": ["Sarah"],
    "Ealasaid": ["Elizabeth", "Elspeth"],
    "Sìne": ["Jean", "Jane"],
    "Peigi": ["Peggy"],
    "Raonaid": ["Rachel"],
    "Ciorstaidh": ["Kirsty", "Christina"],
    "Mairead": ["Margaret"],
}

# Rare, place-derived surnames (Balfour-, Kirkwood-like) built from common parts.
RARE_PREFIXES = _words(
    "Bal Kil Inver Dal Auchter Glen Strath Craw Mel Cald Thorn Black Brae Kirk Fair Green "
    "Lang Mont Ark Bar Car Dun Tor Ash Broom Hazel Mar Pit Ard Cul Drum Ben Cam Gart Loch Fin "
    "Gil Mur Stan"
)
RARE_SUFFIXES = _words(
    "ford more lie well wood ton rie ock an field law hill burn side ston ley den ie ter "
    "ham bank shaw ney garth haugh mond ach ray"
)
RARE_SURNAME_SHARE_PER_10K = 1200.0


# Name diversity: `normal` is the Scotland-wide mix above; `low` is an island population
# such as Lewis and Harris, where a handful of surnames are carried by a quarter or more of
# people and forenames concentrate on a few per generation.
NAME_DIVERSITIES = ("normal", "low")
DEFAULT_NAME_DIVERSITY = "normal"
# relative weights among the island surnames; together they take ISLAND_SURNAME_SHARE of draws
ISLAND_SURNAMES: dict[str, float] = {
    "MacLeod": 8, "MacDonald": 5, "Morrison": 4, "MacKenzie": 4, "MacIver": 2, "Smith": 2,
}  # fmt: skip
ISLAND_SURNAME_SHARE = 0.25
LOW_DIVERSITY_FORENAMES = 15  # each era keeps its commonest 15 forenames per sex
LOW_DIVERSITY_STEEPER = 0.3  # added to the era's Zipf exponent


def rare_surnames() -> list[str]:
    """Every prefix+suffix combination, in a fixed order."""
    return [prefix + suffix for prefix in RARE_PREFIXES for suffix in RARE_SUFFIXES]


def zipf_cumulative(count: int, exponent: float) -> list[float]:
    """Cumulative weights 1/rank**exponent, for random.choices(cum_weights=...)."""
    return list(accumulate(1.0 / rank**exponent for rank in range(1, count + 1)))


class NamePicker:
    """Draws names with realistic skew; all tables are built once per generation.

    `diversity` is one of NAME_DIVERSITIES; `normal` draws exactly as it always has (the
    committed sample depends on it), `low` concentrates surnames and forenames.
    """

    def __init__(self, diversity: str = DEFAULT_NAME_DIVERSITY) -> None:
        if diversity not in NAME_DIVERSITIES:
            known = ", ".join(NAME_DIVERSITIES)
            raise ValueError(f"unknown name diversity {diversity!r}; choose one of: {known}")
        low = diversity == "low"
        self._eras = [
            (start, _forename_table(male, exponent, low), _forename_table(female, exponent, low))
            for start, male, female, exponent in FORENAME_ERAS
        ]
        self._era_starts = [start for start, *_ in self._eras]
        self.surnames, weights = _surname_weights()
        if low:
            self.surnames, weights = _concentrated(self.surnames, weights)
        self._surname_cumulative = list(accumulate(weights))

    def forename(self, rng: random.Random, sex: str, birth_year: int, gaelic_rate: float) -> str:
        if rng.random() < gaelic_rate:
            return rng.choice(GAELIC_MALE if sex == "M" else GAELIC_FEMALE)
        if rng.random() < CROSS_ERA_RATE:
            era = rng.choice(self._eras)
        else:
            era = self._eras[bisect_right(self._era_starts, birth_year) - 1]
        names, cumulative = era[1] if sex == "M" else era[2]
        return rng.choices(names, cum_weights=cumulative)[0]

    def common_forename(self, rng: random.Random, sex: str, birth_year: int) -> str:
        """One of the five commonest forenames of the era (for planted name clashes)."""
        era = self._eras[bisect_right(self._era_starts, birth_year) - 1]
        names = era[1][0] if sex == "M" else era[2][0]
        return rng.choice(names[:5])

    def surname(self, rng: random.Random) -> str:
        return rng.choices(self.surnames, cum_weights=self._surname_cumulative)[0]


def _forename_table(names: list[str], exponent: float, low: bool) -> tuple[list[str], list[float]]:
    """An era's names for one sex and their cumulative weights (fewer and steeper if low)."""
    if low:
        names = names[:LOW_DIVERSITY_FORENAMES]
        exponent += LOW_DIVERSITY_STEEPER
    return names, zipf_cumulative(len(names), exponent)


def _surname_weights() -> tuple[list[str], list[float]]:
    """Every surname and its weight, commonest first."""
    listed = TAIL_SURNAMES + PARTICLE_SURNAMES
    rare = rare_surnames()
    # Scottish surname frequencies fall off about as rank**-0.4 through the top few
    # hundred; the synthetic rare names make the long tail (~13% of people).
    first_rank = len(COMMON_SURNAMES) + 1
    listed_weights = [130.0 / rank**0.4 for rank in range(first_rank, first_rank + len(listed))]
    rare_weights = [RARE_SURNAME_SHARE_PER_10K / len(rare)] * len(rare)
    surnames = list(COMMON_SURNAMES) + listed + rare
    return surnames, list(COMMON_SURNAMES.values()) + listed_weights + rare_weights


def _concentrated(surnames: list[str], weights: list[float]) -> tuple[list[str], list[float]]:
    """The island surnames first, weighted to ISLAND_SURNAME_SHARE of all draws; the others
    keep their relative weights."""
    paired = zip(surnames, weights, strict=True)
    others = [(name, weight) for name, weight in paired if name not in ISLAND_SURNAMES]
    others_total = sum(weight for _, weight in others)
    island_total = others_total * ISLAND_SURNAME_SHARE / (1 - ISLAND_SURNAME_SHARE)
    scale = island_total / sum(ISLAND_SURNAMES.values())
    island = [(name, weight * scale) for name, weight in ISLAND_SURNAMES.items()]
    chosen = island + others
    return [name for name, _ in chosen], [weight for _, weight in chosen]
