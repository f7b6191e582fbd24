"""Synthetic multi-agency population with ground truth, in variants (see the README)."""

from linkage.generate.population import GenerationSummary, generate_population

__all__ = ["GenerationSummary", "generate_population"]
