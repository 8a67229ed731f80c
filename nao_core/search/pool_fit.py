"""Fitting the controller on a search's pool: the step NAO-WS and NAO without weight sharing share.

Every scored entry is a training pair (its tokens, its score); pseudo-labels, when the config
asks for them, are drawn from the search's own numpy generator among the architectures the pool
has never held, so a resumed search draws the same ones (that generator is in its state).
"""

from __future__ import annotations

import numpy as np
import torch

from nao_core.controller import Controller, FitReport, fit_with_pseudo_labels
from nao_core.search.pool import ArchPool


def fit_on_pool(
    controller: Controller,
    pool: ArchPool,
    *,
    rng: np.random.Generator,
    generator: torch.Generator,
    optimizer: torch.optim.Optimizer | None = None,
) -> tuple[FitReport, torch.optim.Optimizer]:
    entries = pool.entries
    tokens = torch.tensor([pool.space.encode(e.arch) for e in entries], dtype=torch.long)
    scores = np.array([e.score for e in entries], dtype=np.float64)
    return fit_with_pseudo_labels(
        controller,
        pool.space,
        tokens,
        scores,
        known=pool.seen,
        rng=rng,
        generator=generator,
        optimizer=optimizer,
    )
