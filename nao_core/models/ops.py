"""Candidate operations of the NAO CNN spaces and the blocks cells are built from.

``OPS`` is one name -> factory table (darts style) for every op of both CNN spaces
(nao-spec §1a, §1b). A factory takes ``(C, stride)`` and returns a module mapping
(B, C, H, W) -> (B, C, ceil(H / stride), ceil(W / stride)); every op agrees on the output size,
odd sizes included, so any two branches of a node can be summed.

The two spaces share op *names* but not all semantics: the small space's ``avg_pool_3x3``
excludes padding from the average, the large space's average pools count it (NAO_V1, spec §1b
table and §8 item 12). The large space's avg pools are therefore separate keys with a
``_count_pad`` suffix, and ``SPACE_OPS`` gives, per space name, the OPS key of every op id.

Also here: ``ReLUConvBN``, ``FactorizedReduce``, ``MaybeCalibrateSize`` (cell input
calibration, spec §4.1 step 1) and drop path (per-sample Bernoulli mask, spec §4.1).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from nao_core.errors import UnknownName
from nao_core.search_space.cnn import LARGE_OPS, SMALL_OPS

OpFactory = Callable[[int, int], nn.Module]


class ReLUConvBN(nn.Module):
    """ReLU -> conv (no bias) -> BN."""

    def __init__(self, C_in: int, C_out: int, kernel_size: int, stride: int = 1, padding: int = 0):
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(C_in, C_out, kernel_size, stride, padding, bias=False),
            nn.BatchNorm2d(C_out),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class SepConv(nn.Module):
    """Separable conv applied twice (NAO/darts): [ReLU -> depthwise k×k -> 1×1 -> BN] × 2.

    Only the first depthwise conv is strided.
    """

    def __init__(self, C_in: int, C_out: int, kernel_size: int, stride: int = 1):
        super().__init__()
        pad = kernel_size // 2
        self.op = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(C_in, C_in, kernel_size, stride, pad, groups=C_in, bias=False),
            nn.Conv2d(C_in, C_in, 1, bias=False),
            nn.BatchNorm2d(C_in),
            nn.ReLU(),
            nn.Conv2d(C_in, C_in, kernel_size, 1, pad, groups=C_in, bias=False),
            nn.Conv2d(C_in, C_out, 1, bias=False),
            nn.BatchNorm2d(C_out),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class FactorizedConv(nn.Module):
    """Large-space conv 1×k + k×1: ReLU -> conv 1×k -> BN -> ReLU -> conv k×1 -> BN.

    The stride is split as in NAO_V1: (1, s) on the first conv and (s, 1) on the second.
    """

    def __init__(self, C: int, kernel_size: int, stride: int = 1):
        super().__init__()
        pad = kernel_size // 2
        self.op = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(C, C, (1, kernel_size), (1, stride), (0, pad), bias=False),
            nn.BatchNorm2d(C),
            nn.ReLU(),
            nn.Conv2d(C, C, (kernel_size, 1), (stride, 1), (pad, 0), bias=False),
            nn.BatchNorm2d(C),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class PadPool2x2(nn.Module):
    """2×2 max/avg pool after zero-padding one row at the bottom and one column at the right.

    The padding keeps stride-1 pools size-preserving (NAO_V1 ops 10 and 13). The zeros are real
    inputs: they enter the max and are counted in the average (spec §1b).
    """

    def __init__(self, mode: str, stride: int = 1):
        super().__init__()
        if mode not in ("max", "avg"):
            raise ValueError(f"pool mode must be 'max' or 'avg', got {mode!r}")
        self.mode, self.stride = mode, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (0, 1, 0, 1))  # (B, C, H + 1, W + 1)
        if self.mode == "max":
            return F.max_pool2d(x, 2, self.stride)
        return F.avg_pool2d(x, 2, self.stride)


class FactorizedReduce(nn.Module):
    """Halve the resolution without losing every other pixel (NASNet/darts; spec §4.1).

    Two 1×1 convs of C_out/2 channels see x[:, :, ::2, ::2] and the same grid shifted by one
    pixel; their outputs are concatenated and batch-normalised. No ReLU inside: callers that
    want one put it in front.
    """

    def __init__(self, C_in: int, C_out: int):
        super().__init__()
        # An odd C_out is split unevenly rather than refused (the paper only uses even widths).
        self.conv_1 = nn.Conv2d(C_in, C_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(C_in, C_out - C_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(C_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shifted = F.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:]  # (B, C, H, W), one pixel right/down
        out = torch.cat([self.conv_1(x), self.conv_2(shifted)], dim=1)  # (B, C_out, H/2, W/2)
        return self.bn(out)


def _identity(C: int, stride: int) -> nn.Module:
    return nn.Identity() if stride == 1 else FactorizedReduce(C, C)


OPS: dict[str, OpFactory] = {
    # --- small space (NAO-WS, spec §1a) ---
    "sep_conv_3x3": lambda C, stride: SepConv(C, C, 3, stride),
    "sep_conv_5x5": lambda C, stride: SepConv(C, C, 5, stride),
    "avg_pool_3x3": lambda C, stride: nn.AvgPool2d(3, stride, 1, count_include_pad=False),
    "max_pool_3x3": lambda C, stride: nn.MaxPool2d(3, stride, 1),
    "identity": _identity,
    # --- large space (NAO, NAONet-A, spec §1b) ---
    "conv_1x1": lambda C, stride: ReLUConvBN(C, C, 1, stride, 0),
    "conv_3x3": lambda C, stride: ReLUConvBN(C, C, 3, stride, 1),
    "conv_1x3_3x1": lambda C, stride: FactorizedConv(C, 3, stride),
    "conv_1x7_7x1": lambda C, stride: FactorizedConv(C, 7, stride),
    "max_pool_2x2": lambda C, stride: PadPool2x2("max", stride),
    "max_pool_5x5": lambda C, stride: nn.MaxPool2d(5, stride, 2),
    "avg_pool_2x2_count_pad": lambda C, stride: PadPool2x2("avg", stride),
    "avg_pool_3x3_count_pad": lambda C, stride: nn.AvgPool2d(3, stride, 1),
    "avg_pool_5x5_count_pad": lambda C, stride: nn.AvgPool2d(5, stride, 2),
}

SPACE_OPS: dict[str, tuple[str, ...]] = {
    "cnn": SMALL_OPS,
    "cnn-large": tuple(f"{n}_count_pad" if n.startswith("avg_pool") else n for n in LARGE_OPS),
}


def space_ops(space_name: str) -> tuple[str, ...]:
    """The ``OPS`` keys of a CNN space, indexed by its op ids."""
    if space_name not in SPACE_OPS:
        raise UnknownName("CNN op set", space_name, sorted(SPACE_OPS))
    return SPACE_OPS[space_name]


class MaybeCalibrateSize(nn.Module):
    """Bring a cell's two inputs to C channels at the same resolution (spec §4.1 step 1).

    * h0 (two cells back) is ReLU -> FactorizedReduce'd when the previous cell reduced, else
      ReLU -> 1×1 -> BN'd when its width differs from C;
    * h1 (previous cell) is ReLU -> 1×1 -> BN'd when its width differs from C.
    """

    def __init__(self, C_pp: int, C_p: int, C: int, reduction_prev: bool):
        super().__init__()
        self.pre0: nn.Module
        if reduction_prev:
            self.pre0 = nn.Sequential(nn.ReLU(), FactorizedReduce(C_pp, C))
        elif C_pp != C:
            self.pre0 = ReLUConvBN(C_pp, C, 1)
        else:
            self.pre0 = nn.Identity()
        self.pre1 = ReLUConvBN(C_p, C, 1) if C_p != C else nn.Identity()

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.pre0(s0), self.pre1(s1)


def drop_path_keep_prob(
    keep_prob: float, layer: int, num_layers: int, progress: float | torch.Tensor
) -> float | torch.Tensor:
    """NAO_V1's scheduled keep probability of cell ``layer`` (0-based) of ``num_layers``.

    p_l = 1 - (l + 1) / L * (1 - p) grows the drop rate with depth; p_{l,t} = 1 - progress *
    (1 - p_l) ramps it up over training. NAO_V1 uses progress = (t + 1) / T for global step t
    of T (spec §4.1); progress = 1 gives the full-strength, end-of-training value. Progress
    is clamped to [0, 1] (TF NASNet takes min(1, t / T)), so a loop that runs past its planned
    step count keeps the final rate instead of failing. A 0-dim tensor ``progress`` (a CUDA
    graph's input, ``nao_core.engine.graphs``) gives a tensor, computed on its device.
    """
    if isinstance(progress, torch.Tensor):
        progress = progress.clamp(0.0, 1.0)
    else:
        progress = min(max(progress, 0.0), 1.0)
    layer_keep = 1.0 - (layer + 1) / num_layers * (1.0 - keep_prob)
    return 1.0 - progress * (1.0 - layer_keep)


def drop_path(
    x: torch.Tensor, keep_prob: float | torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Zero whole samples with probability 1 - keep_prob and rescale the rest by 1/keep_prob.

    The (B, 1, 1, 1) mask is drawn in one call on x's device (NAO_V1 built it on the CPU and
    copied it over). Callers decide when it applies (training only, not on identity). A tensor
    ``keep_prob`` (0-dim, on x's device) is never compared on the host, so a CUDA graph can
    capture the draw; a keep probability of 1 then draws an all-ones mask.
    """
    if not isinstance(keep_prob, torch.Tensor) and keep_prob >= 1.0:
        return x
    mask = torch.empty((x.shape[0], 1, 1, 1), dtype=x.dtype, device=x.device)
    mask.bernoulli_(keep_prob, generator=generator)
    return x * (mask / keep_prob)


class DropPath(nn.Module):
    """Module form of ``drop_path``: a no-op in eval mode; the keep probability is per call."""

    def forward(self, x: torch.Tensor, keep_prob: float) -> torch.Tensor:
        if not self.training:
            return x
        return drop_path(x, keep_prob)
