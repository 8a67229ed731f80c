"""Language modelling with the one training loop: task, BPTT batches, hidden-state carry.

``LanguageModelTask`` follows the ``Task`` protocol of ``tasks.py``. Outputs are ``(logits
(T, B, V), hidden (B, H), raw (T, B, H))`` as ``RnnNetwork`` and ``RnnSupernet`` return. The
training loss is the token cross-entropy plus temporal activation regularisation
β·mean((h_t − h_{t−1})²) on the raw cell outputs (β = 1e-3) and activation regularisation
α·mean(h_t²) (α = 0; AWD-LSTM applies it to the *dropped* outputs, we use the raw ones — the
same at α = 0). Metrics: ``loss`` = mean NLL per token (regularisers excluded) and ``ppl`` =
exp(loss) (spec §4.4, §6.4).

``lm_batches`` cuts a batchified stream (N, B) into truncated-BPTT windows of random length
(spec §6.4 final training: base = bptt w.p. 0.95 else bptt / 2, seq_len = max(5, ⌊N(base,
5)⌋) capped at bptt + 20; spec §4.4 search: bptt w.p. 0.95 else bptt // 2, no jitter), each
with the learning-rate scale seq_len / bptt. ``scale_lr`` applies that scale while feeding
(x, y) pairs to ``engine.loop``, and ``CarryHidden`` is a loop ``forward`` that carries the
hidden state (detached) from one window to the next.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nao_core.engine.metrics import perplexity
from nao_core.errors import InvalidConfig

Batch = tuple[Tensor, Tensor]
MIN_SEQ_LEN = 5
MAX_SEQ_LEN_DELTA = 20  # AWD-LSTM's max_seq_len_delta: seq_len <= bptt + 20


@dataclass(frozen=True)
class LanguageModelTask:
    """Token cross-entropy + TAR (β) + AR (α); metrics ``loss`` (mean NLL) and ``ppl``."""

    tar_beta: float = 1e-3
    ar_alpha: float = 0.0

    def loss(self, outputs: Any, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        logits, _, raw = outputs
        y = batch[1]  # (T, B)
        # fp32 whatever autocast produced: bf16 log-softmax loses the small terms.
        nll = F.cross_entropy(logits.float().flatten(0, 1), y.flatten())
        loss = nll
        if self.ar_alpha > 0:
            loss = loss + self.ar_alpha * raw.float().pow(2).mean()
        if self.tar_beta > 0 and raw.shape[0] > 1:
            loss = loss + self.tar_beta * (raw[1:] - raw[:-1]).float().pow(2).mean()
        n = y.numel()
        # "loss" is the NLL sum: the loop checks it for NaN, and ppl needs it without TAR.
        return loss, {"loss": nll.detach() * n, "tokens": nll.new_tensor(float(n))}

    def eval_sums(self, outputs: Any, batch: Batch) -> dict[str, Tensor]:
        logits = outputs[0] if isinstance(outputs, tuple) else outputs
        y = batch[1]
        nll = F.cross_entropy(logits.float().flatten(0, 1), y.flatten(), reduction="sum")
        return {"loss": nll, "tokens": nll.new_tensor(float(y.numel()))}

    def summarize(self, sums: Mapping[str, float]) -> dict[str, float]:
        # The loop's ``count`` is windows x T, not tokens: divide by the token sum instead.
        mean_nll = sums.get("loss", 0.0) / max(sums.get("tokens", 0.0), 1.0)
        return {"loss": mean_nll, "ppl": perplexity(mean_nll)}


class LmBatch(NamedTuple):
    x: Tensor  # (seq_len, B) inputs
    y: Tensor  # (seq_len, B) next-word targets
    seq_len: int
    lr_scale: float  # seq_len / bptt


def draw_seq_len(bptt: int, generator: torch.Generator, search: bool = False) -> int:
    """One random BPTT length (spec §6.4, or §4.4 with ``search``); host-side, no device sync."""
    short = float(torch.rand((), generator=generator)) >= 0.95
    if search:
        return bptt // 2 if short else bptt
    base = bptt / 2 if short else float(bptt)
    jittered = int(base + 5.0 * float(torch.randn((), generator=generator)))
    return min(max(MIN_SEQ_LEN, jittered), bptt + MAX_SEQ_LEN_DELTA)


def lm_batches(
    grid: Tensor,
    bptt: int,
    generator: torch.Generator | None = None,
    random_length: bool = True,
    search: bool = False,
) -> Iterator[LmBatch]:
    """Truncated-BPTT windows over a batchified stream.

    Args:
        grid: (N, B) token ids, one contiguous stream per column (``data.corpus.batchify``).
        bptt: Base window length (35).
        generator: CPU generator for the random lengths; required when ``random_length``.
        random_length: Draw each length with ``draw_seq_len``; else every window is ``bptt``.
        search: Use the search recipe (bptt or bptt // 2) instead of the final-training one.

    Yields:
        ``LmBatch``es covering rows 0..N−1; the last window is cut at the end of the stream,
        and ``lr_scale`` uses the length actually yielded.
    """
    if bptt <= 0:
        raise InvalidConfig("bptt: must be > 0")
    if random_length and generator is None:
        raise InvalidConfig("lm_batches: random_length needs a generator")
    n, i = grid.shape[0], 0
    while i < n - 1:
        seq_len = bptt
        if random_length:
            assert generator is not None  # checked above
            seq_len = draw_seq_len(bptt, generator, search)
        seq_len = min(seq_len, n - 1 - i)
        yield LmBatch(grid[i : i + seq_len], grid[i + 1 : i + 1 + seq_len], seq_len, seq_len / bptt)
        i += seq_len


def scale_lr(batches: Iterable[LmBatch], optimizer: torch.optim.Optimizer) -> Iterator[Batch]:
    """Yield (x, y) for ``engine.loop`` while setting each group's lr to base · lr_scale.

    The loop takes the next batch just before its step, so the scale set here is the one the
    step uses; the base learning rates are restored when the iteration ends.
    """
    base = [group["lr"] for group in optimizer.param_groups]
    try:
        for batch in batches:
            for group, lr in zip(optimizer.param_groups, base, strict=True):
                group["lr"] = lr * batch.lr_scale
            yield batch.x, batch.y
    finally:
        for group, lr in zip(optimizer.param_groups, base, strict=True):
            group["lr"] = lr


class CarryHidden:
    """A loop ``forward`` for LMs: feeds each window the detached hidden state of the last.

    Args:
        sample_arch: For a supernet, returns the arch of the next minibatch (called once per
            window); None for a stand-alone ``RnnNetwork``.

    Call ``reset()`` at the start of every pass over a stream; a change of batch size resets
    the state too.
    """

    def __init__(self, sample_arch: Callable[[], Any] | None = None) -> None:
        self.sample_arch = sample_arch
        self.hidden: Tensor | None = None

    def reset(self) -> None:
        self.hidden = None

    def __call__(self, model: nn.Module, x: Tensor, progress: float) -> Any:
        hidden = self.hidden
        if hidden is not None and hidden.shape[0] != x.shape[1]:
            hidden = None
        if self.sample_arch is None:
            outputs = model(x, hidden)
        else:
            outputs = model(x, hidden, self.sample_arch())
        # Truncated BPTT: gradients stop at the window boundary.
        self.hidden = outputs[1].detach()
        return outputs


class LmDataModule:
    """A ``DataModule`` of BPTT windows over a batchified training stream.

    Each ``train_batches`` call is one pass over ``grid`` with random window lengths (the
    search or the final recipe), the optimizer's lr scaled per window (``scale_lr``), and the
    hidden state of ``carry`` reset. ``eval_batches`` is None: language models are evaluated
    by their owner (carrying the hidden state, with averaged weights after an NT-ASGD switch).
    """

    def __init__(
        self,
        grid: Tensor,
        bptt: int,
        optimizer: torch.optim.Optimizer,
        carry: CarryHidden,
        search: bool = False,
    ) -> None:
        self.grid, self.bptt, self.optimizer = grid, bptt, optimizer
        self.carry, self.search = carry, search

    def train_batches(self, generator: torch.Generator) -> Iterator[Batch]:
        self.carry.reset()
        windows = lm_batches(self.grid, self.bptt, generator, search=self.search)
        return scale_lr(windows, self.optimizer)

    def num_train_batches(self) -> int:
        return max((self.grid.shape[0] - 1) // self.bptt, 1)  # the mean; lengths are random

    def eval_batches(self) -> None:
        return None


def eval_windows(grid: Tensor, bptt: int, limit: int = 0) -> list[Batch]:
    """Consecutive full-length windows (x, y) of a batchified stream, the first ``limit``
    only when > 0; evaluate them with a ``CarryHidden`` forward, in order."""
    windows = [(b.x, b.y) for b in lm_batches(grid, bptt, random_length=False)]
    return windows[:limit] if limit > 0 else windows
