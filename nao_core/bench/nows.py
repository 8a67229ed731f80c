"""``nao bench nows``: candidate throughput of a search without weight sharing (issue #6).

Trains the first ``--candidates`` architectures of a preset's initial pool (seeded, so the
same ones every time) with the preset's candidate budget, first in one worker process and
then split over ``--workers`` processes at once (one torch thread each, as a Celery GPU
worker runs them), and reports:

* candidates/hour per worker (one process alone) and for all workers together;
* the wall-time ratio of the same candidates on N workers against one (1/N is ideal);
* seconds per candidate, and the GPU-hours a ``paper`` search would take at the measured
  per-candidate time scaled by the ratio of training work (images x epochs x FLOPs).

Each process is a stand-in for a worker: the Celery path adds one database transaction and
one message per candidate (milliseconds), which ``tests/worker/test_nows_workers.py``
exercises end to end.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def _train_many(
    cfg: Any, archs: list[str], root: str, data_dir: str | None, device: str
) -> list[float]:
    import torch

    from nao_core.search.nows import evaluate_candidate

    torch.set_num_threads(1)
    seconds = []
    for i, arch in enumerate(archs):
        began = time.perf_counter()
        evaluate_candidate(cfg, arch, Path(root) / f"c{i}", data_dir=data_dir, device=device)
        seconds.append(time.perf_counter() - began)
    return seconds


def _pool_archs(cfg: Any, n: int) -> list[str]:
    from nao_core.search.nows import NaoSearch

    with tempfile.TemporaryDirectory() as tmp:
        search = NaoSearch(cfg, tmp)
        search.seed_pool()
        return [c.arch for c in search.plan_round()[:n]]


def _run_workers(
    cfg: Any, archs: list[str], workers: int, data_dir: str | None, device: str
) -> dict[str, Any]:
    shards = [archs[i::workers] for i in range(workers)]
    with tempfile.TemporaryDirectory() as tmp:
        began = time.perf_counter()
        ctx = mp.get_context("spawn")
        with ctx.Pool(workers) as pool:
            results = pool.starmap(
                _train_many,
                [(cfg, s, f"{tmp}/w{i}", data_dir, device) for i, s in enumerate(shards)],
            )
        with_start = time.perf_counter() - began
    seconds = [s for r in results for s in r]
    wall = max(sum(r) for r in results)  # the slowest worker, without process start-up
    return {
        "workers": workers,
        "candidates": len(archs),
        "wall_s": wall,
        "wall_with_start_s": with_start,
        "candidate_s_mean": sum(seconds) / len(seconds),
        "candidates_per_hour": 3600.0 * len(archs) / wall,
        "candidates_per_hour_per_worker": 3600.0 * len(archs) / wall / workers,
    }


def _work(cfg: Any, images: int) -> float:
    """Training work of one candidate in image-epochs x multiply-adds of its network."""
    from nao_core.models import CnnNetwork, count_flops
    from nao_core.search_space import create_search_space

    net = cfg.candidate.model
    space = create_search_space(cfg.space)
    arch = space.sample(__import__("numpy").random.default_rng(0))
    model = CnnNetwork(
        arch, cfg.space, layers=net.layers, channels=net.channels, num_classes=10,
        in_channels=3, image_size=32, use_aux_head=False,
    )  # fmt: skip
    return float(images) * cfg.candidate.optim.epochs * count_flops(model, (3, 32, 32))


def run(args: argparse.Namespace) -> dict[str, Any]:
    from nao_core.config import apply_overrides
    from nao_core.presets import get_preset

    cfg = apply_overrides(get_preset(f"nao-search/{args.preset}"), args.set or [])
    data_dir = args.data_dir
    if args.cifar10_npz:
        from nao_core.bench.quality import write_cifar10_subset

        data_dir = str(write_cifar10_subset(Path(args.cifar10_npz), Path(args.work_dir)))
    workers = [int(w) for w in args.workers.split(",")]
    n = args.candidates
    archs = _pool_archs(cfg, n)
    rows = [_run_workers(cfg, archs, w, data_dir, args.device) for w in workers]
    base = rows[0]["wall_s"]
    for row in rows:
        row["wall_ratio_vs_1"] = row["wall_s"] / base
    out: dict[str, Any] = {"preset": args.preset, "space": cfg.space, "rows": rows}
    if cfg.candidate.data.dataset == "cifar10":
        paper = get_preset("nao-search/paper")
        per_candidate = rows[0]["candidate_s_mean"]
        images = cfg.candidate.data.train_limit or 45_000
        scale = _work(paper, 45_000) / _work(cfg, images)
        n_paper = paper.initial_pool + paper.rounds * paper.controller.new_archs
        out["paper_projection"] = {
            "candidates": n_paper,
            "work_ratio_vs_preset": scale,
            "hours_at_measured_rate": n_paper * per_candidate * scale / 3600.0,
            "note": "this device's measured rate scaled by training work; GPU rates differ",
        }
    return out


def main(args: argparse.Namespace) -> int:
    out = run(args)
    text = json.dumps(out, indent=2)
    if args.json:
        Path(args.json).write_text(text + "\n")
    sys.stdout.write(text + "\n")
    return 0


def add_parser(bench: argparse._SubParsersAction) -> None:
    b = bench.add_parser("nows", help="candidates/hour per worker, 1 vs N workers")
    b.add_argument("--preset", default="small", help="nao-search preset: paper, small, tiny")
    b.add_argument("--candidates", type=int, default=4, help="candidates trained per setting")
    b.add_argument("--workers", default="1,2", help="worker counts, comma-separated, 1 first")
    b.add_argument("--data-dir", default=None, help="folder of the official dataset files")
    b.add_argument("--cifar10-npz", default=None, help="write shared/data/cifar10 as batches")
    b.add_argument("--work-dir", default="runs/bench-nows", help="where --cifar10-npz writes")
    b.add_argument("--set", action="append", metavar="KEY=VALUE")
    b.add_argument("--device", default="cpu")
    b.add_argument("--json", help="also write the measurements to this file")
    b.set_defaults(func=main)
