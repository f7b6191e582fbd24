"""Standardisation: tricky raw values -> canonical values, through the real SQL on DuckDB.

One staged table holds every case below (one row each, keyed by the case id) and is
standardised once per module; each parametrised case then checks its own row.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import jellyfish
import pytest

from linkage.errors import ConfigError
from linkage.identifiers import default_registry
from linkage.schema import canonical_columns
from linkage.stage import STAGED_COLUMNS
from linkage.standardise import standardise
from linkage.standardise.reference import REFERENCE_DIR, REFERENCE_TABLES, read_reference
from linkage.standardise.runner import CHECK_COLUMNS, METAPHONE_TABLE
from linkage.validation_rules import validation_rules

RUN_DATE = date(2026, 11, 1)
SOURCE = "test"


def chi_check_digit(stem: str) -> int:
    """Modulus-11 check digit of a 9-digit CHI stem, by the published rule (10 = invalid)."""
    total = sum(int(digit) * weight for digit, weight in zip(stem, range(10, 1, -1), strict=True))
    return (11 - total % 11) % 11


def make_chi(born: date, sex: str, serial: int = 10) -> str:
    """A valid CHI for a date of birth and sex: DDMMYY + serial + sex digit + check digit."""
    for number in range(serial, 100):
        sex_digit = number % 10 if (number % 10 % 2 == 1) == (sex == "M") else None
        if sex_digit is None:
            continue
        stem = born.strftime("%d%m%y") + f"{number // 10:02d}" + str(sex_digit)
        if chi_check_digit(stem) != 10:
            return stem + str(chi_check_digit(stem))
    raise AssertionError("no valid CHI stem found")


MALE_2001 = {"date_of_birth_raw": "01/01/2001", "date_of_birth": date(2001, 1, 1)}
MALE_2001 |= {"sex_raw": "M", "sex": "M"}
GENERATED_CHI_DOB = date(1985, 3, 4)
GENERATED_CHI = make_chi(GENERATED_CHI_DOB, "F")

# (case id, staged values, expected standardised values)
CASES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    # --- forenames: accents, case, spaces, titles, middle names ---
    ("accent_grave", {"forename_raw": "Seònaid"}, {"forename": "SEONAID"}),
    ("accent_acute_upper", {"forename_raw": "ÉILIDH"}, {"forename": "EILIDH"}),
    ("diaeresis", {"forename_raw": "Zoë"}, {"forename": "ZOE"}),
    (
        "stroke_letters",
        {"forename_raw": "Łukasz Søren"},
        {"forename": "LUKASZ", "middle_names": "SOREN"},
    ),
    ("title_mr", {"forename_raw": "Mr John"}, {"forename": "JOHN", "middle_names": None}),
    ("title_dr_dotted", {"forename_raw": "DR. Jane"}, {"forename": "JANE"}),
    ("two_titles", {"forename_raw": "Rev Dr Iain"}, {"forename": "IAIN"}),
    ("title_only", {"forename_raw": "Mrs"}, {"forename": None, "forename_canonical": None}),
    (
        "middle_in_forename",
        {"forename_raw": "john paul"},
        {"forename": "JOHN", "middle_names": "PAUL"},
    ),
    (
        "middle_in_both_fields",
        {"forename_raw": "John Paul", "middle_names_raw": "george"},
        {"forename": "JOHN", "middle_names": "PAUL GEORGE"},
    ),
    (
        "extra_spaces",
        {"forename_raw": "  mary   ann  "},
        {"forename": "MARY", "middle_names": "ANN"},
    ),
    ("hyphenated_forename", {"forename_raw": "Mary-Jane"}, {"forename": "MARYJANE"}),
    ("spaced_hyphen_forename", {"forename_raw": "mary - jane"}, {"forename": "MARYJANE"}),
    ("initials", {"forename_raw": "J.P."}, {"forename": "J", "middle_names": "P"}),
    (
        "suffix_after_forename",
        {"forename_raw": "John Jnr"},
        {"forename": "JOHN", "middle_names": None},
    ),
    (
        "preferred",
        {"forename_raw": "Robert", "preferred_forename_raw": " bob "},
        {"preferred_forename": "BOB"},
    ),
    # --- newborn and unknown placeholders ---
    (
        "baby",
        {"forename_raw": "BABY", "surname_raw": "Smith"},
        {"forename": None, "surname": "SMITH"},
    ),
    (
        "baby_of",
        {"forename_raw": "Baby of", "surname_raw": "Smith"},
        {"forename": None, "surname": "SMITH"},
    ),
    ("infant", {"forename_raw": "infant"}, {"forename": None}),
    ("unknown_forename", {"forename_raw": "Unknown"}, {"forename": None}),
    ("baby_surname_kept", {"forename_raw": "Ava", "surname_raw": "Baby"}, {"surname": "BABY"}),
    (
        "not_known_surname",
        {"surname_raw": "Not Known"},
        {"surname": None, "surname_metaphone": None},
    ),
    # what systems write for "no value" (a literal NULL, N/A) is no name either
    ("null_text_surname", {"surname_raw": "NULL"}, {"surname": None}),
    ("not_provided_forename", {"forename_raw": "not provided"}, {"forename": None}),
    ("withheld_surname", {"surname_raw": "WITHHELD"}, {"surname": None}),
    ("xxx_surname", {"surname_raw": "xxx"}, {"surname": None}),
    ("xu_surname_kept", {"surname_raw": "Xu"}, {"surname": "XU"}),
    # names in another script are transliterated, not lost; Latin accents fold as before
    ("cyrillic_forename", {"forename_raw": "Олександр"}, {"forename": "OLEKSANDR"}),
    ("greek_forename", {"forename_raw": "Σωκράτης"}, {"forename": "SOKRATIS"}),
    ("fullwidth_surname", {"surname_raw": "Ｓｍｉｔｈ"}, {"surname": "SMITH"}),
    ("chinese_surname", {"surname_raw": "王"}, {"surname": "WANG"}),
    ("vietnamese_accents", {"surname_raw": "Nguyễn"}, {"surname": "NGUYEN"}),
    ("cyrillic_town", {"town_raw": "Москва"}, {"town": "MOSKVA"}),
    # --- nicknames (joined from schemas/reference/nicknames.csv) ---
    ("nick_bill", {"forename_raw": "Bill"}, {"forename": "BILL", "forename_canonical": "WILLIAM"}),
    ("nick_liam", {"forename_raw": "LIAM"}, {"forename_canonical": "WILLIAM"}),
    ("nick_jimmy", {"forename_raw": "jimmy"}, {"forename_canonical": "JAMES"}),
    ("nick_kate", {"forename_raw": "Kate"}, {"forename_canonical": "CATHERINE"}),
    ("nick_rab", {"forename_raw": "Rab"}, {"forename_canonical": "ROBERT"}),
    ("nick_tam", {"forename_raw": "Tam"}, {"forename_canonical": "THOMAS"}),
    ("nick_peggy", {"forename_raw": "Peggy"}, {"forename_canonical": "MARGARET"}),
    ("nick_beth", {"forename_raw": "Beth"}, {"forename_canonical": "ELIZABETH"}),
    (
        "nick_alex_m",
        {"forename_raw": "Alex", "sex_raw": "M", "sex": "M"},
        {"forename_canonical": "ALEXANDER"},
    ),
    (
        "nick_alex_f",
        {"forename_raw": "Alex", "sex_raw": "F", "sex": "F"},
        {"forename_canonical": "ALEXANDRA"},
    ),
    ("nick_alex_unknown_sex", {"forename_raw": "Alex"}, {"forename_canonical": "ALEX"}),
    ("not_a_nickname", {"forename_raw": "William"}, {"forename_canonical": "WILLIAM"}),
    ("gaelic_equated", {"forename_raw": "Iain"}, {"forename_canonical": "JOHN"}),
    ("gaelic_accented", {"forename_raw": "Seumas"}, {"forename_canonical": "JAMES"}),
    # --- surnames: Mac/Mc, O', hyphens, particles ---
    ("mc", {"surname_raw": "McDonald"}, {"surname": "MACDONALD", "other_surnames": None}),
    ("mac_space", {"surname_raw": "Mac Donald"}, {"surname": "MACDONALD", "other_surnames": None}),
    ("m_apostrophe", {"surname_raw": "M'Donald"}, {"surname": "MACDONALD"}),
    ("mac_upper", {"surname_raw": "MACDONALD"}, {"surname": "MACDONALD"}),
    ("mc_k", {"surname_raw": "mckay"}, {"surname": "MACKAY"}),
    ("mack_not_mac", {"surname_raw": "Mack"}, {"surname": "MACK"}),
    ("mace_not_mac", {"surname_raw": "Mace"}, {"surname": "MACE"}),
    ("machin_not_mac", {"surname_raw": "Machin"}, {"surname": "MACHIN"}),
    ("o_apostrophe", {"surname_raw": "O'Brien"}, {"surname": "OBRIEN", "other_surnames": None}),
    ("o_curly_apostrophe", {"surname_raw": "O’Neill"}, {"surname": "ONEILL"}),
    ("o_space", {"surname_raw": "O Brien"}, {"surname": "OBRIEN", "other_surnames": None}),
    (
        "hyphenated",
        {"surname_raw": "Smith-Jones"},
        {"surname": "SMITHJONES", "other_surnames": ["SMITH", "JONES"]},
    ),
    (
        "hyphen_spaced",
        {"surname_raw": "smith - jones"},
        {"surname": "SMITHJONES", "other_surnames": ["SMITH", "JONES"]},
    ),
    (
        "double_space",
        {"surname_raw": "Smith Jones"},
        {"surname": "SMITHJONES", "other_surnames": ["SMITH", "JONES"]},
    ),
    ("van_der", {"surname_raw": "van der Berg"}, {"surname": "VANDERBERG", "other_surnames": None}),
    ("de_la", {"surname_raw": "de la Cruz"}, {"surname": "DELACRUZ", "other_surnames": None}),
    ("particle_alone", {"surname_raw": "Le"}, {"surname": "LE"}),
    ("saint_particle", {"surname_raw": "St John"}, {"surname": "STJOHN"}),
    ("umlaut_surname", {"surname_raw": "Müller"}, {"surname": "MULLER"}),
    ("suffix_surname", {"surname_raw": "Smith Jnr"}, {"surname": "SMITH", "other_surnames": None}),
    ("title_in_surname", {"surname_raw": "Mrs Smith"}, {"surname": "SMITH"}),
    ("blank_surname", {"surname_raw": "   "}, {"surname": None, "other_surnames": None}),
    (
        "other_surnames",
        {"surname_raw": "Smith", "other_surnames_raw": "Brown|Mac Lean"},
        {"other_surnames": ["BROWN", "MACLEAN"]},
    ),
    (
        "other_surnames_with_parts",
        {"surname_raw": "Smith-Jones", "other_surnames_raw": "smith|Brown-Taylor"},
        {"other_surnames": ["SMITH", "JONES", "BROWNTAYLOR", "BROWN", "TAYLOR"]},
    ),
    (
        "other_same_as_surname",
        {"surname_raw": "Brown", "other_surnames_raw": "BROWN"},
        {"other_surnames": None},
    ),
    # --- SQL-looking text is data, never SQL ---
    (
        "sql_forename",
        {"forename_raw": "Robert'); DROP TABLE staged_record;--"},
        {"forename": "ROBERT", "middle_names": "DROP TABLE STAGED RECORD"},
    ),
    (
        "sql_surname",
        {"surname_raw": "O'Brien'); DROP TABLE x;--"},
        {"surname": "OBRIENDROPTABLEX", "other_surnames": ["OBRIEN", "DROP", "TABLE", "X"]},
    ),
    (
        "sql_address",
        {"address_raw": "1 Main St'; DELETE FROM staged_record;--"},
        {"house_number": "1"},
    ),
    # --- dates of birth ---
    (
        "dob_valid",
        {"date_of_birth_raw": "15/07/1990", "date_of_birth": date(1990, 7, 15)},
        {"date_of_birth": date(1990, 7, 15), "dob_issue": None},
    ),
    ("dob_null", {}, {"date_of_birth": None, "dob_issue": "missing"}),
    ("dob_empty", {"date_of_birth_raw": ""}, {"date_of_birth": None, "dob_issue": "missing"}),
    (
        "dob_unparseable",
        {"date_of_birth_raw": "31/02/2001"},
        {"date_of_birth": None, "dob_issue": "unparseable"},
    ),
    (
        "dob_placeholder_iso",
        {"date_of_birth_raw": "1900-01-01", "date_of_birth": date(1900, 1, 1)},
        {"date_of_birth": None, "dob_issue": "placeholder"},
    ),
    (
        "dob_placeholder_uk",
        {"date_of_birth_raw": "01/01/1900", "date_of_birth": date(1900, 1, 1)},
        {"date_of_birth": None, "dob_issue": "placeholder"},
    ),
    (
        "dob_placeholder_1800",
        {"date_of_birth_raw": "1800-01-01", "date_of_birth": date(1800, 1, 1)},
        {"dob_issue": "placeholder"},
    ),
    (
        "dob_placeholder_1901",
        {"date_of_birth_raw": "01/01/1901", "date_of_birth": date(1901, 1, 1)},
        {"date_of_birth": None, "dob_issue": "placeholder"},
    ),
    ("dob_placeholder_zeros", {"date_of_birth_raw": "00/00/0000"}, {"dob_issue": "placeholder"}),
    (
        "dob_future",
        {"date_of_birth_raw": "2030-01-01", "date_of_birth": date(2030, 1, 1)},
        {"date_of_birth": None, "dob_issue": "in the future"},
    ),
    (
        "dob_on_run_date",
        {"date_of_birth_raw": "2026-11-01", "date_of_birth": RUN_DATE},
        {"date_of_birth": RUN_DATE, "dob_issue": None},
    ),
    (
        "dob_before_1900",
        {"date_of_birth_raw": "1899-05-05", "date_of_birth": date(1899, 5, 5)},
        {"date_of_birth": None, "dob_issue": "before 1900"},
    ),
    # --- sex ---
    ("sex_unknown_code", {"sex_raw": "X"}, {"sex": None, "sex_issue": "unknown code"}),
    ("sex_mapped", {"sex_raw": "m", "sex": "M"}, {"sex": "M", "sex_issue": None}),
    ("sex_absent", {}, {"sex": None, "sex_issue": None}),
    # --- postcodes ---
    (
        "pc_lower",
        {"postcode_raw": "g12 8qq"},
        {"postcode": "G12 8QQ", "postcode_outward": "G12", "postcode_issue": None},
    ),
    ("pc_no_space", {"postcode_raw": "G128QQ"}, {"postcode": "G12 8QQ", "postcode_outward": "G12"}),
    (
        "pc_extra_spaces",
        {"postcode_raw": " EH3  9DR"},
        {"postcode": "EH3 9DR", "postcode_outward": "EH3"},
    ),
    ("pc_tab", {"postcode_raw": "EH3\t9DR"}, {"postcode": "EH3 9DR"}),
    ("pc_aa9a", {"postcode_raw": "sw1a1aa"}, {"postcode": "SW1A 1AA", "postcode_outward": "SW1A"}),
    ("pc_a9a", {"postcode_raw": "W1A 0AX"}, {"postcode": "W1A 0AX", "postcode_outward": "W1A"}),
    ("pc_a9", {"postcode_raw": "M1 1AE"}, {"postcode": "M1 1AE", "postcode_outward": "M1"}),
    (
        "pc_not_known",
        {"postcode_raw": "not known"},
        {"postcode": None, "postcode_outward": None, "postcode_issue": "not a UK postcode"},
    ),
    (
        "pc_outward_only",
        {"postcode_raw": "G12"},
        {"postcode": None, "postcode_issue": "not a UK postcode"},
    ),
    (
        "pc_digits",
        {"postcode_raw": "12345"},
        {"postcode": None, "postcode_issue": "not a UK postcode"},
    ),
    (
        "pc_too_long",
        {"postcode_raw": "G12 8QQQ"},
        {"postcode": None, "postcode_issue": "not a UK postcode"},
    ),
    (
        "pc_empty",
        {"postcode_raw": ""},
        {"postcode": None, "postcode_issue": None, "postcode_raw": None},
    ),
    (
        "pc_four_digits",
        {"postcode_raw": "8000"},
        {"postcode": None, "postcode_outward": None, "postcode_issue": "not a UK postcode"},
    ),
    # --- addresses ---
    (
        "addr_flat_after",
        {"address_raw": "12a Kelvin St., Flat 2/1"},
        {
            "address_line": "12A KELVIN ST FLAT 2/1",
            "house_number": "12A",
            "street": "KELVIN STREET",
        },
    ),
    (
        "addr_flat_before",
        {"address_raw": "Flat 2/1, 12a Kelvin St"},
        {"house_number": "12A", "street": "KELVIN STREET"},
    ),
    (
        "addr_flat_word",
        {"address_raw": "Flat 3, 45 Byres Rd"},
        {"house_number": "45", "street": "BYRES ROAD"},
    ),
    (
        "addr_bare_flat_position",
        {"address_raw": "2/1 8 Hyndland Ave"},
        {"house_number": "8", "street": "HYNDLAND AVENUE"},
    ),
    (
        "addr_edinburgh_flat",
        {"address_raw": "3F2, 10 Marchmont Cres"},
        {"house_number": "10", "street": "MARCHMONT CRESCENT"},
    ),
    (
        "addr_range",
        {"address_raw": "7 - 9 Great Western Rd"},
        {"house_number": "7-9", "street": "GREAT WESTERN ROAD"},
    ),
    (
        "addr_number_own_line",
        {"address_raw": "12, Kelvin Street"},
        {"house_number": "12", "street": "KELVIN STREET"},
    ),
    (
        "addr_unnumbered",
        {"address_raw": "Rose Cottage, Main St"},
        {"house_number": None, "street": "MAIN STREET"},
    ),
    ("addr_saint", {"address_raw": "45 St Vincent St"}, {"street": "SAINT VINCENT STREET"}),
    (
        "addr_apostrophe",
        {"address_raw": "5 St John's Terr"},
        {"address_line": "5 ST JOHNS TERR", "street": "SAINT JOHNS TERRACE"},
    ),
    ("addr_gardens", {"address_raw": "1 park gdns"}, {"street": "PARK GARDENS"}),
    ("addr_drive", {"address_raw": "14 Queen Margaret Dr"}, {"street": "QUEEN MARGARET DRIVE"}),
    ("addr_rural", {"address_raw": "Mains of Auchindoir"}, {"house_number": None, "street": None}),
    (
        "addr_spaces",
        {"address_raw": "  12   High   St  ,  Flat 1 "},
        {"address_line": "12 HIGH ST FLAT 1"},
    ),
    ("town", {"town_raw": " glasgow "}, {"town": "GLASGOW"}),
    ("town_empty", {"town_raw": ""}, {"town": None}),
    # --- addresses as agencies send them: one free-text line, no postcode or town column ---
    (
        "line_police",
        {"address_raw": "36 Marchmont Road, Inverness, IV47 8AH"},
        {
            "address_line": "36 MARCHMONT ROAD INVERNESS",
            "house_number": "36",
            "street": "MARCHMONT ROAD",
            "town": "INVERNESS",
            "postcode": "IV47 8AH",
            "postcode_outward": "IV47",
            "postcode_issue": None,
            "postcode_raw": None,
        },
    ),
    (
        "line_glued",
        {"address_raw": "12 High St Perth PH1 5AB"},
        {
            "address_line": "12 HIGH ST PERTH",
            "house_number": "12",
            "street": "HIGH STREET",
            "town": "PERTH",
            "postcode": "PH1 5AB",
        },
    ),
    (
        "line_lower_unspaced",
        {"address_raw": "12 high st, perth ph15ab"},
        {"house_number": "12", "street": "HIGH STREET", "town": "PERTH", "postcode": "PH1 5AB"},
    ),
    (
        "line_no_town",
        {"address_raw": "14 Queen Margaret Dr, G20 8NX"},
        {"street": "QUEEN MARGARET DRIVE", "town": None, "postcode": "G20 8NX"},
    ),
    (
        "line_no_postcode",
        {"address_raw": "12 Kelvin St, Glasgow"},
        {
            "house_number": "12",
            "street": "KELVIN STREET",
            "town": "GLASGOW",
            "postcode": None,
            "postcode_issue": None,
        },
    ),
    (
        "line_postcode_own_line",
        {"address_raw": "12 Kelvin St, G12 8QQ"},  # how two mapped columns are staged
        {"address_line": "12 KELVIN ST", "street": "KELVIN STREET", "postcode": "G12 8QQ"},
    ),
    (
        "line_break",
        {"address_raw": "12 Kelvin St\nHillhead\nG12 8QQ"},
        {"street": "KELVIN STREET", "town": "HILLHEAD", "postcode": "G12 8QQ"},
    ),
    (
        "line_last_postcode_wins",
        {"address_raw": "Unit 4, G1 1AA Centre, 5 Bath St, Glasgow G2 1HZ"},
        {"house_number": "5", "street": "BATH STREET", "postcode": "G2 1HZ"},
    ),
    (
        "line_street_ends_in_compass",
        {"address_raw": "5 Park Road North G12 8QQ"},
        {"street": "PARK ROAD NORTH", "town": None, "postcode": "G12 8QQ"},
    ),
    (
        "line_columns_win",
        {
            "address_raw": "12 Kelvin St, Glasgow, G12 8QQ",
            "town_raw": "Paisley",
            "postcode_raw": "PA1 1AA",
        },
        {"address_line": "12 KELVIN ST GLASGOW", "town": "PAISLEY", "postcode": "PA1 1AA"},
    ),
    (
        "line_empty_postcode_column",
        {"address_raw": "12 Kelvin St, G12 8QQ", "postcode_raw": " "},
        {"postcode": "G12 8QQ", "postcode_raw": None, "postcode_issue": None},
    ),
    (
        "line_bad_postcode_column_kept_as_issue",
        {"address_raw": "12 Kelvin St, G12 8QQ", "postcode_raw": "G12"},
        {"postcode": None, "postcode_issue": "not a UK postcode"},
    ),
    (
        "line_building_name_is_not_a_town",
        {"address_raw": "Rose Cottage, Main St"},
        {"street": "MAIN STREET", "town": None},
    ),
    (
        "line_unnumbered_town",
        {"address_raw": "Mains of Auchindoir, Alford"},
        {"street": None, "town": "ALFORD"},
    ),
    (
        "line_foreign_postcode_in_uk_mode",
        {"address_raw": "Vestergade 12, 8000 Aarhus"},
        {"house_number": "12", "postcode": None, "postcode_issue": None},
    ),
    # --- CHI ---
    (
        "chi_known_good",
        {"chi_raw": "0101011237", **MALE_2001},
        {"chi": "0101011237", "chi_issue": None},
    ),
    (
        "chi_spaces",
        {"chi_raw": "010 101 1237", **MALE_2001},
        {"chi": "0101011237", "chi_issue": None},
    ),
    ("chi_dash", {"chi_raw": "010101-1237", **MALE_2001}, {"chi": "0101011237", "chi_issue": None}),
    (
        "chi_known_good_1990",
        {
            "chi_raw": "1507902417",
            "date_of_birth_raw": "1990-07-15",
            "date_of_birth": date(1990, 7, 15),
        },
        {"chi": "1507902417", "chi_issue": None},
    ),
    (
        "chi_check_zero",
        {"chi_raw": "1507900090", "sex_raw": "M", "sex": "M"},
        {"chi": "1507900090", "chi_issue": None},
    ),
    (
        "chi_female",
        {"chi_raw": "3112990048", "sex_raw": "F", "sex": "F"},
        {"chi": "3112990048", "chi_issue": None},
    ),
    (
        "chi_generated",
        {
            "chi_raw": GENERATED_CHI,
            "date_of_birth_raw": "04/03/1985",
            "date_of_birth": GENERATED_CHI_DOB,
            "sex_raw": "F",
            "sex": "F",
        },
        {"chi": GENERATED_CHI, "chi_issue": None},
    ),
    ("chi_bad_check", {"chi_raw": "0101011238"}, {"chi": None, "chi_issue": "check digit fails"}),
    ("chi_check_ten", {"chi_raw": "1507900040"}, {"chi": None, "chi_issue": "check digit fails"}),
    ("chi_short", {"chi_raw": "12345"}, {"chi": None, "chi_issue": "not 10 digits"}),
    ("chi_letters", {"chi_raw": "ABCDEFGHIJ"}, {"chi": None, "chi_issue": "not 10 digits"}),
    ("chi_eleven_digits", {"chi_raw": "01010112370"}, {"chi": None, "chi_issue": "not 10 digits"}),
    (
        "chi_date_mismatch",
        {
            "chi_raw": "0101011237",
            "date_of_birth_raw": "02/01/1990",
            "date_of_birth": date(1990, 1, 2),
        },
        {"chi": "0101011237", "chi_issue": "date part does not match date of birth"},
    ),
    (
        "chi_sex_mismatch",
        {"chi_raw": "0101011237", **MALE_2001, "sex_raw": "F", "sex": "F"},
        {"chi": "0101011237", "chi_issue": "sex digit does not match sex"},
    ),
    (
        "chi_placeholder_dob",
        {
            "chi_raw": "0101011237",
            "date_of_birth_raw": "1900-01-01",
            "date_of_birth": date(1900, 1, 1),
        },
        {"chi": "0101011237", "chi_issue": None, "dob_issue": "placeholder"},
    ),
    ("chi_empty", {"chi_raw": ""}, {"chi": None, "chi_issue": None}),
    # --- other identifiers ---
    ("scn_valid", {"scn_raw": "123456789"}, {"scn": "123456789", "scn_issue": None}),
    ("scn_spaces", {"scn_raw": "123 456 789"}, {"scn": "123456789", "scn_issue": None}),
    # digits not starting with 0 and shorter than 9 are what a spreadsheet leaves of an SCN
    # with leading zeros (tests/test_spreadsheet_values.py); a short value starting with 0 is not
    (
        "scn_short_restored",
        {"scn_raw": "12345"},
        {"scn": "000012345", "scn_issue": None, "scn_restored": True},
    ),
    ("scn_short", {"scn_raw": "012345"}, {"scn": None, "scn_issue": "not 9 digits"}),
    ("scn_letters", {"scn_raw": "ABC"}, {"scn": None, "scn_issue": "not 9 digits"}),
    ("police_id", {"police_id_raw": " ab 123 "}, {"police_id": "AB123"}),
    ("pnc_id", {"pnc_id_raw": "2001/1234567a"}, {"pnc_id": "2001/1234567A"}),
    ("social_work_empty", {"social_work_id_raw": ""}, {"social_work_id": None}),
    # --- pass-through and keys ---
    (
        "concern_pass_through",
        {
            "concern_type": "CHILD_PROTECTION",
            "concern_status": "open",
            "concern_opened": date(2026, 10, 1),
        },
        {
            "concern_type": "CHILD_PROTECTION",
            "concern_status": "open",
            "concern_opened": date(2026, 10, 1),
            "concern_closed": None,
        },
    ),
    (
        "record_key",
        {},
        {"record_key": f"{SOURCE}:record_key", "source": SOURCE, "run_date": RUN_DATE},
    ),
    # --- control and invisible characters in names: removed without a space, flagged ---
    (
        "line_separator_in_forename",
        {"forename_raw": "Lu\u2028cy"},
        {"forename": "LUCY", "middle_names": None, "name_control_issue": "forename U+2028"},
    ),
    (
        "replacement_character_in_forename",
        {"forename_raw": "Se\ufffdnaid"},
        {"forename": "SENAID", "middle_names": None, "name_control_issue": "forename U+FFFD"},
    ),
    (
        "zero_width_space_in_forename",
        {"forename_raw": "Lu\u200bcy Ann"},
        {"forename": "LUCY", "middle_names": "ANN", "name_control_issue": "forename U+200B"},
    ),
    (
        "zero_width_joiners_and_bom",
        {"forename_raw": "\ufeffJo\u200chn\u200d\u2060"},
        {"forename": "JOHN", "name_control_issue": "forename U+200C U+200D U+2060 U+FEFF"},
    ),
    (
        "paragraph_separator_and_nel_in_surname",
        {"surname_raw": "Mac\u2029Don\x85ald"},
        {
            "surname": "MACDONALD",
            "other_surnames": None,
            "name_control_issue": "surname U+0085 U+2029",
        },
    ),
    (
        "vertical_tab_form_feed_unit_separators",
        {"forename_raw": "Ro\x0bss", "middle_names_raw": "I\x0cain\x1c\x1d\x1e\x1f"},
        {
            "forename": "ROSS",
            "middle_names": "IAIN",
            "name_control_issue": (
                "forename U+000B; middle_names U+000C U+001C U+001D U+001E U+001F"
            ),
        },
    ),
    (
        "other_controls_in_preferred_forename",
        {"preferred_forename_raw": "B\x01o\x7fb\x9b"},
        {
            "preferred_forename": "BOB",
            "name_control_issue": "preferred_forename U+0001 U+007F U+009B",
        },
    ),
    (
        "soft_hyphen_and_direction_mark",
        {"surname_raw": "Camp\u00adbell\u200f"},
        {"surname": "CAMPBELL", "name_control_issue": "surname U+00AD U+200F"},
    ),
    (
        "zero_width_space_in_other_surnames",
        {"surname_raw": "Smith", "other_surnames_raw": "Bro\u200bwn|Mac\u2028Lean"},
        {
            "other_surnames": ["BROWN", "MACLEAN"],
            "name_control_issue": "other_surnames U+200B U+2028",
        },
    ),
    (
        "name_of_nothing_but_a_zero_width_space",
        {"forename_raw": "\u200b", "surname_raw": "Reid"},
        {"forename": None, "surname": "REID", "name_control_issue": "forename U+200B"},
    ),
    (
        "tab_and_line_feed_still_separate_words_unflagged",
        {"forename_raw": "Anne\tMarie\nLouise", "surname_raw": "Reid\r\n"},
        {
            "forename": "ANNE",
            "middle_names": "MARIE LOUISE",
            "surname": "REID",
            "name_control_issue": None,
        },
    ),
    (
        "non_breaking_space_separates_words_unflagged",
        {"forename_raw": "Mary\u00a0Ann"},
        {"forename": "MARY", "middle_names": "ANN", "name_control_issue": None},
    ),
    # --- values as sent over max_text_length (200): marked, cut, never read whole ---
    (
        "town_a_megabyte_long",
        {"surname_raw": "Reid", "town_raw": "Perth" + "x" * 1_000_002},
        {"town_too_long": True, "surname_too_long": False, "surname": "REID"},
    ),
    (
        "other_surnames_megabytes_long",
        {"surname_raw": "Reid", "other_surnames_raw": "Smith|" * 800_000},
        {"other_surnames_too_long": True, "surname_too_long": False},
    ),
    (
        "forename_of_many_words",
        {"forename_raw": "Ann " * 250_000},
        {"forename_too_long": True, "forename": "ANN"},
    ),
    (
        "address_a_megabyte_long",
        {"address_raw": "12 Kelvin St, " * 80_000},
        {"address_too_long": True, "house_number": "12"},
    ),
    (
        "exactly_the_bound_is_not_too_long",
        {"surname_raw": "A" * 200, "town_raw": "B" * 201},
        {"surname_too_long": False, "surname": "A" * 200, "town_too_long": True},
    ),
    (
        "bound_counts_characters_not_bytes",
        {"town_raw": "É" * 200},
        {"town_too_long": False, "town": "E" * 200},
    ),
    (
        "other_fields_over_the_bound",
        {
            "middle_names_raw": "m" * 201,
            "preferred_forename_raw": "p" * 201,
            "date_of_birth_raw": "1" * 201,
            "sex_raw": "s" * 201,
            "postcode_raw": "G" * 201,
            "concern_type": "t" * 201,
            "concern_status": "o" * 201,
            "concern_opened_raw": "2" * 201,
            "concern_closed_raw": "3" * 201,
        },
        {
            "middle_names_too_long": True,
            "preferred_forename_too_long": True,
            "date_of_birth_too_long": True,
            "sex_too_long": True,
            "postcode_too_long": True,
            "concern_type_too_long": True,
            "concern_status_too_long": True,
            "concern_opened_too_long": True,
            "concern_closed_too_long": True,
            "forename_too_long": False,
            "record_id_too_long": False,
        },
    ),
    (
        "identifier_over_the_bound_is_nulled",
        {"police_id_raw": "AB1 " * 60, "pnc_id_raw": "99/123456X"},
        {
            "police_id": None,
            "police_id_too_long": True,
            "police_id_issue": None,
            "pnc_id": "99/123456X",
            "pnc_id_too_long": False,
        },
    ),
    (
        "chi_over_the_bound_is_nulled_not_also_invalid",
        {"chi_raw": "1" * 1_000_000, **MALE_2001},
        {"chi": None, "chi_too_long": True, "chi_issue": None, "chi_restored": False},
    ),
]


# postcode_format: as_written keeps postcodes from abroad; the same address rules otherwise.
AS_WRITTEN_CASES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    (
        "aw_four_digits",
        {"postcode_raw": "8000"},
        {"postcode": "8000", "postcode_outward": None, "postcode_issue": None},
    ),
    (
        "aw_spaced_lower",
        {"postcode_raw": " no-0150 "},
        {"postcode": "NO-0150", "postcode_outward": None, "postcode_issue": None},
    ),
    ("aw_whitespace_collapsed", {"postcode_raw": "1015  cj"}, {"postcode": "1015 CJ"}),
    (
        "aw_uk_still_normal",
        {"postcode_raw": "g128qq"},
        {"postcode": "G12 8QQ", "postcode_outward": "G12", "postcode_issue": None},
    ),
    ("aw_empty", {"postcode_raw": ""}, {"postcode": None, "postcode_issue": None}),
    (
        "aw_line_town_after_postcode",
        {"address_raw": "Vestergade 12, 8000 Aarhus"},
        {
            "address_line": "VESTERGADE 12 AARHUS",
            "house_number": "12",
            "street": "VESTERGADE",
            "town": "AARHUS",
            "postcode": "8000",
            "postcode_outward": None,
            "postcode_issue": None,
        },
    ),
    (
        "aw_line_postcode_own_line",
        {"address_raw": "Storgata 5, NO-0150, Oslo"},
        {"house_number": "5", "street": "STORGATA", "town": "OSLO", "postcode": "NO-0150"},
    ),
    (
        "aw_line_uk_postcode_first",
        {"address_raw": "36 Marchmont Road, Inverness, IV47 8AH"},
        {"street": "MARCHMONT ROAD", "town": "INVERNESS", "postcode": "IV47 8AH"},
    ),
    (
        "aw_house_number_own_line_is_not_a_postcode",
        {"address_raw": "123, Kelvin Street, Glasgow"},
        {"house_number": "123", "street": "KELVIN STREET", "town": "GLASGOW", "postcode": None},
    ),
    (
        "aw_house_number_after_building_is_not_a_postcode",
        {"address_raw": "Rose Cottage, 123 Main Street"},
        {"house_number": "123", "street": "MAIN STREET", "postcode": None},
    ),
    (
        "aw_house_number_after_flat_is_not_a_postcode",
        {"address_raw": "Flat 2, 123 Main Street"},
        {"house_number": "123", "postcode": None},
    ),
    (
        "aw_one_line_without_commas_is_not_guessed",
        {"address_raw": "Vestergade 12 8000 Aarhus"},
        {"postcode": None},
    ),
]


def staged_column_names(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [row[0] for row in con.execute("DESCRIBE staged_record").fetchall()]


def build_staged(
    con: duckdb.DuckDBPyConnection, cases: list[tuple[str, dict[str, Any], dict[str, Any]]]
) -> None:
    """staged_record with one row per case; the case id is the source record id."""
    con.execute(f"CREATE OR REPLACE TABLE staged_record ({STAGED_COLUMNS})")
    columns = staged_column_names(con)
    rows = []
    for row_number, (case_id, staged, _) in enumerate(cases, start=1):
        values = {
            "run_date": RUN_DATE,
            "source": SOURCE,
            "source_record_id": case_id,
            "source_file": "archive/test.csv",
            "file_sha256": "0" * 64,
            "source_row_number": row_number,
            "source_line_number": row_number + 1,
        } | staged
        # identifiers arrive as a map of registered type -> raw value ("chi_raw" -> chi)
        held = {
            name: values.pop(f"{name}_raw")
            for name in default_registry().names
            if f"{name}_raw" in values
        }
        values["identifiers_raw"] = {"key": list(held), "value": list(held.values())}
        rows.append([values.get(column) for column in columns])
    if rows:
        placeholders = ", ".join("?" for _ in columns)
        con.executemany(f"INSERT INTO staged_record VALUES ({placeholders})", rows)


def fetch_rows(con: duckdb.DuckDBPyConnection, table: str) -> list[dict[str, Any]]:
    result = con.execute(f'SELECT * FROM "{table}" ORDER BY record_key')
    names = [column[0] for column in result.description]
    return [dict(zip(names, row, strict=True)) for row in result.fetchall()]


@pytest.fixture(scope="module")
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect()
    build_staged(connection, CASES)
    standardise(connection)
    yield connection
    connection.close()


@pytest.fixture(scope="module")
def by_case(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, Any]]:
    return {row["source_record_id"]: row for row in fetch_rows(con, "standardised_record")}


@pytest.fixture(scope="module")
def as_written_by_case() -> dict[str, dict[str, Any]]:
    connection = duckdb.connect()
    build_staged(connection, AS_WRITTEN_CASES)
    standardise(connection, postcode_format="as_written")
    rows = {row["source_record_id"]: row for row in fetch_rows(connection, "standardised_record")}
    connection.close()
    return rows


@pytest.mark.parametrize(("case_id", "expected"), [pytest.param(c, e, id=c) for c, _, e in CASES])
def test_standardises(
    by_case: dict[str, dict[str, Any]], case_id: str, expected: dict[str, Any]
) -> None:
    row = by_case[case_id]
    assert {column: row[column] for column in expected} == expected


@pytest.mark.parametrize(
    ("case_id", "expected"), [pytest.param(c, e, id=c) for c, _, e in AS_WRITTEN_CASES]
)
def test_standardises_with_postcodes_as_written(
    as_written_by_case: dict[str, dict[str, Any]], case_id: str, expected: dict[str, Any]
) -> None:
    row = as_written_by_case[case_id]
    assert {column: row[column] for column in expected} == expected


CONTROL_CHARACTER = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u00ad\u200b-\u200f\u2028\u2029\u2060\ufeff\ufffd]"
)


def test_only_names_holding_control_characters_are_flagged(
    by_case: dict[str, dict[str, Any]],
) -> None:
    damaged = {
        case_id
        for case_id, staged, _ in CASES
        if any(
            isinstance(value, str) and CONTROL_CHARACTER.search(value) for value in staged.values()
        )
    }
    assert len(damaged) == 10
    flagged = {case_id for case_id, row in by_case.items() if row["name_control_issue"]}
    assert flagged == damaged


def test_values_past_the_bound_are_kept_only_up_to_it(by_case: dict[str, dict[str, Any]]) -> None:
    """Nothing of a megabyte value survives standardising whole: every value of its row is
    at most one character past the bound (the rest is what the rules made of that)."""
    for case_id in (
        "town_a_megabyte_long",
        "other_surnames_megabytes_long",
        "forename_of_many_words",
        "address_a_megabyte_long",
        "chi_over_the_bound_is_nulled_not_also_invalid",
    ):
        values: list[Any] = []
        for value in by_case[case_id].values():
            values += value if isinstance(value, list) else [value]
            values += list(value.values()) if isinstance(value, dict) else []
        assert max(len(value) for value in values if isinstance(value, str)) <= 201, case_id


def test_every_bounded_field_is_marked_before_the_rules(con: duckdb.DuckDBPyConnection) -> None:
    """05_bounded.sql marks exactly the fields validation.yaml bounds: a field marked but not
    listed would go unchecked, one listed but not marked fails the final select."""
    marked = {
        name.removesuffix("_too_long")
        for name, *_ in con.execute("DESCRIBE std_bounded").fetchall()
        if name.endswith("_too_long")
    }
    assert marked == set(validation_rules().bounded_fields)


def test_case_ids_are_unique() -> None:
    ids = [case_id for case_id, _, _ in CASES + AS_WRITTEN_CASES]
    assert len(ids) == len(set(ids))


def test_unknown_postcode_format_is_refused() -> None:
    connection = duckdb.connect()
    build_staged(connection, CASES[:1])
    with pytest.raises(ValueError, match="postcode_format"):
        standardise(connection, postcode_format="us")  # type: ignore[arg-type]
    connection.close()


def test_every_staged_row_comes_out_once(con: duckdb.DuckDBPyConnection) -> None:
    assert standardise(con, out_table="standardised_count") == len(CASES)


def test_output_columns_are_the_canonical_schema_then_checks(
    con: duckdb.DuckDBPyConnection,
) -> None:
    described = [
        (name, sql_type)
        for name, sql_type, *_ in con.execute("DESCRIBE standardised_record").fetchall()
    ]
    expected = [(c.name, c.type) for c in canonical_columns()] + list(CHECK_COLUMNS.items())
    expected += [(f"{name}_issue", "VARCHAR") for name in default_registry().names]
    expected += [(f"{name}_restored", "BOOLEAN") for name in default_registry().names]
    bounded = [*validation_rules().bounded_fields, *default_registry().names]
    expected += [(f"{name}_too_long", "BOOLEAN") for name in bounded]
    assert described == expected


def test_same_input_in_another_order_gives_identical_output(con: duckdb.DuckDBPyConnection) -> None:
    other = duckdb.connect()
    build_staged(other, list(reversed(CASES)))
    standardise(other)
    first_run = fetch_rows(con, "standardised_record")
    again = fetch_rows(other, "standardised_record")
    # row numbers differ by construction; everything else must match value for value
    strip = {"source_row_number", "source_line_number"}
    assert [{k: v for k, v in r.items() if k not in strip} for r in again] == [
        {k: v for k, v in r.items() if k not in strip} for r in first_run
    ]
    other.close()


def test_rerun_is_identical_and_sorted(con: duckdb.DuckDBPyConnection) -> None:
    standardise(con, out_table="standardised_again")
    in_table_order = con.execute("SELECT * FROM standardised_again").fetchall()
    assert in_table_order == con.execute("SELECT * FROM standardised_record").fetchall()
    row_numbers = [
        row[0] for row in con.execute("SELECT source_row_number FROM standardised_again").fetchall()
    ]
    assert row_numbers == sorted(row_numbers)


def test_metaphone_computed_once_per_distinct_name(con: duckdb.DuckDBPyConnection) -> None:
    distinct_names = con.execute(
        """
        SELECT count(*) FROM (
            SELECT forename AS name FROM standardised_record WHERE forename IS NOT NULL
            UNION
            SELECT surname FROM standardised_record WHERE surname IS NOT NULL
        )
        """
    ).fetchall()[0][0]
    lookup_rows = con.execute(
        f"SELECT count(*), count(DISTINCT name) FROM {METAPHONE_TABLE}"
    ).fetchall()[0]
    assert lookup_rows == (distinct_names, distinct_names)


def test_metaphone_is_jellyfish_of_the_standardised_name(
    by_case: dict[str, dict[str, Any]],
) -> None:
    for row in by_case.values():
        for name, code in (("forename", "forename_metaphone"), ("surname", "surname_metaphone")):
            expected = jellyfish.metaphone(row[name]) if row[name] else None
            assert row[code] == expected, (row["source_record_id"], name)


def test_date_of_birth_is_null_whenever_it_has_an_issue(by_case: dict[str, dict[str, Any]]) -> None:
    flagged = [row for row in by_case.values() if row["dob_issue"] is not None]
    assert flagged and all(row["date_of_birth"] is None for row in flagged)


def test_sql_in_values_is_only_data(con: duckdb.DuckDBPyConnection) -> None:
    assert con.execute("SELECT count(*) FROM staged_record").fetchall() == [(len(CASES),)]


def test_table_names_are_quoted(con: duckdb.DuckDBPyConnection) -> None:
    con.execute('CREATE OR REPLACE TABLE "staged; record" AS SELECT * FROM staged_record LIMIT 3')
    assert standardise(con, "staged; record", "standardised; record") == 3


def test_empty_staged_table_gives_an_empty_canonical_table() -> None:
    empty = duckdb.connect()
    build_staged(empty, [])
    assert standardise(empty) == 0
    assert len(empty.execute("DESCRIBE standardised_record").fetchall()) == len(
        canonical_columns()
    ) + len(CHECK_COLUMNS) + 3 * len(default_registry().names) + len(
        validation_rules().bounded_fields
    )
    empty.close()


@pytest.mark.parametrize(
    ("chi", "born", "sex"),
    [
        ("0101011237", date(2001, 1, 1), "M"),
        ("1507902417", date(1990, 7, 15), "M"),
        ("3112990048", date(1999, 12, 31), "F"),
    ],
)
def test_known_good_chis_follow_the_rule_used_to_generate(chi: str, born: date, sex: str) -> None:
    """Guards the test's own CHI helper against drifting from the published rule."""
    assert chi_check_digit(chi[:9]) == int(chi[9])
    assert chi[:6] == born.strftime("%d%m%y")
    assert (int(chi[8]) % 2 == 1) == (sex == "M")


def test_nickname_table_is_large_and_unambiguous() -> None:
    nicknames = read_reference(next(t for t in REFERENCE_TABLES if t.file == "nicknames.csv"))
    assert len(nicknames) >= 150
    assert {"nickname": "BILL", "canonical": "WILLIAM", "sex": ""} in nicknames


@pytest.mark.parametrize(
    ("file", "content", "message"),
    [
        ("nicknames.csv", "nickname,canonical,sex\nBILL,WILL,\nWILL,WILLIAM,\n", "also nicknames"),
        (
            "nicknames.csv",
            "nickname,canonical,sex\nALEX,ALEXANDER,\nALEX,ALEXANDRA,F\n",
            "more than one",
        ),
        ("nicknames.csv", "nickname,canonical,sex\nBill,WILLIAM,\n", "line 2: nickname"),
        ("nicknames.csv", "name,canonical\nBILL,WILLIAM\n", "header"),
        (
            "street_abbreviations.csv",
            "abbreviation,expansion,position\nST,STREET,any\nST,SAINT,other\n",
            "overlapping",
        ),
        ("dob_placeholders.csv", "value,form\n1900-13-01,date\n", "ISO date"),
    ],
)
def test_bad_reference_tables_fail_with_file_and_line(
    tmp_path: Path, file: str, content: str, message: str
) -> None:
    reference_dir = tmp_path / "reference"
    shutil.copytree(REFERENCE_DIR, reference_dir)
    (reference_dir / file).write_text(content, encoding="utf-8")
    connection = duckdb.connect()
    build_staged(connection, CASES[:1])
    with pytest.raises(ConfigError, match=message):
        standardise(connection, reference_dir=reference_dir)
    connection.close()
