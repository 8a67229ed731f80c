"""Semi-supervised controller fitting: pseudo-labels from the predictor (SemiNAS).

Luo et al. 2020 ("Semi-Supervised Neural Architecture Search") keep NAO's controller and add
one step: label many architectures nobody evaluated with the controller's own predictor and
train on them next to the evaluated ones. With a few dozen evaluated architectures, plain NAO
fits a decoder that knows little more than its pool, and the gradient step's moved embeddings
decode back to pool members (the round "runs dry"); pseudo-labelled architectures teach the
decoder the rest of the neighbourhood, and the predictor's targets stay its own, so they do
not move its ranking of the evaluated ones much.

A round here: fit on the evaluated architectures as usual (``fit_controller``); draw
``pseudo_labels`` random architectures the search has not seen; predict their scores; fit
``pseudo_epochs`` more on the real targets (normalised as the config says) and the predicted
ones together. The predictor's outputs are already in the targets' [0, 1] space. Settings
(how many, how long) are ours, sized for budgets of 50-1000 evaluations; the paper's
NAS-Bench-101 runs used 100 labelled and 10,000 unlabelled architectures.
"""

from __future__ import annotations

import logging
from collections.abc import Collection

import numpy as np
import torch

from nao_core.controller.fit import FitReport, fit_controller, normalize_scores
from nao_core.controller.model import Controller
from nao_core.search_space.base import SearchSpace

logger = logging.getLogger(__name__)


def fit_with_pseudo_labels(
    controller: Controller,
    space: SearchSpace,
    tokens: torch.Tensor,
    scores: np.ndarray,
    *,
    known: Collection[str],
    rng: np.random.Generator,
    generator: torch.Generator,
    optimizer: torch.optim.Optimizer | None = None,
) -> tuple[FitReport, torch.optim.Optimizer]:
    """``fit_controller`` on the evaluated ``tokens``/``scores``, then, when
    ``controller.cfg.pseudo_labels`` > 0, the pseudo-label fit. Returns the first fit's report
    (its quality figures are on evaluated architectures) and the last optimizer."""
    cfg = controller.cfg
    report, optimizer = fit_controller(
        controller, tokens, scores, generator=generator, optimizer=optimizer
    )
    if cfg.pseudo_labels == 0:
        return report, optimizer
    unlabelled = space.sample_unseen(rng, cfg.pseudo_labels, known)
    if not unlabelled:
        return report, optimizer
    extra = torch.tensor([space.encode(a) for a in unlabelled], dtype=torch.long)
    controller.eval()
    with torch.no_grad():
        pseudo = controller.predict(extra).double().numpy()
    targets = np.concatenate([normalize_scores(scores, cfg.target_transform), pseudo])
    second, optimizer = fit_controller(
        controller,
        torch.cat([tokens.long(), extra]),
        targets,
        generator=generator,
        epochs=cfg.pseudo_epochs,
        optimizer=optimizer,
        normalized=True,
    )
    logger.info(
        "controller pseudo-labels=%d epochs=%d loss=%.4f hamming=%.2f s=%.1f",
        len(unlabelled),
        cfg.pseudo_epochs,
        second.loss,
        second.hamming_distance,
        second.seconds,
    )
    return report, optimizer
