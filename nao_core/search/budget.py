"""Query accounting shared by every strategy.

A query is one *distinct* architecture (by canonical form) sent to the evaluator. Asking for
an architecture already evaluated returns the cached score and costs nothing, so strategies
compare fairly at equal budgets.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from nao_core.evaluator.base import Evaluator
from nao_core.search_space.base import Arch


class BudgetExhausted(Exception):
    """Raised by ``QueryBudget.query`` when a new architecture would exceed the budget."""


@dataclass
class QueryBudget:
    evaluator: Evaluator
    budget: int
    archs: list[Arch] = field(default_factory=list)  # in query order
    scores: list[float] = field(default_factory=list)
    _cache: dict[str, float] = field(default_factory=dict)

    @property
    def used(self) -> int:
        return len(self.archs)

    @property
    def remaining(self) -> int:
        return self.budget - self.used

    def known(self, arch: Arch) -> bool:
        return self.evaluator.space.canonical_key(arch) in self._cache

    def keys(self) -> set[str]:
        return set(self._cache)

    def query(self, arch: Arch) -> float:
        key = self.evaluator.space.canonical_key(arch)
        if key in self._cache:
            return self._cache[key]
        if self.used >= self.budget:
            raise BudgetExhausted
        score = float(self.evaluator.evaluate(arch))
        self._cache[key] = score
        self.archs.append(arch)
        self.scores.append(score)
        return score

    def best_so_far(self) -> np.ndarray:
        """Index (into query order) of the best-scoring architecture after each query."""
        scores = np.asarray(self.scores)
        best = np.zeros(len(scores), dtype=int)
        for i in range(1, len(scores)):
            best[i] = i if scores[i] > scores[best[i - 1]] else best[i - 1]
        return best
