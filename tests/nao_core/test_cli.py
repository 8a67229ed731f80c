"""The ``nao`` command as a user runs it (real subprocesses), and its parser tree."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import options_without_help

from nao_core.cli import build_parser
from nao_core.console import verbosity


def nao(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nao_core.cli", *args], capture_output=True, text=True, timeout=600
    )


def test_spaces_and_arch() -> None:
    out = nao("spaces")
    assert out.returncode == 0
    assert "cnn " in out.stdout
    assert "nb201" in out.stdout
    out = nao("arch", "rnn", "0 1 1 1 2 2 1 2 4 1 4 1 4 1 7 1 8 2 1 0 4 1")
    assert out.returncode == 0
    info = json.loads(out.stdout)
    assert info["arch"].startswith("s1=relu(s0)")
    assert len(info["hash"]) == 64


def test_every_option_of_every_command_has_help() -> None:
    assert options_without_help(build_parser()) == []


@pytest.mark.parametrize(
    ("argv", "level"),
    [
        (["spaces"], 0),
        (["-v", "spaces"], 1),
        (["spaces", "-v"], 1),
        (["-v", "search", "--out", "x", "-vv"], 3),
        (["search", "--out", "x", "-q"], -1),
        (["bench", "-v", "nb201", "-v"], 2),
        (["data", "list", "-q", "-v"], 0),
    ],
)
def test_verbosity_goes_before_or_after_the_subcommand(argv: list[str], level: int) -> None:
    assert verbosity(build_parser().parse_args(argv)) == level


def test_progress_off_a_terminal_is_plain_log_lines(tmp_path: Path) -> None:
    out = nao(
        "train", "--arch-name", "naonet-a", "--dataset", "digits", "--preset", "tiny",
        "--out", str(tmp_path), "--set", "optim.epochs=1", "--threads", "1", "-v",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["status"] == "completed"
    lines = out.stderr.splitlines()
    assert any(line.endswith("nao_core.console: phase=train total=1") for line in lines)
    assert any("nao_core.console: epoch=1 train_loss=" in line for line in lines)
    assert any("INFO nao_core.train: trained" in line for line in lines)  # -v after the command
    assert "\r" not in out.stderr  # no bar drawn in place
    assert "%|" not in out.stderr


def test_bad_input_is_a_clear_error() -> None:
    out = nao("arch", "cnn", "1 2 3")
    assert out.returncode == 2
    assert "expected 40 integers, got 3" in out.stderr
    out = nao("arch", "resnet", "x")
    assert out.returncode == 2
    assert "unknown search space 'resnet'" in out.stderr


def test_bench_nb201_small(nb201_table: Path, tmp_path: Path) -> None:
    out_json = tmp_path / "rows.json"
    out = nao(
        "bench", "nb201", "--table", str(nb201_table), "--methods", "random,evolution",
        "--queries", "10,20", "--seeds", "3", "--workers", "2", "--json", str(out_json),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    rows = json.loads(out_json.read_text())
    assert [(r["method"], r["queries"]) for r in rows] == [
        ("random", 10), ("random", 20), ("evolution", 10), ("evolution", 20),
    ]  # fmt: skip
    for r in rows:
        assert set(r) == {
            "task", "method", "queries", "mean", "se", "seeds", "first_seed", "seconds_per_run",
            "cpu_seconds_per_run", "reaches_evolution_at",
        }  # fmt: skip
        assert 10.0 < r["mean"] <= 94.38
        assert r["seeds"] == 3
        assert r["first_seed"] == 0
    assert "optimum of c10_test_acc_200ep in the table: 94.37" in out.stdout


def test_bench_nb201_first_seed_starts_another_sample(nb201_table: Path) -> None:
    from nao_core.bench.nb201 import RunSpec, run_benchmark, run_one

    args = ("c10_valid_acc_200ep", "c10_test_acc_200ep")
    rows = run_benchmark(str(nb201_table), ["random"], [20], 1, *args, workers=1, first_seed=7)
    spec = RunSpec(str(nb201_table), "nb201", "random", 7, 20, *args, (20,), ())
    assert rows[0]["mean"] == round(run_one(spec).values[0], 4)
    assert rows[0]["first_seed"] == 7


def test_bench_nb201_seminas_is_nao_with_pseudo_labels(nb201_table: Path) -> None:
    from nao_core.bench.nb201 import RunSpec, run_one, strategy_config

    cfg = strategy_config("seminas", ("seminas.controller.pseudo_labels=40",))
    assert cfg.controller.pseudo_labels == 40
    assert strategy_config("nao-paper", ()).controller.pseudo_labels == 0  # NAO as published
    args = ("c10_valid_acc_200ep", "c10_test_acc_200ep")
    overrides = ("seminas.controller.pseudo_labels=40", "seminas.controller.pseudo_epochs=5")
    spec = RunSpec(str(nb201_table), "nb201", "seminas", 0, 20, *args, (20,), overrides)
    (value,) = run_one(spec).values
    assert 10.0 < value <= 94.38


def test_bench_nb201_rejects_unknown_method(nb201_table: Path) -> None:
    out = nao("bench", "nb201", "--table", str(nb201_table), "--methods", "nao,bohb")
    assert out.returncode == 2
    assert "unknown benchmark method 'bohb'" in out.stderr
    assert "seminas" in out.stderr


def test_bench_nb201_rejects_unknown_column(nb201_table: Path) -> None:
    out = nao("bench", "nb201", "--table", str(nb201_table), "--report", "nope", "--seeds", "1")
    assert out.returncode == 2
    assert "column 'nope'" in out.stderr


@pytest.mark.slow
def test_bench_controller_runs(tmp_path: Path) -> None:
    out = nao(
        "bench",
        "controller",
        "--epochs",
        "3",
        "--baseline-epochs",
        "1",
        "--replicas",
        "2",
        "--json",
        str(tmp_path / "c.json"),
    )
    assert out.returncode == 0, out.stderr
    assert "2 replica(s)" in out.stdout
    data = json.loads((tmp_path / "c.json").read_text())
    assert data["replicas"] == 2
    assert 0 < data["new_archs"] <= 300  # 3 epochs leave the decoder near-constant
    assert data["speedup_vs_baseline"] > 1.0
    assert "vs the authors scaled by the baseline" in out.stdout
    assert data["speedup_vs_authors_scaled"] == pytest.approx(
        data["speedup_vs_baseline"] * 0.42 / 0.219, rel=0.02
    )
    assert data["seconds_per_round_projected"] > 0
    assert data["gflop_per_epoch"] == pytest.approx(13.68, abs=0.01)  # 600 CNN archs, H 96
    assert 0 < data["achieved_gflops"] < 2 * data["gemm_peak_gflops_fp32"]


def test_draw_writes_the_cells_as_svg(tmp_path: Path) -> None:
    import xml.etree.ElementTree as ET

    out = tmp_path / "cell.svg"
    done = nao("draw", "cnn-large", "naonet-a", "-o", str(out))
    assert done.returncode == 0, done.stderr
    nodes = [
        g for g in ET.parse(out).iter("{http://www.w3.org/2000/svg}g") if g.get("class") == "node"
    ]
    assert len(nodes) == 16  # two cells of h0, h1, five nodes and the output
    text = nao(
        "draw", "nb201", "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|none~0|none~1|avg_pool_3x3~2|"
    )
    assert text.returncode == 0
    assert text.stdout.startswith("<?xml")
    wrong = nao("draw", "cnn", "naonet-a")
    assert wrong.returncode == 2
    assert wrong.stderr.strip() == "nao: error: naonet-a is an architecture of space 'cnn-large'"
