"""``nao bench scoring``: what scoring the pool on 4 fixed valid batches instead of 1 changes
and costs, on real images.

A supernet (``search/small``'s shape unless ``--set`` says otherwise) trains on the CIFAR-10
subset of ``shared/data/cifar10`` (``--cifar10-npz``, written as the official batches as by
``nao bench quality``) with one architecture of a random pool drawn per batch, as the
search does. At every evaluation point the same supernet scores the whole pool twice, in the
same process: on the first valid batch of 500 (the baseline, ``score_batches=1``) and on the
first four (``score_batches=4``, the ``search/paper`` setting). Both rankings break ties
with the pool's seeded random key. Printed per point: how many of the top 10 the two
rankings share, whether the top 1 is the same, Kendall's tau between the whole rankings, how
many pool members share their score with another (ties), and the scoring time of each and
its ratio against the 1-batch baseline.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from nao_core.bench.quality import write_cifar10_subset


def kendall_tau(a: list[float], b: list[float]) -> float:
    """Kendall's tau-a between two score lists over the same items (ties count 0)."""
    x, y = np.asarray(a), np.asarray(b)
    i, j = np.triu_indices(len(x), k=1)
    s = np.sign(x[i] - x[j]) * np.sign(y[i] - y[j])
    return float(s.mean()) if len(s) else 1.0


def _ranking(pool: Any, archs: list[Any], scores: list[float], seed: int, point: int) -> list[str]:
    """Canonical keys best first, ties by the pool's seeded random key (``ArchPool.sort``)."""
    pool.entries = []
    entries = [pool.make_entry(a, round=0) for a in archs]
    pool.extend([e for e in entries if e is not None])
    pool.set_scores(scores, "supernet", point)
    pool.sort("random", seed)
    pool.seen = set()
    return [pool.space.canonical_key(e.arch) for e in pool.entries]


def _ties(scores: list[float]) -> int:
    _, counts = np.unique(np.asarray(scores), return_counts=True)
    return int(counts[counts > 1].sum())


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from nao_core.config import apply_overrides
    from nao_core.engine.callbacks import NullCallback
    from nao_core.engine.data import load_image_dataset
    from nao_core.evaluator.supernet import CnnSupernetEvaluator
    from nao_core.presets import get_preset
    from nao_core.search.pool import ArchPool
    from nao_core.utils.device import resolve_device

    torch.set_num_threads(args.threads)
    data_dir = write_cifar10_subset(Path(args.cifar10_npz), Path(args.out) / "data")
    cfg = apply_overrides(
        get_preset("search/small"),
        {
            "optim.epochs": args.epochs,
            "data.train_limit": args.train_limit,
            "score_batches": 4,
            "seed": args.seed,
        },
    )
    cfg = apply_overrides(cfg, args.set or [])
    device = resolve_device(args.device)
    dataset = load_image_dataset(
        "cifar10",
        data_dir,
        train_portion=cfg.data.train_portion,
        split_seed=cfg.data.split_seed,
        train_limit=cfg.data.train_limit,
    )
    torch.manual_seed(cfg.seed)
    evaluator = CnnSupernetEvaluator(cfg, dataset, device)
    four = list(evaluator.score_batches)
    if len(four) < 4:
        raise SystemExit(f"the valid split holds {len(four)} batches of 500, not 4")
    pool = ArchPool(evaluator.space)
    rng = np.random.default_rng(cfg.seed)
    archs = evaluator.space.sample_unseen(rng, args.pool, set())
    points = {int(p) for p in args.points.split(",")}
    rows: list[dict[str, Any]] = []

    def score(batches: list[Any]) -> tuple[list[float], float]:
        evaluator.score_batches = batches
        start = time.perf_counter()
        out = evaluator.score(archs)
        return out, time.perf_counter() - start

    def epoch_end(epoch: int, metrics: dict[str, float]) -> None:
        if epoch not in points:
            return
        one, t1 = score(four[:1])
        all4, t4 = score(four)
        evaluator.score_batches = four
        r1 = _ranking(pool, archs, one, cfg.seed, epoch)
        r4 = _ranking(pool, archs, all4, cfg.seed, epoch)
        row = {
            "epoch": epoch,
            "train_acc": metrics.get("train_acc"),
            "top10_shared": len(set(r1[:10]) & set(r4[:10])),
            "top10_same_set": set(r1[:10]) == set(r4[:10]),
            "top1_same": r1[0] == r4[0],
            "kendall_tau": round(kendall_tau(one, all4), 3),
            "ties_1_batch": _ties(one),
            "ties_4_batches": _ties(all4),
            "best_1_batch": max(one),
            "best_4_batches": max(all4),
            "seconds_1_batch": round(t1, 2),
            "seconds_4_batches": round(t4, 2),
            "time_ratio": round(t4 / t1, 2),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)

    began = time.perf_counter()
    evaluator.train(
        start_epoch=0,
        sample=lambda: archs[int(rng.integers(len(archs)))],
        callback=NullCallback(),
        epoch_end=epoch_end,
    )
    summary = {
        "pool": args.pool,
        "epochs": args.epochs,
        "train_images": cfg.data.train_limit,
        "threads": args.threads,
        "device": str(device),
        "seed": cfg.seed,
        "points": rows,
        "top10_changed_share": float(np.mean([not r["top10_same_set"] for r in rows])),
        "mean_top10_shared": float(np.mean([r["top10_shared"] for r in rows])),
        "mean_time_ratio": float(np.mean([r["time_ratio"] for r in rows])),
        "seconds": round(time.perf_counter() - began, 1),
    }
    return summary


def main(args: argparse.Namespace) -> int:
    summary = run(args)
    print(
        f"top-10 changed at {summary['top10_changed_share']:.0%} of {len(summary['points'])} "
        f"points, {summary['mean_top10_shared']:.1f} of 10 shared on average; 4 batches cost "
        f"x{summary['mean_time_ratio']:.2f} the scoring time of 1"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))
    return 0


def add_parser(bench: argparse._SubParsersAction) -> None:
    s = bench.add_parser("scoring", help="pool scoring on 1 vs 4 fixed valid batches")
    s.add_argument("--cifar10-npz", required=True, help="shared/data/cifar10")
    s.add_argument("--out", required=True, help="folder for the CIFAR-10 batches written")
    s.add_argument("--pool", type=int, default=100, help="architectures scored")
    s.add_argument("--epochs", type=int, default=6, help="supernet epochs")
    s.add_argument("--points", default="2,4,6", help="epochs at which the pool is scored")
    s.add_argument("--train-limit", type=int, default=5000, help="training images per epoch")
    s.add_argument("--threads", type=int, default=1)
    s.add_argument("--seed", type=int, default=0, help="seed of the pool and the supernet")
    s.add_argument("--device", default="auto")
    s.add_argument("--set", action="append", metavar="KEY=VALUE", help="search config override")
    s.add_argument("--json", help="also write the summary to this file")
    s.set_defaults(func=main)
