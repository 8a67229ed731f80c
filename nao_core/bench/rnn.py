"""``nao bench rnn``: throughput of the RNN pieces at paper sizes, and what a full paper search
and a paper final training on PTB would cost on this machine.

Measured on a synthetic corpus with PTB's sizes (10k words; 929,589 / 73,760 / 82,430
tokens), with the production code paths (the engine's ``train_epoch``, ``LanguageModelTask``,
``CarryHidden``, ``RnnSupernetEvaluator.score``):

* supernet training window: nhid 300, batch 256, bptt 35, one random arch per window (§4.4);
* pool scoring: one bptt-35 window of the 256-column valid stream per arch;
* rerank / final training window: stand-alone ``RnnNetwork`` at nhid 300 batch 64 (rerank)
  and nhid 850 batch 64 (§6.4), random BPTT lengths;
* valid evaluation of the final model: batch 10, forward only.

Projection (paper presets): search = 1000 epochs × the training tokens of supernet windows +
5 evaluation points × 1000 archs scored + the top-5 rerank (5 × 10 epochs at nhid 300); the
controller (4 rounds, ~1 min each on a GPU, ``nao bench controller``) is left out. Final
training = 4000 epochs × (training tokens + one valid pass). Timings are medians of
``--steps`` steps after one warm-up step on CUDA.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nao_core.config import RnnSearchConfig, RnnTrainConfig
from nao_core.data.corpus import Corpus, batchify
from nao_core.engine.lm import CarryHidden, LanguageModelTask, lm_batches
from nao_core.engine.loop import evaluate, train_epoch
from nao_core.engine.optim import build_sgd_lm
from nao_core.evaluator.rnn import RnnSupernetEvaluator
from nao_core.models.rnn import RnnNetwork, rnn_dropouts
from nao_core.search_space import create_search_space
from nao_core.search_space.named import get_named_arch
from nao_core.utils.device import device_name, resolve_device

PTB_TOKENS = {"train": 929_589, "valid": 73_760, "test": 82_430}
VOCAB = 10_000


def synthetic_corpus(train: int, valid: int, seed: int = 0) -> Corpus:
    g = torch.Generator().manual_seed(seed)
    vocab = tuple(f"w{i}" for i in range(VOCAB))

    def ids(n: int) -> torch.Tensor:
        return torch.randint(0, VOCAB, (n,), generator=g)

    return Corpus("synthetic-ptb", vocab, ids(train), ids(valid), ids(valid))


def _median_seconds(run: Callable[[], Any], steps: int, warm: bool) -> float:
    if warm:
        run()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _train_tokens_per_s(
    model: torch.nn.Module,
    forward: Callable[..., Any],
    grid: torch.Tensor,
    search: bool,
    lr: float,
    clip: float,
    steps: int,
    device: torch.device,
) -> float:
    """Tokens per second over ``steps`` training windows (after a warm-up one on CUDA)."""
    task, optimizer = LanguageModelTask(), build_sgd_lm(model, lr, 5e-7)
    gen = torch.Generator().manual_seed(0)
    windows = [(b.x, b.y) for b in lm_batches(grid, 35, gen, search=search)]
    warm = 1 if device.type == "cuda" else 0
    tokens, seconds = 0, 0.0
    for i, (x, y) in enumerate(windows[: steps + warm]):
        start = time.perf_counter()
        train_epoch(model, task, [(x, y)], optimizer, step=0, total_steps=1, grad_clip=clip,
                    forward=forward)  # fmt: skip
        _sync(device)
        if i >= warm:
            tokens, seconds = tokens + x.numel(), seconds + time.perf_counter() - start
    return tokens / seconds


def run_bench(device: torch.device, steps: int) -> dict[str, Any]:
    space, rng = create_search_space("rnn"), np.random.default_rng(0)
    search, final = RnnSearchConfig(), RnnTrainConfig()
    windows = (steps + 2) * 60  # rows enough for the timed windows of every measurement
    corpus = synthetic_corpus(256 * windows, 256 * 60)
    torch.manual_seed(0)
    evaluator = RnnSupernetEvaluator(search, corpus, device)
    carry = CarryHidden(lambda: space.sample(rng))
    rows: dict[str, float] = {}
    rows["supernet_train_tok_s"] = _train_tokens_per_s(
        evaluator.supernet, carry, evaluator.train_grid, True, 0.25, 10.0, steps, device
    )
    archs = [space.sample(rng) for _ in range(steps + 1)]

    def score_one() -> None:
        evaluator.score([archs[0]])
        _sync(device)

    rows["score_s_per_arch"] = _median_seconds(score_one, steps, device.type == "cuda")
    arch = get_named_arch("nao-ws-rnn")[1]
    grid = batchify(corpus.train, 64, device)
    model = None
    for name, nhid in (("rerank", 300), ("final", final.model.nhid)):
        model = RnnNetwork(
            VOCAB, arch, nhid=nhid, dropouts=rnn_dropouts(final.model), device=device
        )
        rows[f"{name}_train_tok_s"] = _train_tokens_per_s(
            model, CarryHidden(), grid, False, 20.0, 0.25, steps, device
        )
    assert model is not None  # the final (nhid 850) model
    valid = [(b.x, b.y) for b in lm_batches(batchify(corpus.valid, 10, device), 35,
                                            random_length=False)][:1]  # fmt: skip

    def eval_one() -> None:
        evaluate(model, LanguageModelTask(), valid, forward=CarryHidden())
        _sync(device)

    seconds = _median_seconds(eval_one, steps, device.type == "cuda")
    rows["final_eval_tok_s"] = valid[0][0].numel() / seconds
    return rows


def project(rows: dict[str, float]) -> dict[str, float]:
    """Seconds of the paper search and the paper final training from the measured rates."""
    s, f, train = RnnSearchConfig(), RnnTrainConfig(), PTB_TOKENS["train"]
    points = -(-s.optim.epochs // s.eval_every)
    supernet = s.optim.epochs * train / rows["supernet_train_tok_s"]
    scoring = points * s.pool_size * rows["score_s_per_arch"] * s.score_batches
    rerank = s.rerank.top_k * s.rerank.optim.epochs * train / rows["rerank_train_tok_s"]
    final_epoch = train / rows["final_train_tok_s"] + PTB_TOKENS["valid"] / rows["final_eval_tok_s"]
    return {
        "search_supernet_s": supernet,
        "search_scoring_s": scoring,
        "search_rerank_s": rerank,
        "search_total_s": supernet + scoring + rerank,
        "final_epoch_s": final_epoch,
        "final_total_s": f.optim.epochs * final_epoch,
    }


def main(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    rows = run_bench(device, max(args.steps, 1))
    proj = project(rows)
    out = {
        "device": device_name(device),
        "threads": torch.get_num_threads(),
        "rates": rows,
        "projection_s": proj,
        "projection_h": {k: v / 3600 for k, v in proj.items()},
    }
    lines = [f"device={out['device']} threads={out['threads']}"]
    lines += [f"{k:<24} {v:12.2f}" for k, v in rows.items()]
    lines += [f"{k:<24} {v / 3600:12.2f} h" for k, v in proj.items()]
    print("\n".join(lines))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0
