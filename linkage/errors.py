"""Typed errors that say where: file, row, field, and what to do."""

from __future__ import annotations


class LinkageError(Exception):
    """Base class for errors the pipeline reports to its users."""


class ConfigError(LinkageError):
    """A configuration file is missing or invalid."""


class SourceFileError(LinkageError):
    """A source's night file cannot be used at all (missing, unreadable, wrong shape).

    The source is skipped for the night and its last good records stay in play.
    """

    def __init__(self, source: str, path: str, reason: str) -> None:
        self.source, self.path, self.reason = source, path, reason
        super().__init__(f"{source}: {path}: {reason}")


class ConservationError(LinkageError):
    """Rows read != rows standardised + rows quarantined: a record was lost."""
