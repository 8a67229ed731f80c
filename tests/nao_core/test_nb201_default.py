"""The tabular default NAO (API and bench), the published recipe one preset away, and the
``nao bench nb201`` task, level and cost columns."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from nao_core.bench import nb201 as bench
from nao_core.config import ControllerConfig, NaoConfig, from_dict, to_dict
from nao_core.evaluator.tabular import TabularEvaluator
from nao_core.presets import get_preset
from nao_core.search.strategies import run_nao
from nao_core.search_space import create_search_space


def test_default_nao_is_one_preset_for_the_api_and_the_bench() -> None:
    from jobs import search_tabular

    default = get_preset("nao/nb201")
    assert bench.strategy_config("nao", ()) == default
    assert search_tabular.strategy_config("nao", None, {}) == default
    assert search_tabular.strategy_config("nao", "nb201-paper", {}) == get_preset("nao/nb201-paper")
    assert bench.strategy_config("nao-paper", ()) == get_preset("nao/nb201-paper")
    assert default != get_preset("nao/nb201-paper")
    # the job row stores the config as a dict; the worker reads it back
    assert from_dict(NaoConfig, to_dict(default)) == default


def test_nao_paper_is_the_published_recipe_field_by_field() -> None:
    published_controller = {
        "hidden_size": 96, "mlp_layers": 3, "mlp_hidden_size": 200, "mlp_dropout": 0.1,
        "encoder_dropout": 0.0, "decoder_dropout": 0.0, "trade_off": 0.8, "lr": 1e-3,
        "weight_decay": 1e-4, "grad_clip": 5.0, "batch_size": 100, "epochs": 200,
        "swap_augment": True, "masked_training": False, "target_transform": "rank",
        "rank_weight": 0.0, "reset_optimizer": True, "precision": "auto",
        "top_seeds": 10, "new_archs": 5, "max_step_size": 50, "step_escalations": 0,
        "proposal_order": "predicted", "pseudo_labels": 0, "pseudo_epochs": 40,
        "attention": "general", "mlp_init_range": 0.0, "token_group": 0,
        # how a batch is split over threads, not what is computed: the bench runs one thread
        "replicas": ControllerConfig().replicas,
    }  # fmt: skip
    published = {
        "initial_pool": 10, "random_per_round": 0, "ensemble": 1, "acquisition_kappa": 0.0,
        "mutation_seeds": 0, "controller": published_controller,
    }  # fmt: skip
    paper = to_dict(get_preset("nao/nb201-paper"))
    assert paper == published
    assert {f.name for f in dataclasses.fields(NaoConfig)} == set(published)
    assert {f.name for f in dataclasses.fields(ControllerConfig)} == set(published_controller)


@pytest.fixture(scope="module")
def c100(nb201_table: Path) -> TabularEvaluator:
    return TabularEvaluator(nb201_table, create_search_space("nb201"), "c100_valid_acc_12ep")


def test_default_nao_spends_exactly_its_budget_and_repeats(c100: TabularEvaluator) -> None:
    cfg = get_preset("nao/nb201")
    a = run_nao(c100, 30, 3, cfg)
    b = run_nao(c100, 30, 3, cfg)
    assert a.used == 30 == len({c100.space.canonical_key(x) for x in a.archs})
    assert [c100.space.canonical_key(x) for x in a.archs] == [
        c100.space.canonical_key(x) for x in b.archs
    ]


def test_a_level_is_read_off_a_longer_run_only_where_it_is_that_run(c100: TabularEvaluator):
    cfg = get_preset("nao/nb201")
    cfg = dataclasses.replace(cfg, controller=dataclasses.replace(cfg.controller, epochs=3))
    per_round = cfg.controller.new_archs + cfg.random_per_round
    level = cfg.initial_pool + 2 * per_round
    assert bench.prefix_exact("nao", cfg, level)
    assert per_round > 1
    assert not bench.prefix_exact("nao", cfg, level + 1)
    assert bench.prefix_exact("evolution", None, 17)
    assert bench.prefix_exact("random", None, 3)
    keys = [c100.space.canonical_key(x) for x in run_nao(c100, level + per_round, 5, cfg).archs]
    short = [c100.space.canonical_key(x) for x in run_nao(c100, level, 5, cfg).archs]
    assert keys[:level] == short
    # a level inside a round is a run of its own, the others come with the largest run
    specs = bench._specs("t", "nb201", "nao", 0, [level, level + 1, 150], "s", "r", ())
    assert [(s.budget, s.budgets) for s in specs] == [
        (150, (level, 150)),
        (level + 1, (level + 1,)),
    ]


def test_bench_runs_several_tasks_levels_and_reports_cost(tmp_path: Path) -> None:
    out_json = tmp_path / "rows.json"
    out = subprocess.run(
        [
            sys.executable, "-m", "nao_core.cli", "bench", "nb201", "--tasks", "c10,in16",
            "--methods", "nao,random,evolution", "--queries", "20,30", "--seeds", "2",
            "--workers", "2", "--set", "nao.controller.epochs=2", "--json", str(out_json),
        ],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    rows = json.loads(out_json.read_text())
    assert [(r["task"], r["method"], r["queries"]) for r in rows] == [
        (t, m, q) for t in ("c10", "in16") for m in ("nao", "random", "evolution") for q in (20, 30)
    ]
    for r in rows:
        assert min(r["se"], r["cpu_seconds_per_run"], r["seconds_per_run"]) >= 0
        assert r["reaches_evolution_at"] is None or 1 <= r["reaches_evolution_at"] <= 30
    evo = [r for r in rows if r["method"] == "evolution" and r["queries"] == 30]
    assert all(r["reaches_evolution_at"] <= 30 for r in evo)
    assert "task in16: best-by-signal nats_in16_test_acc_200ep" in out.stdout
    assert "optimum of c10_test_acc_200ep in the table: 94.37" in out.stdout


def test_bench_rejects_an_unknown_task() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "nao_core.cli", "bench", "nb201", "--tasks", "c10,mnist"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert out.returncode == 2
    assert "unknown benchmark task 'mnist'" in out.stderr
