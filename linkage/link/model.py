"""The Fellegi-Sunter model specification: comparisons and blocking rules.

Design choices against known pitfalls of population data:
- identifiers (CHI, SCN, PNC) get fixed m probabilities: equal valid identifiers are
  near-proof of one person and two different valid ones near-proof of two, whatever EM
  learns from blocks where households share surname, address and date of birth;
- forenames carry their own nickname and phonetic levels, so twins (same surname, date of
  birth and address, different forename) are separated by the forename, not merged by the rest;
- names and postcodes are term-frequency adjusted: SMITH agreeing says less than GALBRAITH.
"""

from __future__ import annotations

import splink.comparison_level_library as cll
import splink.comparison_library as cl
from splink import SettingsCreator, block_on

# Columns of canonical_record the model reads (unique_id is record_key).
MODEL_COLUMNS = [
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
    "house_number",
    "street",
    "chi",
    "scn",
    "pnc_id",
]


def forename_comparison() -> cl.CustomComparison:
    return cl.CustomComparison(
        output_column_name="forename",
        comparison_levels=[
            cll.NullLevel("forename"),
            cll.ExactMatchLevel("forename").configure(tf_adjustment_column="forename"),
            cll.ExactMatchLevel("forename_canonical").configure(label_for_charts="Nickname"),
            cll.JaroWinklerLevel("forename", 0.92),
            cll.DamerauLevenshteinLevel("forename", 1).configure(label_for_charts="One typo"),
            cll.ExactMatchLevel("forename_metaphone").configure(label_for_charts="Sounds alike"),
            cll.CustomLevel(
                "contains(' ' || middle_names_l || ' ', ' ' || forename_r || ' ')"
                " OR contains(' ' || middle_names_r || ' ', ' ' || forename_l || ' ')"
                " OR preferred_forename_l = forename_r OR preferred_forename_r = forename_l",
                label_for_charts="Forename is the other's middle or preferred name",
            ),
            cll.CustomLevel(
                "starts_with(forename_l, forename_r) OR starts_with(forename_r, forename_l)",
                label_for_charts="One forename starts the other (initial or short form)",
            ),
            cll.ElseLevel(),
        ],
    )


def surname_comparison() -> cl.CustomComparison:
    return cl.CustomComparison(
        output_column_name="surname",
        comparison_levels=[
            cll.NullLevel("surname"),
            cll.ExactMatchLevel("surname").configure(tf_adjustment_column="surname"),
            cll.CustomLevel(
                "list_contains(other_surnames_l, surname_r)"
                " OR list_contains(other_surnames_r, surname_l)",
                label_for_charts="Other known surname",
            ),
            cll.JaroWinklerLevel("surname", 0.92),
            cll.ExactMatchLevel("surname_metaphone").configure(label_for_charts="Sounds alike"),
            cll.CustomLevel(
                "jaro_winkler_similarity(surname_l, forename_r) >= 0.92"
                " AND jaro_winkler_similarity(forename_l, surname_r) >= 0.92",
                label_for_charts="Forename and surname swapped",
            ),
            cll.ElseLevel(),
        ],
    )


def date_of_birth_comparison() -> cl.CustomComparison:
    return cl.CustomComparison(
        output_column_name="date_of_birth",
        comparison_levels=[
            cll.NullLevel("date_of_birth"),
            cll.ExactMatchLevel("date_of_birth"),
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
    passes the check digit). u of equality is the chance a different person holds the same
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
            ),
            cll.ElseLevel().configure(m_probability=0.001, fix_m_probability=True),
        ],
        comparison_description=f"{label} equal / different",
    )


def address_comparison() -> cl.CustomComparison:
    return cl.CustomComparison(
        output_column_name="address",
        comparison_levels=[
            cll.CustomLevel("postcode_l IS NULL OR postcode_r IS NULL").configure(
                is_null_level=True, label_for_charts="Postcode missing"
            ),
            cll.CustomLevel(
                "postcode_l = postcode_r AND house_number_l = house_number_r",
                label_for_charts="Same postcode and house number",
            ),
            cll.ExactMatchLevel("postcode").configure(tf_adjustment_column="postcode"),
            cll.ExactMatchLevel("postcode_outward").configure(label_for_charts="Same district"),
            cll.ElseLevel(),
        ],
    )


def top_gamma(comparison: cl.CustomComparison) -> int:
    """The gamma value of a comparison's first (strongest) level: levels count down to 0."""
    return comparison.num_non_null_levels - 1  # the else level is 0


# Gamma of exact agreement, as the clustering guards read it from scored edges.
EXACT_GAMMA = {
    "forename": top_gamma(forename_comparison()),
    "surname": top_gamma(surname_comparison()),
    "date_of_birth": top_gamma(date_of_birth_comparison()),
}


def prediction_blocking_rules() -> list:
    """Recall-oriented blocks, each bounded: none is quadratic in the population."""
    return [
        block_on("chi"),
        block_on("scn"),
        block_on("pnc_id"),
        block_on("date_of_birth", "surname_metaphone"),
        block_on("date_of_birth", "forename_canonical"),
        block_on("date_of_birth", "postcode_outward"),
        block_on("forename_canonical", "surname"),
        block_on("postcode", "forename_metaphone"),
    ]


IDENTIFIERS = {"chi": "CHI number", "scn": "Scottish Candidate Number", "pnc_id": "PNC id"}


def model_settings(identifier_u: dict[str, float] | None = None) -> SettingsCreator:
    """The model; identifier_u gives u of identifier equality (default: 1e-6)."""
    identifier_u = identifier_u or {}
    return SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name="record_key",
        comparisons=[
            forename_comparison(),
            surname_comparison(),
            date_of_birth_comparison(),
            address_comparison(),
            cl.ExactMatch("sex"),
            *[
                identifier_comparison(column, label, identifier_u.get(column, 1e-6))
                for column, label in IDENTIFIERS.items()
            ],
        ],
        blocking_rules_to_generate_predictions=prediction_blocking_rules(),
        additional_columns_to_retain=["source"],
        retain_intermediate_calculation_columns=True,
    )
