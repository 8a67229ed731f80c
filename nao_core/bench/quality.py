"""``nao bench quality``: does the search pick better architectures than chance?

The quality check of issues #3 and #5: run one search with a preset, then train its top
architecture and ``--random`` architectures sampled uniformly from the same space, all with
the same final-training preset (and overrides), and compare the scores on the final
training's evaluation split. Everything is resumable: the search and every training live in
their own folder under ``--out`` and a re-run picks up where a killed one stopped.

With ``--cifar10-npz DIR`` the CIFAR-10 subset of ``shared/data/cifar10`` (20k balanced
training images in two parts, a balanced 5k held-out part) is first written in the official
python-batch layout under ``OUT/data``: ``data_batch_1``-``5`` hold the 20k training images
(4k each) and ``test_batch`` is the held-out 5k, so a final training with
``eval_split="test"`` scores on images that neither the search nor the training saw.
"""

from __future__ import annotations

import argparse
import json
import pickle
import time
from pathlib import Path
from typing import Any

import numpy as np

SUBSET_FILES = {
    "part1": "cifar10_train_balanced_part1.npz",
    "part2": "cifar10_train_balanced_part2.npz",
    "heldout": "cifar10_train_heldout_5k.npz",
}


def write_cifar_batch(path: Path, x_nhwc: np.ndarray, labels: np.ndarray) -> None:
    """Pickle images as an official CIFAR-10 batch (each row: the R, G, B planes)."""
    data = x_nhwc.transpose(0, 3, 1, 2).reshape(len(x_nhwc), 3 * 32 * 32)
    batch = {
        b"batch_label": path.name.encode(),
        b"labels": [int(v) for v in labels],
        b"data": np.ascontiguousarray(data, dtype=np.uint8),
        b"filenames": [f"{i}.png".encode() for i in range(len(labels))],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        pickle.dump(batch, f, protocol=2)


def write_cifar10_subset(npz_dir: Path, data_dir: Path) -> Path:
    """Write the shared CIFAR-10 subset under ``data_dir`` (see the module docstring)."""
    folder = data_dir / "cifar-10-batches-py"
    if (folder / "test_batch").is_file():
        return data_dir
    parts = {}
    for key, name in SUBSET_FILES.items():
        if not (npz_dir / name).is_file():
            raise FileNotFoundError(f"{name} not found in {npz_dir} (shared/data/cifar10)")
        with np.load(npz_dir / name) as z:
            parts[key] = (z["x"], z["y"])
    train_x = np.concatenate([parts["part1"][0], parts["part2"][0]])
    train_y = np.concatenate([parts["part1"][1], parts["part2"][1]])
    chunks = zip(np.array_split(train_x, 5), np.array_split(train_y, 5), strict=True)
    for i, (x, y) in enumerate(chunks, start=1):
        write_cifar_batch(folder / f"data_batch_{i}", x, y)
    write_cifar_batch(folder / "test_batch", *parts["heldout"])
    return data_dir


def _score(result: Any) -> dict[str, Any]:
    row = {k: v for k, v in result.__dict__.items() if k not in ("out_dir", "checkpoint")}
    return row


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from nao_core.config import apply_overrides
    from nao_core.engine import LoggingCallback
    from nao_core.presets import search_preset, train_preset
    from nao_core.search.ws import run_search
    from nao_core.search_space import create_search_space
    from nao_core.train import run_train

    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    data_dir = args.data_dir
    if args.cifar10_npz:
        data_dir = str(write_cifar10_subset(Path(args.cifar10_npz), out / "data"))
    search_cfg = search_preset(args.space, args.search_preset)
    search_cfg = apply_overrides(search_cfg, args.search_set or [])
    search_cfg = apply_overrides(search_cfg, {"space": args.space, "data.dataset": args.dataset})
    train_cfg = train_preset(args.space, args.train_preset, args.dataset)
    train_cfg = apply_overrides(train_cfg, args.train_set or [])
    train_cfg = apply_overrides(train_cfg, {"data.dataset": args.dataset})
    # Images: accuracy on the final training's evaluation split, higher is better. Language
    # models: validation perplexity, lower is better (test perplexity is reported too).
    metric, better = ("valid_perplexity", min) if args.space == "rnn" else ("accuracy", max)
    began = time.perf_counter()
    found = run_search(
        search_cfg,
        run_dir=out / "search",
        data_dir=data_dir,
        device=args.device,
        callback=LoggingCallback(),
    )
    search_seconds = time.perf_counter() - began
    space = create_search_space(search_cfg.space)
    top = space.parse(found.top[0]["arch"])
    rng = np.random.default_rng(args.seed)
    randoms = space.sample_unseen(rng, args.random, {space.canonical_key(top)})
    candidates = [("top", top)] + [(f"random{k}", a) for k, a in enumerate(randoms, start=1)]
    rows = []
    for name, arch in candidates:
        result = run_train(
            arch,
            space.name,
            train_cfg,
            out_dir=out / "train" / name,
            data_dir=data_dir,
            device=args.device,
            callback=LoggingCallback(),
        )
        rows.append({"name": name, "arch": space.to_str(arch), **_score(result)})
        value = getattr(result, metric)
        print(f"{name:<8} {metric}={value:.4f} params={result.params} {space.to_str(arch)}")
    top_value = rows[0][metric]
    random_values = [r[metric] for r in rows[1:]]
    random_mean = float(np.mean(random_values)) if random_values else None
    wins = random_mean is not None and better(top_value, random_mean) == top_value
    wins = wins and top_value != random_mean
    summary = {
        "search": {"preset": args.search_preset, "seconds": search_seconds, "top": found.top},
        "train_preset": args.train_preset,
        "train_overrides": args.train_set or [],
        "metric": metric,
        "higher_is_better": better is max,
        "rows": rows,
        "top_value": top_value,
        "random_mean_value": random_mean,
        "top_beats_random_mean": bool(wins),
    }
    print(
        f"{metric}: top {top_value:.4f} vs random mean {random_mean:.4f}"
        f" -> {'NAO wins' if wins else 'random wins'}"
    )
    return summary


def main(args: argparse.Namespace) -> int:
    summary = run(args)
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2, default=str))
    return 0


def add_parser(bench: argparse._SubParsersAction) -> None:
    q = bench.add_parser("quality", help="search, then train its top arch against random ones")
    q.add_argument("--space", default="cnn")
    q.add_argument("--dataset", default="cifar10")
    q.add_argument("--data-dir", default=None, help="folder of the official dataset files")
    q.add_argument("--cifar10-npz", default=None, help="write shared/data/cifar10 as batches")
    q.add_argument("--search-preset", default="small")
    q.add_argument("--train-preset", default="small")
    q.add_argument("--search-set", action="append", metavar="KEY=VALUE")
    q.add_argument("--train-set", action="append", metavar="KEY=VALUE")
    q.add_argument("--random", type=int, default=3, help="random architectures to train")
    q.add_argument("--seed", type=int, default=0, help="seed of the random architectures")
    q.add_argument("--out", required=True, help="folder of the search and the trainings")
    q.add_argument("--device", default="auto")
    q.add_argument("--threads", type=int, default=0)
    q.add_argument("--json", help="also write the figures to this file")
    q.set_defaults(func=main)
