"""The optimizer and schedule every CNN recipe of NAO uses (nao-spec §4.1, §6.1).

SGD with momentum and coupled weight decay on every parameter (BN included, spec §8 item 13)
and a per-epoch cosine schedule from ``lr_max`` to ``lr_min`` over ``epochs``.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from nao_core.config import OptimConfig


def build_sgd(
    params: Iterable[nn.Parameter], cfg: OptimConfig
) -> tuple[torch.optim.SGD, torch.optim.lr_scheduler.CosineAnnealingLR]:
    """SGD(momentum, weight decay) and a cosine schedule over ``cfg.epochs`` epochs."""
    optimizer = torch.optim.SGD(
        params, lr=cfg.lr_max, momentum=cfg.momentum, weight_decay=cfg.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=max(cfg.epochs, 1), eta_min=cfg.lr_min
    )
    return optimizer, scheduler


def build_sgd_lm(model: nn.Module, lr: float, weight_decay: float) -> torch.optim.SGD:
    """Plain SGD (no momentum) as the AWD-LSTM / NAO RNN scripts use."""
    return torch.optim.SGD(model.parameters(), lr=lr, weight_decay=weight_decay)
