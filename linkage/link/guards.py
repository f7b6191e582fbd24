"""Guards: pairs the model's score never links by itself (see cluster.py's docstring).

Each guard reads the scored edges (their comparison levels and record keys) and says, per
edge, whether only a shared identifier or an analyst may link the pair.
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from linkage.link.codes import arrow_array
from linkage.link.model import ELSE_GAMMA, GuardLevels


def possible_twins(edges: pd.DataFrame, guard: GuardLevels) -> pd.Series:
    """Same surname and date of birth, no shared identifier, and something only twins
    explain: unrelated forenames, different sexes, or two records of one agency where a
    forename is missing (newborn twins not yet named)."""
    if not {"gamma_date_of_birth", "gamma_surname", "gamma_forename"} <= set(edges.columns):
        return pd.Series(False, index=edges.index)
    same_birth = edges["gamma_date_of_birth"].isin(guard.birth_same)
    same_surname = edges["gamma_surname"].isin(guard.surname_same)
    # an agency may hold many rows of one person with forename typos (police incidents), so
    # within one agency only a missing forename says twins: newborns not yet named
    unnamed_at_one_agency = _one_source(edges) & (edges["gamma_forename"] == -1)
    only_twins_explain = _differs(edges, "forename") | _differs(edges, "sex")
    only_twins_explain |= unnamed_at_one_agency
    return same_birth & same_surname & only_twins_explain & ~_shared_identifier(edges, guard)


def _one_source(edges: pd.DataFrame) -> pd.Series:
    """Both records of the pair come from one source (record_key is '<source>:<id>')."""
    if edges.empty:
        return pd.Series(False, index=edges.index)
    left, right = (_source_part(edges[name]) for name in ("record_key_l", "record_key_r"))
    same = pc.equal(left, right).to_numpy(zero_copy_only=False)
    return pd.Series(same, index=edges.index, dtype=bool)


def _source_part(keys: pd.Series) -> pa.Array:
    """What precedes a key's first ':' (all of it if none), as str.partition(':')[0] gives;
    in Arrow, as pandas' str methods cost ~1 s a million keys."""
    matched = pc.extract_regex(arrow_array(keys, pa.large_string()), r"^(?P<source>[^:]*)")
    return pc.struct_field(matched, [0])


def possible_relatives(edges: pd.DataFrame, guard: GuardLevels) -> pd.Series:
    """Birth dates far apart (both known), no shared identifier: a father and son of one
    name at one address, say, whom names and address alone would join."""
    return _differs(edges, "date_of_birth") & ~_shared_identifier(edges, guard)


def possible_namesakes(edges: pd.DataFrame, guard: GuardLevels) -> pd.Series:
    """Two records of one agency at unrelated addresses, no shared identifier.

    An agency rarely holds two live records of one person at two addresses at once (a
    re-registration repeats the address), while two people of one name and birth date do
    turn up in a large population. Across agencies a different address is common (one
    agency has not caught up with a move), so this guard stays within one source.
    """
    unrelated_address = _differs(edges, "address")
    return unrelated_address & _one_source(edges) & ~_shared_identifier(edges, guard)


def _differs(edges: pd.DataFrame, comparison: str) -> pd.Series:
    """The pair reached the comparison's else level (False where the model lacks it)."""
    column = f"gamma_{comparison}"
    if column not in edges.columns:
        return pd.Series(False, index=edges.index)
    return edges[column] == ELSE_GAMMA


def _shared_identifier(edges: pd.DataFrame, guard: GuardLevels) -> pd.Series:
    shared = pd.Series(False, index=edges.index)
    for name in guard.identifiers:
        if f"gamma_{name}" in edges.columns:
            shared |= edges[f"gamma_{name}"] > 0
    return shared


# Pairs the model's score never links by itself, and why: each is kept apart (no third
# record can chain them) and, if the model would have linked it, reviewed.
GUARDS = {
    "possible twins": possible_twins,
    "possible relatives: birth dates far apart": possible_relatives,
    "possible namesakes: one agency, unrelated addresses": possible_namesakes,
}
