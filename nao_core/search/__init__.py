"""Search strategies (NAO, random, regularized evolution) over any evaluator, with query budgets."""

from nao_core.search.budget import BudgetExhausted, QueryBudget
from nao_core.search.strategies import (
    EvolutionConfig,
    NaoConfig,
    create_strategy,
    list_strategies,
    run_evolution,
    run_nao,
    run_random,
)

__all__ = [
    "BudgetExhausted",
    "EvolutionConfig",
    "NaoConfig",
    "QueryBudget",
    "create_strategy",
    "list_strategies",
    "run_evolution",
    "run_nao",
    "run_random",
]
