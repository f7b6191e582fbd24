"""A landing file's bytes -> lines of text, whatever the sending system wrote.

Agencies send what their tools export: UTF-8 with a byte-order mark, Excel's "Unicode
text" (UTF-16), old Mac line endings (CR only), the extract gzipped under the configured
name, or by mistake a workbook. `open_text_lines` recognises each from the first bytes.
Decoding is per line, so a line in another encoding costs at most its row: it is read in
the fallback encoding when that works, or marked undecodable, and noted either way for
the reader to flag or reject the row.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from io import BufferedIOBase
from pathlib import Path
from typing import BinaryIO, cast

from linkage.errors import SourceFileError

SNIFF_BYTES = 1 << 16
READ_BLOCK = 1 << 20
COMPRESSED: dict[bytes, tuple[str, Callable[[Path], BufferedIOBase]]] = {
    b"\x1f\x8b": ("gzip", gzip.GzipFile),
    b"BZh": ("bzip2", bz2.BZ2File),  # then a block size digit and the block magic below
    b"\xfd7zXZ\x00": ("xz", lzma.LZMAFile),
}
BZIP2_BLOCK = b"1AY&SY"
# What a damaged or cut-short compressed stream raises while it is read.
STREAM_ERRORS = (EOFError, OSError, zlib.error, lzma.LZMAError)
NOT_TEXT = {
    b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1": "an Excel 97-2003 workbook (.xls) or another old"
    " Office document",
    b"PAR1": "a Parquet file",
    b"%PDF": "a PDF document",
    b"SQLite format 3\x00": "an SQLite database",
    b"7z\xbc\xaf\x27\x1c": "a 7-Zip archive",
    b"Rar!\x1a\x07": "a RAR archive",
}
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
ZIP_KINDS = {
    b"xl/": "an Excel workbook (.xlsx)",
    b"word/": "a Word document (.docx)",
    b"content.xml": "an OpenDocument file (.ods or .odt)",
}
BOMS = [  # longest first: the UTF-32 LE mark starts like the UTF-16 LE one
    (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xef\xbb\xbf", "utf-8"),
    (b"\xff\xfe", "utf-16-le"),
    (b"\xfe\xff", "utf-16-be"),
]
# Control bytes no text file holds (tab, line ends, form feed, DOS end-of-file and NUL,
# which some exports pad fields with, are left out).
BINARY_BYTES = bytes(set(range(32)) - set(b"\t\n\r\x0b\x0c\x1a\x00"))


@dataclass
class LineDamage:
    """What one line needed to be read; the reader flags or rejects its row."""

    read_as: str | None = None  # the fallback encoding it was read in
    undecodable: bool = False  # no encoding read it (U+FFFD stands in for the bad bytes)
    nul: bool = False  # it holds NUL characters (left in the text)


@dataclass
class TextLines:
    """A landing file's decoded lines (iterate once), numbered from 1 in file order."""

    lines: Iterator[str]
    encoding: str  # the encoding it is read in (a byte-order mark overrides the config)
    fallback: str | None
    damage: dict[int, LineDamage] = field(default_factory=dict)  # line number -> damage


@contextmanager
def open_text_lines(
    path: Path, source: str, encoding: str, fallback: str | None
) -> Iterator[TextLines]:
    """Open a landing file as lines of text; a file that is not text is a SourceFileError."""
    with ExitStack() as stack:
        handle: BufferedIOBase = stack.enter_context(path.open("rb"))
        head = _head(handle)
        compression = compression_of(head)
        if compression is not None:
            handle = stack.enter_context(COMPRESSED[compression[1]][1](path))
            try:
                head = _head(handle)
            except STREAM_ERRORS as error:
                raise _damaged_stream(source, path, compression[0], error) from None
        kind = describe_not_text(head)
        if kind is not None:
            reason = f"the file is {kind}, not the text file the source config describes"
            if any(word in kind for word in ("workbook", "document", "OpenDocument")):
                reason += ": ask the sender for a text export (e.g. Excel's Save As > CSV UTF-8)"
            raise SourceFileError(source, str(path), reason)
        text = _text_lines(handle, head, encoding, fallback)
        if compression is not None:
            text.lines = _until_damaged(text.lines, source, path, compression[0])
        yield text


def describe_not_text(head: bytes) -> str | None:
    """What a file is, from its first bytes, when it is not text (None when it may be)."""
    if head.startswith(ZIP_MAGIC):
        return _describe_zip(head)
    for magic, kind in NOT_TEXT.items():
        if head.startswith(magic):
            return kind
    sample = head[:4096]
    if _utf16_without_bom(sample) or any(head.startswith(bom) for bom, _ in BOMS):
        return None
    if len(sample) - len(sample.translate(None, BINARY_BYTES)) > len(sample) // 20:
        return "binary data (control bytes in its first 4 KiB)"
    if sample.count(0) > len(sample) // 2:
        return "mostly NUL bytes (an incomplete copy?)"
    return None


def compression_of(head: bytes) -> tuple[str, bytes] | None:
    """(name, magic) of the compression a file's first bytes show, if any."""
    for magic, (name, _) in COMPRESSED.items():
        if head.startswith(magic) and (name != "bzip2" or head[4:10] == BZIP2_BLOCK):
            return name, magic
    return None


def _until_damaged(lines: Iterator[str], source: str, path: Path, kind: str) -> Iterator[str]:
    """A compressed file's lines; a damaged or cut-short stream holds the source, since
    the rows after the damage cannot be read."""
    try:
        yield from lines
    except STREAM_ERRORS as error:
        raise _damaged_stream(source, path, kind, error) from None


def _damaged_stream(source: str, path: Path, kind: str, error: Exception) -> SourceFileError:
    reason = f"the {kind} stream is damaged or cut short ({error}): a truncated copy?"
    return SourceFileError(source, str(path), reason)


def _head(handle: BufferedIOBase) -> bytes:
    head = handle.read(SNIFF_BYTES)
    handle.seek(0)
    return head


def _describe_zip(head: bytes) -> str:
    """A ZIP's kind from the member names its first local headers carry in plain text (an
    Office file's central directory is at the end, which a gzipped copy cannot seek to)."""
    for folder, kind in ZIP_KINDS.items():
        if folder in head:
            return kind
    return "a ZIP archive (an Excel .xlsx workbook is one)"


def _utf16_without_bom(sample: bytes) -> str | None:
    """UTF-16 text without a byte-order mark: mostly-ASCII text has NUL in every other byte."""
    half = len(sample) // 2
    if half < 8:
        return None
    even_nul, odd_nul = sample[0::2].count(0), sample[1::2].count(0)
    if odd_nul > 0.4 * half and even_nul < 0.05 * half:
        return "utf-16-le"
    if even_nul > 0.4 * half and odd_nul < 0.05 * half:
        return "utf-16-be"
    return None


def _text_lines(
    handle: BufferedIOBase, head: bytes, encoding: str, fallback: str | None
) -> TextLines:
    bom, bom_encoding = next(((b, e) for b, e in BOMS if head.startswith(b)), (b"", None))
    handle.read(len(bom))
    damage: dict[int, LineDamage] = {}
    wide = bom_encoding if bom_encoding != "utf-8" else None
    wide = wide or (_utf16_without_bom(head[:4096]) if bom_encoding is None else None)
    if wide is not None:
        # Line breaks are two or four bytes here: io splits the decoded text (on CR, LF or
        # CRLF alike). A fallback encoding means nothing for such a file.
        binary = cast(BinaryIO, handle)  # typeshed's TextIOWrapper asks more than it uses
        stream = io.TextIOWrapper(binary, encoding=wide, errors="replace", newline="")
        return TextLines(_checked_text(stream, damage), wide, None, damage)
    raw_lines: Iterable[bytes] = _split_on_cr(handle) if _cr_only(head) else handle
    encoding = bom_encoding or encoding
    return TextLines(_decoded(raw_lines, encoding, fallback, damage), encoding, fallback, damage)


def _cr_only(head: bytes) -> bool:
    """Old Mac line ends: CR between lines, and no LF but perhaps inside a field."""
    return b"\r\n" not in head and head.count(b"\r") > head.count(b"\n")


def _split_on_cr(handle: BufferedIOBase) -> Iterator[bytes]:
    pending = b""
    for block in iter(lambda: handle.read(READ_BLOCK), b""):
        *lines, pending = (pending + block).split(b"\r")
        for line in lines:
            yield line + b"\r"
    if pending:
        yield pending


def _decoded(
    raw_lines: Iterable[bytes], encoding: str, fallback: str | None, damage: dict[int, LineDamage]
) -> Iterator[str]:
    for line_number, raw in enumerate(raw_lines, start=1):
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError:
            text = _decode_damaged(raw, encoding, fallback, damage, line_number)
        if "\0" in text:
            damage.setdefault(line_number, LineDamage()).nul = True
        yield text


def _decode_damaged(
    raw: bytes,
    encoding: str,
    fallback: str | None,
    damage: dict[int, LineDamage],
    line_number: int,
) -> str:
    note = damage.setdefault(line_number, LineDamage())
    if fallback is not None and fallback != encoding:
        try:
            text = raw.decode(fallback)
        except UnicodeDecodeError:
            pass
        else:
            note.read_as = fallback
            return text
    note.undecodable = True
    return raw.decode(encoding, errors="replace")


def _checked_text(lines: Iterable[str], damage: dict[int, LineDamage]) -> Iterator[str]:
    for line_number, text in enumerate(lines, start=1):
        if not text.isascii() and "\ufffd" in text:
            damage.setdefault(line_number, LineDamage()).undecodable = True
        if "\0" in text:
            damage.setdefault(line_number, LineDamage()).nul = True
        yield text
