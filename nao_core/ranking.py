"""Rank agreement between a predictor's scores and measured ones (numpy only, no torch).

* Kendall's tau-b (Kendall 1945): (concordant - discordant) pairs over
  sqrt((n0 - n1) (n0 - n2)), where n0 = n (n - 1) / 2 and n1, n2 count the pairs tied in the
  prediction and in the measurement; so ties on either side are handled, as in
  ``scipy.stats.kendalltau`` (its default variant).
* Pairwise ranking accuracy (the NAO paper's "pairwise accuracy", §4.1): of the pairs whose
  measured scores differ, the fraction the prediction orders the same way. A pair the
  prediction ties is not ordered the same way.

Both compare every pair, vectorised over blocks of rows, so memory stays O(block * n) and an
n = 600 pool takes about a millisecond. Undefined cases (fewer than two items, or no pair
that one side can order) give NaN, as scipy does.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

_BLOCK = 512  # rows of the pair matrix per step


@dataclass(frozen=True)
class PairCounts:
    """Counts over the n (n - 1) / 2 unordered pairs."""

    pairs: int
    concordant: int  # both sides order the pair, the same way
    discordant: int  # both sides order the pair, opposite ways
    tied_x: int  # the prediction ties the pair (including pairs tied on both sides)
    tied_y: int  # the measurement ties the pair (including pairs tied on both sides)


def _signs(values: np.ndarray, rows: slice) -> np.ndarray:
    """sign(v_i - v_j) for i in ``rows`` and every j, as int8, (len(rows), n)."""
    block, full = values[rows, None], values[None, :]
    return (block > full).astype(np.int8) - (block < full).astype(np.int8)


def _blocks(n: int) -> Iterator[slice]:
    for start in range(0, n, _BLOCK):
        yield slice(start, min(start + _BLOCK, n))


def count_pairs(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> PairCounts:
    """Concordant, discordant and tied pairs of ``x`` (prediction) against ``y`` (measured).

    Raises:
        ValueError: If ``x`` and ``y`` differ in length or hold NaN.
    """
    xa, ya = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if xa.shape != ya.shape or xa.ndim != 1:
        raise ValueError(f"x and y must be 1-d and of one length, got {xa.shape} and {ya.shape}")
    if np.isnan(xa).any() or np.isnan(ya).any():
        raise ValueError("x and y must not hold NaN")
    n = len(xa)
    agree = disagree = untied_x = untied_y = 0
    for rows in _blocks(n):  # every ordered pair (i, j), i != j, is counted twice below
        sx, sy = _signs(xa, rows), _signs(ya, rows)
        prod = sx * sy
        agree += int(np.count_nonzero(prod > 0))
        disagree += int(np.count_nonzero(prod < 0))
        untied_x += int(np.count_nonzero(sx))
        untied_y += int(np.count_nonzero(sy))
    pairs = n * (n - 1) // 2
    return PairCounts(
        pairs=pairs,
        concordant=agree // 2,
        discordant=disagree // 2,
        tied_x=pairs - untied_x // 2,
        tied_y=pairs - untied_y // 2,
    )


def kendall_tau(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """Kendall's tau-b of ``x`` against ``y``, in [-1, 1]; NaN if either side is constant."""
    return _tau(count_pairs(x, y))


def pairwise_accuracy(
    predicted: Sequence[float] | np.ndarray, measured: Sequence[float] | np.ndarray
) -> float:
    """Of the pairs with distinct measured scores, the fraction ``predicted`` orders the same
    way, in [0, 1]; NaN when no two measured scores differ."""
    return _accuracy(count_pairs(predicted, measured))


def rank_agreement(
    predicted: Sequence[float] | np.ndarray, measured: Sequence[float] | np.ndarray
) -> tuple[float, float]:
    """``(kendall_tau, pairwise_accuracy)`` of ``predicted`` against ``measured``, from one
    pass over the pairs."""
    c = count_pairs(predicted, measured)
    return _tau(c), _accuracy(c)


def _tau(c: PairCounts) -> float:
    denom = math.sqrt(float(c.pairs - c.tied_x) * float(c.pairs - c.tied_y))
    if denom == 0.0:
        return math.nan
    return max(-1.0, min(1.0, (c.concordant - c.discordant) / denom))


def _accuracy(c: PairCounts) -> float:
    ordered = c.pairs - c.tied_y
    return c.concordant / ordered if ordered else math.nan
