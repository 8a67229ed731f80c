"""``nao improve`` and ``nao predict`` on a run folder and on a controller checkpoint."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from test_controller_bundle import fitted_bundle

from nao_core.cli import main
from nao_core.controller.bundle import ControllerBundle, controller_path, save_bundle
from nao_core.search_space import create_search_space


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ControllerBundle]:
    run = tmp_path_factory.mktemp("cli") / "run"
    bundle = fitted_bundle("nb201")
    save_bundle(replace(bundle, round=1), controller_path(run, 1))
    save_bundle(replace(bundle, round=2), controller_path(run, 2))
    return run, bundle


def test_improve_on_a_run_folder(run_dir, capsys: pytest.CaptureFixture[str]) -> None:
    run, bundle = run_dir
    seed = bundle.pool_archs[0]
    assert main(["improve", "--run", str(run), "--arch", seed, "--n", "3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["round"] == 2  # the last round's controller
    assert out["controller"].endswith("round-002.pt")
    assert 1 <= len(out["proposals"]) <= 3
    space = create_search_space("nb201")
    for p in out["proposals"]:
        assert p["arch"] not in bundle.pool_archs
        assert space.canonical_hash(space.parse(p["arch"])) == p["canonical_hash"]
    path = controller_path(run, 1)
    assert main(["improve", "--controller", str(path), "--arch", seed, "--n", "2"]) == 0
    text = capsys.readouterr().out
    assert "round 1" in text
    assert "predicted" in text


def test_predict_from_args_and_a_file(
    run_dir, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run, bundle = run_dir
    space = create_search_space("nb201")
    new = space.to_str(space.sample(np.random.default_rng(7)))
    listing = tmp_path / "archs.txt"
    listing.write_text(f"# two archs\n{bundle.pool_archs[1]}\n\n{new}\n")
    argv = ["predict", "--run", str(run), "--arch", bundle.pool_archs[0], "--file", str(listing)]
    assert main([*argv, "--k", "2", "--json"]) == 0
    preds = json.loads(capsys.readouterr().out)["predictions"]
    assert [p["arch"] for p in preds] == [bundle.pool_archs[0], bundle.pool_archs[1], new]
    assert preds[0]["measured"] == bundle.pool_scores[0]
    assert all(len(p["neighbours"]) == 2 for p in preds)
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "80% interval" in lines[1]
    assert len(lines) == 2 + 3


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["improve", "--run", "{missing}", "--arch", "x"], "run folder"),
        (["improve", "--run", "{empty}", "--arch", "x"], "holds no controller"),
        (["improve", "--controller", "{text}", "--arch", "x"], "not a controller checkpoint"),
        (["improve", "--run", "{run}", "--arch", "{cnn}"], "an architecture of space 'cnn'"),
        (["improve", "--run", "{run}", "--arch", "|nope|"], "nb201: expected"),
        (["improve", "--run", "{run}", "--arch", "{seed}", "--n", "0"], "n: must be in 1..100"),
        (["predict", "--run", "{run}"], "give architectures with --arch or --file"),
        (["predict", "--run", "{run}", "--file", "{missing}"], "architecture file"),
    ],
)
def test_errors_are_one_line_and_exit_2(
    run_dir, tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    run, bundle = run_dir
    (tmp_path / "empty").mkdir()
    (tmp_path / "text.pt").write_text("not torch")
    cnn = create_search_space("cnn")
    names = {
        "missing": str(tmp_path / "missing"),
        "empty": str(tmp_path / "empty"),
        "text": str(tmp_path / "text.pt"),
        "run": str(run),
        "cnn": cnn.to_str(cnn.sample(np.random.default_rng(0))),
        "seed": bundle.pool_archs[0],
    }
    assert main([a.format(**names) for a in argv]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1
