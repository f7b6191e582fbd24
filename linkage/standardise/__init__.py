"""Standardisation: staged_record -> standardised_record (canonical columns + issue columns)."""

from linkage.standardise.runner import standardise

__all__ = ["standardise"]
