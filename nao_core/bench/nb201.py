"""``nao bench nb201``: NAO, random search and regularized evolution on a tabular benchmark.

Protocol (NAS-Bench-201): every method searches on the *signal* column (e.g. validation
accuracy) and is scored by the *report* column (e.g. test accuracy) of the architecture with
the best signal among those it queried. One run per seed goes to the largest budget; the
best-so-far curve gives every smaller budget. Seeds run in parallel worker processes.
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nao_core.catalog import table_path
from nao_core.config import apply_overrides
from nao_core.errors import UnknownName
from nao_core.evaluator.tabular import TabularEvaluator
from nao_core.presets import get_preset
from nao_core.search.strategies import create_strategy
from nao_core.search_space import create_search_space

# method -> (strategy, preset); "seminas" is NAO with pseudo-labels (controller.semi)
METHODS: dict[str, tuple[str, str | None]] = {
    "nao": ("nao", "nao/nb201"),
    "seminas": ("nao", "nao/nb201-seminas"),
    "evolution": ("evolution", "evolution/nb201"),
    "random": ("random", None),
}


@dataclass(frozen=True)
class RunSpec:
    table: str
    space: str
    method: str
    seed: int
    budget: int
    signal: str
    report: str
    budgets: tuple[int, ...]
    overrides: tuple[str, ...]


_EVALUATORS: dict[tuple[str, str, str], TabularEvaluator] = {}


def _evaluator(table: str, space: str, signal: str) -> TabularEvaluator:
    key = (table, space, signal)
    if key not in _EVALUATORS:  # one parse of the table per worker process
        _EVALUATORS[key] = TabularEvaluator(table, create_search_space(space), signal)
    return _EVALUATORS[key]


def _method(method: str) -> tuple[str, str | None]:
    if method not in METHODS:
        raise UnknownName("benchmark method", method, sorted(METHODS))
    return METHODS[method]


def strategy_config(method: str, overrides: tuple[str, ...]) -> Any:
    preset = _method(method)[1]
    if preset is None:
        return None
    mine = [o.split(".", 1)[1] for o in overrides if o.startswith(f"{method}.")]
    return apply_overrides(get_preset(preset), mine)


def run_one(spec: RunSpec) -> tuple[list[float], float]:
    """Reported metric at each budget for one seed, and the run's wall time."""
    import torch

    torch.set_num_threads(1)  # parallelism comes from the worker processes
    ev = _evaluator(spec.table, spec.space, spec.signal)
    cfg = strategy_config(spec.method, spec.overrides)
    start = time.perf_counter()
    oracle = create_strategy(_method(spec.method)[0])(ev, spec.budget, spec.seed, cfg)
    seconds = time.perf_counter() - start
    best = oracle.best_so_far()
    out = []
    for b in spec.budgets:
        n = min(b, oracle.used)
        out.append(ev.metric(oracle.archs[best[n - 1]], spec.report))
    return out, seconds


def run_benchmark(
    table: str,
    methods: list[str],
    budgets: list[int],
    seeds: int,
    signal: str,
    report: str,
    space: str = "nb201",
    workers: int | None = None,
    overrides: tuple[str, ...] = (),
    first_seed: int = 0,
) -> list[dict[str, Any]]:
    ev = _evaluator(table, space, signal)  # fail fast on a bad path or column
    ev.check_column(report)
    for m in methods:
        create_strategy(_method(m)[0])
        strategy_config(m, overrides)
    budgets = sorted(set(budgets))
    specs = [
        RunSpec(table, space, m, s, budgets[-1], signal, report, tuple(budgets), overrides)
        for m in methods
        for s in range(first_seed, first_seed + seeds)
    ]
    workers = workers or max(1, os.cpu_count() or 1)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(run_one, specs))
    rows = []
    for m in methods:
        mine = [r for spec, r in zip(specs, results, strict=True) if spec.method == m]
        values = np.array([r[0] for r in mine])  # (seeds, budgets)
        secs = float(np.mean([r[1] for r in mine]))
        for j, b in enumerate(budgets):
            rows.append(
                {
                    "method": m,
                    "queries": b,
                    "mean": round(float(values[:, j].mean()), 4),
                    "std": round(float(values[:, j].std()), 4),
                    "seeds": seeds,
                    "first_seed": first_seed,
                    "seconds_per_run": round(secs, 2),
                }
            )
    return rows


def format_rows(rows: list[dict[str, Any]], report: str, optimum: float) -> str:
    lines = [
        f"{'method':<10} {'queries':>7}  {report + ' (mean ± std)':>32}  "
        f"{'seeds':>5}  {'s/run':>7}",
    ]
    for r in rows:
        cell = f"{r['mean']:.2f} ± {r['std']:.2f}"
        lines.append(
            f"{r['method']:<10} {r['queries']:>7}  {cell:>32}  "
            f"{r['seeds']:>5}  {r['seconds_per_run']:>7.1f}"
        )
    lines.append(f"optimum of {report} in the table: {optimum:.2f}")
    return "\n".join(lines)


def main(args: Any) -> int:
    table = args.table or str(table_path("nb201"))  # installed in the data dir, else shipped
    rows = run_benchmark(
        table=table,
        methods=[m.strip() for m in args.methods.split(",") if m.strip()],
        budgets=[int(q) for q in args.queries.split(",")],
        seeds=args.seeds,
        signal=args.signal,
        report=args.report,
        space=args.space,
        workers=args.workers,
        overrides=tuple(args.set or ()),
        first_seed=args.first_seed,
    )
    ev = _evaluator(table, args.space, args.signal)
    print(format_rows(rows, args.report, ev.best(args.report)))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0
