"""Generator variants: the same people, told through differently shaped agencies.

`scottish` is the committed sample's world. The others each change one thing the linkage
pipeline must cope with without a code change: no national identifiers and foreign
postcodes, police addresses as one free-text line, police names as one column, or a fifth
agency with its own shared person reference.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Variant:
    """What differs from the default world (every flag off is today's output)."""

    name: str
    national_ids: bool = True  # CHI, SCN and PNC exist and agencies record them
    numeric_postcodes: bool = False  # 4-digit area codes shared by many streets
    police_address_line: bool = False  # police: one address line ending in the postcode
    police_full_name: bool = False  # police: the whole name in one column (SMITH, John)
    housing: bool = False  # a fifth agency, the council housing register


VARIANTS: dict[str, Variant] = {
    variant.name: variant
    for variant in (
        Variant("scottish"),
        Variant("no_national_ids", national_ids=False, numeric_postcodes=True),
        Variant("address_line", police_address_line=True),
        Variant("full_name", police_full_name=True),
        Variant("housing", housing=True),
    )
}
DEFAULT_VARIANT = "scottish"


def variant_named(name: str) -> Variant:
    """The variant called `name`; a ValueError listing the known ones otherwise."""
    try:
        return VARIANTS[name]
    except KeyError:
        known = ", ".join(VARIANTS)
        raise ValueError(f"unknown generator variant {name!r}; choose one of: {known}") from None
