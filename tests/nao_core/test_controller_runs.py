"""NAO-WS and NAO without weight sharing keep one controller per round in their run folder,
announce it, and warm-start from one (tiny presets on the digits data)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from core_helpers import one_thread
from test_controller_bundle import fitted_bundle

from nao_core.controller.bundle import best_first, latest_controller, load_bundle
from nao_core.controller.errors import SpaceMismatch
from nao_core.controller.queries import improve_arch, predict
from nao_core.engine import NullCallback
from nao_core.presets import get_preset
from nao_core.search.nows import NaoSearch, run_nao_search
from nao_core.search.ws import run_search


class Heard(NullCallback):
    def __init__(self) -> None:
        self.controllers: list[tuple[int, Path]] = []

    def on_controller(self, round: int, path: Path) -> None:
        self.controllers.append((round, Path(path)))


@pytest.mark.slow  # two tiny searches: ~20 s on a busy 2-core machine
def test_ws_keeps_each_rounds_controller_and_warm_starts(tmp_path: Path) -> None:
    cfg = get_preset("search/tiny")  # evaluation points after epochs 2 and 4: one round
    heard = Heard()
    with one_thread():
        run_search(cfg, run_dir=tmp_path / "a", device="cpu", callback=heard)
    path = tmp_path / "a" / "controllers" / "round-001.pt"
    assert heard.controllers == [(1, path)]
    bundle = load_bundle(path)
    assert (bundle.space, bundle.round, bundle.meta["method"]) == ("cnn", 1, "nao-ws")
    scored = json.loads((tmp_path / "a" / "pool_round1.json").read_text())
    assert list(bundle.pool_archs) == [e["arch"] for e in scored]  # the pool it was fitted on
    assert list(bundle.pool_scores) == [e["score"] for e in scored]
    assert improve_arch(bundle, bundle.pool_archs[0], 2)
    assert predict(bundle, [bundle.pool_archs[0]])[0].measured == bundle.pool_scores[0]

    with one_thread():
        run_search(
            replace(cfg, seed=1), run_dir=tmp_path / "b", device="cpu",
            start=bundle, start_pool=True,
        )  # fmt: skip
    result = json.loads((tmp_path / "b" / "result.json").read_text())
    assert result["warm_start"]["round"] == 1
    assert result["warm_start"]["pool"] is True
    first = json.loads((tmp_path / "b" / "pool_round1.json").read_text())
    assert {e["arch"] for e in first} == set(bundle.pool_archs)  # same size: all of them
    assert load_bundle(latest_controller(tmp_path / "b")).meta["warm_start"]["round"] == 1
    with pytest.raises(SpaceMismatch):
        run_search(cfg, run_dir=tmp_path / "c", device="cpu", start=fitted_bundle("nb201"))


def test_nows_keeps_each_rounds_controller_and_warm_starts(tmp_path: Path) -> None:
    cfg = get_preset("nao-search/tiny")  # 2 controller rounds after the initial pool
    heard = Heard()
    with one_thread():
        run_nao_search(cfg, run_dir=tmp_path / "a", device="cpu", callback=heard)
    search = NaoSearch.open(cfg, tmp_path / "a")
    assert heard.controllers == [(r, search.controller_path(r)) for r in (1, 2)]
    assert search.latest_controller() == (2, search.controller_path(2))
    sizes = [len(load_bundle(search.controller_path(r)).pool_archs) for r in (1, 2)]
    assert sizes[0] == cfg.initial_pool
    assert sizes[1] > sizes[0]

    bundle = load_bundle(search.controller_path(2))
    warm = NaoSearch.open(replace(cfg, seed=3), tmp_path / "b", start=bundle, start_pool=True)
    space = warm.space
    expected = [space.to_str(a) for a in best_first(bundle)[: cfg.initial_pool]]
    assert [c.arch for c in warm.plan_round()] == expected
    assert warm.state_dict()["warm_start"]["pool"] is True
    again = NaoSearch.open(replace(cfg, seed=3), tmp_path / "b")  # resumed: kept in its state
    assert again.warm_start == warm.warm_start
