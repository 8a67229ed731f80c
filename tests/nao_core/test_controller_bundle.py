"""Controller bundles: the file round trip, bad files, the target scale, and every search
that fits a controller keeping one per round (tabular NAO here; NAO-WS and NAO without weight
sharing below), with warm starts from them."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from core_helpers import one_thread

from nao_core.config import ControllerConfig
from nao_core.controller import Controller, fit_controller, normalize_scores
from nao_core.controller.bundle import (
    ControllerBundle,
    TargetScale,
    best_first,
    bundle_from_controllers,
    controller_path,
    latest_controller,
    list_controllers,
    load_bundle,
    save_bundle,
)
from nao_core.controller.errors import (
    ControllerCheckpointError,
    IncompatibleController,
    SpaceMismatch,
)
from nao_core.controller.queries import predict
from nao_core.engine.checkpoint import save_checkpoint
from nao_core.errors import MissingData
from nao_core.evaluator import TabularEvaluator
from nao_core.search import NaoConfig, run_nao
from nao_core.search_space import create_search_space

SMALL = ControllerConfig(hidden_size=16, mlp_hidden_size=16, epochs=10, batch_size=20)
TABULAR = NaoConfig(
    initial_pool=10,
    controller=ControllerConfig(
        epochs=20, top_seeds=5, new_archs=5, target_transform="rank", proposal_order="predicted"
    ),
)


def fitted_bundle(space_name: str, members: int = 1, n: int = 16) -> ControllerBundle:
    """A small controller ensemble fitted on ``n`` random archs with random scores."""
    space = create_search_space(space_name)
    rng = np.random.default_rng(0)
    archs = space.sample_unseen(rng, n)
    scores = rng.uniform(50, 90, size=n)
    tokens = torch.tensor([space.encode(a) for a in archs])
    controllers = []
    with one_thread(), torch.random.fork_rng():
        torch.manual_seed(0)
        for k in range(members):
            c = Controller(space, SMALL)
            fit_controller(c, tokens, scores, generator=torch.Generator().manual_seed(k))
            controllers.append(c)
    return bundle_from_controllers(space, controllers, archs, scores, 3, {"dataset": "x"})


@pytest.fixture(scope="module")
def nb201_bundle() -> ControllerBundle:
    return fitted_bundle("nb201")


@pytest.fixture(scope="module")
def evaluator(nb201_table: Path) -> TabularEvaluator:
    return TabularEvaluator(nb201_table, create_search_space("nb201"), "c10_valid_acc_200ep")


@pytest.mark.parametrize("space", ["nb201", "cnn", "rnn"])
def test_round_trip_predicts_the_same(space: str, tmp_path: Path) -> None:
    bundle = fitted_bundle(space, members=2)
    path = save_bundle(bundle, controller_path(tmp_path, 3))
    assert path == tmp_path / "controllers" / "round-003.pt"
    raw = torch.load(path, weights_only=True)  # plain data: no pickled class
    assert raw["kind"] == "controller"
    loaded = load_bundle(path)
    assert (loaded.space, loaded.round, loaded.meta) == (space, 3, {"dataset": "x"})
    assert loaded.controller == bundle.controller
    assert loaded.pool_archs == bundle.pool_archs
    assert loaded.pool_scores == bundle.pool_scores
    assert loaded.target == bundle.target
    for a, b in zip(loaded.members, bundle.members, strict=True):
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a)
    archs = create_search_space(space).sample_many(np.random.default_rng(5), 4)
    assert predict(loaded, archs) == predict(bundle, archs)


def test_bundle_copies_the_weights(nb201_bundle: ControllerBundle) -> None:
    space = create_search_space("nb201")
    c = Controller(space, SMALL)
    bundle = bundle_from_controllers(space, [c], nb201_bundle.pool(), [1.0] * 16, 1)
    with torch.no_grad():
        for p in c.parameters():
            p.add_(1.0)
    assert not torch.equal(bundle.members[0]["predictor.mlp.0.weight"], c.predictor.mlp[0].weight)


def test_wrong_files_are_refused(nb201_bundle: ControllerBundle, tmp_path: Path) -> None:
    with pytest.raises(MissingData, match="not found"):
        load_bundle(tmp_path / "none.pt")
    text = tmp_path / "text.pt"
    text.write_text("hello")
    with pytest.raises(ControllerCheckpointError, match="not a controller checkpoint"):
        load_bundle(text)
    model = tmp_path / "model.pt"
    save_checkpoint(model, {"kind": "model", "state_dict": {}})
    with pytest.raises(ControllerCheckpointError, match="'model' checkpoint"):
        load_bundle(model)
    good = save_bundle(nb201_bundle, tmp_path / "good.pt")
    raw = torch.load(good, weights_only=True)
    raw["space"]["name"] = "nas-bench-301"
    torch.save(raw, tmp_path / "other.pt")
    with pytest.raises(ControllerCheckpointError, match="unknown search space 'nas-bench-301'"):
        load_bundle(tmp_path / "other.pt")
    raw = torch.load(good, weights_only=True)
    raw["space"]["vocab_size"] = 99
    torch.save(raw, tmp_path / "layout.pt")
    with pytest.raises(ControllerCheckpointError, match="tokens"):
        load_bundle(tmp_path / "layout.pt")
    raw = torch.load(good, weights_only=True)
    raw["controller_config"]["hidden_size"] = 32
    torch.save(raw, tmp_path / "shape.pt")
    with pytest.raises(ControllerCheckpointError, match="weights do not fit"):
        load_bundle(tmp_path / "shape.pt")


@pytest.mark.parametrize("transform", ["minmax", "rank"])
def test_target_scale_maps_fitted_targets_back_to_scores(transform: str) -> None:
    scores = np.random.default_rng(1).uniform(10, 95, size=30)
    scale = TargetScale.fit(scores, transform)
    back = scale.to_score(normalize_scores(scores, transform))
    np.testing.assert_allclose(back, scores, rtol=0, atol=1e-9)
    assert scale.to_score(0.0) == pytest.approx(scores.min())
    assert scale.to_score(1.0) == pytest.approx(scores.max())
    flat = TargetScale.fit([3.0, 3.0], transform)
    assert flat.to_score(0.7) == 3.0


def test_latest_controller_of_a_run_folder(nb201_bundle: ControllerBundle, tmp_path: Path) -> None:
    with pytest.raises(MissingData, match="holds no controller"):
        latest_controller(tmp_path)
    for r in (1, 2, 10):
        save_bundle(replace(nb201_bundle, round=r), controller_path(tmp_path, r))
    (tmp_path / "controllers" / "notes.txt").write_text("ignored")
    assert [r for r, _ in list_controllers(tmp_path)] == [1, 2, 10]
    assert latest_controller(tmp_path).name == "round-010.pt"


def test_tabular_nao_hands_over_one_bundle_per_round(evaluator: TabularEvaluator) -> None:
    heard: list[tuple[int, ControllerBundle]] = []
    with one_thread():
        oracle = run_nao(evaluator, 30, 0, TABULAR, on_controller=lambda r, b: heard.append((r, b)))
        plain = run_nao(evaluator, 30, 0, TABULAR)
    assert oracle.archs == plain.archs  # the hook only listens
    assert oracle.scores == plain.scores
    assert [r for r, _ in heard] == list(range(1, len(heard) + 1))
    space = evaluator.space
    for _, b in heard:  # each fitted on every query made before its round
        n = len(b.pool_archs)
        assert [space.parse(a) for a in b.pool_archs] == oracle.archs[:n]
        assert list(b.pool_scores) == oracle.scores[:n]
        assert b.space == "nb201"
        assert b.meta["method"] == "nao"
    assert [len(b.pool_archs) for _, b in heard] == [10, 15, 20, 25]


def test_tabular_warm_start(evaluator: TabularEvaluator, nb201_bundle: ControllerBundle) -> None:
    heard: list[ControllerBundle] = []
    with one_thread():
        run_nao(evaluator, 20, 0, TABULAR, on_controller=lambda r, b: heard.append(b))
        start = heard[-1]
        warm: list[ControllerBundle] = []
        cold: list[ControllerBundle] = []
        pooled = run_nao(
            evaluator, 20, 1, TABULAR, on_controller=lambda r, b: warm.append(b),
            start=start, start_pool=True,
        )  # fmt: skip
        run_nao(evaluator, 20, 1, TABULAR, on_controller=lambda r, b: cold.append(b), start=start)
        fresh: list[ControllerBundle] = []
        run_nao(evaluator, 20, 1, TABULAR, on_controller=lambda r, b: fresh.append(b))
    # with the pool: the initial queries are the bundle's best archs, re-queried
    assert pooled.archs[:10] == best_first(start)[:10]
    assert pooled.scores[:10] == sorted(start.pool_scores, reverse=True)[:10]
    # the weights start from the bundle: the first fit ends elsewhere than a fresh one's
    w0, f0 = cold[0].members[0], fresh[0].members[0]
    assert any(not torch.equal(w0[k], f0[k]) for k in w0)
    with pytest.raises(SpaceMismatch, match="space 'cnn'"):
        run_nao(evaluator, 20, 0, TABULAR, start=fitted_bundle("cnn"))
    with pytest.raises(IncompatibleController, match="hidden_size 16 != 96"):
        run_nao(evaluator, 20, 0, TABULAR, start=nb201_bundle)
