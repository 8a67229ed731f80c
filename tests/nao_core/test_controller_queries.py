"""Questions to a fitted controller on every space: improve, predict, interpolate; their
invariants, determinism and errors."""

from __future__ import annotations

import numpy as np
import pytest
from test_controller_bundle import fitted_bundle

from nao_core.controller.bundle import ControllerBundle
from nao_core.controller.errors import InvalidQuery, SpaceMismatch
from nao_core.controller.queries import (
    MAX_PREDICT,
    improve_arch,
    interpolate,
    predict,
    resolve_arch,
)
from nao_core.errors import InvalidArchitecture
from nao_core.search_space import create_search_space

SPACES = ["nb201", "cnn", "rnn"]
OTHER = {"nb201": "cnn", "cnn": "rnn", "rnn": "nb201"}


@pytest.fixture(scope="module", params=SPACES)
def bundle(request: pytest.FixtureRequest) -> ControllerBundle:
    return fitted_bundle(request.param, members=1 if request.param != "nb201" else 2)


def test_improve_invariants(bundle: ControllerBundle) -> None:
    space = bundle.search_space()
    seed = bundle.pool()[0]
    found = improve_arch(bundle, space.to_str(seed), 8)
    assert 1 <= len(found) <= 8
    keys = [space.canonical_key(p.arch) for p in found]
    assert len(set(keys)) == len(keys)  # distinct
    pool = {space.canonical_key(a) for a in bundle.pool()}
    assert not set(keys) & pool  # neither a measured arch nor the seed (a pool member)
    lo, hi = min(bundle.pool_scores), max(bundle.pool_scores)
    for p in found:
        space.validate(p.arch)
        assert space.canonical(p.arch) == p.arch
        assert space.parse(p.text) == p.arch
        assert p.canonical_hash == space.canonical_hash(p.arch)
        assert lo <= p.predicted <= hi  # the pool's score scale
        assert p.step_size >= 0  # 0: a one-token edit of the seed
    assert [p.predicted_normalized for p in found] == sorted(
        (p.predicted_normalized for p in found), reverse=True
    )
    assert improve_arch(bundle, seed, 8) == found  # deterministic; text or arch alike


def test_improve_from_an_unmeasured_arch_with_given_steps(bundle: ControllerBundle) -> None:
    space = bundle.search_space()
    known = {space.canonical_key(a) for a in bundle.pool()}
    seed = space.sample_unseen(np.random.default_rng(9), 1, known)[0]
    found = improve_arch(bundle, seed, 3, step_sizes=[5, 50, 500], neighbours=False)
    assert all(p.step_size in (5.0, 50.0, 500.0) for p in found)
    assert space.canonical_key(seed) not in {space.canonical_key(p.arch) for p in found}
    edits = improve_arch(bundle, seed, 100)
    one_edit = [p for p in edits if p.step_size == 0]
    assert one_edit  # the neighbourhood joins the candidates
    for p in one_edit:
        differ = sum(a != b for a, b in zip(space.encode(p.arch), space.encode(seed), strict=True))
        assert differ >= 1  # one token, or more where the canonical form reorders branches


def test_predict(bundle: ControllerBundle) -> None:
    space = bundle.search_space()
    pool = bundle.pool()
    known = {space.canonical_key(a) for a in pool}
    new = space.sample_unseen(np.random.default_rng(3), 5, known)
    preds = predict(bundle, [pool[2], *new], k=3)
    assert len(preds) == 6
    scores = np.asarray(bundle.pool_scores)
    for p in preds:
        assert 1 <= p.rank <= len(pool) + 1
        assert p.pool_size == len(pool)
        assert p.rank == 1 + int((scores > p.predicted).sum())
        assert len(p.neighbours) == 3
        dists = [n.distance for n in p.neighbours]
        assert dists == sorted(dists)
        assert p.distance == pytest.approx(np.mean(dists))
        for n in p.neighbours:
            assert bundle.pool_archs[n.pool_index] == n.arch
            assert bundle.pool_scores[n.pool_index] == n.score
        low, high = p.interval
        assert low <= p.predicted <= high
        assert p.level == 0.8
    measured = preds[0]
    assert measured.measured == bundle.pool_scores[2]
    assert measured.neighbours[0].pool_index == 2  # itself, at distance 0
    assert measured.neighbours[0].distance < 1e-5
    assert all(p.measured is None for p in preds[1:])
    if len(bundle.members) > 1:
        assert any(p.spread > 0 for p in preds)
    else:
        assert all(p.spread == 0 for p in preds)
    assert predict(bundle, [pool[2], *new], k=3) == preds  # deterministic


def test_interpolate(bundle: ControllerBundle) -> None:
    space = bundle.search_space()
    a, b = bundle.pool()[0], bundle.pool()[1]
    path = interpolate(bundle, a, space.to_str(b), 12)
    assert 1 <= len(path) <= 12
    ts = [p.t for p in path]
    assert ts[0] == 0.0
    assert ts == sorted(ts)
    assert ts[-1] <= 1.0
    keys = [space.canonical_key(p.arch) for p in path]
    assert len(set(keys)) == len(keys)
    for p in path:
        space.validate(p.arch)
        assert p.text == space.to_str(p.arch)
        assert min(bundle.pool_scores) <= p.predicted <= max(bundle.pool_scores)
    assert interpolate(bundle, a, b, 12) == path


def test_bad_queries_are_named(bundle: ControllerBundle) -> None:
    space = bundle.search_space()
    arch = bundle.pool()[0]
    other = create_search_space(OTHER[space.name])
    foreign = other.sample(np.random.default_rng(0))
    with pytest.raises(SpaceMismatch, match=f"space {other.name!r}"):
        improve_arch(bundle, other.to_str(foreign), 3)
    with pytest.raises(SpaceMismatch, match="not an architecture of the controller's space"):
        predict(bundle, [foreign])
    with pytest.raises(InvalidArchitecture):
        resolve_arch(bundle, "no such thing")
    for n in (0, 101, 2.5, True):
        with pytest.raises(InvalidQuery, match="n: must be"):
            improve_arch(bundle, arch, n)  # type: ignore[arg-type]
    with pytest.raises(InvalidQuery, match="step_sizes"):
        improve_arch(bundle, arch, 3, step_sizes=[-1.0])
    for steps in (1, 101):
        with pytest.raises(InvalidQuery, match=r"steps: must be in 2\.\.100"):
            interpolate(bundle, arch, arch, steps)
    with pytest.raises(InvalidQuery, match=r"k: must be in 1\.\.50"):
        predict(bundle, [arch], k=0)
    with pytest.raises(InvalidQuery, match=r"archs: 1\.\.1000"):
        predict(bundle, [])
    with pytest.raises(InvalidQuery, match=r"archs: 1\.\.1000"):
        predict(bundle, [arch] * (MAX_PREDICT + 1))
