"""A ready-to-run project config for a generated population: DIR/config/.

The source configs say how to read the files `extracts.py` writes, so they are made here
from the same variant, next to the generator, rather than edited by hand per variant.
For the default variant they match schemas/sources/*.yaml (a test checks it), with the
identifiers under their own `identifiers:` key, keyed by registered identifier type.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from linkage.generate.extracts import ExtractSpec
from linkage.generate.variants import Variant
from linkage.identifiers import DEFAULT_REGISTRY_FILE
from linkage.yaml_file import read_yaml

Config = dict[str, Any]

SOURCES: dict[str, Config] = {
    "health": {
        "source": "health",
        "description": "Health board patient index (CHI-keyed), one row per registration.",
        "record_id": "Patient_ID",
        "one_record_per_person": False,  # temporary-resident re-registrations
        "min_rows_ratio": 0.8,
        "fields": {
            "forename": "Forename",
            "surname": "Surname",
            "date_of_birth": {"column": "Date_Of_Birth", "formats": ["%d/%m/%Y"]},
            "sex": {"column": "Gender", "codes": {"M": "M", "F": "F"}},
            "address": ["Address_Line_1", "Address_Line_2"],
            "town": "Town",
            "postcode": "Postcode",
        },
        "identifiers": {"chi": "CHI_Number"},
        "concern": {
            "type": {
                "column": "Child_Protection_Flag",
                "codes": {"Y": "HEALTH_CHILD_PROTECTION", "N": None},
            },
            "status": {"constant": "open"},
            "opened": {"column": "CP_Flag_Date", "formats": ["%d/%m/%Y"]},
        },
    },
    "education": {
        "source": "education",
        "description": "Local-authority pupil census (SEEMiS-style), one row per pupil, "
        "pipe-delimited latin-1.",
        "record_id": "PupilRef",
        "one_record_per_person": True,
        "min_rows_ratio": 0.8,
        "fields": {
            "forename": "LegalForename",
            "preferred_forename": "PreferredName",
            "surname": "LegalSurname",
            "date_of_birth": {"column": "DateOfBirth", "formats": ["%Y-%m-%d"]},
            "sex": {"column": "Sex", "codes": {"Male": "M", "Female": "F", "M": "M", "F": "F"}},
            "address": "HomeAddress",
            "town": "Town",
            "postcode": "PostCode",
        },
        "identifiers": {"scn": "SCN"},
        "concern": {
            "type": {
                "column": "EnrolmentStatus",
                "codes": {"Left - destination unknown": "MISSING_FROM_EDUCATION"},
            },
            "status": {"constant": "open"},
            "opened": {"column": "StatusDate", "formats": ["%Y-%m-%d"]},
        },
    },
    "police": {
        "source": "police",
        "description": "Police incident nominals, one row per person per incident.",
        "record_id": "IncidentPersonRef",
        "one_record_per_person": False,
        "min_rows_ratio": 0.8,
        "fields": {
            "forename": "Forenames",
            "surname": "Surname",
            "date_of_birth": {"column": "DOB", "formats": ["%d.%m.%Y"]},
            "sex": {"column": "SexCode", "codes": {"1": "M", "2": "F", "9": None}},
            "address": "AddressText",
            "postcode": "Postcode",
        },
        "identifiers": {"police_id": "NominalRef", "pnc_id": "PNC_ID"},
        "concern": {
            "type": {
                "column": "ConcernFlag",
                "codes": {
                    flag: f"POLICE_{flag}"
                    for flag in (
                        "DOMESTIC_ABUSE",
                        "MISSING_PERSON",
                        "CHILD_CONCERN",
                        "VULNERABLE_ADULT",
                    )
                },
            },
            "status": {"constant": "open"},
            "open_for_days": 365,  # an incident is an event: an open concern for a year
            "opened": {
                "column": "IncidentDateTime",
                "formats": ["%d.%m.%Y %H:%M", "%d.%m.%Y"],
            },
        },
    },
    "socialwork": {
        "source": "socialwork",
        "description": "Social-work client and case index, one row per client (latin-1).",
        "record_id": "ClientID",
        "one_record_per_person": False,
        "min_rows_ratio": 0.8,
        "fields": {
            "forename": "FirstName",
            "surname": "LastName",
            "other_surnames": "PreviousLastName",
            "date_of_birth": {
                "column": "BirthDate",
                "formats": ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d"],
            },
            "sex": {"column": "Gender", "codes": {"Male": "M", "Female": "F", "Unknown": None}},
            "address": ["Address1", "Address2"],
            "town": "TownCity",
            "postcode": "Postcode",
        },
        "identifiers": {"chi": "CHI", "social_work_id": "CaseRef"},
        "concern": {
            "type": {
                "column": "CaseType",
                "codes": {
                    "CHILD_PROTECTION": "CHILD_PROTECTION",
                    "LOOKED_AFTER_CHILD": "LOOKED_AFTER_CHILD",
                    "ADULT_SUPPORT_PROTECTION": "ADULT_SUPPORT_PROTECTION",
                    "CHILD_IN_NEED": "CHILD_IN_NEED",
                    "ADULT_CARE": None,
                },
            },
            "status": {"column": "CaseStatus", "codes": {"Open": "open", "Closed": "closed"}},
            "opened": {"column": "CaseOpened", "formats": ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d"]},
            "closed": {"column": "CaseClosed", "formats": ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d"]},
        },
    },
    "housing": {
        "source": "housing",
        "description": "Council housing register, one row per person per tenancy or "
        "application (tab-separated).",
        "record_id": "ApplicantRef",
        "one_record_per_person": False,
        "min_rows_ratio": 0.8,
        "fields": {
            "forename": "GivenName",
            "surname": "FamilyName",
            "date_of_birth": {"column": "BirthDate", "formats": ["%d-%b-%Y"]},
            "sex": {"column": "Sex", "codes": {"M": "M", "F": "F"}},
            "address": ["AddressLine1", "AddressLine2"],
            "town": "Town",
            "postcode": "PostCode",
        },
        "identifiers": {"housing_ref": "HousingPersonRef"},
    },
}
NATIONAL_IDENTIFIERS = frozenset({"chi", "scn", "pnc_id"})
# The housing register's person reference, registered beside the default registry's types.
HOUSING_REF: Config = {
    "label": "Housing person reference",
    "check": "regex",
    "pattern": "HPR[0-9]{7}",
    "distinct_values_differ": True,
    "equal_values_match": True,
}


def source_config(source: str, spec: ExtractSpec, variant: Variant) -> Config:
    """How the pipeline reads one generated extract of this variant."""
    config = copy.deepcopy(SOURCES[source])
    stem, _, extension = spec.file_name.rpartition(".")
    file = {"pattern": f"{{run_date}}/{stem}*.{extension}", "format": "csv"}
    file |= {"delimiter": spec.delimiter, "encoding": spec.encoding}
    config = {"source": source, "description": config.pop("description"), "file": file} | config
    identifiers: dict[str, str] = config["identifiers"]
    if not variant.national_ids:
        for name in NATIONAL_IDENTIFIERS & set(identifiers):
            del identifiers[name]
    if variant.police_address_line and source == "police":
        del config["fields"]["postcode"]  # the standardiser finds it at the end of the line
    if variant.police_full_name and source == "police":
        del config["fields"]["forename"], config["fields"]["surname"]
        config["fields"] = {"full_name": "FullName"} | config["fields"]
    if variant.housing and source == "socialwork":
        identifiers["housing_ref"] = "HousingRef"
    if not identifiers:
        del config["identifiers"]
    return config


def project_config(variant: Variant) -> Config:
    """project.yaml: every path relative to the config folder."""
    config: Config = {
        "landing_dir": "../landing",
        "sources": "sources/*.yaml",
        "warehouse": "../warehouse/linkage.duckdb",
        "output_dir": "../output",
        "archive_dir": "../warehouse/archive",
    }
    if variant.housing:
        config["identifiers"] = "identifiers.yaml"
    if not variant.national_ids:
        config["postcode_format"] = "as_written"  # 4-digit codes are not UK postcodes
    return config


def identifier_registry() -> Config:
    """identifiers.yaml for the housing variant: the default registry plus housing_ref."""
    default = read_yaml(DEFAULT_REGISTRY_FILE)["identifiers"]
    return {"identifiers": default | {"housing_ref": HOUSING_REF}}


def write_config(config_dir: Path, variant: Variant, specs: dict[str, ExtractSpec]) -> None:
    """Write config_dir/project.yaml, sources/<agency>.yaml and (housing) identifiers.yaml."""
    sources_dir = config_dir / "sources"
    sources_dir.mkdir(parents=True, exist_ok=True)
    header = f"# Written by `linkage generate --variant {variant.name}`; paths relative to here.\n"
    _write_yaml(config_dir / "project.yaml", project_config(variant), header)
    for source, spec in specs.items():
        _write_yaml(sources_dir / f"{source}.yaml", source_config(source, spec, variant), header)
    if variant.housing:
        _write_yaml(config_dir / "identifiers.yaml", identifier_registry(), header)


class _FlowMapping(dict):
    """A mapping written on one line: `{column: DOB, formats: ['%d.%m.%Y']}`."""


class _ConfigDumper(yaml.SafeDumper):
    """Block style for sections, flow style for lists and the small mappings inside them."""


_ConfigDumper.add_representer(
    _FlowMapping, lambda dumper, data: dumper.represent_mapping("tag:yaml.org,2002:map", data, True)
)
_ConfigDumper.add_representer(
    list, lambda dumper, data: dumper.represent_sequence("tag:yaml.org,2002:seq", data, True)
)


def _styled(value: Any, depth: int = 0, key: str = "") -> Any:
    """Sections (the document and its top-level mappings, but `file`) stay block style."""
    if not isinstance(value, dict):
        return value
    styled = {name: _styled(item, depth + 1, name) for name, item in value.items()}
    flow = depth >= 2 or (depth == 1 and key == "file")
    return _FlowMapping(styled) if flow else styled


def _write_yaml(path: Path, document: Config, header: str) -> None:
    text = yaml.dump(
        _styled(document), Dumper=_ConfigDumper, sort_keys=False, allow_unicode=True, width=1000
    )
    path.write_text(header + text, encoding="utf-8")
