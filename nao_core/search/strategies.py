"""Search strategies over any evaluator, each spending exactly a query budget.

* ``nao``: random initial pool, then rounds of (fit the controller on every architecture
  evaluated so far -> gradient steps from the top seeds -> evaluate the new architectures),
  the controller warm-started across rounds (nao-spec §2.1, §3, §5).
* ``random``: uniform samples from the space's own sampler.
* ``evolution``: regularized (aging) evolution, Real et al. 2019: tournament of ``sample_size``
  from a population of ``population_size``, mutate the winner, the oldest member dies.

All three see the same signal through a ``QueryBudget`` and stop when it is spent. Randomness
comes only from the ``seed`` argument, so a run is reproducible.

``nao`` tells an optional ``RoundObserver`` what it is about to query: round 0 is the random
initial pool; round r >= 1 is the controller's proposals of round r (each with the query
index of the seed it came from, its step size and the controller's prediction for it), then
the random architectures that fill the round. Every query until the next ``on_round`` belongs
to that round. The observer only listens: a run with one queries exactly what a run without
one does.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol

import numpy as np

from nao_core.config import EvolutionConfig, NaoConfig
from nao_core.evaluator.base import Evaluator
from nao_core.search.budget import BudgetExhausted, QueryBudget
from nao_core.search_space.base import Arch, SearchSpace

if TYPE_CHECKING:
    import torch

    from nao_core.controller.bundle import ControllerBundle

logger = logging.getLogger(__name__)

_MAX_SAMPLE_TRIES = 10_000  # draws without a new architecture before we call the space spent


@dataclass(frozen=True)
class RoundProposal:
    """One architecture the ``nao`` controller proposed, before it is queried."""

    arch: Arch
    parent: int  # query index (into ``QueryBudget.archs``) of the seed it was moved from
    step_size: float  # eta of the gradient step that reached it
    predicted: float  # the controller's prediction (an ensemble's mean), normalised scale


class RoundObserver(Protocol):
    """Hears where each ``nao`` query comes from (see the module docstring)."""

    def on_round(self, round: int, proposals: Sequence[RoundProposal]) -> None:
        """Round ``round`` begins: ``proposals`` are queried next, in this order, then the
        round's random architectures."""


def _query_random(
    oracle: QueryBudget, space: SearchSpace, rng: np.random.Generator, n: int
) -> None:
    """Evaluate up to ``n`` new random architectures (fewer when the space runs out)."""
    target, misses = oracle.used + min(n, oracle.remaining), 0
    while oracle.used < target and misses < _MAX_SAMPLE_TRIES:
        arch = space.sample(rng)
        if oracle.known(arch):
            misses += 1
            continue
        oracle.query(arch)
        misses = 0


def run_random(evaluator: Evaluator, budget: int, seed: int, cfg: object = None) -> QueryBudget:
    oracle = QueryBudget(evaluator, budget)
    _query_random(oracle, evaluator.space, np.random.default_rng(seed), budget)
    return oracle


def mutate(space: SearchSpace, arch: Arch, rng: np.random.Generator) -> Arch:
    """Change one token to another token legal at that position (one input or one op)."""
    tokens = list(space.encode(arch))
    mask = space.token_mask()
    positions = [t for t in range(space.length) if mask[t].sum() > 1]
    t = int(rng.choice(positions))
    choices = [v for v in np.flatnonzero(mask[t]) if v != tokens[t]]
    tokens[t] = int(rng.choice(choices))
    return space.decode(tokens)


def run_evolution(
    evaluator: Evaluator, budget: int, seed: int, cfg: EvolutionConfig | None = None
) -> QueryBudget:
    cfg = cfg or EvolutionConfig()
    space, rng = evaluator.space, np.random.default_rng(seed)
    oracle = QueryBudget(evaluator, budget)
    population: deque[tuple[Arch, float]] = deque()
    try:
        while len(population) < cfg.population_size and oracle.remaining > 0:
            arch = space.sample(rng)
            population.append((arch, oracle.query(arch)))
        stale = 0
        while oracle.remaining > 0 and stale < _MAX_SAMPLE_TRIES:
            picks = rng.choice(
                len(population), size=min(cfg.sample_size, len(population)), replace=False
            )
            parent = max((population[i] for i in picks), key=lambda m: m[1])[0]
            child = mutate(space, parent, rng)
            stale = stale + 1 if oracle.known(child) else 0
            population.append((child, oracle.query(child)))
            population.popleft()
    except BudgetExhausted:
        pass
    return oracle


def run_nao(
    evaluator: Evaluator,
    budget: int,
    seed: int,
    cfg: NaoConfig | None = None,
    *,
    observer: RoundObserver | None = None,
    on_controller: Callable[[int, ControllerBundle], None] | None = None,
    start: ControllerBundle | None = None,
    start_pool: bool = False,
) -> QueryBudget:
    """NAO over ``evaluator`` for ``budget`` queries (module docstring).

    ``on_controller(round, bundle)`` hears each round's fitted controller (``round`` >= 1,
    the controller that proposes that round's archs) as a ``ControllerBundle``; it only
    listens, so a run with it queries exactly what a run without it does. ``start``
    warm-starts the controllers from a finished search's bundle (same space and controller
    shape; member i % k into controller i). With ``start_pool`` the bundle's pool, best first,
    is the initial pool (up to ``initial_pool`` archs, the rest random): its archs are queried
    again, within the budget, so they are scored by this run's evaluator whatever dataset the
    bundle was fitted on (on the same table the scores are the same).
    """
    import torch

    if start is not None:
        from nao_core.controller.bundle import check_warm_start

        check_warm_start(start, evaluator.space, (cfg or NaoConfig()).controller)
    # Module initialisers and dropout draw from torch's global generator: seed a private
    # copy of it so the run is reproducible and the caller's generator is left untouched.
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return _run_nao(
            evaluator, budget, seed, cfg or NaoConfig(), observer,
            on_controller=on_controller, start=start, start_pool=start_pool,
        )  # fmt: skip


def _run_nao(
    evaluator: Evaluator,
    budget: int,
    seed: int,
    cfg: NaoConfig,
    observer: RoundObserver | None,
    *,
    on_controller: Callable[[int, ControllerBundle], None] | None = None,
    start: ControllerBundle | None = None,
    start_pool: bool = False,
) -> QueryBudget:
    import torch

    from nao_core.controller import Controller, fit_with_pseudo_labels
    from nao_core.controller.bundle import (
        best_first,
        bundle_from_controllers,
        warm_start_controllers,
    )

    ccfg = cfg.controller
    space, rng = evaluator.space, np.random.default_rng(seed)
    oracle = QueryBudget(evaluator, budget)
    if observer is not None:
        observer.on_round(0, [])
    if start is not None and start_pool:
        for arch in best_first(start)[: min(cfg.initial_pool, budget)]:
            oracle.query(arch)
    _query_random(oracle, space, rng, cfg.initial_pool - oracle.used)
    controllers = [Controller(space, ccfg) for _ in range(cfg.ensemble)]
    if start is not None:
        warm_start_controllers(start, controllers)
    optimizers: list[torch.optim.Optimizer | None] = [None] * cfg.ensemble
    generator = torch.Generator().manual_seed(seed)
    round_ = 0
    while oracle.remaining > 0:
        round_ += 1
        tokens = torch.tensor([space.encode(a) for a in oracle.archs], dtype=torch.long)
        for k, controller in enumerate(controllers):
            report, optimizers[k] = fit_with_pseudo_labels(
                controller, space, tokens, np.asarray(oracle.scores), known=oracle.keys(),
                rng=rng, generator=generator, optimizer=optimizers[k],
            )  # fmt: skip
        if on_controller is not None:  # copies the weights; draws from no generator
            meta = {"method": "nao", "seed": seed, "budget": budget, "used": oracle.used}
            on_controller(
                round_, bundle_from_controllers(
                    space, controllers, oracle.archs, oracle.scores, round_, meta
                ),
            )  # fmt: skip
        order = np.argsort(-np.asarray(oracle.scores), kind="stable")[: ccfg.top_seeds]
        seeds = [oracle.archs[i] for i in order]
        n_new = min(ccfg.new_archs, oracle.remaining)
        proposals = [
            replace(p, parent=int(order[p.parent]))  # seed index -> query index
            for p in _propose(
                controllers, space, seeds, n_new, oracle.keys(),
                kappa=cfg.acquisition_kappa, mutation_seeds=cfg.mutation_seeds,
            )
        ]  # fmt: skip
        if observer is not None:
            observer.on_round(round_, proposals)
        for p in proposals:
            oracle.query(p.arch)
        # The controller can run dry (every step decodes to a known arch): keep the budget moving.
        before = oracle.used
        _query_random(oracle, space, rng, n_new - len(proposals) + cfg.random_per_round)
        logger.info(
            "nao round=%(round)d proposals=%(proposals)d random=%(random)d "
            "pairwise=%(pairwise).3f best=%(best).3f used=%(used)d",
            {
                "round": round_, "proposals": len(proposals),
                "random": oracle.used - before, "pairwise": report.pairwise_accuracy,
                "best": max(oracle.scores), "used": oracle.used,
            },
        )  # fmt: skip
        if not proposals and oracle.remaining > 0 and oracle.used == len(tokens):
            break  # the space is exhausted
    return oracle


def _propose(
    controllers: list,
    space: SearchSpace,
    seeds: list[Arch],
    n_new: int,
    known: set[str],
    *,
    kappa: float = 0.0,
    mutation_seeds: int = 0,
) -> list[RoundProposal]:
    """``n_new`` new archs (``parent`` = index into ``seeds``): one controller's ``improve``,
    or, for an ensemble or with ``mutation_seeds``, a pool of candidates ranked by an
    acquisition score. The pool is every member's decoded candidates (one member's gradient
    finds them, the others keep its optimism in check), plus, with ``mutation_seeds`` = k,
    every one-token mutation of the best k seeds (step size 0): the predictor then ranks the
    seeds' whole neighbourhood, which the decoder of a controller fitted on a few dozen
    architectures only partly reaches. The score is the members' mean prediction plus
    ``kappa`` times their standard deviation (optimism where the members disagree). A
    candidate found twice keeps its first parent and step size."""
    import torch

    from nao_core.controller import improve

    if len(controllers) == 1 and not mutation_seeds:
        return [
            RoundProposal(p.arch, p.parent, p.step_size, p.predicted)
            for p in improve(controllers[0], space, seeds, n_new, known)
        ]
    pool: dict[str, RoundProposal] = {}
    for c in controllers:
        for p in improve(c, space, seeds, n_new * len(controllers), known):
            pool.setdefault(
                space.canonical_key(p.arch), RoundProposal(p.arch, p.parent, p.step_size, 0.0)
            )
    for parent, seed in enumerate(seeds[:mutation_seeds]):
        for arch in space.one_token_edits(seed):
            key = space.canonical_key(arch)
            if key not in known:
                pool.setdefault(key, RoundProposal(arch, parent, 0.0, 0.0))
    if not pool:
        return []
    found = list(pool.values())
    tokens = torch.tensor([space.encode(p.arch) for p in found], dtype=torch.long)
    with torch.no_grad():
        preds = torch.stack([c.eval().predict(tokens) for c in controllers])
    mean = preds.mean(dim=0)
    score = mean + kappa * preds.std(dim=0) if kappa and len(controllers) > 1 else mean
    best = torch.argsort(score, descending=True, stable=True)[:n_new]
    return [replace(found[i], predicted=float(mean[i])) for i in best.tolist()]


Strategy = Callable[[Evaluator, int, int, object], QueryBudget]
_STRATEGIES: dict[str, Strategy] = {
    "nao": run_nao,  # type: ignore[dict-item]
    "random": run_random,
    "evolution": run_evolution,  # type: ignore[dict-item]
}


def list_strategies() -> list[str]:
    return sorted(_STRATEGIES)


def create_strategy(name: str) -> Strategy:
    from nao_core.errors import UnknownName

    if name not in _STRATEGIES:
        raise UnknownName("search strategy", name, list_strategies())
    return _STRATEGIES[name]
