"""Metric accumulation without a host sync per step.

``MetricSums`` keeps running sums as tensors on the model's device and sample counts as
Python ints (the host knows every batch size), so a training step never waits for the GPU;
``read()`` synchronises once, at the end of an epoch (or at a divergence check).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor


def correct_count(logits: Tensor, target: Tensor) -> Tensor:
    """Top-1 hits of ``logits`` (B, K) against ``target`` (B,), as a 0-dim tensor."""
    return (logits.argmax(dim=-1) == target).sum()


def perplexity(mean_nll: float) -> float:
    """exp(mean negative log-likelihood), capped to avoid overflow for diverged models."""
    return math.exp(min(mean_nll, 700.0))


class MetricSums:
    """Running sums of per-batch statistics, on device, plus a host-side sample count."""

    def __init__(self) -> None:
        self._sums: dict[str, Tensor] = {}
        self.count = 0

    def add(self, values: Mapping[str, Tensor], n: int) -> None:
        """Add the batch sums ``values`` (0-dim tensors) of a batch of ``n`` samples."""
        for key, value in values.items():
            value = value.detach().float()
            if key in self._sums:
                self._sums[key] += value
            else:
                self._sums[key] = value.clone()
        self.count += n

    def peek(self, key: str) -> float:
        """One sum, read now (a host sync); NaN when nothing was added."""
        return float(self._sums[key]) if key in self._sums else math.nan

    def read(self) -> dict[str, float]:
        """Every sum, read in one transfer, plus ``count``."""
        keys = list(self._sums)
        values = torch.stack([self._sums[k] for k in keys]).tolist() if keys else []
        return {**dict(zip(keys, values, strict=True)), "count": float(self.count)}
