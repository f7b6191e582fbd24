"""Extract: each source's landing files -> archived copy -> raw_<source>, rejects and flags.

`load` archives and loads; `rows` reads CSV and JSON lines, and `parquet` Parquet, as
people really send them; `landing` turns a file's bytes into lines of text; `header`
matches a file's header to the source config.
"""

from linkage.extract.header import LINE_NUMBER, ROW_NUMBER, quote_identifier
from linkage.extract.load import (
    ExtractedFile,
    archive_file,
    extract_source,
    file_columns,
    find_night_files,
    raw_table_name,
    row_ranges,
    sha256_of,
)
from linkage.extract.rows import FlaggedRow, RejectedRow

__all__ = [
    "LINE_NUMBER",
    "ROW_NUMBER",
    "ExtractedFile",
    "FlaggedRow",
    "RejectedRow",
    "archive_file",
    "extract_source",
    "file_columns",
    "find_night_files",
    "quote_identifier",
    "raw_table_name",
    "row_ranges",
    "sha256_of",
]
