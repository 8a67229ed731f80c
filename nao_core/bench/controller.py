"""``nao bench controller``: one controller round at the paper's settings, timed.

A round = fit the EPD for ``epochs`` epochs on a pool of 600 CNN architectures (batch 100,
swap augmentation) + generate 300 new architectures from the top 100 (eta = 1..51).

Baseline, run in the same process on the same data: the same model and loss in their plain
formulation — embedding -> LSTM input projection (no folding), attention queries projected
per decoder step and tanh(W_out [context; h]), fp32, cross-entropy over (B*L, V), one model
on all threads, per-sample Python augmentation, Adam without the fused kernel. The
optimised path is ``fit_controller``: folded projections, bf16 where the CPU has bf16
LSTMs, and the batch split over ``controller.replicas`` replicas. Both fits are checked to
reach the same quality (pairwise accuracy, reconstruction Hamming distance, final loss) so
speed is not bought with a worse fit. The authors' PyTorch code was measured at about
0.42 s per epoch on this kind of machine (issue #2), where the baseline ran 0.219; ours is
printed against that fixed figure and against it scaled by the baseline timed now.
"""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from nao_core.config import ControllerConfig
from nao_core.controller import Controller, fit_controller, improve
from nao_core.controller.fit import (
    cpu_bf16_lstm_supported,
    evaluate_controller,
    fit_replicas,
    normalize_scores,
)
from nao_core.search_space import create_search_space

AUTHORS_SECONDS_PER_EPOCH = 0.42  # issue #2, authors' NAO_V1 code on 2 CPU cores
# The baseline below ran 0.219 s/epoch on the machine where the authors' code ran 0.42. The
# shared VMs we bench on change speed by up to 1.5x from day to day, so a fixed 0.42 flatters
# a fast day; the authors' time scaled by today's baseline does not.
BASELINE_SECONDS_BESIDE_AUTHORS = 0.219


def synthetic_pool(n: int, seed: int) -> tuple[list[Any], np.ndarray]:
    """``n`` random CNN archs scored by a fixed random additive model of their tokens + noise."""
    space = create_search_space("cnn")
    rng = np.random.default_rng(seed)
    archs = space.sample_many(rng, n)
    table = rng.normal(size=(space.length, space.vocab_size))
    tokens = np.array([space.encode(a) for a in archs])
    scores = table[np.arange(space.length), tokens].sum(axis=1) + rng.normal(scale=0.5, size=n)
    return archs, scores


def epoch_gflop(cfg: ControllerConfig, length: int, vocab: int, group: int, pool: int) -> float:
    """Matmul work of one training epoch in GFLOP (forward + backward = 3x forward).

    Encoder: T = L/group steps, input group*V (the folded one-hot), hidden H; decoder: L steps,
    input V; both with 4H gates. Readout per decoder step: attention keys on the T memory
    steps, scores and context (bmm), W_out on [context; h], classifier. Predictor MLP. This
    is the floor any implementation of the same model and batch must compute.
    """
    H, B, T = cfg.hidden_size, pool, length // group
    lstm = 2 * B * 4 * H * (T * (group * vocab + H) + length * (vocab + H))
    readout = 2 * B * (T * H * H + 2 * length * T * H + length * 2 * H * H + length * H * vocab)
    widths = [H] + [cfg.mlp_hidden_size] * cfg.mlp_layers + [1]
    mlp = 2 * B * sum(a * b for a, b in itertools.pairwise(widths))
    return 3 * (lstm + readout + mlp) / 1e9


def gemm_peak_gflops(size: int = 1024, reps: int = 20) -> float:
    """This CPU's fp32 matmul rate at the current thread count: the best of ``reps`` runs."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def _baseline_fit(
    controller: Controller, tokens: torch.Tensor, scores: np.ndarray, epochs: int
) -> float:
    """The plain formulation, for timing. Returns seconds per epoch."""
    for module in (controller.encoder.rnn, controller.decoder.rnn):
        module.fold_inputs = False
    controller.decoder.fold_attention = False
    cfg = controller.cfg
    target = torch.as_tensor(normalize_scores(scores), dtype=torch.float32)
    opt = torch.optim.Adam(
        controller.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=False
    )
    perms = controller.symmetries  # (groups, k, L)
    rng = np.random.default_rng(0)
    controller.train()
    start = time.perf_counter()
    for _ in range(epochs):
        order = rng.permutation(len(tokens))
        for lo in range(0, len(tokens), cfg.batch_size):
            rows = []
            for i in order[lo : lo + cfg.batch_size]:  # a Dataset.__getitem__ per sample
                seq = tokens[i]
                for g in perms:
                    seq = seq[g[rng.integers(len(g))]]
                rows.append(seq)
            x = torch.stack(rows)
            y = target[torch.as_tensor(order[lo : lo + cfg.batch_size])]
            pred, logits = controller(x)
            loss = cfg.trade_off * F.mse_loss(pred, y) + (1 - cfg.trade_off) * F.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), x.reshape(-1)
            )
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(controller.parameters(), cfg.grad_clip)
            opt.step()
    seconds = (time.perf_counter() - start) / epochs
    for module in (controller.encoder.rnn, controller.decoder.rnn):
        module.fold_inputs = True
    controller.decoder.fold_attention = True
    return seconds


def run(
    epochs: int, baseline_epochs: int, threads: int, seed: int = 0, replicas: int = 2
) -> dict[str, Any]:
    torch.set_num_threads(threads)
    space = create_search_space("cnn")
    archs, scores = synthetic_pool(600, seed)
    tokens = torch.tensor([space.encode(a) for a in archs], dtype=torch.long)
    # bf16 where the CPU runs bf16 LSTMs (fp32 is timed below as well), else fp32 only
    precision = "bf16" if cpu_bf16_lstm_supported() else "fp32"
    cfg = ControllerConfig(epochs=epochs, precision=precision, replicas=replicas)
    target = normalize_scores(scores)

    torch.manual_seed(seed)
    base = Controller(space, ControllerConfig(epochs=baseline_epochs, precision="fp32"))
    base_spe = _baseline_fit(base, tokens, scores, baseline_epochs)

    torch.manual_seed(seed)
    ours = Controller(space, cfg)
    report, _ = fit_controller(ours, tokens, scores, generator=torch.Generator().manual_seed(seed))
    ours_spe = report.seconds / epochs
    order = np.argsort(-scores)
    start = time.perf_counter()
    new = improve(
        ours, space, [archs[i] for i in order[:100]], 300, {space.canonical_key(a) for a in archs}
    )
    gen_seconds = time.perf_counter() - start

    fp32_quality: dict[str, float] = {}
    if precision == "bf16" and epochs <= 2000:  # the same fit at fp32: what bf16 costs
        torch.manual_seed(seed)
        ref = Controller(space, replace(cfg, precision="fp32"))
        ref_report, _ = fit_controller(
            ref, tokens, scores, generator=torch.Generator().manual_seed(seed)
        )
        fp32_quality = {
            "loss": ref_report.loss,
            "pairwise_accuracy": ref_report.pairwise_accuracy,
            "hamming_distance": ref_report.hamming_distance,
            "seconds_per_epoch": ref_report.seconds / epochs,
        }
    pa, hd = evaluate_controller(ours, tokens, target)
    gflop = epoch_gflop(cfg, space.length, space.vocab_size, space.group, len(archs))
    return {
        "gflop_per_epoch": round(gflop, 2),
        "achieved_gflops": round(gflop / ours_spe, 1),
        "gemm_peak_gflops_fp32": round(gemm_peak_gflops(), 1),
        "needed_gflops_for_5x_authors": round(gflop / (AUTHORS_SECONDS_PER_EPOCH / 5), 1),
        "threads": threads,
        "epochs": epochs,
        "pool": len(archs),
        "batch_size": cfg.batch_size,
        "precision": cfg.precision,
        "replicas": fit_replicas(cfg, threads),
        "baseline_seconds_per_epoch": round(base_spe, 4),
        "seconds_per_epoch": round(ours_spe, 4),
        "speedup_vs_baseline": round(base_spe / ours_spe, 2),
        "authors_seconds_per_epoch": AUTHORS_SECONDS_PER_EPOCH,
        "speedup_vs_authors": round(AUTHORS_SECONDS_PER_EPOCH / ours_spe, 2),
        "speedup_vs_authors_scaled": round(
            base_spe * AUTHORS_SECONDS_PER_EPOCH / BASELINE_SECONDS_BESIDE_AUTHORS / ours_spe, 2
        ),
        "generate_seconds": round(gen_seconds, 2),
        "new_archs": len(new),
        "seconds_per_round_projected": round(ours_spe * 1000 + gen_seconds, 1),
        "fit": {"loss": report.loss, "pairwise_accuracy": pa, "hamming_distance": hd},
        "fit_fp32": fp32_quality,
    }


def main(args: Any) -> int:
    out = run(args.epochs, args.baseline_epochs, args.threads, replicas=args.replicas)
    print(
        f"controller round, pool {out['pool']}, batch {out['batch_size']}, "
        f"{out['threads']} threads, precision {out['precision']}, {out['replicas']} replica(s)"
    )
    print(f"  baseline (plain formulation)  {out['baseline_seconds_per_epoch']:.4f} s/epoch")
    print(
        f"  ours                          {out['seconds_per_epoch']:.4f} s/epoch  "
        f"x{out['speedup_vs_baseline']} vs baseline, x{out['speedup_vs_authors']} vs the "
        f"authors' {AUTHORS_SECONDS_PER_EPOCH} s/epoch"
    )
    print(
        f"  vs the authors scaled by the baseline: x{out['speedup_vs_authors_scaled']} "
        f"(their {AUTHORS_SECONDS_PER_EPOCH} s ran beside a {BASELINE_SECONDS_BESIDE_AUTHORS} s "
        "baseline; this one is timed now)"
    )
    print(
        f"  generate 300 from top 100     {out['generate_seconds']:.2f} s ({out['new_archs']} new)"
    )
    print(
        "  one round (1000 epochs + generate), projected: "
        f"{out['seconds_per_round_projected']:.1f} s"
    )
    print(
        f"  work {out['gflop_per_epoch']:.1f} GFLOP/epoch: ours {out['achieved_gflops']:.0f} "
        f"GFLOP/s; this CPU's fp32 matmul peak {out['gemm_peak_gflops_fp32']:.0f} GFLOP/s; "
        f"5x the authors needs {out['needed_gflops_for_5x_authors']:.0f} GFLOP/s"
    )
    f = out["fit"]
    print(
        f"  fit after {out['epochs']} epochs: loss {f['loss']:.4f}, "
        f"pairwise {f['pairwise_accuracy']:.3f}, "
        f"hamming {f['hamming_distance']:.2f}"
    )
    if out["fit_fp32"]:
        g = out["fit_fp32"]
        print(
            f"  same fit at fp32:            loss {g['loss']:.4f}, "
            f"pairwise {g['pairwise_accuracy']:.3f}, "
            f"hamming {g['hamming_distance']:.2f} ({g['seconds_per_epoch']:.4f} s/epoch)"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0
