"""Named configurations. Each names the recipe of nao-spec.md it follows.

* ``controller/paper`` — NAO_V1's controller (nao-spec §2.1, §3): 1000 epochs, batch 100,
  Adam 1e-3, lambda 0.8, 300 new archs from the top 100 with eta = 1..51.
* ``nao/nb201`` — NAO over NAS-Bench-201 under a query budget of 50-150 architectures. The
  controller is the paper's; what changes is the scale of a round (the paper's 600 seeds and
  300 new per round do not fit a 150-query budget) and two choices the spec leaves open that
  matter at this scale: rank-normalised targets (the table's disconnected cells at 10 % would
  squash min-max targets) and taking the decoded candidates in order of predicted score.
"""

from __future__ import annotations

from typing import Any

from nao_core.config import ControllerConfig
from nao_core.errors import UnknownName
from nao_core.search.strategies import EvolutionConfig, NaoConfig

PRESETS: dict[str, Any] = {
    "controller/paper": ControllerConfig(),
    "nao/paper": NaoConfig(),
    "nao/nb201": NaoConfig(
        initial_pool=10,
        controller=ControllerConfig(
            epochs=200,
            top_seeds=10,
            new_archs=5,
            target_transform="rank",
            proposal_order="predicted",
        ),
    ),
    "evolution/nb201": EvolutionConfig(population_size=20, sample_size=5),
}


def list_presets() -> list[str]:
    return sorted(PRESETS)


def get_preset(name: str) -> Any:
    if name not in PRESETS:
        raise UnknownName("preset", name, list_presets())
    return PRESETS[name]


# --- NAO-WS search and final training -----------------------------------------------------------
# ``nao search --preset NAME`` reads ``search/NAME``, ``nao train --preset NAME`` ``train/NAME``.
# * paper: nao-spec §4.1 (search) and §6.1 (final training, N=6 C=36, 600 epochs, cutout 16).
# * small: a real but reduced run that fits 30-60 min on 2 CPU cores with the 20k CIFAR-10
#   subset of shared/data (written as the official batches; about 35-45 min on one busy
#   core, extrapolated from measured rates): a 5-cell C=8 supernet on 10,000 training images
#   per epoch, 40 epochs, a 100-arch pool scored on 1,000 valid images every 10 epochs (3
#   controller rounds of 50 new archs), top-3 rerank for 3 epochs. Final training: N=1 C=16,
#   10 epochs on 20,000 images (about 35 min on one busy core).
# * tiny: seconds, for tests; on ``digits`` (8x8, ships with scikit-learn) with 256 training
#   images, a C=4 supernet, a pool of 8 and a small controller.

from nao_core.config import (  # noqa: E402  (appended section; keeps the file additive)
    DataConfig,
    NetworkConfig,
    OptimConfig,
    RerankConfig,
    SearchConfig,
    TrainConfig,
)

_TINY_CONTROLLER = ControllerConfig(
    hidden_size=16,
    mlp_layers=1,
    mlp_hidden_size=16,
    epochs=5,
    batch_size=8,
    top_seeds=4,
    new_archs=4,
    max_step_size=5,
)
_TINY_NET = NetworkConfig(layers=1, channels=4, drop_path_keep_prob=0.9)

PRESETS.update(
    {
        "search/paper": SearchConfig(),
        "search/small": SearchConfig(
            data=DataConfig(train_limit=10_000, batch_size=64),
            supernet=NetworkConfig(layers=1, channels=8),
            optim=OptimConfig(epochs=40),
            controller=ControllerConfig(epochs=200, top_seeds=30, new_archs=50),
            rerank=RerankConfig(
                top_k=3,
                model=NetworkConfig(
                    layers=1, channels=8, keep_prob=0.8, drop_path_keep_prob=0.9, use_aux_head=True
                ),
                optim=OptimConfig(epochs=3),
            ),
            pool_size=100,
            eval_every=10,
            score_batches=2,
        ),
        "search/tiny": SearchConfig(
            data=DataConfig(dataset="digits", train_limit=256, eval_batch_size=100),
            supernet=_TINY_NET,
            optim=OptimConfig(epochs=4),
            controller=_TINY_CONTROLLER,
            rerank=RerankConfig(top_k=2, model=_TINY_NET, optim=OptimConfig(epochs=1)),
            pool_size=8,
            eval_every=2,
        ),
        "train/paper": TrainConfig(),
        "train/small": TrainConfig(
            data=DataConfig(
                train_portion=1.0, train_limit=20_000, batch_size=128, cutout=16, eval_split="test"
            ),
            model=NetworkConfig(
                layers=1, channels=16, keep_prob=0.8, drop_path_keep_prob=0.9, use_aux_head=True
            ),
            optim=OptimConfig(epochs=10, lr_min=0.0),
        ),
        "train/tiny": TrainConfig(
            data=DataConfig(
                dataset="digits", train_portion=1.0, train_limit=256, eval_split="test"
            ),
            model=NetworkConfig(layers=1, channels=4, keep_prob=0.9, drop_path_keep_prob=0.9),
            optim=OptimConfig(epochs=3, lr_min=0.0),
        ),
    }
)
