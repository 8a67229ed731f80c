"""The weight-sharing CNN supernet of NAO-WS, PyTorch V1 recipe (nao-spec §4.1).

One network holds the weights of every architecture of the "cnn" space; ``forward(x, arch,
bn_batch_stats)`` runs exactly the sampled one. ENAS-style sharing: a weight is selected by
(cell, node, slot x|y, op, input index).

* Stem conv 3×3 -> 3C -> BN; 3N + 2 cells (N = 3, C = 20: 11 cells), reductions at {N, 2N + 1}
  with the width doubling; every cell outputs C channels.
* A cell calibrates (h0, h1) like the stand-alone net, then node j's two slots each own a
  separable conv 3×3 and 5×5 per possible input (j + 2 of them), with per-input BN affine and
  BN running statistics shared across inputs (``WSBN``). Pools have no weights. In reduction
  cells inputs h0/h1 are strided and the identity on them is a FactorizedReduce per input 0/1
  (per slot: NAO_V1's y slot re-used the x slot's, spec §8 item 6; we do not copy that).
* Output: the loose ends (unused h0/h1 of a reduction cell FactorizedReduce'd first) are
  concatenated, then ReLU -> 1×1 conv -> BN back to C, the conv weight being the concatenation
  of per-state C×C slices for exactly the concatenated states.
* Head: global average pool -> Dropout -> Linear (no ReLU before the pool); optional aux head
  after cell 2N + 1, as in ``nao_core.models.cnn``.

Speed (spec §9): each per-input weight bank is one stacked tensor indexed by the input id (a
depthwise bank is (num_inputs, C, 1, k, k)), not a ParameterList, and the combine weight is
built with ``index_select`` + reshape; the index tensors are cached on the device so a forward
pass does no host-to-device copy.

Decisions (spec §9 open questions 2, 5; spec §8 item 8):

* **BN when scoring**: with ``bn_batch_stats=True`` *every* BN of the supernet (stem, cell
  calibration, WSBN, node and cell FactorizedReduces, combine) normalises with the batch's
  statistics, and in eval mode it does not update the running statistics, so scoring leaves the
  supernet unchanged. NAO_V1 did this for all BNs but the stem and the cell-level FRs, and
  updated running statistics while scoring.
* **Drop path is not applied to identity branches** (TF NAO-WS / NASNet convention); the keep
  probability follows NAO_V1's per-layer, per-step schedule with the progress t/T passed in.
* **Scoring** should run every architecture on the same fixed validation batches (spec §9);
  the scorer lives elsewhere. The forward pass is deterministic in eval mode, so it supports it.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from nao_core.models.cnn import AuxHead, build_aux_head, check_network_args
from nao_core.models.ops import drop_path, drop_path_keep_prob
from nao_core.search_space import create_search_space
from nao_core.search_space.cnn import SMALL_OPS, CnnArch, loose_ends
from nao_core.search_space.cnn import Cell as CellArch

SEP_CONV_3X3, SEP_CONV_5X5, AVG_POOL_3X3, MAX_POOL_3X3, IDENTITY = (
    SMALL_OPS.index(name)
    for name in ("sep_conv_3x3", "sep_conv_5x5", "avg_pool_3x3", "max_pool_3x3", "identity")
)


def _kaiming_rows(bank: torch.Tensor) -> None:
    # Each row is one ordinary conv weight; initialise it with that conv's own fan-in.
    for row in bank:
        nn.init.kaiming_normal_(row)


class WSBN(nn.Module):
    """BatchNorm with running statistics shared by all inputs and one (γ, β) per input."""

    def __init__(self, num_inputs: int, C: int, momentum: float = 0.1, eps: float = 1e-5):
        super().__init__()
        self.momentum, self.eps = momentum, eps
        self.weight = nn.Parameter(torch.ones(num_inputs, C))
        self.bias = nn.Parameter(torch.zeros(num_inputs, C))
        self.register_buffer("running_mean", torch.zeros(C))
        self.register_buffer("running_var", torch.ones(C))

    def forward(self, x: torch.Tensor, index: int, batch_stats: bool) -> torch.Tensor:
        use_batch = self.training or batch_stats
        # Running statistics are updated in training only: scoring must not change the net.
        track = self.training or not batch_stats
        return F.batch_norm(
            x,
            self.running_mean if track else None,
            self.running_var if track else None,
            self.weight[index],
            self.bias[index],
            training=use_batch,
            momentum=self.momentum,
            eps=self.eps,
        )


class WSSepConv(nn.Module):
    """Separable conv applied twice, with one weight set per input index (banks of rows)."""

    def __init__(self, num_inputs: int, C: int, kernel_size: int):
        super().__init__()
        self.C, self.kernel_size = C, kernel_size
        k = kernel_size
        self.depthwise_1 = nn.Parameter(torch.empty(num_inputs, C, 1, k, k))
        self.pointwise_1 = nn.Parameter(torch.empty(num_inputs, C, C, 1, 1))
        self.bn_1 = WSBN(num_inputs, C)
        self.depthwise_2 = nn.Parameter(torch.empty(num_inputs, C, 1, k, k))
        self.pointwise_2 = nn.Parameter(torch.empty(num_inputs, C, C, 1, 1))
        self.bn_2 = WSBN(num_inputs, C)
        for bank in (self.depthwise_1, self.pointwise_1, self.depthwise_2, self.pointwise_2):
            _kaiming_rows(bank.data)

    def forward(self, x: torch.Tensor, index: int, stride: int, batch_stats: bool) -> torch.Tensor:
        pad = self.kernel_size // 2
        x = F.conv2d(F.relu(x), self.depthwise_1[index], None, stride, pad, groups=self.C)
        x = self.bn_1(F.conv2d(x, self.pointwise_1[index]), index, batch_stats)
        x = F.conv2d(F.relu(x), self.depthwise_2[index], None, 1, pad, groups=self.C)
        return self.bn_2(F.conv2d(x, self.pointwise_2[index]), index, batch_stats)


class WSFactorizedReduce(nn.Module):
    """FactorizedReduce (see ``nao_core.models.ops``) with one weight set per input index."""

    def __init__(self, num_inputs: int, C_in: int, C_out: int):
        super().__init__()
        self.conv_1 = nn.Parameter(torch.empty(num_inputs, C_out // 2, C_in, 1, 1))
        self.conv_2 = nn.Parameter(torch.empty(num_inputs, C_out - C_out // 2, C_in, 1, 1))
        self.bn = WSBN(num_inputs, C_out)
        _kaiming_rows(self.conv_1.data)
        _kaiming_rows(self.conv_2.data)

    def forward(self, x: torch.Tensor, index: int, batch_stats: bool) -> torch.Tensor:
        shifted = F.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:]  # (B, C_in, H, W), one pixel right/down
        out = torch.cat(
            [
                F.conv2d(x, self.conv_1[index], stride=2),
                F.conv2d(shifted, self.conv_2[index], stride=2),
            ],
            dim=1,
        )  # (B, C_out, H/2, W/2)
        return self.bn(out, index, batch_stats)


class WSReLUConvBN(nn.Module):
    """ReLU -> 1×1 conv -> BN over a concatenation of states, one C_in slice per state id.

    With ``num_states = 1`` it is a plain ReLU -> 1×1 -> BN (used for calibration).
    """

    def __init__(self, num_states: int, C_in: int, C_out: int):
        super().__init__()
        self.C_in, self.C_out = C_in, C_out
        self.weight = nn.Parameter(torch.empty(num_states, C_out, C_in))
        self.bn = WSBN(1, C_out)
        _kaiming_rows(self.weight.data)
        self._index_cache: dict[tuple[tuple[int, ...], torch.device], torch.Tensor] = {}

    def _index(self, ids: tuple[int, ...], device: torch.device) -> torch.Tensor | None:
        key = (ids, device)
        if key not in self._index_cache:
            if device.type == "cuda" and torch.cuda.is_current_stream_capturing():
                return None  # a host-to-device copy cannot be captured in a CUDA graph
            self._index_cache[key] = torch.tensor(ids, dtype=torch.long, device=device)
        return self._index_cache[key]

    def forward(self, x: torch.Tensor, ids: Sequence[int], batch_stats: bool) -> torch.Tensor:
        """Args: x: (B, len(ids)·C_in, H, W), the states ``ids`` concatenated in that order."""
        if len(ids) == 1:
            w = self.weight[ids[0]]  # (C_out, C_in)
        elif (index := self._index(tuple(ids), self.weight.device)) is not None:
            w = self.weight.index_select(0, index)
            w = w.permute(1, 0, 2).reshape(self.C_out, len(ids) * self.C_in)  # (C_out, k·C_in)
        else:  # the same matrix, one slice per state
            w = torch.cat([self.weight[i] for i in ids], dim=1)
        out = F.conv2d(F.relu(x), w[:, :, None, None])  # (B, C_out, H, W)
        return self.bn(out, 0, batch_stats)


class Slot(nn.Module):
    """Every candidate op of one branch slot (x or y) of one node, for every input index."""

    def __init__(self, num_inputs: int, C: int, reduction: bool):
        super().__init__()
        self.reduction = reduction
        self.sep_conv_3x3 = WSSepConv(num_inputs, C, 3)
        self.sep_conv_5x5 = WSSepConv(num_inputs, C, 5)
        # identity on h0/h1 of a reduction cell halves the resolution
        self.identity_reduce = WSFactorizedReduce(2, C, C) if reduction else None

    def forward(self, x: torch.Tensor, op: int, index: int, batch_stats: bool) -> torch.Tensor:
        stride = 2 if self.reduction and index < 2 else 1
        if op == SEP_CONV_3X3:
            return self.sep_conv_3x3(x, index, stride, batch_stats)
        if op == SEP_CONV_5X5:
            return self.sep_conv_5x5(x, index, stride, batch_stats)
        if op == AVG_POOL_3X3:
            return F.avg_pool2d(x, 3, stride, 1, count_include_pad=False)
        if op == MAX_POOL_3X3:
            return F.max_pool2d(x, 3, stride, 1)
        assert op == IDENTITY, op
        if stride == 1:
            return x
        assert self.identity_reduce is not None
        return self.identity_reduce(x, index, batch_stats)


class SupernetCell(nn.Module):
    """One weight-sharing cell: C channels in (after calibration), C channels out."""

    def __init__(
        self, num_nodes: int, C_pp: int, C_p: int, C: int, reduction: bool, reduction_prev: bool
    ):
        super().__init__()
        self.reduction, self.reduction_prev = reduction, reduction_prev
        self.pre0: WSFactorizedReduce | WSReLUConvBN | None = None
        if reduction_prev:
            self.pre0 = WSFactorizedReduce(1, C_pp, C)
        elif C_pp != C:
            self.pre0 = WSReLUConvBN(1, C_pp, C)
        self.pre1 = WSReLUConvBN(1, C_p, C) if C_p != C else None
        self.slots = nn.ModuleList(
            Slot(j + 2, C, reduction) for j in range(num_nodes) for _slot in "xy"
        )
        # unused h0/h1 of a reduction cell still have the input resolution
        self.reduce_loose = (
            nn.ModuleList(WSFactorizedReduce(1, C, C) for _ in range(2)) if reduction else None
        )
        self.combine = WSReLUConvBN(num_nodes + 2, C, C)

    def _calibrate(
        self, s0: torch.Tensor, s1: torch.Tensor, batch_stats: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(self.pre0, WSFactorizedReduce):
            s0 = self.pre0(F.relu(s0), 0, batch_stats)
        elif self.pre0 is not None:
            s0 = self.pre0(s0, (0,), batch_stats)
        if self.pre1 is not None:
            s1 = self.pre1(s1, (0,), batch_stats)
        return s0, s1

    def forward(
        self,
        s0: torch.Tensor,
        s1: torch.Tensor,
        cell: CellArch,
        keep_prob: float | torch.Tensor | None,
        batch_stats: bool,
    ) -> torch.Tensor:
        states = list(self._calibrate(s0, s1, batch_stats))  # 2 x (B, C, H, W)
        for j, node in enumerate(cell):
            total = None
            for slot, (inp, op) in enumerate(node.branches()):
                out = self.slots[2 * j + slot](states[inp], op, inp, batch_stats)
                if self.training and op != IDENTITY and keep_prob is not None:
                    out = drop_path(out, keep_prob)
                total = out if total is None else total + out
            assert total is not None
            states.append(total)
        loose = loose_ends(cell)
        outs = [
            self.reduce_loose[s](states[s], 0, batch_stats)
            if self.reduce_loose is not None and s < 2
            else states[s]
            for s in loose
        ]
        return self.combine(torch.cat(outs, dim=1), loose, batch_stats)  # (B, C, H', W')


class CnnSupernet(nn.Module):
    """NAO_V1 ``NASWSNetworkCIFAR`` over the "cnn" space.

    Args:
        layers: N, cells per stage; 3N + 2 cells.
        channels: C, the width of the first stage.
        num_classes, in_channels, image_size: the dataset's shape (square images).
        keep_prob: 1 - dropout before the classifier (1.0 in NAO_V1 search).
        drop_path_keep_prob: p of the drop-path schedule (0.9 in NAO_V1 search).
        use_aux_head: build the auxiliary classifier (off in NAO_V1 search).
        device, dtype: where and in what precision to create the parameters.
    """

    def __init__(
        self,
        *,
        layers: int = 3,
        channels: int = 20,
        num_classes: int = 10,
        in_channels: int = 3,
        image_size: int = 32,
        keep_prob: float = 1.0,
        drop_path_keep_prob: float = 0.9,
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
        self.space = create_search_space("cnn")
        self.drop_path_keep_prob = drop_path_keep_prob
        self.aux_index = 2 * layers + 1
        with torch.device(device) if device is not None else contextlib.nullcontext():
            C = channels
            self.stem_conv = nn.Conv2d(in_channels, 3 * C, 3, padding=1, bias=False)
            self.stem_bn = WSBN(1, 3 * C)
            self.cells = nn.ModuleList()
            C_pp, C_p, C_cur, size = 3 * C, 3 * C, C, image_size
            reduction_prev = False
            for i in range(3 * layers + 2):
                reduction = i in (layers, 2 * layers + 1)
                if reduction:
                    C_cur, size = 2 * C_cur, math.ceil(size / 2)
                nodes = self.space.nodes
                self.cells.append(SupernetCell(nodes, C_pp, C_p, C_cur, reduction, reduction_prev))
                C_pp, C_p, reduction_prev = C_p, C_cur, reduction
                if i == self.aux_index:
                    aux_C, aux_size = C_cur, size
            self.aux_head: AuxHead | None = None
            if use_aux_head:
                self.aux_head = build_aux_head(aux_C, num_classes, aux_size)
            self.dropout = nn.Dropout(1.0 - keep_prob)
            self.classifier = nn.Linear(C_cur, num_classes)
            for m in self.modules():  # WS banks initialise themselves, row by row
                if isinstance(m, nn.Conv2d | nn.Linear):
                    nn.init.kaiming_normal_(m.weight)
        if dtype is not None:
            self.to(dtype)

    def forward(
        self,
        x: torch.Tensor,
        arch: CnnArch,
        bn_batch_stats: bool,
        *,
        progress: float | torch.Tensor = 1.0,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Run the sub-network of ``arch``.

        Args:
            x: images (B, in_channels, H, W).
            arch: the sampled architecture of the "cnn" space.
            bn_batch_stats: normalise with batch statistics in every BN even in eval mode (set
                it when scoring architectures; training mode always uses batch statistics).
            progress: fraction of training done, t / T, for the drop-path schedule; a 0-dim
                device tensor inside a CUDA graph.

        Returns:
            Logits (B, num_classes) and aux logits, the latter only in training mode with an
            aux head, else None.
        """
        self.space.validate(arch)
        s0 = s1 = self.stem_bn(self.stem_conv(x), 0, bn_batch_stats)  # (B, 3C, H, W)
        aux = None
        num_cells = len(self.cells)
        drop = self.training and self.drop_path_keep_prob < 1.0
        for i, cell in enumerate(self.cells):
            keep = None
            if drop:
                keep = drop_path_keep_prob(self.drop_path_keep_prob, i, num_cells, progress)
            cell_arch = arch.reduction if cell.reduction else arch.normal
            s0, s1 = s1, cell(s0, s1, cell_arch, keep, bn_batch_stats)
            if i == self.aux_index and self.aux_head is not None and self.training:
                aux = self.aux_head(s1)
        pooled = s1.mean(dim=(2, 3))  # (B, 4C)
        return self.classifier(self.dropout(pooled)), aux
