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
        initial_pool=20,
        controller=ControllerConfig(
            epochs=200,
            top_seeds=20,
            new_archs=10,
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
