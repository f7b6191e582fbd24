"""Record codes: a record's position among the records sorted by record_key.

The link stage works on integer codes instead of record keys (Splink's unique id, the
ends of an edge, the clusters): integer arrays where a million string keys would be a
million Python objects. Code order is record_key order, so every rule stated over keys
(the smallest key names a cluster, an edge's left key is the smaller) holds unchanged
over codes. A code means something only with the records it was given for.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

RECORD_CODE = "record_code"
EDGE_CODES = [f"{RECORD_CODE}_l", f"{RECORD_CODE}_r"]  # an edge's ends, as score_pairs gives them


@dataclass(frozen=True)
class RecordCodes:
    """The records' keys in code order, and where each code's record sits in the frame."""

    keys: pa.Array  # record_key of code 0, 1, ...
    rows: np.ndarray | None  # the frame's row of each code; None: the frame is in key order

    @classmethod
    def of(cls, records: pd.DataFrame) -> RecordCodes:
        keys = _string_array(records["record_key"])
        if len(keys) < 2 or pc.all(pc.greater(keys.slice(1), keys.slice(0, len(keys) - 1))).as_py():
            return cls(keys, None)  # model_input's order: no sort, no copy
        rows = np.asarray(pc.sort_indices(keys), dtype=np.int64)
        return cls(keys.take(pa.array(rows)), rows)

    def __len__(self) -> int:
        return len(self.keys)

    def column(self, records: pd.DataFrame, name: str) -> pa.Array:
        """A column of the records (the frame they were coded from), in code order."""
        values = arrow_array(records[name])
        return values if self.rows is None else values.take(pa.array(self.rows))

    def codes_of(self, keys: Iterable[str]) -> np.ndarray:
        """The codes of record keys; -1 for a key not among the records."""
        wanted = pa.array(list(keys), type=self.keys.type)
        distinct = pc.unique(wanted)
        # the few keys wanted are the set looked up: hashing a million keys costs ~0.3 s a call
        position = pc.index_in(self.keys, value_set=distinct)
        records = np.flatnonzero(pc.is_valid(position).to_numpy(zero_copy_only=False))
        code_of_distinct = np.full(len(distinct), -1, dtype=np.int64)
        code_of_distinct[position.take(pa.array(records)).to_numpy()] = records
        in_distinct = pc.index_in(wanted, value_set=distinct).to_numpy(zero_copy_only=False)
        return code_of_distinct[in_distinct.astype(np.int64)]

    def keys_of(self, codes: np.ndarray | list[int]) -> list[str]:
        return self.keys.take(pa.array(codes, type=pa.int64())).to_pylist()


def arrow_array(values: pd.Series, type: pa.DataType | None = None) -> pa.Array:
    """A column as one Arrow array (no copy for pandas' Arrow-backed str columns in one chunk)."""
    array = pa.array(values, type=type, from_pandas=True)
    return array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array


def _string_array(values: pd.Series) -> pa.Array:
    array = arrow_array(values)
    return array.cast(pa.large_string()) if array.type == pa.null() else array
