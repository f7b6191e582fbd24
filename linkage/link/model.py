"""The Fellegi-Sunter model specification: comparisons and blocking rules, built from the
fields the sources fill and the identifier registry.

Design choices against known pitfalls of population data:
- identifiers the registry calls near-proof (`equal_values_match`) get fixed m: equal valid
  values are near-proof of one person and two different valid ones near-proof of two,
  whatever EM learns from blocks where households share surname, address and birth date;
- forenames carry their own nickname and phonetic levels, so twins (same surname, date of
  birth and address, different forename) are separated by the forename, not merged by the rest;
- names and postcodes are term-frequency adjusted: SMITH agreeing says less than GALBRAITH;
- a comparison or level whose columns no source fills is left out: a level no pair can
  reach has nothing to train it, and a comparison of nothing only adds noise;
- a record's earlier postcodes and surnames (carried from earlier nights) are evidence too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd
import splink.comparison_level_library as cll
import splink.comparison_library as cl
from splink import SettingsCreator, block_on
from splink.internals.blocking_rule_creator import BlockingRuleCreator
from splink.internals.blocking_rule_library import CustomRule
from splink.internals.comparison_level_creator import ComparisonLevelCreator

from linkage.identifiers import IdentifierRegistry, default_registry

# Columns of canonical_record the model may read, before identifiers (unique_id is record_key).
PERSON_COLUMNS = [
    "record_key",
    "source",
    "forename",
    "forename_canonical",
    "forename_metaphone",
    "middle_names",
    "preferred_forename",
    "surname",
    "surname_metaphone",
    "other_surnames",
    "date_of_birth",
    "sex",
    "postcode",
    "postcode_outward",
    "previous_postcodes",
    "house_number",
    "street",
    "town",
]
# A column counts as filled when at least this many records hold it.
MIN_FILLED = 2
# Filled by the pipeline from earlier nights, not by agencies: never "left out".
HISTORY_COLUMNS = frozenset({"previous_postcodes", "other_surnames"})

# Level labels: the clustering guards (guard_levels), training's level ties and
# explanations read levels by them.
EXACT = "Exact match"
NICKNAME = "Nickname"
MIDDLE_OR_PREFERRED = "Forename is the other's middle or preferred name"
SWAPPED = "Forename and surname swapped"
OTHER_SURNAME = "Other known surname"
SAME_POSTCODE = "Same postcode"
EARLIER_POSTCODE = "One's earlier postcode is the other's"


def model_columns(registry: IdentifierRegistry | None = None) -> list[str]:
    """Every canonical column the model may read: person fields, then matching identifiers."""
    return PERSON_COLUMNS + (registry or default_registry()).matching()


def filled_columns(records: pd.DataFrame, minimum: int = MIN_FILLED) -> frozenset[str]:
    """The model columns at least `minimum` records hold a value in."""
    return filled_from_counts(records.notna().sum().to_dict(), minimum)


def filled_from_counts(counts: dict, minimum: int = MIN_FILLED) -> frozenset[str]:
    """filled_columns from column -> non-null count, for callers that count in SQL."""
    return frozenset(str(column) for column, n in counts.items() if n >= minimum)


# Forename and surname swapped, often with a typo; a swapped forename may carry the middle
# name glued on (JOAN CLAIRE -> surname JOANCLAIRE), so it may also start the other's.
SWAPPED_SQL = """(
    (jaro_winkler_similarity(surname_l, forename_r) >= 0.92 OR starts_with(surname_l, forename_r))
    AND jaro_winkler_similarity(forename_l, surname_r) >= 0.92
) OR (
    (jaro_winkler_similarity(surname_r, forename_l) >= 0.92 OR starts_with(surname_r, forename_l))
    AND jaro_winkler_similarity(forename_r, surname_l) >= 0.92
)"""


def _levels(*optional: tuple[bool, ComparisonLevelCreator]) -> list:
    return [level for wanted, level in optional if wanted]


def forename_comparison(filled: frozenset[str]) -> cl.CustomComparison:
    other_forenames = "middle_names" in filled or "preferred_forename" in filled
    return cl.CustomComparison(
        output_column_name="forename",
        comparison_levels=[
            cll.NullLevel("forename"),
            cll.ExactMatchLevel("forename").configure(
                tf_adjustment_column="forename", label_for_charts=EXACT
            ),
            cll.ExactMatchLevel("forename_canonical").configure(label_for_charts=NICKNAME),
            *_levels(
                (
                    "surname" in filled,
                    cll.CustomLevel(SWAPPED_SQL, label_for_charts=SWAPPED),
                ),
                (
                    other_forenames,
                    cll.CustomLevel(
                        "contains(' ' || middle_names_l || ' ', ' ' || forename_r || ' ')"
                        " OR contains(' ' || middle_names_r || ' ', ' ' || forename_l || ' ')"
                        " OR preferred_forename_l = forename_r"
                        " OR preferred_forename_r = forename_l",
                        label_for_charts=MIDDLE_OR_PREFERRED,
                    ),
                ),
            ),
            cll.JaroWinklerLevel("forename", 0.92),
            cll.DamerauLevenshteinLevel("forename", 1).configure(label_for_charts="One typo"),
            cll.ExactMatchLevel("forename_metaphone").configure(label_for_charts="Sounds alike"),
            # a nickname with a typo (KENNY / EKNNETH): close once both are in canonical form
            cll.CustomLevel(
                "jaro_winkler_similarity(forename_canonical_l, forename_canonical_r) >= 0.92",
                label_for_charts="Nickname with a typo",
            ),
            cll.CustomLevel(
                "starts_with(forename_l, forename_r) OR starts_with(forename_r, forename_l)",
                label_for_charts="One forename starts the other (initial or short form)",
            ),
            cll.ElseLevel(),
        ],
    )


def surname_comparison(filled: frozenset[str]) -> cl.CustomComparison:
    return cl.CustomComparison(
        output_column_name="surname",
        comparison_levels=[
            cll.NullLevel("surname"),
            cll.ExactMatchLevel("surname").configure(
                tf_adjustment_column="surname", label_for_charts=EXACT
            ),
            # always: earlier nights' surnames fill other_surnames even where no agency does
            cll.CustomLevel(
                "list_contains(other_surnames_l, surname_r)"
                " OR list_contains(other_surnames_r, surname_l)",
                label_for_charts=OTHER_SURNAME,
            ),
            *_levels(
                (
                    "forename" in filled,
                    cll.CustomLevel(SWAPPED_SQL, label_for_charts=SWAPPED),
                ),
            ),
            cll.JaroWinklerLevel("surname", 0.92),
            cll.ExactMatchLevel("surname_metaphone").configure(label_for_charts="Sounds alike"),
            cll.ElseLevel(),
        ],
    )


def date_of_birth_comparison() -> cl.CustomComparison:
    return cl.CustomComparison(
        output_column_name="date_of_birth",
        comparison_levels=[
            cll.NullLevel("date_of_birth"),
            cll.ExactMatchLevel("date_of_birth").configure(label_for_charts=EXACT),
            cll.CustomLevel(
                "year(date_of_birth_l) = year(date_of_birth_r)"
                " AND month(date_of_birth_l) = day(date_of_birth_r)"
                " AND day(date_of_birth_l) = month(date_of_birth_r)",
                label_for_charts="Day and month transposed",
            ),
            cll.DamerauLevenshteinLevel("CAST(date_of_birth AS VARCHAR)", 1).configure(
                label_for_charts="One digit out"
            ),
            cll.AbsoluteDateDifferenceLevel(
                "date_of_birth", threshold=1, metric="year", input_is_string=False
            ),
            cll.ElseLevel(),
        ],
    )


def identifier_comparison(column: str, label: str, u_equal: float) -> cl.CustomComparison:
    """Equal valid identifiers: strong evidence; two different valid ones: strong against.

    m is fixed (a valid identifier differs for one person only through a mis-key that
    passes its check). u of equality is the chance a different person holds the same
    value, 1 / distinct values: random sampling would overstate it wherever one person has
    many rows (police nominals), counting those same-person pairs as non-matches.
    """
    return cl.CustomComparison(
        output_column_name=column,
        comparison_levels=[
            cll.NullLevel(column),
            cll.ExactMatchLevel(column).configure(
                m_probability=0.999,
                fix_m_probability=True,
                u_probability=u_equal,
                fix_u_probability=True,
                label_for_charts=EXACT,
            ),
            cll.ElseLevel().configure(m_probability=0.001, fix_m_probability=True),
        ],
        comparison_description=f"{label} equal / different",
    )


def address_comparison(filled: frozenset[str]) -> cl.CustomComparison | None:
    """Postcode-led where postcodes are filled, else street and town; None if neither."""
    if "postcode" in filled:
        return cl.CustomComparison(
            output_column_name="address",
            comparison_levels=[
                cll.CustomLevel("postcode_l IS NULL OR postcode_r IS NULL").configure(
                    is_null_level=True, label_for_charts="Postcode missing"
                ),
                *_levels(
                    (
                        "house_number" in filled,
                        cll.CustomLevel(
                            "postcode_l = postcode_r AND house_number_l = house_number_r",
                            label_for_charts="Same postcode and house number",
                        ),
                    ),
                ),
                cll.ExactMatchLevel("postcode").configure(
                    tf_adjustment_column="postcode", label_for_charts=SAME_POSTCODE
                ),
                # a postcode the record held on an earlier night: a person who moved still
                # matches the agencies that have not caught up (trained as, or tied to,
                # the same-postcode level: see train.LEVEL_TIES)
                cll.CustomLevel(
                    "list_contains(previous_postcodes_l, postcode_r)"
                    " OR list_contains(previous_postcodes_r, postcode_l)",
                    label_for_charts=EARLIER_POSTCODE,
                ),
                *_levels(
                    (
                        "postcode_outward" in filled,
                        cll.ExactMatchLevel("postcode_outward").configure(
                            label_for_charts="Same district"
                        ),
                    ),
                ),
                cll.ElseLevel(),
            ],
        )
    if "street" in filled:
        return cl.CustomComparison(
            output_column_name="address",
            comparison_levels=[
                cll.NullLevel("street").configure(label_for_charts="Street missing"),
                *_levels(
                    (
                        "house_number" in filled,
                        cll.CustomLevel(
                            "street_l = street_r AND house_number_l = house_number_r",
                            label_for_charts="Same street and house number",
                        ),
                    ),
                ),
                cll.ExactMatchLevel("street").configure(tf_adjustment_column="street"),
                *_levels(
                    (
                        "town" in filled,
                        cll.ExactMatchLevel("town").configure(label_for_charts="Same town"),
                    ),
                ),
                cll.ElseLevel(),
            ],
        )
    return None


@dataclass(frozen=True)
class ModelShape:
    """What the model is built from: the filled columns and the registry."""

    filled: frozenset[str]
    registry: IdentifierRegistry

    @property
    def identifiers(self) -> list[str]:
        """Near-proof identifier types some records hold (compared, blocked, trained on)."""
        return [name for name in self.registry.matching() if name in self.filled]


def comparisons(shape: ModelShape, identifier_u: dict[str, float] | None = None) -> list:
    """The comparisons the filled fields support; identifier_u: u of identifier equality."""
    filled = shape.filled
    identifier_u = identifier_u or {}
    chosen: list = []
    if "forename" in filled:
        chosen.append(forename_comparison(filled))
    if "surname" in filled:
        chosen.append(surname_comparison(filled))
    if "date_of_birth" in filled:
        chosen.append(date_of_birth_comparison())
    address = address_comparison(filled)
    if address is not None:
        chosen.append(address)
    if "sex" in filled:
        chosen.append(cl.ExactMatch("sex"))
    for name in shape.identifiers:
        label = shape.registry.get(name).label
        chosen.append(identifier_comparison(name, label, identifier_u.get(name, 1e-6)))
    return chosen


def comparison_columns(shape: ModelShape) -> dict[str, set[str]]:
    """Comparison -> the columns it reads (an EM block on any of them cannot estimate it)."""
    reads = {
        "forename": {"forename", "forename_canonical", "forename_metaphone", "middle_names",
                     "preferred_forename", "surname"},
        "surname": {"surname", "other_surnames", "surname_metaphone", "forename"},
        "date_of_birth": {"date_of_birth"},
        "address": {"postcode", "postcode_outward", "previous_postcodes", "house_number",
                    "street", "town"},
        "sex": {"sex"},
    }  # fmt: skip
    return reads | {name: {name} for name in shape.identifiers}


@dataclass(frozen=True)
class PredictionBlock:
    """A prediction blocking rule: records whose `keys` are equal (SQL over one record's
    columns), or, when `crossed` is given, whose `keys` equal the other's `crossed`: the
    same keys reordered (names swapped), so a pair matches from either of its records."""

    keys: tuple[str, ...]
    crossed: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.crossed is not None and sorted(self.crossed) != sorted(self.keys):
            raise ValueError(f"crossed keys {self.crossed} are not {self.keys} reordered")

    @property
    def name(self) -> str:
        return " + ".join(self.keys) + (" (crossed)" if self.crossed else "")

    @property
    def key_sets(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The keys, and the keys a partner's must equal (the crossed ones, or the same)."""
        return self.keys, self.crossed or self.keys

    @property
    def columns(self) -> set[str]:
        """The record columns the keys read."""
        return {column for key in self.keys for column in COLUMN_IN_KEY.findall(key)}

    def tightened(self, *keys: str) -> PredictionBlock:
        extra = tuple(key for key in keys if key not in self.keys)
        return PredictionBlock(self.keys + extra, self.crossed and self.crossed + extra)

    def rule(self) -> BlockingRuleCreator:
        if self.crossed is None:
            return block_on(*self.keys)
        return CustomRule(
            " AND ".join(
                f"{_side(key, 'l')} = {_side(other, 'r')}"
                for key, other in zip(self.keys, self.crossed, strict=True)
            )
        )


# A column name inside a key such as `year(date_of_birth)`: a name not called as a function.
COLUMN_IN_KEY = re.compile(r"\b([a-z][a-z0-9_]*)\b(?!\s*\()")


def _side(key: str, alias: str) -> str:
    """A key over one record's columns, read from the l or r record."""
    return COLUMN_IN_KEY.sub(lambda match: f"{alias}.{match.group(1)}", key)


def prediction_blocks(shape: ModelShape) -> list[PredictionBlock]:
    """Recall-oriented blocks over the filled columns. Most are bounded by a birth date,
    postcode or identifier; the names-only block is not, so the link stage counts every
    block's pairs first and tightens one over budget (linkage/link/blocking.py)."""
    filled = shape.filled
    place = next((c for c in ("postcode_outward", "postcode", "town") if c in filled), None)
    blocks = [PredictionBlock((name,)) for name in shape.identifiers]
    blocks += [
        PredictionBlock(("date_of_birth", "surname_metaphone")),
        PredictionBlock(("date_of_birth", "forename_canonical")),
        PredictionBlock(("forename_canonical", "surname")),
        PredictionBlock(("postcode", "forename_metaphone")),
        # a forename and surname swapped (often with a typo): same birth date, names crossed
        PredictionBlock(
            ("date_of_birth", "forename_metaphone", "surname_metaphone"),
            ("date_of_birth", "surname_metaphone", "forename_metaphone"),
        ),
    ]
    if place is not None:
        blocks.append(PredictionBlock(("date_of_birth", place)))
    return [block for block in blocks if block.columns <= filled]


def prediction_blocking_rules(shape: ModelShape) -> list[BlockingRuleCreator]:
    return [block.rule() for block in prediction_blocks(shape)]


def model_settings(
    shape: ModelShape, identifier_u: dict[str, float] | None = None
) -> SettingsCreator:
    """The model over the shape's fields; identifier_u gives u of identifier equality."""
    return SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name="record_key",
        comparisons=comparisons(shape, identifier_u),
        blocking_rules_to_generate_predictions=list(prediction_blocking_rules(shape)),
        additional_columns_to_retain=["source"],
        retain_intermediate_calculation_columns=True,
    )


def full_shape(registry: IdentifierRegistry | None = None) -> ModelShape:
    """Every field filled: the model as it is with all four of the sample's agencies."""
    registry = registry or default_registry()
    return ModelShape(frozenset(model_columns(registry)), registry)


# --- reading levels back from a trained model ------------------------------------------


# Splink's levels count down to 0, the else level: a comparison's plain disagreement
# (unrelated forenames, birth dates far apart, not even the same district) in every model.
ELSE_GAMMA = 0


@dataclass(frozen=True)
class GuardLevels:
    """Gamma values the clustering guards test, read from a model by level label (the
    else level needs no reading: it is ELSE_GAMMA)."""

    surname_same: frozenset[int]  # exact or another known surname
    birth_same: frozenset[int]
    identifiers: tuple[str, ...]  # identifier comparisons (gamma > 0: equal values)


def level_gammas(settings: dict) -> dict[str, dict[str, int]]:
    """comparison -> level label -> gamma, from a model's settings (levels count down to 0)."""
    gammas: dict[str, dict[str, int]] = {}
    for comparison in settings["comparisons"]:
        levels = [
            level for level in comparison["comparison_levels"] if not level.get("is_null_level")
        ]
        gammas[comparison["output_column_name"]] = {
            level.get("label_for_charts", ""): len(levels) - 1 - position
            for position, level in enumerate(levels)
        }
    return gammas


def guard_levels(settings: dict, registry: IdentifierRegistry | None = None) -> GuardLevels:
    """The guards' gammas from a saved model's settings."""
    registry = registry or default_registry()
    gammas = level_gammas(settings)

    def of(comparison: str, *labels: str) -> frozenset[int]:
        found = gammas.get(comparison, {})
        return frozenset(found[label] for label in labels if label in found)

    return GuardLevels(
        surname_same=of("surname", EXACT, OTHER_SURNAME),
        birth_same=of("date_of_birth", EXACT),
        identifiers=tuple(name for name in registry.matching() if name in gammas),
    )


def full_settings() -> dict:
    """The settings of the full model (every field filled), untrained."""
    return model_settings(full_shape()).create_settings_dict("duckdb")


def default_guard_levels() -> GuardLevels:
    """The guards' levels for the full model."""
    return guard_levels(full_settings())


# Gamma of exact agreement in the full model, for tests that build edges by hand.
EXACT_GAMMA = {
    name: level_gammas(full_settings())[name][EXACT]
    for name in ("forename", "surname", "date_of_birth")
}


def term_frequency_columns(settings: dict) -> list[str]:
    """Columns whose levels a saved model's settings adjust by how common the value is."""
    columns = {
        level["tf_adjustment_column"]
        for comparison in settings["comparisons"]
        for level in comparison["comparison_levels"]
        if level.get("tf_adjustment_column")
    }
    return sorted(columns)
