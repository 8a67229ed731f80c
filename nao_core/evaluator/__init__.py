"""Evaluators: what a search strategy asks for a score of an architecture (higher is better)."""

from nao_core.evaluator.base import Evaluator
from nao_core.evaluator.tabular import TabularEvaluator

__all__ = ["Evaluator", "TabularEvaluator"]
