"""The stand-alone recurrent language model of one NAO cell, for final training (nao-spec §6.4).

A one-layer RNN LM (``NAO-WS/rnn/model.py: RNNModel``, the DARTS/AWD-LSTM recipe) around the
highway cell of spec §1c, with x_t the embedded word and h_{t-1} the previous output:

* s0: [c0 | g0] = [x_t ; h_{t-1}] · W0 (W0: (ninp + nhid) × 2·nhid),
  s0 = h_{t-1} + σ(c0) ⊙ (tanh(g0) − h_{t-1});
* node i = 1..11 reads s_p and applies activation a (NAO-WS mapping, ``ACTIVATIONS``):
  [c | g] = s_p · W_i, s_i = s_p + σ(c) ⊙ (act(g) − s_p);
* h_t = mean(s1..s11); logits = decoder(h_t), the decoder tied to the embedding (ninp = nhid).

Regularisation (AWD-LSTM): word-level dropout ``embedding`` (dropoute, whole rows of the
embedding matrix), locked dropout ``input`` (dropouti) on the embeddings and ``output`` on the
cell outputs, and inside the cell variational masks, drawn once per forward call and fixed over
time: ``x`` (dropoutx) on x_t and ``hidden`` (dropouth) on h_{t-1} and on s_p before every
matmul. The highway terms use the undropped states, as in DARTS.

Speed: x_t · W0[:ninp] is one matmul for all timesteps; nodes are grouped by predecessor so
that all nodes reading the same state share one matmul (``build_groups``); no host sync happens
inside the time loop.

Decision: every cell weight (W0, W_i) is initialised U(−0.04, 0.04) like the embedding (the
DARTS recurrent-cell convention); the decoder bias starts at zero.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nao_core.config import RnnModelConfig
from nao_core.errors import InvalidArchitecture, InvalidConfig
from nao_core.search_space.rnn import ACTIVATIONS, RnnArch

INIT_RANGE = 0.04
ACTIVATION_FNS: dict[str, Callable[[Tensor], Tensor]] = {
    "tanh": torch.tanh,
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
    "identity": lambda x: x,
}
ACT_FNS = tuple(ACTIVATION_FNS[name] for name in ACTIVATIONS)  # indexed by activation id

# (predecessor, node ids reading it, weight (nhid, k·2·nhid) of those nodes side by side)
Group = tuple[int, tuple[int, ...], Tensor]


@dataclass(frozen=True)
class RnnDropouts:
    """Dropout rates of the RNN LM; the defaults are the paper's PTB values (spec §6.4)."""

    output: float = 0.75  # locked, on the cell outputs before the decoder
    hidden: float = 0.25  # dropouth: variational, on h_{t-1} and s_p inside the cell
    x: float = 0.75  # dropoutx: variational, on x_t inside the cell
    input: float = 0.2  # dropouti: locked, on the embeddings
    embedding: float = 0.0  # dropoute: whole words of the embedding matrix

    def __post_init__(self) -> None:
        for name in ("output", "hidden", "x", "input", "embedding"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise InvalidConfig(f"dropouts.{name}: must be in [0, 1)")


def dropout_mask(shape: Sequence[int], p: float, like: Tensor) -> Tensor:
    """A Bernoulli(1 − p) mask scaled by 1 / (1 − p), on ``like``'s device and dtype."""
    return like.new_empty(tuple(shape)).bernoulli_(1.0 - p) / (1.0 - p)


def locked_dropout(x: Tensor, p: float, training: bool) -> Tensor:
    """Dropout of x (T, B, H) with one (1, B, H) mask shared by all timesteps."""
    if not training or p == 0.0:
        return x
    return x * dropout_mask((1, *x.shape[1:]), p, x)


def embedded_dropout(embed: nn.Embedding, tokens: Tensor, p: float, training: bool) -> Tensor:
    """Embed tokens (T, B) -> (T, B, E), dropping whole words (rows) with probability p."""
    weight = embed.weight
    if training and p > 0.0:
        weight = weight * dropout_mask((weight.shape[0], 1), p, weight)
    return F.embedding(tokens, weight)


def build_groups(
    nodes: Sequence[tuple[int, int]], weight_of: Callable[[int], Tensor]
) -> list[Group]:
    """Group the nodes (p_i, a_i) of a cell by predecessor, in an order that respects the DAG.

    Nodes reading the same state are computed with one matmul against their weights
    concatenated along the output dimension. A group is scheduled once its predecessor is
    known; processing predecessors in increasing index order is always valid (p_i < i).

    Args:
        nodes: (predecessor, activation) of s1..sN.
        weight_of: Node index i (1-based) -> its (nhid, 2·nhid) weight.

    Returns:
        ``Group``s (pred, node ids, (nhid, k·2·nhid) weight) in execution order.

    Raises:
        InvalidArchitecture: If a node reads a later state or has an unknown activation.
    """
    by_pred: dict[int, list[int]] = {}
    for i, (p, a) in enumerate(nodes, start=1):
        if not (0 <= p < i and 0 <= a < len(ACT_FNS)):
            raise InvalidArchitecture(f"s{i}: predecessor {p} / activation {a} out of range")
        by_pred.setdefault(p, []).append(i)
    return [
        (p, tuple(ids), torch.cat([weight_of(i) for i in ids], dim=1))
        for p, ids in sorted(by_pred.items())
    ]


def run_cell(
    x_proj: Tensor,
    h: Tensor,
    w0h: Tensor,
    groups: Sequence[Group],
    acts: Sequence[int],
    h_mask: Tensor | None,
    average_from: int,
) -> tuple[Tensor, Tensor]:
    """Unroll the highway cell over time.

    Args:
        x_proj: (T, B, 2H) the dropped x_t · W0[:ninp] for every timestep.
        h: (B, H) initial hidden state.
        w0h: (H, 2H) the h part of W0.
        groups: From ``build_groups``.
        acts: Activation id of s1..sN (index i − 1 for node i).
        h_mask: (B, H) dropouth mask, or None.
        average_from: First state in the output mean (1: s1..sN; 0: s0..sN).

    Returns:
        outputs (T, B, H) — h_t before output dropout — and the last h_t (B, H).
    """
    T, B, _ = x_proj.shape
    H = h.shape[1]
    outs = []
    for t in range(T):
        hd = h if h_mask is None else h * h_mask
        c0, g0 = (x_proj[t] + hd @ w0h).chunk(2, dim=-1)  # (B, H) each
        states: list[Tensor] = [h + torch.sigmoid(c0) * (torch.tanh(g0) - h)]
        states.extend([h] * len(acts))  # placeholders, all overwritten below
        for pred, ids, weight in groups:
            sp = states[pred]
            sd = sp if h_mask is None else sp * h_mask
            cg = (sd @ weight).view(B, len(ids), 2, H)  # node-major, then [c | g]
            gate = torch.sigmoid(cg[:, :, 0])  # (B, k, H)
            for k, i in enumerate(ids):
                states[i] = sp + gate[:, k] * (ACT_FNS[acts[i - 1]](cg[:, k, 1]) - sp)
        h = torch.stack(states[average_from:]).mean(dim=0)  # (B, H)
        outs.append(h)
    return torch.stack(outs), h


class RnnLanguageModelBase(nn.Module):
    """Embedding, W0, tied decoder and the forward pass shared by ``RnnNetwork`` and the
    weight-sharing ``RnnSupernet``; subclasses say which node weights a cell uses."""

    def __init__(
        self,
        vocab_size: int,
        nhid: int,
        dropouts: RnnDropouts,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ):
        super().__init__()
        if vocab_size <= 0 or nhid <= 0:
            raise InvalidConfig("vocab_size, nhid: must be > 0")
        dd = {"device": device, "dtype": dtype}
        self.vocab_size, self.nhid, self.ninp = vocab_size, nhid, nhid  # tied: ninp = nhid
        self.dropouts = dropouts
        self.encoder = nn.Embedding(vocab_size, nhid, **dd)
        self.w0 = nn.Parameter(torch.empty(2 * nhid, 2 * nhid, **dd))  # rows: [x ; h]
        self.decoder_bias = nn.Parameter(torch.zeros(vocab_size, **dd))
        nn.init.uniform_(self.encoder.weight, -INIT_RANGE, INIT_RANGE)
        nn.init.uniform_(self.w0, -INIT_RANGE, INIT_RANGE)

    def init_hidden(self, batch_size: int) -> Tensor:
        """A zero hidden state (B, H) on the model's device."""
        return self.w0.new_zeros(batch_size, self.nhid)

    def _forward(
        self,
        tokens: Tensor,
        hidden: Tensor | None,
        groups: Sequence[Group],
        acts: Sequence[int],
        average_from: int,
    ) -> tuple[Tensor, Tensor, Tensor]:
        d, training = self.dropouts, self.training
        B = tokens.shape[1]  # tokens: (T, B)
        h = self.init_hidden(B) if hidden is None else hidden
        x = embedded_dropout(self.encoder, tokens, d.embedding, training)  # (T, B, E)
        x = locked_dropout(x, d.input, training)
        h_mask = None
        if training:
            if d.x > 0.0:
                x = x * dropout_mask((1, B, self.ninp), d.x, x)  # same mask every t
            if d.hidden > 0.0:
                h_mask = dropout_mask((B, self.nhid), d.hidden, h)
        x_proj = x @ self.w0[: self.ninp]  # (T, B, 2H): one matmul for all timesteps
        raw, h = run_cell(x_proj, h, self.w0[self.ninp :], groups, acts, h_mask, average_from)
        dropped = locked_dropout(raw, d.output, training)
        logits = F.linear(dropped, self.encoder.weight, self.decoder_bias)  # (T, B, V)
        return logits, h, raw


class RnnNetwork(RnnLanguageModelBase):
    """One-layer RNN language model with the NAO cell ``arch`` (spec §1c, §6.4).

    Args:
        vocab_size: Words in the vocabulary.
        arch: The cell (11 nodes, NAO-WS activation mapping).
        nhid: Embedding = hidden size (tied decoder): 850 for PTB, 700 for WikiText-2.
        dropouts: Dropout rates; the defaults are the paper's PTB values.
        device, dtype: Where and in what type to create the parameters.
    """

    def __init__(
        self,
        vocab_size: int,
        arch: RnnArch,
        nhid: int = 850,
        dropouts: RnnDropouts | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ):
        super().__init__(vocab_size, nhid, dropouts or RnnDropouts(), device, dtype)
        self.arch = arch
        self.ws = nn.Parameter(
            torch.empty(len(arch.nodes), nhid, 2 * nhid, device=device, dtype=dtype)
        )
        nn.init.uniform_(self.ws, -INIT_RANGE, INIT_RANGE)

    def forward(
        self, tokens: Tensor, hidden: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Run the LM over a window.

        Args:
            tokens: (T, B) word ids.
            hidden: (B, H) state carried from the previous window; None for zeros.

        Returns:
            logits (T, B, V), the new hidden state (B, H), and the raw cell outputs (T, B, H)
            before output dropout (for temporal activation regularisation).
        """
        groups = build_groups(self.arch.nodes, lambda i: self.ws[i - 1])
        acts = [a for _, a in self.arch.nodes]
        return self._forward(tokens, hidden, groups, acts, average_from=1)


def rnn_dropouts(model: RnnModelConfig) -> RnnDropouts:
    """The model's ``RnnDropouts`` from the config's AWD-LSTM names."""
    return RnnDropouts(
        output=model.dropout,
        hidden=model.dropouth,
        x=model.dropoutx,
        input=model.dropouti,
        embedding=model.dropoute,
    )
