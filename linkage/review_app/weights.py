"""A scored pair's match weight, comparison by comparison: Splink's waterfall figures.

Splink's match weight is the prior's weight plus, per comparison, the weight of the level
the pair reached (log2 m/u) and, for a level with a term-frequency adjustment, how much
rarer or commoner the value is than average: tf_weight * (log2 u_exact - log2 tf), tf
being the share of records holding the value (the larger of the two sides'). These are
computed here from the saved model and the stored levels (`edge.gamma_*`), so an item page
needs no Splink linker over the whole population; the sum equals the stored match weight.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

M_U_CLAMP_MIN = 1e-300  # Splink's floor for m and u (comparison_level.py)


@dataclass(frozen=True)
class Level:
    gamma: int
    label: str
    weight: float | None  # log2(m / u); 0 for the null level; None if untrained
    tf_column: str | None = None
    tf_weight: float = 0.0
    tf_u_exact: float | None = None  # u of the exact-match level on tf_column
    tf_minimum_u: float = 0.0


@dataclass(frozen=True)
class WeightRow:
    """One comparison's part of a pair's match weight."""

    comparison: str
    label: str
    weight: float  # the level's match weight
    tf_adjustment: float | None  # None: the level has no term-frequency adjustment

    @property
    def total(self) -> float:
        return self.weight + (self.tf_adjustment or 0.0)


@dataclass(frozen=True)
class ModelWeights:
    prior_weight: float
    comparisons: dict[str, dict[int, Level]]  # comparison -> gamma -> level

    @classmethod
    def from_model(cls, model: dict[str, Any]) -> ModelWeights:
        prior = model["probability_two_random_records_match"]
        comparisons = {
            comparison["output_column_name"]: _levels(comparison["comparison_levels"])
            for comparison in model["comparisons"]
        }
        return cls(math.log2(prior / (1 - prior)), comparisons)

    def tf_values_needed(self, gammas: dict[str, int | None]) -> list[str]:
        """The columns whose term frequencies the pair's levels need."""
        needed = []
        for comparison, gamma in gammas.items():
            level = self._level(comparison, gamma)
            if level is not None and level.tf_column and level.tf_column not in needed:
                needed.append(level.tf_column)
        return needed

    def waterfall(
        self,
        gammas: dict[str, int | None],
        frequencies: dict[str, tuple[float | None, float | None]],
    ) -> list[WeightRow]:
        """One row per comparison of the model, in its order.

        gammas: comparison -> the stored level; frequencies: tf column -> the share of
        records holding the left and right record's value (None where the value is empty).
        """
        rows = []
        for comparison in self.comparisons:
            level = self._level(comparison, gammas.get(comparison))
            if level is None:
                rows.append(WeightRow(comparison, "not scored", 0.0, None))
                continue
            adjustment = None
            if level.tf_column:
                left, right = frequencies.get(level.tf_column, (None, None))
                adjustment = _tf_adjustment(level, left, right)
            rows.append(WeightRow(comparison, level.label, level.weight or 0.0, adjustment))
        return rows

    def _level(self, comparison: str, gamma: int | None) -> Level | None:
        if gamma is None:
            return None
        return self.comparisons.get(comparison, {}).get(int(gamma))


def match_probability(weight: float) -> float:
    return 1.0 / (1.0 + 2.0 ** (-weight))


def _levels(levels: list[dict[str, Any]]) -> dict[int, Level]:
    """gamma -> level: Splink numbers the null level -1 and the others from the top down to
    0 (the else level)."""
    scored = [level for level in levels if not level.get("is_null_level")]
    by_gamma = {}
    for position, level in enumerate(scored):
        gamma = len(scored) - 1 - position
        tf_column = level.get("tf_adjustment_column")
        tf_weight = float(level.get("tf_adjustment_weight", 1.0)) if tf_column else 0.0
        if gamma == 0 or not tf_weight:  # Splink never adjusts the else level
            tf_column = None
        by_gamma[gamma] = Level(
            gamma=gamma,
            label=level["label_for_charts"],
            weight=_weight(level.get("m_probability"), level.get("u_probability")),
            tf_column=tf_column,
            tf_weight=tf_weight,
            tf_u_exact=_exact_match_u(level, scored) if tf_column else None,
            tf_minimum_u=float(level.get("tf_minimum_u_value", 0.0)),
        )
    for level in levels:
        if level.get("is_null_level"):
            by_gamma[-1] = Level(gamma=-1, label=level["label_for_charts"], weight=0.0)
    return by_gamma


def _weight(m: float | None, u: float | None) -> float | None:
    if m is None or u is None:
        return None
    return math.log2(max(m, M_U_CLAMP_MIN) / max(u, M_U_CLAMP_MIN))


def _exact_match_u(level: dict[str, Any], levels: list[dict[str, Any]]) -> float | None:
    """u of the level that is exactly `col_l = col_r` on the level's tf column (Splink's
    rule), or the level's own u where it says not to look."""
    if level.get("disable_tf_exact_match_detection"):
        return level.get("u_probability")
    column = re.escape(level["tf_adjustment_column"])
    exact = re.compile(rf'^\s*"?{column}_l"?\s*=\s*"?{column}_r"?\s*$', re.IGNORECASE)
    for candidate in levels:
        if exact.match(candidate.get("sql_condition", "")):
            return candidate.get("u_probability")
    return level.get("u_probability")


def _tf_adjustment(level: Level, left: float | None, right: float | None) -> float:
    if (left is None and right is None) or level.tf_u_exact is None:
        return 0.0
    frequency = max(f for f in (left, right, level.tf_minimum_u) if f is not None)
    return level.tf_weight * (math.log2(level.tf_u_exact) - math.log2(frequency))
