"""``nao bench nb201``: NAO, random search and regularized evolution on a tabular benchmark.

Protocol (NAS-Bench-201): every method searches on the *signal* column (e.g. validation
accuracy) and is scored by the *report* column (e.g. test accuracy) of the architecture with
the best signal among those it queried. ``--tasks`` runs several (signal, report) pairs in one
call (``TASKS``: CIFAR-10's 200-epoch valid -> test, CIFAR-100's and ImageNet16-120's cheap
12-epoch valid -> 200-epoch test).

Query levels: one run per seed goes to the largest budget, and a smaller level is read off
its first queries only where that prefix is exactly what a run with the smaller budget queries
(``prefix_exact``: random search and evolution always; NAO where the level ends a round, since
the last round of a shorter run is cut to the budget); any other level is a run of its own.
Rows give mean ± standard error over the seeds, seconds per run (process CPU time, which other
load on the machine hardly changes, and wall time) and, with ``evolution`` among the methods,
the queries each method needs to reach evolution's mean at the largest level (read off the
mean best-so-far curve of the largest runs). Seeds run in parallel worker processes.
"""

from __future__ import annotations

import json
import math
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nao_core.catalog import table_path
from nao_core.config import NaoConfig, apply_overrides
from nao_core.errors import InvalidConfig, UnknownName
from nao_core.evaluator.tabular import TabularEvaluator
from nao_core.presets import get_preset
from nao_core.search.strategies import create_strategy
from nao_core.search_space import create_search_space

# method -> (strategy, preset). "nao" is the tabular default (the API's "method": "nao" with
# no preset runs the same preset); "nao-paper" is NAO as first published for the benchmark;
# "seminas" is that recipe plus pseudo-labels (controller.semi).
METHODS: dict[str, tuple[str, str | None]] = {
    "nao": ("nao", "nao/nb201"),
    "nao-paper": ("nao", "nao/nb201-paper"),
    "seminas": ("nao", "nao/nb201-seminas"),
    "evolution": ("evolution", "evolution/nb201"),
    "random": ("random", None),
}

# task -> (signal, report): what a search sees and what it is scored by
TASKS: dict[str, tuple[str, str]] = {
    "c10": ("c10_valid_acc_200ep", "c10_test_acc_200ep"),
    "c100": ("c100_valid_acc_12ep", "nats_c100_test_acc_200ep"),
    "in16": ("in16_valid_acc_12ep", "nats_in16_test_acc_200ep"),
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


@dataclass(frozen=True)
class RunResult:
    values: list[float]  # report metric of the best-by-signal arch at each of spec.budgets
    wall_seconds: float
    cpu_seconds: float
    curve: list[float]  # report metric of the best-by-signal arch after each query


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


def parse_tasks(text: str) -> list[tuple[str, str, str]]:
    """``c10,c100`` -> [(task, signal, report), ...]."""
    out = []
    for name in (t.strip() for t in text.split(",")):
        if name:
            if name not in TASKS:
                raise UnknownName("benchmark task", name, sorted(TASKS))
            out.append((name, *TASKS[name]))
    if not out:
        raise InvalidConfig("--tasks: name at least one task")
    return out


def strategy_config(method: str, overrides: tuple[str, ...]) -> Any:
    preset = _method(method)[1]
    if preset is None:
        return None
    mine = [o.split(".", 1)[1] for o in overrides if o.startswith(f"{method}.")]
    return apply_overrides(get_preset(preset), mine)


def prefix_exact(method: str, cfg: Any, level: int) -> bool:
    """Whether the first ``level`` queries of a longer run are exactly a ``level``-query run.

    Random search and evolution never look at their budget until it is spent. NAO does: the
    last round of a run is cut to what is left (``n_new = min(new_archs, remaining)``), and an
    ensemble's pool of candidates depends on that cut, so only a level that ends the initial
    pool or a whole round is a prefix (each round queries ``new_archs`` proposals, then random
    architectures for any it could not propose, then ``random_per_round`` random ones).
    """
    if _method(method)[0] != "nao":
        return True
    assert isinstance(cfg, NaoConfig)
    if level <= cfg.initial_pool:
        return True
    per_round = cfg.controller.new_archs + cfg.random_per_round
    return per_round > 0 and (level - cfg.initial_pool) % per_round == 0


def run_one(spec: RunSpec) -> RunResult:
    """Reported metric at each budget for one seed, with the run's wall and CPU seconds."""
    import torch

    torch.set_num_threads(1)  # parallelism comes from the worker processes
    ev = _evaluator(spec.table, spec.space, spec.signal)
    cfg = strategy_config(spec.method, spec.overrides)
    start, cpu_start = time.perf_counter(), time.process_time()
    oracle = create_strategy(_method(spec.method)[0])(ev, spec.budget, spec.seed, cfg)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    best = oracle.best_so_far()
    curve = [ev.metric(oracle.archs[i], spec.report) for i in best]
    values = [curve[min(b, oracle.used) - 1] for b in spec.budgets]
    return RunResult(values, wall, cpu, curve)


def _specs(
    table: str,
    space: str,
    method: str,
    seed: int,
    budgets: list[int],
    signal: str,
    report: str,
    overrides: tuple[str, ...],
) -> list[RunSpec]:
    """The largest run with every level it answers exactly, and one run per other level."""
    cfg = strategy_config(method, overrides)
    top = budgets[-1]
    shared = tuple(b for b in budgets if b == top or prefix_exact(method, cfg, b))
    alone = [b for b in budgets if b not in shared]
    out = [RunSpec(table, space, method, seed, top, signal, report, shared, overrides)]
    out += [RunSpec(table, space, method, seed, b, signal, report, (b,), overrides) for b in alone]
    return out


def reach(curve: np.ndarray, target: float) -> int | None:
    """First query count (1-based) at which ``curve`` reaches ``target``, None if never."""
    hit = np.flatnonzero(curve >= target - 1e-9)
    return int(hit[0]) + 1 if hit.size else None


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
    task: str | None = None,
) -> list[dict[str, Any]]:
    """Rows of one (signal, report) pair: per method and level, mean ± SE over the seeds."""
    return run_tasks(
        table, methods, budgets, seeds, [(task or signal, signal, report)], space, workers,
        overrides, first_seed,
    )  # fmt: skip


def run_tasks(
    table: str,
    methods: list[str],
    budgets: list[int],
    seeds: int,
    tasks: list[tuple[str, str, str]],
    space: str = "nb201",
    workers: int | None = None,
    overrides: tuple[str, ...] = (),
    first_seed: int = 0,
) -> list[dict[str, Any]]:
    """Every (task, method, seed) run in one process pool; rows per task, method and level."""
    for _, signal, report in tasks:
        ev = _evaluator(table, space, signal)  # fail fast on a bad path or column
        ev.check_column(report)
    for m in methods:
        create_strategy(_method(m)[0])
        strategy_config(m, overrides)
    budgets = sorted(set(budgets))
    if not budgets or budgets[0] < 1:
        raise InvalidConfig("--queries: budgets must be >= 1")
    seed_range = range(first_seed, first_seed + seeds)
    keyed = [
        ((t, m, s), spec)
        for t, signal, report in tasks
        for m in methods
        for s in seed_range
        for spec in _specs(table, space, m, s, budgets, signal, report, overrides)
    ]
    workers = workers or max(1, os.cpu_count() or 1)
    # the longest runs first, so that a short one does not hold the pool's tail
    order = sorted(range(len(keyed)), key=lambda i: -keyed[i][1].budget)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        done = list(pool.map(run_one, [keyed[i][1] for i in order]))
    results: list[RunResult | None] = [None] * len(keyed)
    for i, r in zip(order, done, strict=True):
        results[i] = r
    rows = []
    for t, _, _ in tasks:
        curves: dict[str, np.ndarray] = {}
        for m in methods:
            value: dict[int, list[float]] = {b: [] for b in budgets}
            wall, cpu, mine = [], [], []
            for ((tk, mk, _s), spec), r in zip(keyed, results, strict=True):
                if (tk, mk) != (t, m) or r is None:
                    continue
                for b, v in zip(spec.budgets, r.values, strict=True):
                    value[b].append(v)
                if spec.budget == budgets[-1]:
                    wall.append(r.wall_seconds)
                    cpu.append(r.cpu_seconds)
                    mine.append(r.curve)
            curves[m] = np.mean([c + [c[-1]] * (budgets[-1] - len(c)) for c in mine], axis=0)
            for b in budgets:
                v = np.asarray(value[b])
                se = float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else 0.0
                rows.append(
                    {
                        "task": t,
                        "method": m,
                        "queries": b,
                        "mean": round(float(v.mean()), 4),
                        "se": round(se, 4),
                        "seeds": seeds,
                        "first_seed": first_seed,
                        "seconds_per_run": round(float(np.mean(wall)), 2),
                        "cpu_seconds_per_run": round(float(np.mean(cpu)), 2),
                    }
                )
        if "evolution" in curves:
            target = float(curves["evolution"][-1])
            for row in rows:
                if row["task"] == t:
                    row["reaches_evolution_at"] = reach(curves[row["method"]], target)
    return rows


def format_rows(rows: list[dict[str, Any]], optimum: dict[str, tuple[str, float]]) -> str:
    """One table per task; ``optimum`` maps a task to its report column and best value."""
    lines: list[str] = []
    for task in dict.fromkeys(r["task"] for r in rows):
        report, best = optimum[task]
        mine = [r for r in rows if r["task"] == task]
        if lines:
            lines.append("")
        lines.append(f"task {task}: best-by-signal {report}")
        lines.append(
            f"{'method':<10} {'queries':>7}  {'mean ± SE':>15}  {'seeds':>5}  "
            f"{'cpu s/run':>9}  {'wall s/run':>10}  {'reaches evolution@max':>21}"
        )
        for r in mine:
            cell = f"{r['mean']:.2f} ± {r['se']:.2f}"
            hit = r.get("reaches_evolution_at", "-")
            lines.append(
                f"{r['method']:<10} {r['queries']:>7}  {cell:>15}  {r['seeds']:>5}  "
                f"{r['cpu_seconds_per_run']:>9.1f}  {r['seconds_per_run']:>10.1f}  "
                f"{'never' if hit is None else hit:>21}"
            )
        lines.append(f"optimum of {report} in the table: {best:.2f}")
    return "\n".join(lines)


def main(args: Any) -> int:
    table = args.table or str(table_path("nb201"))  # installed in the data dir, else shipped
    pair = [(args.signal, args.signal, args.report)]
    tasks = parse_tasks(args.tasks) if args.tasks else pair
    rows = run_tasks(
        table=table,
        methods=[m.strip() for m in args.methods.split(",") if m.strip()],
        budgets=[int(q) for q in args.queries.split(",")],
        seeds=args.seeds,
        tasks=tasks,
        space=args.space,
        workers=args.workers,
        overrides=tuple(args.set or ()),
        first_seed=args.first_seed,
    )
    optimum = {
        t: (report, _evaluator(table, args.space, signal).best(report))
        for t, signal, report in tasks
    }
    print(format_rows(rows, optimum))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0
