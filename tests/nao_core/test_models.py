"""Ops, the stand-alone CNN and the weight-sharing supernet at tiny widths on CPU."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nao_core.errors import InvalidArchitecture, InvalidConfig
from nao_core.models import OPS, CnnNetwork, count_flops, count_parameters, drop_path, space_ops
from nao_core.models.cnn import Cell
from nao_core.models.ops import drop_path_keep_prob
from nao_core.search_space import create_search_space
from nao_core.search_space.cnn import SMALL_OPS, CnnArch, Node
from nao_core.supernet import CnnSupernet

NAONET_A = "0 7 1 15 2 8 1 7 0 6 1 7 0 8 4 7 1 5 0 7  0 7 1 13 0 6 0 14 0 9 1 10 0 14 2 6 1 11 0 7"
NAO_WS_BEST = "0 1 0 4 2 2 1 3 1 0 2 0 2 3 1 3 1 2 0 4  1 1 0 3 2 3 2 3 1 0 0 1 0 4 2 4 2 3 2 3"
SEP3, AVG3, MAX3, IDENTITY = (
    SMALL_OPS.index(n) for n in ("sep_conv_3x3", "avg_pool_3x3", "max_pool_3x3", "identity")
)
TINY = {"layers": 1, "channels": 8}


@pytest.fixture(autouse=True)
def _no_mkldnn():
    # oneDNN spends seconds on first use for these tiny convs; the reference kernels compute
    # the same thing and keep this file fast.
    enabled = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    yield
    torch.backends.mkldnn.enabled = enabled


def finite_grads(module: torch.nn.Module) -> bool:
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    return bool(grads) and all(torch.isfinite(g).all() for g in grads)


def uniform_cell(x_op: int, y_op: int) -> tuple[Node, ...]:
    """Node j reads h(j+1) with ``x_op`` and h0 with ``y_op``."""
    return tuple(Node(j + 1, x_op, 0, y_op) for j in range(5))


# --- ops ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("space_name", ["cnn", "cnn-large"])
def test_op_table_covers_every_op_id(space_name: str) -> None:
    keys = space_ops(space_name)
    assert len(keys) == len(create_search_space(space_name).ops)
    assert all(k in OPS for k in keys)


@pytest.mark.parametrize("key", sorted(OPS))
@pytest.mark.parametrize(("size", "stride"), [(8, 1), (8, 2), (7, 1), (7, 2)])
def test_every_op_keeps_width_and_gives_ceil_size(key: str, size: int, stride: int) -> None:
    out = OPS[key](4, stride)(torch.randn(2, 4, size, size))
    side = math.ceil(size / stride)
    assert out.shape == (2, 4, side, side)


def test_average_pools_count_padding_only_in_the_large_space() -> None:
    x = torch.ones(1, 1, 4, 4)
    assert torch.equal(OPS["avg_pool_3x3"](1, 1)(x), x)  # small space: padding not counted
    assert OPS["avg_pool_3x3_count_pad"](1, 1)(x)[0, 0, 0, 0].item() == pytest.approx(4 / 9)
    assert OPS["avg_pool_2x2_count_pad"](1, 1)(x)[0, 0, -1, -1].item() == pytest.approx(1 / 4)


def test_drop_path_zeroes_whole_samples_and_rescales() -> None:
    x = torch.ones(256, 3, 2, 2)
    out = drop_path(x, 0.5)
    per_sample = out.flatten(1)
    assert out.device == x.device
    assert torch.all((per_sample == 0).all(1) | (per_sample == 2).all(1))
    assert 0 < (per_sample[:, 0] == 0).sum() < 256
    assert drop_path(x, 1.0) is x


def test_drop_path_schedule() -> None:
    assert drop_path_keep_prob(0.8, 4, 5, progress=1.0) == pytest.approx(0.8)
    assert drop_path_keep_prob(0.8, 0, 5, progress=1.0) == pytest.approx(0.96)
    assert drop_path_keep_prob(0.8, 4, 5, progress=0.0) == 1.0
    assert drop_path_keep_prob(0.8, 4, 5, progress=0.5) == pytest.approx(0.9)


# --- stand-alone network -----------------------------------------------------------------------
@pytest.mark.parametrize(("space_name", "seed"), [("cnn", 0), ("cnn", 1), ("cnn-large", 2)])
def test_network_forward_backward(space_name: str, seed: int) -> None:
    torch.manual_seed(seed)
    arch = create_search_space(space_name).sample(np.random.default_rng(seed))
    net = CnnNetwork(arch, space_name, **TINY, use_aux_head=True, drop_path_keep_prob=0.8)
    logits, aux = net(torch.randn(2, 3, 32, 32), progress=0.5)
    assert logits.shape == (2, 10)
    assert aux is not None
    assert aux.shape == (2, 10)
    (logits.sum() + 0.4 * aux.sum()).backward()
    assert finite_grads(net)


def test_naonet_a_builds_with_its_loose_ends() -> None:
    arch = create_search_space("cnn-large").parse(NAONET_A)
    net = CnnNetwork(arch, "cnn-large", **TINY, num_classes=100, image_size=16)
    C = TINY["channels"]
    # loose ends: normal {h3, h5, h6}, reduction {h3, h4, h5, h6} (spec §1b)
    assert [cell.out_channels for cell in net.cells] == [3 * C, 8 * C, 6 * C, 16 * C, 12 * C]
    logits, aux = net(torch.randn(2, 3, 16, 16))
    assert logits.shape == (2, 100)
    assert aux is None
    logits.logsumexp(1).sum().backward()
    assert finite_grads(net)


def test_tiny_grey_images_skip_the_aux_head() -> None:
    arch = create_search_space("cnn").sample(np.random.default_rng(3))
    net = CnnNetwork(arch, **TINY, in_channels=1, image_size=8, use_aux_head=True)
    assert net.aux_head is None
    logits, aux = net(torch.randn(3, 1, 8, 8))
    assert logits.shape == (3, 10)
    assert aux is None


def test_invalid_inputs_are_refused() -> None:
    large = create_search_space("cnn-large").parse(NAONET_A)
    with pytest.raises(InvalidArchitecture):
        CnnNetwork(large, "cnn", **TINY)  # op ids beyond the small space's 5
    with pytest.raises(InvalidConfig):
        CnnNetwork(large, "cnn-large", **TINY, keep_prob=0.0)


@pytest.mark.parametrize("reduction", [False, True])
def test_drop_path_leaves_identity_branches_untouched(reduction: bool) -> None:
    torch.manual_seed(0)
    keys = space_ops("cnn")
    x = torch.randn(16, 4, 8, 8)
    identity = Cell(uniform_cell(IDENTITY, IDENTITY), keys, 4, 4, 4, reduction, False)
    assert torch.equal(identity(x, x, keep_prob=0.05), identity(x, x, keep_prob=1.0))
    pool = Cell(uniform_cell(AVG3, MAX3), keys, 4, 4, 4, reduction, False)
    assert not torch.equal(pool(x, x, keep_prob=0.05), pool(x, x, keep_prob=1.0))


def test_drop_path_is_a_no_op_in_eval() -> None:
    arch = create_search_space("cnn").parse(NAO_WS_BEST)
    net = CnnNetwork(arch, **TINY, image_size=16, drop_path_keep_prob=0.3).eval()
    x = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        first = net(x, progress=1.0)[0]
        net.drop_path_keep_prob = 1.0
        assert torch.equal(first, net(x, progress=1.0)[0])


def test_parameters_and_flops_grow_with_width_and_depth() -> None:
    arch = create_search_space("cnn").parse(NAO_WS_BEST)
    nets = [
        CnnNetwork(arch, layers=1, channels=8),
        CnnNetwork(arch, layers=1, channels=16),
        CnnNetwork(arch, layers=2, channels=16, use_aux_head=True),  # aux head built at 32×32
    ]
    params = [count_parameters(n) for n in nets]
    flops = [count_flops(n, (3, 16, 16)) for n in nets]
    assert params == sorted(params)
    assert len(set(params)) == 3
    assert flops == sorted(flops)
    assert len(set(flops)) == 3
    # the aux head is left out by default, as inference drops it
    assert count_parameters(nets[2], exclude_aux_head=False) > params[2]
    assert nets[2].training  # count_flops restores the mode


def test_channels_last_matches_contiguous() -> None:
    arch = create_search_space("cnn").parse(NAO_WS_BEST)
    net = CnnNetwork(arch, **TINY, image_size=16).eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        expected = net(x)[0]
        net = net.to(memory_format=torch.channels_last)
        got = net(x.to(memory_format=torch.channels_last))[0]
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_device_and_dtype_arguments() -> None:
    arch = create_search_space("cnn").parse(NAO_WS_BEST)
    net = CnnNetwork(arch, **TINY, in_channels=1, image_size=8, device="cpu", dtype=torch.float64)
    assert {p.dtype for p in net.parameters()} == {torch.float64}
    assert net(torch.randn(2, 1, 8, 8, dtype=torch.float64))[0].dtype == torch.float64
    supernet = CnnSupernet(**TINY, device="meta")
    assert {p.device.type for p in supernet.parameters()} == {"meta"}


# --- supernet ----------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1])
def test_supernet_forward_backward(seed: int) -> None:
    torch.manual_seed(seed)
    arch = create_search_space("cnn").sample(np.random.default_rng(seed))
    net = CnnSupernet(**TINY, use_aux_head=True)
    x = torch.randn(2, 3, 32, 32).to(memory_format=torch.channels_last)
    logits, aux = net(x, arch, bn_batch_stats=False, progress=0.7)
    assert logits.shape == (2, 10)
    assert aux is not None
    assert aux.shape == (2, 10)
    (logits.sum() + 0.4 * aux.sum()).backward()
    assert finite_grads(net)


def test_supernet_on_tiny_grey_images() -> None:
    arch = create_search_space("cnn").sample(np.random.default_rng(5))
    net = CnnSupernet(**TINY, in_channels=1, image_size=8, num_classes=3, use_aux_head=True)
    logits, aux = net(torch.randn(2, 1, 8, 8), arch, bn_batch_stats=False)
    assert logits.shape == (2, 3)
    assert aux is None


def test_supernet_scoring_uses_batch_stats_and_changes_nothing() -> None:
    arch = create_search_space("cnn").parse(NAO_WS_BEST)
    net = CnnSupernet(**TINY, image_size=16).eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x = torch.randn(4, 3, 16, 16) * 3 + 1
    with torch.no_grad():
        scored = net(x, arch, bn_batch_stats=True)[0]
        assert torch.equal(scored, net(x, arch, bn_batch_stats=True)[0])
        # with fresh running stats (0 / 1) the running-stat path normalises differently
        assert not torch.allclose(scored, net(x, arch, bn_batch_stats=False)[0])
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_supernet_gradients_reach_only_the_sampled_path() -> None:
    # node j: x = sep_conv_3x3(h(j+1)) for j < 3, else sep_conv_3x3(h1); y = max_pool(h0)
    cell = tuple(Node(j + 1 if j < 3 else 1, SEP3, 0, MAX3) for j in range(5))
    arch = CnnArch(normal=cell, reduction=cell)
    net = CnnSupernet(**TINY, image_size=16, drop_path_keep_prob=1.0)
    net(torch.randn(2, 3, 16, 16), arch, bn_batch_stats=False)[0].sum().backward()
    first = net.cells[0]
    for j in range(5):
        x_slot, y_slot = first.slots[2 * j], first.slots[2 * j + 1]
        used = cell[j].x_input
        for bank in (x_slot.sep_conv_3x3.depthwise_1, x_slot.sep_conv_3x3.bn_2.weight):
            rows = bank.grad.flatten(1).abs().sum(1)
            assert rows[used] > 0
            assert torch.all(rows[torch.arange(len(rows)) != used] == 0)
        assert x_slot.sep_conv_5x5.depthwise_1.grad is None
        assert y_slot.sep_conv_3x3.depthwise_1.grad is None
    combine_rows = first.combine.weight.grad.flatten(1).abs().sum(1)
    assert torch.all(combine_rows[4:] > 0)  # loose ends h4, h5, h6
    assert torch.all(combine_rows[:4] == 0)
