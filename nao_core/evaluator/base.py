"""The evaluator seam (NNI's "evaluator"): space + ``evaluate(arch) -> score``, higher is better."""

from __future__ import annotations

from typing import Protocol

from nao_core.search_space.base import Arch, SearchSpace


class Evaluator(Protocol):
    space: SearchSpace

    def evaluate(self, arch: Arch) -> float: ...
