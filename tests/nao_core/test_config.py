from __future__ import annotations

import pytest

from nao_core.config import (
    ControllerConfig,
    NaoConfig,
    SearchConfig,
    apply_overrides,
    from_dict,
    to_dict,
)
from nao_core.errors import InvalidConfig, UnknownName
from nao_core.presets import get_preset, list_presets


def test_defaults_are_the_papers() -> None:
    c = ControllerConfig()
    assert (c.hidden_size, c.mlp_layers, c.mlp_hidden_size, c.trade_off) == (96, 3, 200, 0.8)
    assert (c.lr, c.weight_decay, c.grad_clip, c.batch_size, c.epochs) == (
        1e-3,
        1e-4,
        5.0,
        100,
        1000,
    )
    assert (c.top_seeds, c.new_archs, c.max_step_size) == (100, 300, 50)


def test_overrides_nested_and_typed() -> None:
    cfg = apply_overrides(
        NaoConfig(), ["controller.epochs=20", "initial_pool=30", "controller.lr=0.01"]
    )
    assert cfg.controller.epochs == 20
    assert cfg.initial_pool == 30
    assert cfg.controller.lr == 0.01
    cfg = apply_overrides(cfg, {"controller.proposal_order": "predicted", "controller.lr": 1})
    assert cfg.controller.proposal_order == "predicted"
    assert cfg.controller.lr == 1.0
    assert from_dict(NaoConfig, to_dict(cfg)) == cfg
    for spelled in ("false", "False", "FALSE"):  # as JSON writes it, or as Python does
        assert not apply_overrides(
            cfg, [f"controller.swap_augment={spelled}"]
        ).controller.swap_augment
    assert apply_overrides(SearchConfig(), ["cuda_graphs=true"]).cuda_graphs


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("controller.epochs=ten", "controller.epochs: must be an integer"),
        ("controller.epochs=0", "controller.epochs: must be > 0"),
        ("controller.trade_off=2", "trade_off: must be in"),
        ("controller.nope=1", "unknown key 'nope'"),
        ("controller.proposal_order=best", "controller.proposal_order: must be one of"),
        ("controller.swap_augment=1", "must be true or false"),
        ("initial_pool", "expected key=value"),
    ],
)
def test_bad_overrides_name_the_key(override: str, message: str) -> None:
    with pytest.raises(InvalidConfig, match=message):
        apply_overrides(NaoConfig(), [override])


def test_presets() -> None:
    assert "nao/nb201" in list_presets()
    assert get_preset("controller/paper") == ControllerConfig()
    with pytest.raises(UnknownName):
        get_preset("nope")
