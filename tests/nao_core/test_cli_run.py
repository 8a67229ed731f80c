"""``nao search`` -> ``nao train`` -> ``nao eval`` as a user runs them: real subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def nao(*args: str) -> subprocess.CompletedProcess[str]:
    # One thread: tiny convolutions on a busy 2-core machine run faster than on two.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "nao_core.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def test_search_train_eval_on_digits(tmp_path: Path) -> None:
    out = nao(
        "search", "--space", "cnn", "--dataset", "digits", "--preset", "tiny",
        "--out", str(tmp_path / "search"), "--set", "optim.epochs=2", "--set", "rerank.top_k=1",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    search = json.loads(out.stdout)
    assert search["status"] == "completed"
    best = search["top"][0]["arch"]
    assert (tmp_path / "search" / "result.json").is_file()

    out = nao("train", "--arch", best, "--dataset", "digits", "--preset", "tiny",
              "--out", str(tmp_path / "train"))  # fmt: skip
    assert out.returncode == 0, out.stderr
    trained = json.loads(out.stdout)
    assert trained["status"] == "completed"

    out = nao("eval", "--checkpoint", trained["checkpoint"])
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["accuracy"] == trained["accuracy"]
    assert report["arch"] == best
    assert report["params"] == trained["params"] > 0


def test_cli_errors_are_clear(tmp_path: Path) -> None:
    out = nao("train", "--arch-name", "resnet", "--preset", "tiny", "--out", str(tmp_path))
    assert out.returncode == 2
    assert "unknown named architecture 'resnet'" in out.stderr
    out = nao("eval", "--checkpoint", str(tmp_path / "none.pt"))
    assert out.returncode == 2
    assert "not found" in out.stderr
    out = nao("search", "--preset", "tiny", "--out", str(tmp_path / "s"), "--set", "pool_size=1")
    assert out.returncode == 2
    assert "pool_size" in out.stderr


@pytest.mark.slow
def test_bench_supernet_runs(tmp_path: Path) -> None:
    out = nao(
        "bench", "supernet", "--steps", "1", "--final-steps", "1", "--controller-epochs", "1",
        "--json", str(tmp_path / "b.json"),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    data = json.loads((tmp_path / "b.json").read_text())
    assert len(data["rows"]) == 2  # the fp32 contiguous baseline and the setting in use
    assert data["projection_s"]["total_s"] > 0
    assert set(data["speedup"]) >= {"supernet_train_ips", "score_ips", "final_train_ips"}
    if data["device"].startswith("cpu"):  # against the authors' CPU rates, fixed and scaled
        for key, authors, beside in (("supernet_train_ips", 38.0, 36.7), ("score_ips", 62.5, 70.9)):
            ratio = data["vs_authors_cpu"][key]
            ours = data["rows"][data["used_by_search"]][key]
            assert ratio["fixed"] == pytest.approx(ours / authors)
            assert ratio["scaled"] == pytest.approx(data["speedup"][key] * beside / authors)
        assert "scaled by the baseline timed now" in out.stdout
