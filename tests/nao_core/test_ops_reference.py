"""Every CNN op against a reference computed by hand from its own weights: convolutions as sums
over each window (a separable conv is a depthwise conv, channel by channel, then a pointwise
one), pools as the max or mean of each window with the padding the spec gives, batch norm with
its running statistics (eval mode, randomised so it is not the identity)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from nao_core.models import OPS
from nao_core.models.ops import FactorizedConv, FactorizedReduce, PadPool2x2, ReLUConvBN, SepConv


def windows(x: torch.Tensor, kh: int, kw: int, stride: tuple[int, int], pad: tuple[int, int],
            fill: float = 0.0) -> torch.Tensor:  # fmt: skip
    """(B, C, OH, OW, kh, kw): every window of ``x`` padded with ``fill``, by explicit slicing."""
    (sh, sw), (ph, pw) = stride, pad
    b, c, h, w = x.shape
    xp = torch.full((b, c, h + 2 * ph, w + 2 * pw), fill, dtype=x.dtype)
    xp[:, :, ph : ph + h, pw : pw + w] = x
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    out = torch.empty(b, c, oh, ow, kh, kw, dtype=x.dtype)
    for i in range(oh):
        for j in range(ow):
            out[:, :, i, j] = xp[:, :, i * sh : i * sh + kh, j * sw : j * sw + kw]
    return out


def conv(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """A dense (groups 1) or depthwise (groups = channels) conv as sums over windows."""
    kh, kw = conv.kernel_size
    win = windows(x, kh, kw, conv.stride, conv.padding)  # type: ignore[arg-type]
    w = conv.weight.detach()
    if conv.groups == 1:
        return torch.einsum("bcijhw,ochw->boij", win, w)
    assert conv.groups == x.shape[1] == w.shape[0]
    return torch.einsum("bcijhw,chw->bcij", win, w[:, 0])


def bn(x: torch.Tensor, norm: nn.BatchNorm2d) -> torch.Tensor:
    mean, var = norm.running_mean, norm.running_var  # eval mode: the running statistics
    assert mean is not None
    assert var is not None
    scale = norm.weight.detach() / torch.sqrt(var + norm.eps)
    return (x - mean[:, None, None]) * scale[:, None, None] + norm.bias.detach()[:, None, None]


def relu(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x > 0, x, torch.zeros_like(x))


def reference(key: str, op: nn.Module, x: torch.Tensor, stride: int) -> torch.Tensor:
    if isinstance(op, SepConv):  # [ReLU, depthwise k x k, pointwise 1 x 1, BN] x 2
        dw1, pw1, bn1, dw2, pw2, bn2 = (op.op[i] for i in (1, 2, 3, 5, 6, 7))
        h = bn(conv(conv(relu(x), dw1), pw1), bn1)
        return bn(conv(conv(relu(h), dw2), pw2), bn2)
    if isinstance(op, ReLUConvBN):
        return bn(conv(relu(x), op.op[1]), op.op[2])
    if isinstance(op, FactorizedConv):  # ReLU, 1 x k (stride 1, s), BN, ReLU, k x 1 (s, 1), BN
        h = bn(conv(relu(x), op.op[1]), op.op[2])
        return bn(conv(relu(h), op.op[4]), op.op[5])
    if isinstance(op, FactorizedReduce):  # 1 x 1 on the even grid and on the grid one pixel on
        even = torch.einsum("bchw,oc->bohw", x[:, :, ::2, ::2], op.conv_1.weight[:, :, 0, 0])
        shifted = torch.zeros_like(x)
        shifted[:, :, :-1, :-1] = x[:, :, 1:, 1:]
        odd = torch.einsum("bchw,oc->bohw", shifted[:, :, ::2, ::2], op.conv_2.weight[:, :, 0, 0])
        return bn(torch.cat([even, odd], dim=1), op.bn)
    if isinstance(op, nn.Identity):
        return x
    if isinstance(op, PadPool2x2):  # zeros added below and right are real inputs (spec §1b)
        padded = torch.zeros(*x.shape[:2], x.shape[2] + 1, x.shape[3] + 1, dtype=x.dtype)
        padded[:, :, :-1, :-1] = x
        win = windows(padded, 2, 2, (stride, stride), (0, 0))
        return win.amax(dim=(-2, -1)) if op.mode == "max" else win.mean(dim=(-2, -1))
    if isinstance(op, nn.MaxPool2d):  # padding never wins a max
        k, p = op.kernel_size, op.padding
        return windows(x, k, k, (stride, stride), (p, p), -math.inf).amax(dim=(-2, -1))  # type: ignore[arg-type]
    if isinstance(op, nn.AvgPool2d):
        k, p = op.kernel_size, op.padding
        win = windows(x, k, k, (stride, stride), (p, p))  # type: ignore[arg-type]
        if op.count_include_pad:  # the large space: zeros counted, divide by k * k
            return win.sum(dim=(-2, -1)) / (k * k)  # type: ignore[operator]
        ones = windows(torch.ones_like(x), k, k, (stride, stride), (p, p))  # type: ignore[arg-type]
        return win.sum(dim=(-2, -1)) / ones.sum(dim=(-2, -1))
    raise AssertionError(f"no reference for {key}: {type(op).__name__}")


def randomise_norms(op: nn.Module, gen: torch.Generator) -> None:
    for m in op.modules():
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.weight.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=gen))
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen))  # type: ignore[union-attr]
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)  # type: ignore[union-attr]


@pytest.mark.parametrize("key", sorted(OPS))
@pytest.mark.parametrize(("size", "stride"), [(6, 1), (6, 2), (5, 1), (5, 2)])
def test_every_op_matches_its_reference_computed_by_hand(key: str, size: int, stride: int) -> None:
    gen = torch.Generator().manual_seed(size * 10 + stride)
    op = OPS[key](4, stride).double()
    randomise_norms(op, gen)
    op.eval()
    x = torch.randn(2, 4, size, size, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        got = op(x)
        want = reference(key, op, x, stride)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)


def test_separable_conv_is_depthwise_then_pointwise_by_hand() -> None:
    """One depthwise 3 x 3 conv then a 1 x 1 conv, written as plain loops over channels and
    pixels: the first half of ``sep_conv_3x3`` (before its batch norm)."""
    torch.manual_seed(0)
    op = SepConv(3, 3, 3, 1).double()
    depthwise, pointwise = op.op[1], op.op[2]
    x = torch.randn(1, 3, 4, 4, dtype=torch.float64)
    r = relu(x)
    padded = torch.zeros(1, 3, 6, 6, dtype=torch.float64)
    padded[:, :, 1:5, 1:5] = r
    dw = torch.zeros(1, 3, 4, 4, dtype=torch.float64)
    for c in range(3):  # each channel with its own kernel, no mixing
        for i in range(4):
            for j in range(4):
                dw[0, c, i, j] = sum(
                    padded[0, c, i + u, j + v] * depthwise.weight[c, 0, u, v]
                    for u in range(3)
                    for v in range(3)
                )
    pw = torch.zeros_like(dw)
    for o in range(3):  # then mix channels pixel by pixel
        pw[0, o] = sum(dw[0, c] * pointwise.weight[o, c, 0, 0] for c in range(3))
    with torch.no_grad():
        got = pointwise(depthwise(op.op[0](x)))
    torch.testing.assert_close(got, pw, rtol=1e-12, atol=1e-12)
