"""Strategies spend exactly their budget, are reproducible, and read real tables."""

from __future__ import annotations

import gzip
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from nao_core.config import ControllerConfig, EvolutionConfig
from nao_core.errors import InvalidArchitecture, InvalidConfig, MissingData, UnknownName
from nao_core.evaluator import TabularEvaluator
from nao_core.search import (
    BudgetExhausted,
    NaoConfig,
    QueryBudget,
    create_strategy,
    list_strategies,
    run_nao,
)
from nao_core.search.strategies import RoundProposal, mutate
from nao_core.search_space import create_search_space

SMALL_NAO = NaoConfig(
    initial_pool=10,
    controller=ControllerConfig(
        epochs=20, top_seeds=5, new_archs=5, target_transform="rank", proposal_order="predicted"
    ),
)
CONFIGS = {"nao": SMALL_NAO, "random": None, "evolution": EvolutionConfig(10, 3)}


@pytest.fixture(scope="module")
def evaluator(nb201_table: Path) -> TabularEvaluator:
    return TabularEvaluator(nb201_table, create_search_space("nb201"), "c10_valid_acc_200ep")


def test_table_reads_every_cell(evaluator: TabularEvaluator) -> None:
    assert len(evaluator.keys) == 15625
    best = create_search_space("nb201").parse(
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"
    )
    assert evaluator.evaluate(best) == pytest.approx(91.6067, abs=1e-3)
    assert evaluator.metric(best, "c10_test_acc_200ep") == pytest.approx(94.3733, abs=1e-3)
    assert evaluator.best("c10_test_acc_200ep") == pytest.approx(94.3733, abs=1e-3)
    with pytest.raises(InvalidConfig, match="not a numeric column"):
        evaluator.metric(best, "arch_str")


@pytest.mark.parametrize("method", list_strategies())
def test_each_strategy_spends_exactly_its_budget(evaluator: TabularEvaluator, method: str) -> None:
    oracle = create_strategy(method)(evaluator, 30, 0, CONFIGS[method])
    assert oracle.used == 30
    keys = {evaluator.space.canonical_key(a) for a in oracle.archs}
    assert len(keys) == 30  # distinct architectures, each queried once


@pytest.mark.parametrize("method", list_strategies())
def test_same_seed_same_run(evaluator: TabularEvaluator, method: str) -> None:
    run = create_strategy(method)
    a = run(evaluator, 25, 7, CONFIGS[method])
    b = run(evaluator, 25, 7, CONFIGS[method])
    c = run(evaluator, 25, 8, CONFIGS[method])
    assert a.archs == b.archs
    assert a.scores == b.scores
    assert a.archs != c.archs


def test_nao_with_pseudo_labels_spends_its_budget_and_repeats(
    evaluator: TabularEvaluator,
) -> None:
    controller = replace(SMALL_NAO.controller, pseudo_labels=60, pseudo_epochs=5)
    cfg = replace(SMALL_NAO, controller=controller)
    a = create_strategy("nao")(evaluator, 25, 3, cfg)
    b = create_strategy("nao")(evaluator, 25, 3, cfg)
    plain = create_strategy("nao")(evaluator, 25, 3, SMALL_NAO)
    assert a.used == 25
    assert len({evaluator.space.canonical_key(x) for x in a.archs}) == 25
    assert a.archs == b.archs
    assert a.archs[:10] == plain.archs[:10]  # the same random start
    assert a.archs != plain.archs


def test_nao_beats_its_own_random_start(evaluator: TabularEvaluator) -> None:
    """After its initial random pool, NAO's proposals score better than random draws."""
    wins = 0
    for seed in range(3):
        oracle = create_strategy("nao")(evaluator, 40, seed, SMALL_NAO)
        initial = np.array(oracle.scores[:10])
        proposed = np.array(oracle.scores[10:])
        wins += int(np.median(proposed) > np.median(initial))
    assert wins >= 2


def test_budget_counts_distinct_queries(evaluator: TabularEvaluator) -> None:
    space = evaluator.space
    oracle = QueryBudget(evaluator, 2)
    a, b, c = space.sample_many(np.random.default_rng(0), 3)
    oracle.query(a)
    oracle.query(a)  # known: free
    oracle.query(b)
    assert oracle.used == 2
    assert oracle.remaining == 0
    with pytest.raises(BudgetExhausted):
        oracle.query(c)
    assert list(oracle.best_so_far()) == [0, 0 if oracle.scores[0] >= oracle.scores[1] else 1]


def test_mutation_changes_exactly_one_token() -> None:
    space = create_search_space("cnn")
    rng = np.random.default_rng(0)
    for _ in range(50):
        arch = space.sample(rng)
        child = mutate(space, arch, rng)
        diff = np.array(space.encode(arch)) != np.array(space.encode(child))
        assert diff.sum() == 1


def test_unknown_strategy_and_bad_config() -> None:
    with pytest.raises(UnknownName, match="evolution"):
        create_strategy("bayesopt")
    with pytest.raises(InvalidConfig):
        NaoConfig(initial_pool=1)
    with pytest.raises(InvalidConfig):
        EvolutionConfig(population_size=3, sample_size=5)


def test_tabular_errors(tmp_path: Path) -> None:
    space = create_search_space("nb201")
    with pytest.raises(MissingData, match="not found"):
        TabularEvaluator(tmp_path / "none.csv", space, "acc")
    table = tmp_path / "t.csv.gz"
    arch = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
    table.write_bytes(gzip.compress(f"arch_str,acc,note\n{arch},12.5,x\n".encode()))
    ev = TabularEvaluator(table, space, "acc")
    assert ev.evaluate(space.parse(arch)) == 12.5
    with pytest.raises(InvalidConfig, match="known: acc"):
        TabularEvaluator(table, space, "note")
    other = space.parse(arch.replace("none~2", "skip_connect~2"))
    with pytest.raises(InvalidArchitecture, match="not in"):
        ev.evaluate(other)


def test_nao_ensemble_spends_its_budget(evaluator: TabularEvaluator) -> None:
    cfg = NaoConfig(initial_pool=8, ensemble=2, controller=SMALL_NAO.controller)
    oracle = create_strategy("nao")(evaluator, 18, 3, cfg)
    assert oracle.used == 18
    with pytest.raises(InvalidConfig, match="ensemble"):
        NaoConfig(ensemble=0)


def test_rounds_log_what_the_gradient_step_proposed_and_what_random_filled(
    evaluator: TabularEvaluator, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("INFO", logger="nao_core.search.strategies"):
        oracle = create_strategy("nao")(evaluator, 30, 0, SMALL_NAO)
    rounds = [r.args for r in caplog.records if r.getMessage().startswith("nao round=")]
    assert rounds
    assert sum(r["proposals"] + r["random"] for r in rounds) == oracle.used - 10
    assert rounds[-1]["used"] == oracle.used == 30


class _Rounds:
    """A ``RoundObserver`` wrapped around the evaluator: each query with its round and, for a
    proposal, the ``RoundProposal`` it came from."""

    def __init__(self, inner: TabularEvaluator) -> None:
        self.inner, self.space = inner, inner.space
        self.round, self.proposed = -1, {}
        self.queries: list[tuple[int, RoundProposal | None]] = []

    def on_round(self, round: int, proposals) -> None:
        assert round == self.round + 1  # rounds in order, none skipped
        self.round = round
        self.proposed = {self.space.canonical_key(p.arch): p for p in proposals}

    def evaluate(self, arch) -> float:
        self.queries.append((self.round, self.proposed.get(self.space.canonical_key(arch))))
        return self.inner.evaluate(arch)


@pytest.mark.parametrize("ensemble", [1, 2])
def test_nao_tells_its_observer_where_each_query_came_from(
    evaluator: TabularEvaluator, ensemble: int
) -> None:
    cfg = replace(SMALL_NAO, ensemble=ensemble)
    heard = _Rounds(evaluator)
    oracle = run_nao(heard, 30, 0, cfg, observer=heard)  # type: ignore[arg-type]
    plain = run_nao(evaluator, 30, 0, cfg)
    assert oracle.archs == plain.archs  # the observer only listens
    assert oracle.scores == plain.scores
    rounds = [r for r, _ in heard.queries]
    assert rounds == sorted(rounds)
    assert rounds[:10] == [0] * 10  # the random initial pool
    assert heard.round >= 2
    ccfg = cfg.controller
    proposals = 0
    for i, (r, p) in enumerate(heard.queries):
        if p is None:
            continue
        proposals += 1
        assert p.arch == oracle.archs[i]
        # its seed: queried in an earlier round and among the best known then
        earlier = [k for k, (q, _) in enumerate(heard.queries) if q < r]
        assert p.parent in earlier
        best_then = sorted(earlier, key=lambda k: -oracle.scores[k])[: ccfg.top_seeds]
        assert oracle.scores[p.parent] >= oracle.scores[best_then[-1]]
        assert p.step_size >= 1.0
        assert np.isfinite(p.predicted)
    assert proposals > 0
    for r in range(1, heard.round + 1):  # a round's proposals come before its random ones
        kinds = [p is not None for q, p in heard.queries if q == r]
        assert kinds == sorted(kinds, reverse=True)
