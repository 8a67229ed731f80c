"""``nao bench improve``: what a finished NAO search's controller is worth, on NAS-Bench-201.

Per seed, one NAO search (preset ``nao/nb201`` unless ``--preset``) runs to 151 queries and
keeps the controllers it fits after 50, 100 and 150 queries (``run_nao(on_controller=)``;
rounds of ``new_archs`` after an initial pool make those sizes exact with the preset's 10 + 5
per round, and its first 100 queries are those of a 100-query run). Then:

1. **Improve vs mutate.** The controller fitted on the first 100 queries; the 10 best of them
   by the search signal (validation accuracy) are the seeds. For each, ``improve_arch`` gives
   up to ``--n`` proposals, and as many distinct random one-edit mutations
   (``strategies.mutate``) are drawn; both exclude the seed and the 100 measured
   architectures. Figures: the share of proposals whose *report* metric (test accuracy)
   beats their seed's, and their mean gain over it.
2. **Ranking.** Kendall tau between each controller's prediction and the true accuracy on
   1,000 random cells none of the searches' pools held, after 50, 100 and 150 queries.
3. **Calibration.** ``predict``'s interval (nominal coverage ``LEVEL``) around the predicted
   validation accuracy on those 1,000 cells: how often it holds the true one, and how the
   absolute error grows with the stated half-width (Spearman rho, error by tercile).

Seeds run in parallel worker processes, each with one torch thread.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SIZES = (50, 100, 150)  # queries after which the predictor is judged
IMPROVE_AT = 100  # the finished search whose controller improves its top architectures
TOP = 10
UNSEEN = 1000


@dataclass(frozen=True)
class Spec:
    table: str
    seed: int
    n: int
    preset: str
    signal: str
    report: str
    overrides: tuple[str, ...] = ()


def kendall_tau(a: np.ndarray, b: np.ndarray) -> float:
    """Kendall's tau-b (scipy's when installed; else the O(n^2) count, ties excluded)."""
    try:
        from scipy.stats import kendalltau
    except ImportError:
        i, j = np.triu_indices(len(a), k=1)
        s = np.sign(a[i] - a[j]) * np.sign(b[i] - b[j])
        ties_a, ties_b = (a[i] == a[j]).sum(), (b[i] == b[j]).sum()
        n0 = len(i)
        return float(s.sum() / np.sqrt((n0 - ties_a) * (n0 - ties_b)))
    return float(kendalltau(a, b).statistic)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra = np.argsort(np.argsort(a)).astype(float)
    rb = np.argsort(np.argsort(b)).astype(float)
    return float(np.corrcoef(ra, rb)[0, 1])


def run_seed(spec: Spec) -> dict[str, Any]:
    import torch

    from nao_core.config import apply_overrides
    from nao_core.controller.bundle import ControllerBundle
    from nao_core.controller.queries import improve_arch, predict
    from nao_core.evaluator.tabular import TabularEvaluator
    from nao_core.presets import get_preset
    from nao_core.search.strategies import mutate, run_nao
    from nao_core.search_space import create_search_space

    torch.set_num_threads(1)
    space = create_search_space("nb201")
    ev = TabularEvaluator(spec.table, space, spec.signal)
    kept: dict[int, ControllerBundle] = {}

    def keep(round: int, bundle: ControllerBundle) -> None:
        if len(bundle.pool_archs) in SIZES:
            kept[len(bundle.pool_archs)] = bundle

    began = time.perf_counter()
    cfg = apply_overrides(get_preset(spec.preset), list(spec.overrides))
    oracle = run_nao(ev, max(SIZES) + 1, spec.seed, cfg, on_controller=keep)
    search_s = time.perf_counter() - began
    missing = sorted(set(SIZES) - set(kept))
    if missing:
        raise RuntimeError(f"seed {spec.seed}: no controller fitted after {missing} queries")

    # 1. improve vs mutate, from the 10 best of the first 100 queries
    bundle = kept[IMPROVE_AT]
    first = oracle.archs[:IMPROVE_AT]
    scores = np.asarray(oracle.scores[:IMPROVE_AT])
    known = {space.canonical_key(a) for a in first}
    rng = np.random.default_rng(10_000 + spec.seed)
    rows = []
    began = time.perf_counter()
    for i in np.argsort(-scores, kind="stable")[:TOP]:
        seed_arch = first[i]
        base = ev.metric(seed_arch, spec.report)
        proposals = improve_arch(bundle, seed_arch, spec.n)
        stepped = improve_arch(bundle, seed_arch, spec.n, neighbours=False)
        mutants = _mutations(space, seed_arch, len(proposals), known, rng, mutate)
        rows.append(
            {
                "seed_report": base,
                "improve": [ev.metric(p.arch, spec.report) - base for p in proposals],
                "improve_steps": [p.step_size for p in proposals],
                "step_only": [ev.metric(p.arch, spec.report) - base for p in stepped],
                "mutate": [ev.metric(m, spec.report) - base for m in mutants],
            }
        )
    improve_s = time.perf_counter() - began

    # 2 and 3. ranking and calibration on cells no pool of this seed held
    pool_keys = {space.canonical_key(a) for a in oracle.archs}
    unseen = space.sample_unseen(np.random.default_rng(20_000 + spec.seed), UNSEEN, pool_keys)
    true_signal = np.array([ev.metric(a, spec.signal) for a in unseen])
    true_report = np.array([ev.metric(a, spec.report) for a in unseen])
    tau: dict[str, dict[str, float]] = {}
    calibration: dict[str, Any] = {}
    for size in SIZES:
        preds = predict(kept[size], unseen, k=5)
        p = np.array([x.predicted for x in preds])
        tau[str(size)] = {
            "signal": kendall_tau(p, true_signal),
            "report": kendall_tau(p, true_report),
        }
        if size == IMPROVE_AT:
            low = np.array([x.interval[0] for x in preds])
            high = np.array([x.interval[1] for x in preds])
            calibration = {
                "level": preds[0].level,
                "predicted": p.tolist(),
                "half_width": ((high - low) / 2).tolist(),
                "true": true_signal.tolist(),
                "alternatives": _alternative_widths(kept[size], preds),
            }
    return {
        "seed": spec.seed,
        "rows": rows,
        "tau": tau,
        "calibration": calibration,
        "search_seconds": search_s,
        "improve_seconds": improve_s,
    }


def _alternative_widths(bundle: Any, preds: list[Any]) -> dict[str, list[float]]:
    """Half-widths of interval rules we compared with ``predict``'s (docs/method.md):
    ``global``: the kNN leave-one-out error quantile, one width for all;
    ``distance_scaled``: that error divided by the neighbours' mean distance, its quantile
    times the query's mean distance (our first rule);
    ``neighbour_std``: z(level) x the standard deviation of the k neighbours' scores."""
    from statistics import NormalDist

    from nao_core.controller import queries as q

    space = bundle.search_space()
    pool = bundle.pool()
    scores = np.asarray(bundle.pool_scores)
    _, embs = q._members_forward(bundle.build_controllers(), q._tokens(space, pool))
    d = q._distances(embs, embs)
    np.fill_diagonal(d, np.inf)
    near = np.argsort(d, axis=1, kind="stable")[:, :5]
    err = np.abs(scores - scores[near].mean(axis=1))
    n = len(scores)
    level = min(np.ceil((n + 1) * q.LEVEL) / n, 1.0)
    glob = float(np.quantile(err, level, method="higher"))
    rows = np.arange(n)[:, None]
    per_distance = err / np.maximum(d[rows, near].mean(axis=1), 1e-3)
    by_distance = float(np.quantile(per_distance, level, method="higher"))
    z = NormalDist().inv_cdf(0.5 + q.LEVEL / 2)
    return {
        "global": [glob] * len(preds),
        "distance_scaled": [by_distance * max(p.distance, 1e-3) for p in preds],
        "neighbour_std": [z * float(np.std([x.score for x in p.neighbours])) for p in preds],
    }


def _mutations(space, arch, count, known, rng, mutate) -> list:  # type: ignore[no-untyped-def]
    """``count`` distinct random one-edit mutations of ``arch``, none in ``known`` (fewer when
    its neighbourhood runs out)."""
    out: dict[str, Any] = {}
    for _ in range(1000):
        if len(out) >= count:
            break
        child = mutate(space, arch, rng)
        key = space.canonical_key(child)
        if key not in known and key != space.canonical_key(arch):
            out.setdefault(key, child)
    return list(out.values())


METHODS = ("improve", "step_only", "mutate")


def summarize(results: list[dict[str, Any]]) -> dict[str, Any]:
    gains = {
        m: np.concatenate([r[m] for res in results for r in res["rows"]] + [np.zeros(0)])
        for m in METHODS
    }
    out: dict[str, Any] = {
        "seeds": len(results),
        "proposals": {m: int(g.size) for m, g in gains.items()},
        "beats_seed": {m: float((g > 0).mean()) for m, g in gains.items()},
        "mean_gain": {m: float(g.mean()) for m, g in gains.items()},
        "mean_gain_std_err": {
            m: float(g.std() / np.sqrt(max(g.size, 1))) for m, g in gains.items()
        },
        "steps_of_improve": {
            "neighbour": int(
                sum(s == 0 for res in results for r in res["rows"] for s in r["improve_steps"])
            ),
            "gradient": int(
                sum(s > 0 for res in results for r in res["rows"] for s in r["improve_steps"])
            ),
        },
    }
    out["ratio"] = {
        "beats_seed": out["beats_seed"]["improve"] / max(out["beats_seed"]["mutate"], 1e-12),
        "mean_gain_difference": out["mean_gain"]["improve"] - out["mean_gain"]["mutate"],
    }
    out["kendall_tau"] = {
        str(s): {
            col: {
                "mean": float(np.mean([r["tau"][str(s)][col] for r in results])),
                "std": float(np.std([r["tau"][str(s)][col] for r in results])),
            }
            for col in ("signal", "report")
        }
        for s in SIZES
    }
    out["calibration"] = _calibration(results)
    out["seconds_per_seed"] = {
        "search": float(np.mean([r["search_seconds"] for r in results])),
        "improve_top10": float(np.mean([r["improve_seconds"] for r in results])),
    }
    return out


def _calibration(results: list[dict[str, Any]]) -> dict[str, Any]:
    out = _coverage(results, lambda c: c["half_width"])
    out["alternatives"] = {
        name: _coverage(results, lambda c, name=name: c["alternatives"][name])
        for name in results[0]["calibration"]["alternatives"]
    }
    return out


def _coverage(results: list[dict[str, Any]], width: Any) -> dict[str, Any]:
    pred = np.concatenate([r["calibration"]["predicted"] for r in results])
    half = np.concatenate([width(r["calibration"]) for r in results])
    true = np.concatenate([r["calibration"]["true"] for r in results])
    err = np.abs(pred - true)
    cuts = np.quantile(half, [1 / 3, 2 / 3])
    terciles = [half <= cuts[0], (half > cuts[0]) & (half <= cuts[1]), half > cuts[1]]
    per_seed = [
        float(
            np.mean(
                np.abs(np.array(r["calibration"]["predicted"]) - r["calibration"]["true"])
                <= np.array(width(r["calibration"]))
            )
        )
        for r in results
    ]
    return {
        "level": results[0]["calibration"]["level"],
        "coverage": float((err <= half).mean()),
        "coverage_per_seed": {"min": min(per_seed), "max": max(per_seed)},
        "spearman_error_vs_half_width": spearman(err, half),
        "mean_abs_error": float(err.mean()),
        "median_half_width": float(np.median(half)),
        "by_half_width_tercile": [
            {
                "half_width_mean": float(half[m].mean()),
                "mean_abs_error": float(err[m].mean()),
                "coverage": float((err[m] <= half[m]).mean()),
            }
            for m in terciles
        ],
    }


def format_summary(s: dict[str, Any]) -> str:
    lines = [
        f"NAS-Bench-201 CIFAR-10, {s['seeds']} seeds, top-{TOP} of a {IMPROVE_AT}-query NAO "
        "search: proposals vs their seed (test accuracy)",
        f"{'method':<9} {'proposals':>9} {'beats seed':>11} {'mean gain (pp)':>16}",
        "(improve: gradient step + predictor-ranked one-edit neighbours; step_only: the "
        "gradient step alone; mutate: random one-edit mutations)",
    ]
    for m in METHODS:
        lines.append(
            f"{m:<9} {s['proposals'][m]:>9} {s['beats_seed'][m]:>11.3f} "
            f"{s['mean_gain'][m]:>+10.3f} ± {s['mean_gain_std_err'][m]:.3f}"
        )
    r = s["ratio"]
    lines.append(
        f"improve / mutate: beats seed x{r['beats_seed']:.2f}, "
        f"mean gain {r['mean_gain_difference']:+.3f} pp"
    )
    lines.append(f"predictor Kendall tau on {UNSEEN} unseen cells (mean ± std over seeds)")
    lines.append(f"{'queries':>7} {'vs valid acc':>16} {'vs test acc':>16}")
    for size, t in s["kendall_tau"].items():
        sig, rep = t["signal"], t["report"]
        lines.append(
            f"{size:>7} {sig['mean']:>9.3f} ± {sig['std']:.3f} "
            f"{rep['mean']:>9.3f} ± {rep['std']:.3f}"
        )
    c = s["calibration"]
    lines.append(
        f"interval (nominal {c['level']:.0%}) after {IMPROVE_AT} queries: coverage "
        f"{c['coverage']:.3f} (seeds {c['coverage_per_seed']['min']:.2f}-"
        f"{c['coverage_per_seed']['max']:.2f}), Spearman(|error|, half-width) "
        f"{c['spearman_error_vs_half_width']:.3f}"
    )
    for name, t in zip(("narrow", "middle", "wide"), c["by_half_width_tercile"], strict=True):
        lines.append(
            f"  {name:<6} half-width {t['half_width_mean']:6.2f}  |error| "
            f"{t['mean_abs_error']:6.2f}  coverage {t['coverage']:.3f}"
        )
    for name, alt in c["alternatives"].items():
        lines.append(
            f"  rule {name}: coverage {alt['coverage']:.3f}, median half-width "
            f"{alt['median_half_width']:.2f}, Spearman {alt['spearman_error_vs_half_width']:.3f}"
        )
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    from nao_core.catalog import table_path

    table = args.table or str(table_path("nb201"))
    specs = [
        Spec(table, s, args.n, args.preset, args.signal, args.report, tuple(args.set or ()))
        for s in range(args.first_seed, args.first_seed + args.seeds)
    ]
    workers = args.workers or max(1, os.cpu_count() or 1)
    keep = Path(args.keep) if args.keep else None
    results = []
    todo = []
    for spec in specs:  # seeds finished by an earlier, interrupted run are read back
        done = keep / f"seed-{spec.seed:03d}.json" if keep else None
        if done is not None and done.is_file():
            results.append(json.loads(done.read_text()))
        else:
            todo.append(spec)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for res in pool.map(run_seed, todo):
            results.append(res)
            if keep is not None:
                keep.mkdir(parents=True, exist_ok=True)
                (keep / f"seed-{res['seed']:03d}.json").write_text(json.dumps(res))
    results.sort(key=lambda r: r["seed"])
    summary = summarize(results)
    summary["config"] = {
        "preset": args.preset,
        "n": args.n,
        "signal": args.signal,
        "report": args.report,
        "first_seed": args.first_seed,
        "overrides": list(args.set or ()),
    }
    sys.stdout.write(format_summary(summary) + "\n")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")
    return 0


def add_parser(bench: argparse._SubParsersAction) -> None:
    b = bench.add_parser(
        "improve", help="NB201: improve vs one-edit mutation, predictor tau and calibration"
    )
    b.add_argument("--table", default=None, help="the NAS-Bench-201 table (default: shipped)")
    b.add_argument("--seeds", type=int, default=20, help="NAO searches (one per seed)")
    b.add_argument("--first-seed", type=int, default=0, help="seeds run from here")
    b.add_argument("--n", type=int, default=5, help="improve proposals per top architecture")
    b.add_argument("--preset", default="nao/nb201", help="the searches' NAO preset")
    b.add_argument("--signal", default="c10_valid_acc_200ep", help="column searched on")
    b.add_argument("--report", default="c10_test_acc_200ep", help="column reported")
    b.add_argument("--set", action="append", metavar="KEY=VALUE", help="preset overrides")
    b.add_argument("--workers", type=int, default=None, help="processes (default: CPU count)")
    b.add_argument("--json", help="also write the summary as JSON to this file")
    b.add_argument(
        "--keep", help="folder for each seed's raw result; seeds found there are not rerun"
    )
    b.set_defaults(func=main)
