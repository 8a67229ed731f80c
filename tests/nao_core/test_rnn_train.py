"""Final LM training on tiny PTB: NT-ASGD, checkpoint rebuild, resume, and the CLI for rnn."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from core_helpers import EpochLog, StopAfter

from nao_core.cli import main
from nao_core.config import apply_overrides
from nao_core.engine.checkpoint import load_checkpoint
from nao_core.errors import InvalidConfig
from nao_core.presets import train_preset
from nao_core.search_space.named import get_named_arch
from nao_core.train import evaluate_checkpoint, load_model, run_train
from nao_core.train_rnn import nt_asgd_trigger

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
PTB = DATA / "ptb"

# Only the tests that read the corpus skip without it (and fail under CI: tests/conftest.py).
needs_ptb = pytest.mark.skipif(not PTB.is_dir(), reason=f"PTB not found at {PTB}")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def forced_asgd():
    # Epoch 1 plain SGD, then averaged: the state after epoch 2 holds the averaged model.
    return apply_overrides(train_preset("rnn", "tiny"), ["optim.asgd_after=1"])


@pytest.fixture(scope="module")
def trained(forced_asgd, tmp_path_factory):
    out = tmp_path_factory.mktemp("lm")
    _, arch = get_named_arch("nao-ws-rnn")
    torch.set_num_threads(1)
    return run_train(arch, "rnn", forced_asgd, out_dir=out, data_dir=PTB, device="cpu"), out


def test_nt_asgd_trigger() -> None:
    assert not nt_asgd_trigger([5.0, 4.0, 3.0], 3.5, nonmono=5)  # too few logged
    losses = [5.0, 4.0, 3.0, 3.1, 3.2, 3.3, 3.4, 3.5]
    assert nt_asgd_trigger(losses, 4.1, nonmono=5)  # worse than min(5, 4, 3) = 3
    assert not nt_asgd_trigger(losses, 2.9, nonmono=5)
    assert nt_asgd_trigger([3.0, 3.5], 3.2, nonmono=0)


@needs_ptb
def test_nt_asgd_switches_by_itself_when_validation_stops_improving(tmp_path: Path) -> None:
    """No forced switch (``asgd_after=0``): a 1,000-token corpus without dropout at lr 60
    gives a non-monotone validation curve within 5 epochs, and the switch happens at the first
    epoch whose valid loss is worse than the best of all but the last ``nonmono`` before it,
    worked out here from the losses the run reported."""
    nonmono = 2
    cfg = apply_overrides(
        train_preset("rnn", "tiny"),
        ["optim.epochs=5", "optim.lr=60", f"optim.nonmono={nonmono}", "data.train_limit=1000",
         "model.dropout=0", "model.dropouth=0", "model.dropoutx=0", "model.dropouti=0"],
    )  # fmt: skip
    assert (cfg.optim.asgd, cfg.optim.asgd_after) == ("nt", 0)
    _, arch = get_named_arch("nao-ws-rnn")
    log = EpochLog()
    run_train(arch, "rnn", cfg, out_dir=tmp_path, data_dir=PTB, device="cpu", callback=log)
    losses = [m["eval_loss"] for _, m in log.metrics]
    expected = next(
        i + 1
        for i in range(nonmono + 1, len(losses))
        if losses[i] > min(losses[: i - nonmono])  # all logged before it but the last nonmono
    )
    switched = load_checkpoint(tmp_path / "model.pt")["metrics"]["switched_at"]
    assert switched == expected
    averaged = [m["averaged"] for _, m in log.metrics]
    assert averaged == [0.0] * (switched - 1) + [1.0] * (len(losses) - switched + 1)
    provenance = json.loads((tmp_path / "provenance.json").read_text())
    assert provenance["metrics"]["switched_at"] == switched


@needs_ptb
def test_train_switches_to_asgd_and_checkpoint_rebuilds(trained) -> None:
    result, out = trained
    assert result.status == "completed"
    assert result.accuracy is None
    assert 1.0 < result.perplexity < 10_000
    assert 1.0 < result.valid_perplexity < 10_000
    assert result.loss == pytest.approx(math.log(result.perplexity))
    ckpt = load_checkpoint(out / "model.pt")
    assert ckpt["metrics"]["switched_at"] == 1
    assert ckpt["vocab_size"] == 10_000
    assert len(ckpt["vocab_hash"]) == 16
    state = load_checkpoint(out / "train_state.pt")
    assert state["averaged"] is not None
    assert int(state["averaged"]["n_averaged"]) > 0
    model, _ = load_model(out / "model.pt")
    assert model.vocab_size == 10_000
    assert not model.training
    report = evaluate_checkpoint(out / "model.pt", data_dir=DATA, device="cpu")
    assert report["space"] == "rnn"
    assert report["test_ppl"] == pytest.approx(result.perplexity, rel=1e-6)
    assert report["valid_ppl"] == pytest.approx(result.valid_perplexity, rel=1e-6)


@needs_ptb
def test_stopped_training_resumes_to_the_same_model(trained, forced_asgd, tmp_path) -> None:
    result, _ = trained
    _, arch = get_named_arch("nao-ws-rnn")
    kw = {"out_dir": tmp_path, "data_dir": PTB, "device": "cpu"}
    stopped = run_train(arch, "rnn", forced_asgd, callback=StopAfter(2), **kw)
    assert (stopped.status, stopped.epoch) == ("cancelled", 2)
    log = EpochLog()
    resumed = run_train(arch, "rnn", forced_asgd, callback=log, **kw)
    assert log.epochs == [3]  # resumed after epoch 2, not trained again from scratch
    assert resumed.perplexity == result.perplexity
    assert resumed.valid_perplexity == result.valid_perplexity
    assert run_train(arch, "rnn", forced_asgd, **kw).perplexity == result.perplexity  # done
    with pytest.raises(InvalidConfig, match="another config"):
        run_train(arch, "rnn", apply_overrides(forced_asgd, ["seed=3"]), **kw)


@needs_ptb
def test_other_vocabulary_and_wrong_config_are_refused(trained, tmp_path) -> None:
    _, out = trained
    with pytest.raises(InvalidConfig, match="vocabulary"):
        evaluate_checkpoint(out / "model.pt", data_dir=DATA / "wikitext-2", device="cpu")
    _, arch = get_named_arch("nao-ws-rnn")
    with pytest.raises(InvalidConfig, match="RNN train config"):
        run_train(arch, "rnn", train_preset("cnn", "tiny"), out_dir=tmp_path, device="cpu")
    with pytest.raises(InvalidConfig, match="CNN train config"):
        run_train("x", "cnn", train_preset("rnn", "tiny"), out_dir=tmp_path, device="cpu")


def nao(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``nao ARGS`` in this process (the real entry point, without a torch import per call)."""
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@needs_ptb
def test_cli_search_train_eval_rnn(tmp_path: Path, capsys) -> None:
    code, out, err = nao(
        capsys, "search", "--space", "rnn", "--dataset", "ptb", "--data-dir", str(PTB),
        "--preset", "tiny", "--out", str(tmp_path / "s"), "--set", "optim.epochs=2",
        "--set", "rerank.top_k=1", "--threads", "1",
    )  # fmt: skip
    assert code == 0, err
    search = json.loads(out)
    assert search["status"] == "completed"
    best = search["top"][0]
    assert best["ppl"] == pytest.approx(math.exp(-best["score"]))

    code, out, err = nao(
        capsys, "train", "--space", "rnn", "--arch", best["arch"], "--dataset", "ptb",
        "--data-dir", str(DATA), "--preset", "tiny", "--out", str(tmp_path / "t"),
        "--set", "optim.epochs=1", "--threads", "1",
    )  # fmt: skip
    assert code == 0, err
    trained = json.loads(out)
    assert trained["status"] == "completed"
    assert trained["perplexity"] > 1

    code, out, err = nao(capsys, "eval", "--checkpoint", trained["checkpoint"],
                         "--data-dir", str(PTB), "--threads", "1")  # fmt: skip
    assert code == 0, err
    report = json.loads(out)
    assert report["test_ppl"] == pytest.approx(trained["perplexity"], rel=1e-6)
    assert report["arch"] == best["arch"]

    code, _, err = nao(capsys, "train", "--arch-name", "nao-ws-rnn", "--preset", "tiny", "--out",
                       str(tmp_path / "u"), "--set", "optim.asgd='sometimes'")  # fmt: skip
    assert code == 2
    assert "optim.asgd" in err


@needs_ptb
@pytest.mark.slow
def test_cli_subprocess_resumes_a_search(tmp_path: Path) -> None:
    """As a user runs it: a second ``nao search`` on the same folder returns the finished run."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    argv = [sys.executable, "-m", "nao_core.cli", "search", "--dataset", "ptb", "--data-dir",
            str(DATA), "--preset", "tiny", "--out", str(tmp_path), "--set", "optim.epochs=1",
            "--set", "rerank.top_k=0"]  # fmt: skip
    first = subprocess.run(argv, capture_output=True, text=True, timeout=300, env=env)
    assert first.returncode == 0, first.stderr
    again = subprocess.run(argv, capture_output=True, text=True, timeout=300, env=env)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["top"] == json.loads(first.stdout)["top"]
