"""Rank agreement (nao_core.ranking) against the definitions, pair by pair, and scipy."""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nao_core.ranking import count_pairs, kendall_tau, pairwise_accuracy, rank_agreement


def _sign(v: float) -> int:
    return (v > 0) - (v < 0)


def brute_tau_b(x, y) -> float:
    """tau-b = (C - D) / sqrt((n0 - n1)(n0 - n2)), every pair looked at once."""
    n0 = c = d = tx = ty = 0
    for i, j in combinations(range(len(x)), 2):
        n0 += 1
        s = _sign(x[i] - x[j]) * _sign(y[i] - y[j])
        c, d = c + (s > 0), d + (s < 0)
        tx, ty = tx + (x[i] == x[j]), ty + (y[i] == y[j])
    denom = math.sqrt((n0 - tx) * (n0 - ty))
    return (c - d) / denom if denom else math.nan


def brute_pairwise(pred, measured) -> float:
    """Of the pairs with distinct measured scores, those the prediction orders alike."""
    pairs = [(i, j) for i, j in combinations(range(len(pred)), 2) if measured[i] != measured[j]]
    same = sum(_sign(pred[i] - pred[j]) == _sign(measured[i] - measured[j]) for i, j in pairs)
    return same / len(pairs) if pairs else math.nan


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, abs=1e-12)


# few distinct values, so ties are common on both sides
values = st.lists(st.integers(0, 4).map(float), min_size=0, max_size=30)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_tau_and_pairwise_accuracy_match_the_definitions(data) -> None:
    x = data.draw(values)
    y = data.draw(st.lists(st.integers(0, 4).map(float), min_size=len(x), max_size=len(x)))
    assert _same(kendall_tau(x, y), brute_tau_b(x, y))
    assert _same(pairwise_accuracy(x, y), brute_pairwise(x, y))
    assert all(
        _same(a, b)
        for a, b in zip(
            rank_agreement(x, y), (kendall_tau(x, y), pairwise_accuracy(x, y)), strict=True
        )
    )


@pytest.mark.parametrize("n", [2, 50, 600, 1100])  # 1100 spans three row blocks
def test_tau_matches_scipy_with_ties(n: int) -> None:
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(n)
    x = rng.random(n)
    y = np.round(x + rng.normal(0, 0.3, n), 1)  # heavy ties in the measurement
    x[: n // 4] = np.round(x[: n // 4], 1)  # and some in the prediction
    assert kendall_tau(x, y) == pytest.approx(stats.kendalltau(x, y).statistic, abs=1e-12)


def test_pairwise_accuracy_at_n_600_matches_the_pairs() -> None:
    rng = np.random.default_rng(0)
    pred, measured = rng.random(600), np.round(rng.random(600), 2)
    i, j = np.triu_indices(600, k=1)
    distinct = measured[i] != measured[j]
    alike = np.sign(pred[i] - pred[j]) == np.sign(measured[i] - measured[j])
    assert pairwise_accuracy(pred, measured) == pytest.approx(alike[distinct].mean(), abs=1e-12)


def test_perfect_reversed_and_undefined_cases() -> None:
    up = [0.1, 0.2, 0.3, 0.4]
    assert rank_agreement(up, [1, 2, 3, 4]) == (1.0, 1.0)
    assert rank_agreement(up, [4, 3, 2, 1]) == (-1.0, 0.0)
    assert all(math.isnan(v) for v in rank_agreement([], []))
    assert all(math.isnan(v) for v in rank_agreement([0.5], [0.5]))
    tau, acc = rank_agreement([0.3, 0.3, 0.3], [1, 2, 3])  # a constant prediction
    assert math.isnan(tau)
    assert acc == 0.0  # a tie orders no pair the same way
    assert math.isnan(pairwise_accuracy(up, [2, 2, 2, 2]))  # no pair to order


def test_counts_add_up() -> None:
    c = count_pairs([1, 1, 2, 3], [1, 2, 2, 1])
    assert c.pairs == 6
    assert (c.concordant, c.discordant, c.tied_x, c.tied_y) == (1, 2, 1, 2)


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="one length"):
        kendall_tau([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="NaN"):
        kendall_tau([1.0, math.nan], [1.0, 2.0])
