"""CUDA-graph training steps (nao_core.engine.graphs).

The step a graph records is ``GraphedSteps.functional_step``: on a CPU it runs eagerly, and the
tests below check it is the same training step as the engine's eager one (torch.optim.SGD). The
CUDA tests check that replaying the recorded graphs gives what running that step eagerly gives.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from nao_core.config import OptimConfig
from nao_core.engine import ClassificationTask, GraphedSteps, graphed_steps, train_epoch
from nao_core.engine.graphs import graphs_supported
from nao_core.engine.optim import build_sgd
from nao_core.models.ops import drop_path, drop_path_keep_prob
from nao_core.search_space import create_search_space
from nao_core.supernet import CnnSupernet

OPTIM = OptimConfig(lr_max=0.05, weight_decay=3e-4, momentum=0.9)


pytestmark = pytest.mark.usefixtures("one_thread")


def supernet(device: str, drop_path_keep_prob: float = 1.0) -> CnnSupernet:
    torch.manual_seed(0)
    return CnnSupernet(
        layers=1,
        channels=4,
        num_classes=5,
        in_channels=3,
        image_size=8,
        drop_path_keep_prob=drop_path_keep_prob,
        device=device,
    )


def batches(device: str, n: int, size: int = 6) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    return [
        (
            torch.randn(size, 3, 8, 8, generator=g).to(device),
            torch.randint(0, 5, (size,), generator=g).to(device),
        )
        for _ in range(n)
    ]


def forward(model, x, progress, arch):
    return model(x, arch, False, progress=progress)


def train(model, data, archs, graphs_on: bool, grad_clip: float = 0.5, precision="fp32"):
    optimizer, _ = build_sgd(model.parameters(), OPTIM)
    task = ClassificationTask()
    graphs = None
    if graphs_on:
        graphs = GraphedSteps(
            model, task, optimizer, grad_clip=grad_clip, precision=precision, max_graphs=8
        )
    drawn = iter(archs)
    metrics, _ = train_epoch(
        model,
        task,
        data,
        optimizer,
        step=0,
        total_steps=10,
        grad_clip=grad_clip,
        precision=precision,
        forward=forward,
        draw=lambda: next(drawn),
        graphs=graphs,
    )
    return metrics, optimizer, graphs


def test_the_graph_step_is_the_engines_sgd_step_on_a_cpu() -> None:
    """Forward, backward, clipping, weight decay and momentum as torch.optim.SGD does them,
    with unused parameters left alone, over archs that come back (momentum carries over)."""
    archs = create_search_space("cnn").sample_many(np.random.default_rng(0), 3)
    order = [archs[0], archs[1], archs[0], archs[2], archs[1]]
    eager, graphed = supernet("cpu"), supernet("cpu")
    data = batches("cpu", len(order))
    m_eager, opt_eager, _ = train(eager, data, order, graphs_on=False)
    m_graph, opt_graph, _ = train(graphed, data, order, graphs_on=True)
    assert m_graph == pytest.approx(m_eager, rel=1e-6, abs=1e-7)
    moved, initial = 0, supernet("cpu")
    for (name, p_e), p_g in zip(eager.named_parameters(), graphed.parameters(), strict=True):
        torch.testing.assert_close(p_g, p_e, rtol=1e-5, atol=1e-6, msg=name)
        moved += int(not torch.equal(p_g, initial.get_parameter(name)))
    assert 0 < moved < len(list(eager.parameters()))  # some weights unused by all 3 archs
    for p_e, p_g in zip(eager.parameters(), graphed.parameters(), strict=True):
        buf_e = opt_eager.state[p_e].get("momentum_buffer")
        buf_g = opt_graph.state[p_g]["momentum_buffer"]  # created for every parameter
        if buf_e is None:
            assert not buf_g.any()
        else:
            torch.testing.assert_close(buf_g, buf_e, rtol=1e-5, atol=1e-6)


def test_drop_path_takes_its_keep_probability_as_a_device_tensor() -> None:
    for layer, progress in ((0, 0.3), (4, 1.0), (2, 1.7)):
        as_tensor = drop_path_keep_prob(0.7, layer, 5, torch.tensor(progress))
        assert isinstance(as_tensor, torch.Tensor)
        assert as_tensor.item() == pytest.approx(drop_path_keep_prob(0.7, layer, 5, progress))
    x = torch.ones(20_000, 1, 1, 1)
    out = drop_path(x, torch.tensor(0.8), torch.Generator().manual_seed(0))
    kept = out != 0
    assert kept.float().mean().item() == pytest.approx(0.8, abs=0.01)
    assert torch.allclose(out[kept], torch.tensor(1 / 0.8))
    assert torch.equal(drop_path(x, torch.tensor(1.0)), x)  # keep 1: an all-ones mask


def test_graphs_need_plain_sgd_and_cuda() -> None:
    model = supernet("cpu")
    params = list(model.parameters())
    assert graphs_supported(torch.optim.SGD(params, lr=0.1, momentum=0.9)) is None
    assert "Adam" in graphs_supported(torch.optim.Adam(params))
    assert "Nesterov" in graphs_supported(
        torch.optim.SGD(params, lr=0.1, momentum=0.9, nesterov=True)
    )
    with pytest.raises(ValueError, match="plain SGD"):
        GraphedSteps(
            model, ClassificationTask(), torch.optim.Adam(params), grad_clip=0, precision="fp32"
        )
    sgd, _ = build_sgd(params, OPTIM)
    kwargs = {"grad_clip": 5.0, "precision": "fp32"}
    assert graphed_steps(model, ClassificationTask(), sgd, enabled=True, **kwargs) is None  # CPU


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.mark.gpu
@cuda
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_replayed_graphs_equal_the_eager_step_on_cuda(precision: str) -> None:
    """Drop path on: the masks come from the device generator inside the graphs as they do
    eagerly. Archs come back (replays), the last batch is short (eager fallback), and a cache
    of 2 graphs evicts and recaptures."""
    archs = create_search_space("cnn").sample_many(np.random.default_rng(0), 4)
    order = [archs[0], archs[1], archs[0], archs[2], archs[1], archs[0], archs[0]]
    data = batches("cuda", len(order) - 1) + batches("cuda", 1, size=4)
    graphed = supernet("cuda", drop_path_keep_prob=0.6)
    reference = copy.deepcopy(graphed)
    torch.cuda.manual_seed(5)
    m_graph, _, graphs = train(graphed, data, order, graphs_on=True, precision=precision)
    assert graphs is not None
    assert graphs.captures == 3  # the first step is eager; archs 1, 0, 2 captured once each
    assert not graphs.uncapturable
    # The same steps, run eagerly through the step the graphs recorded.
    optimizer, _ = build_sgd(reference.parameters(), OPTIM)
    steps = GraphedSteps(
        reference, ClassificationTask(), optimizer, grad_clip=0.5, precision=precision
    )
    torch.cuda.manual_seed(5)
    sums = 0.0
    for i, ((x, y), arch) in enumerate(zip(data, order, strict=True)):
        steps._set_inputs((i + 1) / 10)
        stats = steps.functional_step(lambda x, p, a=arch: forward(reference, x, p, a), x, y)
        sums += stats["loss"].item()
    assert m_graph["loss"] == pytest.approx(sums / sum(len(y) for _, y in data), rel=1e-5)
    for (name, p_r), p_g in zip(reference.named_parameters(), graphed.parameters(), strict=True):
        torch.testing.assert_close(p_g, p_r, rtol=1e-5, atol=1e-6, msg=name)
    for b_r, b_g in zip(reference.buffers(), graphed.buffers(), strict=True):
        torch.testing.assert_close(b_g, b_r, rtol=1e-5, atol=1e-6)
    # Eviction: with room for 2, a new arch pushes the least recently used ones out.
    graphs.max_graphs = 2
    drawn = iter([archs[1], archs[3]])
    train_epoch(
        graphed,
        graphs.task,
        batches("cuda", 2),
        graphs.optimizer,
        step=0,
        total_steps=10,
        grad_clip=0.5,
        precision=precision,
        forward=forward,
        draw=lambda: next(drawn),
        graphs=graphs,
    )
    assert graphs.captures == 4
    assert list(graphs.graphs) == [archs[1], archs[3]]


@pytest.mark.gpu
@cuda
def test_search_and_final_training_with_cuda_graphs_on_cuda(tmp_path) -> None:
    from nao_core.config import apply_overrides
    from nao_core.presets import get_preset
    from nao_core.search.ws import run_search
    from nao_core.train import run_train

    cfg = apply_overrides(get_preset("search/tiny"), ["optim.epochs=2", "cuda_graphs=true"])
    result = run_search(cfg, run_dir=tmp_path / "search", device="cuda")
    assert result.status == "completed"
    assert all(0.0 <= e["score"] <= 1.0 for e in result.pool)
    train_cfg = apply_overrides(get_preset("train/tiny"), ["cuda_graphs=true"])
    trained = run_train(
        result.top[0]["arch"], "cnn", train_cfg, out_dir=tmp_path / "train", device="cuda"
    )
    assert 0.0 <= trained.accuracy <= 1.0
