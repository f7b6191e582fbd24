"""Who may see what: a reviewer's role names agencies; sharing rules name what never shows.

Every query and page of the review application asks a `Viewer`: a record of an agency
outside the reviewer's role is never shown (not in the queue, an item, a search, a graph
or a count), nor a column the sharing rules say never leaves its agency. A page built from
a record it may not see answers "not found", as for a record that does not exist.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from linkage.config import SharingRules


def source_of(record_key: str) -> str:
    """The agency of a record key '<source>:<source_record_id>' (source names hold no ':')."""
    return record_key.split(":", 1)[0]


@dataclass(frozen=True)
class Viewer:
    """A signed-in reviewer and what their role lets them see."""

    name: str
    role: str
    agencies: frozenset[str]
    # agency -> its columns that never leave it (the sharing rules' never_shared)
    never_shared: Mapping[str, frozenset[str]] = field(default_factory=dict)
    # identifier types the role's agencies send (their source configs' identifiers)
    identifier_types: frozenset[str] = frozenset()

    def may_see_source(self, source: str) -> bool:
        return source in self.agencies

    def may_see_record(self, record_key: str) -> bool:
        return self.may_see_source(source_of(record_key))

    def may_see_pair(self, key_l: str, key_r: str) -> bool:
        return self.may_see_record(key_l) and self.may_see_record(key_r)

    def shows(self, source: str, column: str) -> bool:
        """Whether a column of this agency's records may be shown."""
        return self.may_see_source(source) and column not in self.never_shared.get(source, ())

    def may_see_change(self, record_key: str, column: str) -> bool:
        """Whether a change to a decided record's column may be shown."""
        return self.shows(source_of(record_key), column)

    @property
    def sorted_agencies(self) -> list[str]:
        return sorted(self.agencies)

    def visible_stake(self, stake: str | None) -> str | None:
        """What is at stake, naming only agencies the reviewer may see.

        The link stage writes 'open concerns at A, B' or 'open concern at A'.
        """
        if not stake:
            return None
        match = re.fullmatch(r"open concerns? at (.+)", stake)
        if match is None:
            return stake
        shown = [a for a in match[1].split(", ") if self.may_see_source(a)]
        if not shown:
            return "an open concern"
        return f"open concern{'s' if len(shown) > 1 else ''} at {', '.join(shown)}"

    def visible_reason(self, reason: str) -> str:
        """A review reason, without naming an identifier no visible agency holds.

        'refused: different pnc_id' between two health records means their persons hold
        police records with two PNC ids: the reviewer learns identifiers conflict, not whose.
        """
        match = re.fullmatch(r"refused: different (\S+)", reason)
        if match and match[1] not in self.identifier_types:
            return "refused: conflicting identifiers"
        return reason


def never_shared_columns(rules: SharingRules | None) -> dict[str, frozenset[str]]:
    """agency -> its never-shared columns (none without sharing rules)."""
    if rules is None:
        return {}
    return {agency: frozenset(columns) for agency, columns in rules.never_shared.items()}
