"""The stand-alone CNN built from one architecture, for final training (nao-spec §6.1).

This is NAO_V1's ``NASNetworkCIFAR`` generalised to any input size, channel count and class
count (CIFAR-10, CIFAR-100, a 1-channel 8×8 digits set):

* stem: conv 3×3 (in_channels -> 3C, no bias) -> BN, no ReLU; h0 = h1 = stem output;
* 3N + 2 cells, reduction cells at {N, 2N + 1}, the width C doubling at each;
* a cell calibrates its inputs (``MaybeCalibrateSize``), computes its 5 nodes and outputs the
  concatenation of its loose ends (k·C channels; unused h0/h1 of a reduction cell are
  FactorizedReduce'd first);
* head: global average pool -> Dropout(1 - keep_prob) -> Linear; Kaiming-normal init for every
  weight with two or more dims.

Decisions on the open questions of spec §9 (item 2, 3), kept identical in the supernet:

* **Drop path is not applied to identity branches** (stride-2 FactorizedReduce identities
  included): the TF originals and NASNet skip it, the PT HEAD applies it (spec §8 item 9).
  Elsewhere the schedule is NAO_V1's (``drop_path_keep_prob``); ``forward`` takes the training
  progress t/T as an argument instead of reading a global step.
* **Aux head after cell 2N + 1** (the second reduction cell, 8×8 on CIFAR) as in PT, not one
  cell later as in TF. Its 5×5/3 pool and 2×2 conv need a map of at least 8×8; on smaller maps
  (e.g. 8×8 input images, which are 2×2 there) the head is not built, ``aux_head`` is None and
  ``forward`` returns no aux logits. On larger maps the 768-channel output is average-pooled, so
  the head works at any size and is exactly the CIFAR head at 8×8.
* **No ReLU before the global pool**, as in PT (TF has one; spec §8 item 11).

``count_parameters`` and ``count_flops`` measure a built network for reports and for
parameter-proportional sampling (NAO-V2, spec §4.3).
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Sequence

import torch
from torch import nn

from nao_core.errors import InvalidConfig
from nao_core.models.ops import (
    OPS,
    FactorizedReduce,
    MaybeCalibrateSize,
    drop_path,
    drop_path_keep_prob,
    space_ops,
)
from nao_core.search_space import create_search_space
from nao_core.search_space.cnn import Cell as CellArch
from nao_core.search_space.cnn import CnnArch, loose_ends

logger = logging.getLogger(__name__)

AUX_MIN_SIZE = 8  # avg pool 5 / stride 3 must leave a 2×2 map for the 2×2 conv


class Cell(nn.Module):
    """One compiled cell: calibrate (h0, h1), compute h2..h6, concatenate the loose ends."""

    def __init__(
        self,
        cell: CellArch,
        op_keys: Sequence[str],
        C_pp: int,
        C_p: int,
        C: int,
        reduction: bool,
        reduction_prev: bool,
    ):
        super().__init__()
        self.calibrate = MaybeCalibrateSize(C_pp, C_p, C, reduction_prev)
        self.branches = nn.ModuleList()
        self.inputs: list[int] = []  # input state of every branch: x, y of node 0, then node 1...
        self.droppable: list[bool] = []
        for node in cell:
            for inp, op in node.branches():
                # only h0/h1 are at the input resolution of a reduction cell (spec §1a)
                stride = 2 if reduction and inp < 2 else 1
                self.branches.append(OPS[op_keys[op]](C, stride))
                self.inputs.append(inp)
                self.droppable.append(op_keys[op] != "identity")
        self.loose = loose_ends(cell)
        self.reduce_loose = nn.ModuleDict(
            {str(s): FactorizedReduce(C, C) for s in self.loose if reduction and s < 2}
        )
        self.out_channels = len(self.loose) * C

    def forward(
        self, s0: torch.Tensor, s1: torch.Tensor, keep_prob: float | torch.Tensor | None
    ) -> torch.Tensor:
        """Args: s0, s1: outputs of the cells two back and one back; keep_prob: drop path's
        keep probability, None for no drop path."""
        states = list(self.calibrate(s0, s1))  # 2 x (B, C, H, W)
        for j in range(0, len(self.branches), 2):
            states.append(
                self._branch(j, states, keep_prob) + self._branch(j + 1, states, keep_prob)
            )
        outs = [
            self.reduce_loose[str(s)](states[s]) if str(s) in self.reduce_loose else states[s]
            for s in self.loose
        ]
        return torch.cat(outs, dim=1)  # (B, k·C, H', W')

    def _branch(
        self, j: int, states: list[torch.Tensor], keep_prob: float | torch.Tensor | None
    ) -> torch.Tensor:
        out = self.branches[j](states[self.inputs[j]])
        if self.training and self.droppable[j] and keep_prob is not None:
            out = drop_path(out, keep_prob)
        return out


class AuxHead(nn.Module):
    """Auxiliary classifier (NASNet CIFAR head): ReLU -> avgpool 5/3 -> 1×1 128 -> BN -> ReLU
    -> 2×2 768 -> BN -> ReLU -> global average -> Linear. Needs a map of at least 8×8."""

    def __init__(self, C_in: int, num_classes: int):
        super().__init__()
        self.features = nn.Sequential(
            nn.ReLU(),
            nn.AvgPool2d(5, stride=3, padding=0, count_include_pad=False),
            nn.Conv2d(C_in, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(),
            nn.Conv2d(128, 768, 2, bias=False),
            nn.BatchNorm2d(768),
            nn.ReLU(),
        )
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)  # (B, 768, h, w); h = w = 1 on an 8×8 input
        return self.classifier(x.mean(dim=(2, 3)))  # (B, num_classes)


def build_aux_head(C_in: int, num_classes: int, feature_size: int) -> AuxHead | None:
    """An ``AuxHead`` if the feature map (``feature_size`` square) is large enough, else None."""
    if feature_size < AUX_MIN_SIZE:
        logger.info("aux_head=skipped feature_size=%d min_size=%d", feature_size, AUX_MIN_SIZE)
        return None
    return AuxHead(C_in, num_classes)


def check_network_args(
    layers: int, channels: int, num_classes: int, in_channels: int, image_size: int, **probs: float
) -> None:
    """Raise InvalidConfig for sizes < 1 or probabilities outside (0, 1]."""
    sizes = {
        "layers": layers,
        "channels": channels,
        "num_classes": num_classes,
        "in_channels": in_channels,
        "image_size": image_size,
    }
    for key, value in sizes.items():
        if value < 1:
            raise InvalidConfig(f"{key}: must be >= 1, got {value}")
    for key, p in probs.items():
        if not 0.0 < p <= 1.0:
            raise InvalidConfig(f"{key}: must be in (0, 1], got {p}")


class CnnNetwork(nn.Module):
    """NAO_V1 ``NASNetworkCIFAR``: a stack of compiled cells for one architecture.

    Args:
        arch: the normal and reduction cells.
        space: name of the space ``arch`` belongs to ("cnn" or "cnn-large"); it fixes what
            the op ids mean.
        layers: N, cells per stage; the net has 3N + 2 cells.
        channels: C, the width of the first stage.
        num_classes, in_channels, image_size: the dataset's shape (square images).
        keep_prob: 1 - dropout before the classifier.
        drop_path_keep_prob: p of the drop-path schedule (1 disables drop path).
        use_aux_head: build the auxiliary classifier (see module docstring for small maps).
        device, dtype: where and in what precision to create the parameters.
    """

    def __init__(
        self,
        arch: CnnArch,
        space: str = "cnn",
        *,
        layers: int = 6,
        channels: int = 36,
        num_classes: int = 10,
        in_channels: int = 3,
        image_size: int = 32,
        keep_prob: float = 1.0,
        drop_path_keep_prob: float = 1.0,
        use_aux_head: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ):
        super().__init__()
        check_network_args(
            layers,
            channels,
            num_classes,
            in_channels,
            image_size,
            keep_prob=keep_prob,
            drop_path_keep_prob=drop_path_keep_prob,
        )
        create_search_space(space).validate(arch)
        self.arch, self.space = arch, space
        self.drop_path_keep_prob = drop_path_keep_prob
        self.aux_index = 2 * layers + 1
        with torch.device(device) if device is not None else contextlib.nullcontext():
            self._build(arch, space_ops(space), layers, channels, in_channels, image_size)
            C_last = self.cells[-1].out_channels
            self.aux_head: AuxHead | None = None
            if use_aux_head:
                self.aux_head = build_aux_head(
                    self.cells[self.aux_index].out_channels, num_classes, self.aux_size
                )
            self.dropout = nn.Dropout(1.0 - keep_prob)
            self.classifier = nn.Linear(C_last, num_classes)
            init_weights(self)
        if dtype is not None:
            self.to(dtype)

    def _build(
        self,
        arch: CnnArch,
        op_keys: Sequence[str],
        layers: int,
        C: int,
        in_channels: int,
        image_size: int,
    ) -> None:
        C_stem = 3 * C
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, C_stem, 3, padding=1, bias=False), nn.BatchNorm2d(C_stem)
        )
        self.cells = nn.ModuleList()
        C_pp, C_p, C_cur, size = C_stem, C_stem, C, image_size
        reduction_prev = False
        for i in range(3 * layers + 2):
            reduction = i in (layers, 2 * layers + 1)
            if reduction:
                C_cur, size = 2 * C_cur, math.ceil(size / 2)
            cell_arch = arch.reduction if reduction else arch.normal
            cell = Cell(cell_arch, op_keys, C_pp, C_p, C_cur, reduction, reduction_prev)
            self.cells.append(cell)
            C_pp, C_p, reduction_prev = C_p, cell.out_channels, reduction
            if i == self.aux_index:
                self.aux_size = size

    def forward(
        self, x: torch.Tensor, progress: float | torch.Tensor = 1.0
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Classify a batch.

        Args:
            x: images (B, in_channels, H, W).
            progress: fraction of training done, t / T, for the drop-path schedule (ignored in
                eval mode); a 0-dim device tensor inside a CUDA graph.

        Returns:
            Logits (B, num_classes) and aux logits (B, num_classes), the latter only in
            training mode with an aux head, else None.
        """
        s0 = s1 = self.stem(x)  # (B, 3C, H, W)
        aux = None
        num_cells = len(self.cells)
        drop = self.training and self.drop_path_keep_prob < 1.0
        for i, cell in enumerate(self.cells):
            keep = None
            if drop:
                keep = drop_path_keep_prob(self.drop_path_keep_prob, i, num_cells, progress)
            s0, s1 = s1, cell(s0, s1, keep)
            if i == self.aux_index and self.aux_head is not None and self.training:
                aux = self.aux_head(s1)
        pooled = s1.mean(dim=(2, 3))  # (B, k·4C)
        return self.classifier(self.dropout(pooled)), aux


def init_weights(module: nn.Module) -> None:
    """Kaiming-normal init of every weight with >= 2 dims (NAO_V1); BN stays at 1 / 0."""
    for param in module.parameters():
        if param.dim() >= 2:
            nn.init.kaiming_normal_(param)


def count_parameters(module: nn.Module, exclude_aux_head: bool = True) -> int:
    """Number of parameters; by default without the aux head, which inference drops (NAO_V1)."""
    return sum(
        p.numel()
        for name, p in module.named_parameters()
        if not (exclude_aux_head and name.startswith("aux_head."))
    )


def count_flops(model: nn.Module, input_shape: Sequence[int], *args: object) -> int:
    """Multiply-adds of the conv and linear layers for one input, measured with forward hooks.

    The model runs once in eval mode (so no aux head, no dropout) on a zero input of shape
    (1, *input_shape) on the model's device; ``args`` follow the input (e.g. the architecture
    of a supernet, whose functional convs are not counted). The training mode is restored.
    """
    total = 0

    def conv_hook(m: nn.Conv2d, _inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        per_output = (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
        total += out[0].numel() * per_output

    def linear_hook(m: nn.Linear, _inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        total += out[0].numel() * m.in_features

    handles = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    param = next(model.parameters())
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, *input_shape, device=param.device, dtype=param.dtype), *args)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return total
