"""A whole name in one column (`full_name`), split into forenames and surname, through the
real nightly flow: the canonical names come out as from separate columns."""

from __future__ import annotations

import csv
import io
from datetime import date
from pathlib import Path

import duckdb
import pytest

from flows.nightly import nightly
from linkage.config import load_project
from tests.conftest import NIGHT_1, make_project

pytestmark = pytest.mark.usefixtures("prefect_api")

CONFIG = """
source: clinic
description: A clinic that keeps the whole name in one column.
file:
  pattern: "{run_date}/clinic*.csv"
record_id: id
fields:
  full_name: %s
  date_of_birth: {column: dob, formats: ["%%d/%%m/%%Y"]}
"""

# (full name as sent, forename, middle names, surname), read with order `auto`
AUTO_CASES = [
    ("SMITH, John Paul", "JOHN", "PAUL", "SMITH"),
    ("Smith, John", "JOHN", None, "SMITH"),
    ("John Paul MACDONALD", "JOHN", "PAUL", "MACDONALD"),
    ("MACDONALD John Paul", "JOHN", "PAUL", "MACDONALD"),
    ("Mary-Jane SMITH-JONES", "MARYJANE", None, "SMITHJONES"),
    ("Mary O'BRIEN", "MARY", None, "OBRIEN"),
    ("john paul smith", "JOHN", "PAUL", "SMITH"),
    ("JOHN SMITH", "JOHN", None, "SMITH"),
    ("Mr John  Smith", "JOHN", None, "SMITH"),
    ("John Smith Jnr", "JOHN", None, "SMITH"),
    ("John Smith, Jr.", "JOHN", None, "SMITH"),
    ("Amartya Sen", "AMARTYA", None, "SEN"),  # a suffix word that is a surname
    ("Raj Kumar Sen", "RAJ", "KUMAR", "SEN"),
    ("John Smith, Sen", "JOHN", None, "SMITH"),
    ("Kim Jun", "KIM", None, "JUN"),
    ("Johan van der Berg", "JOHAN", None, "VANDERBERG"),
    ("Van Morrison", "VAN", None, "MORRISON"),
    ("Anna Mac Donald", "ANNA", None, "MACDONALD"),
    ("Smith", None, None, "SMITH"),
    (", Jane", "JANE", None, None),
    ("", None, None, None),
]


def project(tmp_path: Path, mapping: str, names: list[str], extra: str = "") -> Path:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["id", "name", "dob", *(["first", "last"] if extra else [])])
    for number, name in enumerate(names, start=1):
        writer.writerow([number, name, "01/02/2001", *(["", ""] if extra else [])])
    config = make_project(
        tmp_path, {f"{NIGHT_1}/clinic.csv": out.getvalue()}, CONFIG % mapping + extra
    )
    return config


def canonical_names(config: Path) -> dict[str, tuple]:
    nightly(config, date.fromisoformat(NIGHT_1))
    warehouse = load_project(config).warehouse
    with duckdb.connect(str(warehouse), read_only=True) as con:
        rows = con.execute(
            "SELECT source_record_id, forename, middle_names, surname FROM canonical_record"
        ).fetchall()
    return {row[0]: row[1:] for row in rows}


def test_auto_order_reads_commas_capitals_particles_titles_and_suffixes(tmp_path: Path) -> None:
    config = project(tmp_path, "name", [case[0] for case in AUTO_CASES])
    names = canonical_names(config)
    assert len(names) == len(AUTO_CASES), "every row is a record"
    for number, (sent, *expected) in enumerate(AUTO_CASES, start=1):
        assert names[str(number)] == tuple(expected), sent


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        # the capitals mean nothing in an explicit order: the words' places do
        ("forename_first", [("JOHN", "PAUL", "SMITH"), ("SMITH", None, "JOHN")]),
        ("surname_first", [("PAUL", "SMITH", "JOHN"), ("JOHN", None, "SMITH")]),
    ],
)
def test_an_explicit_order_is_followed_and_a_comma_still_wins(
    tmp_path: Path, order: str, expected: list[tuple]
) -> None:
    sent = ["John Paul SMITH", "SMITH John", "Brown, Mary"]
    config = project(tmp_path, f"{{column: name, order: {order}}}", sent)
    names = canonical_names(config)
    assert [names["1"], names["2"]] == expected
    assert names["3"] == ("MARY", None, "BROWN")


def test_mapped_forename_and_surname_win_where_they_are_filled(tmp_path: Path) -> None:
    extra = "  forename: first\n  surname: last\n"
    config = project(tmp_path, "name", ["SMITH, John"], extra)
    text = (tmp_path / "landing" / NIGHT_1 / "clinic.csv").read_text()
    # row 2: the separate columns are filled and win; row 1: empty, the full name fills them
    text += '2,"BROWN, Mary",01/02/2001,Ann,Black\n'
    (tmp_path / "landing" / NIGHT_1 / "clinic.csv").write_text(text)
    names = canonical_names(config)
    assert names["1"] == ("JOHN", None, "SMITH")
    assert names["2"] == ("ANN", None, "BLACK")


def test_an_unknown_order_is_a_config_error_naming_the_key(tmp_path: Path) -> None:
    config = project(tmp_path, "{column: name, order: backwards}", ["John Smith"])
    with pytest.raises(Exception, match="order"):
        load_project(config).source_configs()


def test_profile_reports_the_forename_and_surname_a_full_name_fills(tmp_path: Path) -> None:
    from linkage.profile import profile_source

    config = project(tmp_path, "name", ["SMITH, John", "Mary BROWN", "Smith"])
    profile = profile_source(load_project(config), "clinic")
    fields = {field.name: field for field in profile.fields}
    assert fields["forename"].source_columns == fields["surname"].source_columns == ["name"]
    assert (fields["forename"].usable, fields["surname"].usable) == (2, 3)
