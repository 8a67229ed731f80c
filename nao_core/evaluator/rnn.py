"""The weight-sharing evaluator of the "rnn" space: NAO-WS on PTB / WikiText-2 (nao-spec §4.4).

``RnnSupernetEvaluator`` implements ``SupernetEvaluator`` (``nao_core.evaluator.supernet``)
for the NAO-WS search loop (``nao_core.search.ws``):

* training: ``RnnSupernet`` (emb = nhid = 300, tied decoder) through the engine's one loop
  with ``LanguageModelTask`` (TAR β = 1e-3), plain SGD lr 0.25 with a constant schedule,
  weight decay 5e-7, grad clip 10, batch 256 columns, BPTT 35 (17 with probability 0.05)
  with the lr scaled by seq_len / 35, the hidden state carried between windows
  (``CarryHidden``) and **one architecture sampled per window** by the search (``sample``);
* scoring: every architecture on the *same* fixed windows — the first ``score_batches``
  bptt windows of the valid stream batchified into ``data.eval_batch_size`` columns, zero
  initial hidden state carried across them, eval mode (no dropout). This replaces NAO-WS's
  "random" window, which its row-offset bug pinned to the first rows anyway (spec §8.18).
* rerank: a stand-alone ``RnnNetwork`` trained for ``rerank.optim.epochs`` from scratch with
  the final recipe (SGD lr 20, clip 0.25, no averaging) and scored on the whole valid stream;
  each candidate seeded by the search seed and its rank only, so a resumed search reranks
  exactly as an uninterrupted one.

**Score transform.** The search loop wants higher-is-better scores; an arch's score is the
negative mean validation NLL per token, ``score = −log(ppl)``, so ``ppl = exp(−score)`` (the
NAO-WS code regresses the loss and descends, spec §8.3; with the min-max targets of the
controller the two are the same up to direction). ``last_ppl`` holds the perplexities of the
last ``score`` call for reporting.

**Cell output (spec §8.17, §9 question 7).** The NAO-WS search cell averages its 12 states
s0..s11 (``NAO-WS/rnn/model_search.py``), the stand-alone cells s1..s11. We follow the
search code: ``average_s0=True`` by default (``RnnSearchConfig.average_s0``); set it to False
to score candidates with the cell output of final training. The rerank always trains the
stand-alone cell (s1..s11).

Not reproduced: NAO-WS adds 50 random archs per round and keeps the best 650 old ones; the
shared loop replaces the worst ``controller.new_archs`` archs of the pool.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

from nao_core.config import RnnSearchConfig
from nao_core.data.corpus import Corpus, batchify
from nao_core.engine.callbacks import Callback
from nao_core.engine.lm import (
    CarryHidden,
    LanguageModelTask,
    LmDataModule,
    eval_windows,
)
from nao_core.engine.loop import EpochEnd, evaluate, fit
from nao_core.engine.optim import build_sgd_lm
from nao_core.errors import InvalidConfig
from nao_core.models.rnn import RnnNetwork, rnn_dropouts
from nao_core.search_space import create_search_space
from nao_core.search_space.base import Arch
from nao_core.supernet.rnn import RnnSupernet
from nao_core.utils.device import resolve_precision

RERANK_SEED_OFFSET = 1_000_003  # keeps rerank seeds apart from the search's own streams


def score_from_nll(nll: float) -> float:
    """Higher-is-better score of a mean NLL per token: −nll = −log(ppl)."""
    return -nll


def ppl_from_score(score: float) -> float:
    return math.exp(-score)


class RnnSupernetEvaluator:
    """NAO-WS ``RNNModelSearch`` training and scoring on a corpus (see the module docstring)."""

    def __init__(self, cfg: RnnSearchConfig, corpus: Corpus, device: torch.device) -> None:
        if cfg.space != "rnn":
            raise InvalidConfig(f"space: the RNN evaluator covers 'rnn', got {cfg.space!r}")
        self.cfg, self.device, self.corpus = cfg, device, corpus
        self.space = create_search_space("rnn")
        self.precision = resolve_precision(cfg.precision, device)
        self.supernet = RnnSupernet(
            corpus.vocab_size,
            nhid=cfg.supernet.nhid,
            nodes=self.space.nodes,  # type: ignore[attr-defined]
            dropouts=rnn_dropouts(cfg.supernet),
            average_s0=cfg.average_s0,
            device=device,
        )
        self.optimizer = build_sgd_lm(self.supernet, cfg.optim.lr, cfg.optim.weight_decay)
        self.generator = torch.Generator().manual_seed(cfg.seed)  # CPU: window lengths
        self.task = LanguageModelTask(cfg.optim.tar_beta, cfg.optim.ar_alpha)
        self.train_grid = batchify(corpus.train, cfg.data.batch_size, device)
        self.valid_grid = batchify(corpus.valid, cfg.data.eval_batch_size, device)
        self.score_windows = eval_windows(self.valid_grid, cfg.data.bptt, cfg.score_batches)
        if not self.score_windows:
            raise InvalidConfig("data: the valid stream is shorter than one window")
        self.last_ppl: list[float] = []

    def train(
        self,
        *,
        start_epoch: int,
        sample: Callable[[], Arch],
        callback: Callback,
        epoch_end: EpochEnd,
    ) -> None:
        carry = CarryHidden(sample)  # one arch per window
        module = LmDataModule(
            self.train_grid, self.cfg.data.bptt, self.optimizer, carry, search=True
        )
        fit(
            self.supernet,
            self.task,
            module,
            self.optimizer,
            None,  # constant lr (spec §4.4)
            epochs=self.cfg.optim.epochs,
            start_epoch=start_epoch,
            generator=self.generator,
            grad_clip=self.cfg.optim.grad_clip,
            precision=self.precision,
            forward=carry,
            callback=callback,
            epoch_end=epoch_end,
        )

    def score(self, archs: Sequence[Arch]) -> list[float]:
        nlls = []
        for arch in archs:
            carry = CarryHidden(lambda arch=arch: arch)
            metrics = evaluate(
                self.supernet,
                self.task,
                self.score_windows,
                precision=self.precision,
                forward=carry,
            )
            nlls.append(metrics["loss"])
        self.last_ppl = [math.exp(n) for n in nlls]
        return [score_from_nll(n) for n in nlls]

    def rerank(self, arch: Arch, rank: int) -> float:
        rcfg, bptt = self.cfg.rerank, self.cfg.data.bptt
        seed = self.cfg.seed + RERANK_SEED_OFFSET + rank
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            model = RnnNetwork(
                self.corpus.vocab_size,
                arch,  # type: ignore[arg-type]
                nhid=rcfg.model.nhid,
                dropouts=rnn_dropouts(rcfg.model),
                device=self.device,
            )
            optimizer = build_sgd_lm(model, rcfg.optim.lr, rcfg.optim.weight_decay)
            carry = CarryHidden()
            grid = batchify(self.corpus.train, rcfg.batch_size, self.device)
            task = LanguageModelTask(rcfg.optim.tar_beta, rcfg.optim.ar_alpha)
            fit(
                model,
                task,
                LmDataModule(grid, bptt, optimizer, carry),
                optimizer,
                None,
                epochs=rcfg.optim.epochs,
                generator=torch.Generator().manual_seed(seed),
                grad_clip=rcfg.optim.grad_clip,
                precision=self.precision,
                forward=carry,
            )
            metrics = evaluate(
                model,
                task,
                eval_windows(self.valid_grid, bptt),
                precision=self.precision,
                forward=CarryHidden(),
            )
        return score_from_nll(metrics["loss"])

    def state_dict(self) -> dict[str, Any]:
        return {
            "supernet": self.supernet.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.supernet.load_state_dict(state["supernet"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
