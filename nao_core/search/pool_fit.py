"""Fitting the controller on a search's pool, and keeping it: the steps NAO-WS and NAO without
weight sharing share.

Every scored entry is a training pair (its tokens, its score); pseudo-labels, when the config
asks for them, are drawn from the search's own numpy generator among the architectures the pool
has never held, so a resumed search draws the same ones (that generator is in its state).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from nao_core.controller import Controller, FitReport, fit_with_pseudo_labels
from nao_core.controller.bundle import bundle_from_controllers, save_bundle
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


def keep_controller(
    controller: Controller, pool: ArchPool, round: int, path: Path, meta: dict[str, Any]
) -> Path:
    """Write ``controller``, just fitted on ``pool`` (every entry scored), as the bundle of
    ``round`` at ``path``. Copies weights only and draws from no generator, so a search runs
    as it would without it."""
    entries = pool.entries
    bundle = bundle_from_controllers(
        pool.space,
        [controller],
        [e.arch for e in entries],
        [float(e.score) for e in entries],  # type: ignore[arg-type]  (all scored here)
        round,
        meta=meta,
    )
    return save_bundle(bundle, path)
