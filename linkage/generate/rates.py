"""Every tunable number of the synthetic population, in one place.

`RATES` are the per-record corruption probabilities by agency. Each is a probability
*among the records where that corruption can apply* (a nickname needs a forename that
has one; a day/month swap needs a day of 12 or less): `ELIGIBILITY` says where. The
other tables set who is in which extract, the hard cases, the concerns and the nightly
churn. sample_data/README.md documents them; tests/test_generate.py checks them.
"""

from __future__ import annotations

AGENCIES = ("health", "education", "police", "socialwork")


def _by_agency(health: float, education: float, police: float, socialwork: float) -> dict:
    return {"health": health, "education": education, "police": police, "socialwork": socialwork}


# Health is cleanest (CHI-keyed, checked at registration); police is messiest (keyed at
# the roadside, often in capitals, often from what the person says).
RATES: dict[str, dict[str, float]] = {
    "typo_forename": _by_agency(0.005, 0.010, 0.040, 0.020),
    "typo_surname": _by_agency(0.005, 0.010, 0.040, 0.020),
    "nickname": _by_agency(0.020, 0.000, 0.250, 0.100),
    "mac_variant": _by_agency(0.030, 0.050, 0.300, 0.150),
    "accent_dropped": _by_agency(0.300, 0.100, 0.900, 0.500),
    "name_swap": _by_agency(0.001, 0.001, 0.010, 0.005),
    "middle_in_forename": _by_agency(0.010, 0.000, 0.150, 0.030),
    "birth_surname": _by_agency(0.020, 0.000, 0.100, 0.100),
    "moved_old_address": _by_agency(0.050, 0.100, 0.300, 0.250),
    "dob_day_month_swap": _by_agency(0.002, 0.002, 0.020, 0.010),
    "dob_digit_typo": _by_agency(0.001, 0.002, 0.010, 0.005),
    "dob_missing": _by_agency(0.001, 0.000, 0.010, 0.010),
    "dob_placeholder": _by_agency(0.001, 0.000, 0.005, 0.010),
    "chi_miskeyed": _by_agency(0.003, 0.000, 0.000, 0.020),
    "scn_miskeyed": _by_agency(0.000, 0.003, 0.000, 0.000),
    "upper_case": _by_agency(0.150, 0.020, 0.700, 0.080),
    "lower_case": _by_agency(0.000, 0.000, 0.020, 0.020),
    "extra_whitespace": _by_agency(0.005, 0.005, 0.030, 0.020),
    "sex_unknown": _by_agency(0.000, 0.000, 0.010, 0.010),
    "postcode_missing": _by_agency(0.002, 0.000, 0.050, 0.020),
    "postcode_no_space": _by_agency(0.000, 0.000, 0.100, 0.050),
    "duplicate": _by_agency(0.005, 0.000, 0.000, 0.010),
    "duplicate_no_chi": _by_agency(0.500, 0.000, 0.000, 0.000),
    "fresh_nominal": _by_agency(0.000, 0.000, 0.050, 0.000),
    "jnr_suffix": _by_agency(0.000, 0.000, 0.500, 0.000),
    "baby_forename": _by_agency(0.500, 0.000, 0.000, 0.000),
}

# Where each rate applies (the denominator of the rate); everything else: every record.
ELIGIBILITY: dict[str, str] = {
    "nickname": "forename has a nickname or anglicised form (not BABY)",
    "mac_variant": "surname starts Mac/Mc",
    "accent_dropped": "forename or surname has an accent",
    "middle_in_forename": "person has a middle name",
    "birth_surname": "married woman whose surname differs from her birth surname",
    "moved_old_address": "person moved house in the last year (or on a night)",
    "dob_day_month_swap": "day of birth <= 12 and day != month (not missing/placeholder)",
    "dob_digit_typo": "date of birth not already missing, a placeholder or swapped",
    "chi_miskeyed": "record carries a CHI",
    "scn_miskeyed": "every pupil record",
    "duplicate": "every person in the agency (a second record with a new id)",
    "duplicate_no_chi": "health duplicates (CHI left blank)",
    "fresh_nominal": "police rows after the person's first incident",
    "jnr_suffix": "police rows of a son named after his father",
    "baby_forename": "health records of babies under six weeks old",
}

# -- who is in which extract ---------------------------------------------------------------
HEALTH_COVERAGE = 0.97  # of residents registered with a GP
EDUCATION_COVERAGE = 0.95  # of school-age children in the local-authority census
SCHOOL_AGE = (4.5, 18.0)  # years at the first night
SOCIALWORK_CHI_RECORDED = 0.60  # of social-work client records
PNC_RATE = 0.30  # of adults with incidents who hold a PNC id
NEWBORN_DAYS = 42  # "BABY" forenames are only used this soon after birth

# -- households and hard cases -------------------------------------------------------------
HOUSEHOLD_MIX = {  # kind -> share of households (Scotland-like: ~2.2 people each)
    "single": 0.36,
    "couple": 0.27,
    "lone_parent": 0.06,
    "couple_with_children": 0.17,
    "adults_with_adult_child": 0.08,
    "sharers": 0.03,
    "three_generations": 0.03,
}
CHILDREN_PER_FAMILY = {1: 0.45, 2: 0.38, 3: 0.13, 4: 0.04}
MIDDLE_NAME_RATE = 0.55
TOOK_SPOUSES_SURNAME = 0.75  # of women in a married couple
MARRIED_RATE = 0.70  # of couples (else cohabiting, own surnames)
HYPHENATED_SURNAME_RATE = 0.01  # of households: a double-barrelled family name
GAELIC_FORENAME_RATE = {"default": 0.015, "gaelic_area": 0.15}
RECENT_MOVE_RATE = 0.12  # of households that moved in the last year (old address exists)
SHARED_ADDRESS_RATE = 0.03  # of households that share a dwelling with another household
TWIN_BIRTH_RATE = 0.015  # of births
SAME_SEX_TWIN_SHARE = 0.65
NAMESAKE_SON_RATE = 0.045  # of families with a father and a son (~1% of all households)
SAME_NAME_DOB_PAIRS_PER_1000 = 2.0  # planted unrelated pairs: common name + same birthday

# -- concerns ------------------------------------------------------------------------------
TROUBLED_RATE = {"with_children": 0.05, "without_children": 0.012}
POLICE_HISTORY_TROUBLED = 0.70  # of troubled households
POLICE_HISTORY_BY_AGE = ((12, 0.030), (18, 0.045), (30, 0.030), (50, 0.015), (70, 0.008))
INCIDENTS_PER_PERSON = {1: 0.50, 2: 0.22, 3: 0.12, 4: 0.08, 5: 0.05, 6: 0.03}
SECOND_PARTY_RATE = 0.30  # of individual incidents that involve someone from another home
CHILD_PRESENT_RATE = 0.70  # of children at a household's domestic incident
SOCIALWORK_CASE = {
    "troubled_children": 0.60,
    "troubled_adult": 0.08,
    "child": 0.006,
    "adult": 0.004,
    "elderly": 0.08,  # aged 75+: adult care packages
}
CASE_CLOSED_BEFORE_NIGHT_1 = 0.25
HEALTH_CP_FLAG = {
    "open_cp_case": 0.85,  # of children with an open child-protection case
    "troubled_child_without_case": 0.04,  # flags health holds that social work does not
    "kept_after_closure": 0.20,  # flags not lifted when the case closes
}
SCHOOL_STATUS = {"transferred": 0.010, "missing": 0.001, "missing_troubled": 0.04}

# -- nightly churn -------------------------------------------------------------------------
# Time is compressed (a night holds about a month of change) so that a few thousand
# people still show every kind of change between nights.
NIGHTLY: dict[str, float] = {
    "household_moves_out": 0.001,  # of households
    "household_moves_in": 0.001,  # of households (a new household arrives)
    "household_moves_house": 0.005,  # of households
    "death_under_80": 0.0002,  # of people
    "death_80_plus": 0.003,
    "birth": 0.004,  # of households with a woman aged 18-44 (about a month of births)
    "marriage_name_change": 0.005,  # of unmarried women aged 20-45
    "correction": 0.03,  # of records carrying a correctable corruption
    "duplicate_deleted": 0.05,  # of duplicate records (merged by the agency)
    "new_duplicate": 0.0003,  # of health and social-work records
    "troubled_incident": 0.04,  # of troubled households with a police history
    "repeat_incident": 0.005,  # of people already known to police
    "first_incident": 0.0002,  # of people aged 12+ not known to police
    "case_opened_troubled_child": 0.01,
    "case_opened": 0.0002,  # of people without a case
    "case_closed": 0.06,  # of open cases (they last about a year)
    "leaves_school": 0.005,  # of enrolled pupils
}
LEAVERS_MISSING = {
    "default": 0.15,
    "troubled": 0.60,
}  # share of leavers whose destination is unknown

# -- the housing variant: a fifth agency, the council housing register -----------------------
# Kept apart from RATES so the default four-agency tables (and the sample README that
# documents them) stay exactly as they are. A council clerk keys from a form: messier than
# health, cleaner than police.
HOUSING_RATES: dict[str, float] = {
    "typo_forename": 0.015,
    "typo_surname": 0.015,
    "nickname": 0.100,
    "mac_variant": 0.150,
    "accent_dropped": 0.500,
    "name_swap": 0.005,
    "middle_in_forename": 0.030,
    "birth_surname": 0.100,
    "moved_old_address": 0.200,
    "dob_day_month_swap": 0.010,
    "dob_digit_typo": 0.005,
    "dob_missing": 0.020,
    "dob_placeholder": 0.005,
    "chi_miskeyed": 0.000,
    "scn_miskeyed": 0.000,
    "upper_case": 0.100,
    "lower_case": 0.010,
    "extra_whitespace": 0.020,
    "sex_unknown": 0.020,
    "postcode_missing": 0.020,
    "postcode_no_space": 0.050,
    "duplicate": 0.000,
    "duplicate_no_chi": 0.000,
    "fresh_nominal": 0.000,
    "jnr_suffix": 0.000,
    "baby_forename": 0.000,
    "housing_ref_miskeyed": 0.010,  # of housing rows (the person's HousingPersonRef)
}
HOUSING_REGISTER: dict[str, float] = {
    "household": 0.09,  # of households: on the register (tenants or applicants)
    "troubled_household": 0.45,  # of troubled households
    "other_adult": 0.80,  # of the lead applicant's fellow adults: on an application
    "children": 0.55,  # of applications: the household's children are on it
}
HOUSING_APPLICATIONS = {1: 0.60, 2: 0.30, 3: 0.10}  # per household on the register
SOCIALWORK_HOUSING_REF = {
    "recorded": 0.33,  # of social-work records of people on the housing register
    "miskeyed": 0.020,  # of those that record it
}
