"""Synthetic four-agency population with ground truth (see sample_data/README.md)."""

from linkage.generate.population import GenerationSummary, generate_population

__all__ = ["GenerationSummary", "generate_population"]
