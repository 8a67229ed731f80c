"""Same seed, same search on any host: the controller's numerics do not depend on the number
of torch threads (``controller.replicas`` fixes them, each replica computing with one
intra-op thread; ``controller.fit``).

Each run is a fresh interpreter with its own ``torch.set_num_threads``: the thread count of a
process is what differs between a 1-thread worker and a 2-thread one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from nao_core.config import ControllerConfig
from nao_core.controller.fit import fit_replicas

ROOT = Path(__file__).resolve().parents[2]
TABLE = ROOT / "nao_core" / "tables" / "nb201_accuracy_table.csv.gz"

# Fit a controller (dropout on, swap augmentation on, 2 replicas) on a synthetic CNN pool,
# propose from its top seeds, then run a tabular NAO search on NAS-Bench-201; print digests.
_SCRIPT = textwrap.dedent(
    """
    import hashlib, json, sys
    from dataclasses import replace

    import numpy as np
    import torch

    threads, budget, seed, preset, small = sys.argv[1:6]
    torch.set_num_threads(int(threads))

    from nao_core.bench.controller import synthetic_pool
    from nao_core.config import ControllerConfig
    from nao_core.controller import Controller, fit_controller, improve
    from nao_core.evaluator.tabular import TabularEvaluator
    from nao_core.presets import get_preset
    from nao_core.search.strategies import run_nao
    from nao_core.search_space import create_search_space

    def digest(text):
        return hashlib.sha256(text.encode()).hexdigest()

    out = {"threads": torch.get_num_threads()}
    space = create_search_space("cnn")
    archs, scores = synthetic_pool(120, 3)
    tokens = torch.tensor([space.encode(a) for a in archs])
    torch.manual_seed(0)
    ctrl = Controller(space, ControllerConfig(epochs=6, batch_size=40))
    report, _ = fit_controller(ctrl, tokens, scores, generator=torch.Generator().manual_seed(0))
    out["fit"] = digest("".join(p.detach().numpy().tobytes().hex() for p in ctrl.parameters()))
    out["loss"] = report.loss
    order = np.argsort(-scores)
    new = improve(ctrl, space, [archs[i] for i in order[:30]], 60,
                  {space.canonical_key(a) for a in archs})
    out["proposals"] = [space.to_str(p.arch) for p in new]
    out["predicted"] = [p.predicted for p in new]

    cfg = get_preset(preset)
    if small == "1":  # a shorter search with the same code path, for the default test run
        cfg = replace(cfg, controller=replace(cfg.controller, epochs=40))
    nb201 = create_search_space("nb201")
    evaluator = TabularEvaluator(sys.argv[6], nb201, "c10_valid_acc_200ep")
    oracle = run_nao(evaluator, int(budget), int(seed), cfg)
    out["queried"] = [nb201.to_str(a) for a in oracle.archs]
    print(json.dumps(out))
    """
)


def _run(thread_counts: tuple[int, ...], budget: int, seed: int, preset: str, small: bool):
    """One interpreter per thread count, run side by side; their printed digests."""
    args = [str(budget), str(seed), preset, "1" if small else "0", str(TABLE)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _SCRIPT, str(threads), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env={**os.environ, "OMP_NUM_THREADS": str(threads)},
        )
        for threads in thread_counts
    ]
    runs = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=1800)
        assert proc.returncode == 0, stderr[-3000:]
        runs.append(json.loads(stdout.strip().splitlines()[-1]))
    return runs


def _assert_same(runs: list[dict], budget: int) -> None:
    first = runs[0]
    assert len(first["queried"]) == budget
    assert first["proposals"], "the controller proposed nothing: the test would prove nothing"
    for other in runs[1:]:
        assert other["threads"] != first["threads"]
        assert other["fit"] == first["fit"]  # every parameter, bit for bit
        assert other["loss"] == first["loss"]
        assert other["proposals"] == first["proposals"]
        assert other["predicted"] == first["predicted"]
        assert other["queried"] == first["queried"]


def test_controller_and_a_tabular_nao_search_are_the_same_with_1_and_2_threads() -> None:
    runs = _run((1, 2), budget=30, seed=5, preset="nao/nb201", small=True)
    _assert_same(runs, 30)


@pytest.mark.slow
def test_the_nb201_nao_search_of_the_report_queries_the_same_60_archs_with_1_2_and_3_threads():
    # {"space": "nb201", "method": "nao", "budget": 60, "seed": 5}: two different sets of 60
    # architectures with 1 and 2 worker threads before controller.replicas was pinned
    runs = _run((1, 2, 3), budget=60, seed=5, preset="nao/nb201", small=False)
    _assert_same(runs, 60)


def test_the_replica_count_does_not_follow_the_host() -> None:
    cfg = ControllerConfig()
    assert cfg.replicas == 2
    assert {fit_replicas(cfg, threads) for threads in (1, 2, 4, 16, 64)} == {2}
    auto = ControllerConfig(replicas=0)  # the explicit opt-in: one per thread, per host
    assert fit_replicas(auto, 1) == 1
    assert fit_replicas(auto, 16) == 4
