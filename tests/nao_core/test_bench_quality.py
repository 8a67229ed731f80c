from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from nao_core.bench.quality import SUBSET_FILES, write_cifar10_subset
from nao_core.cli import main
from nao_core.data import read_cifar10

CIFAR10_NPZ = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "cifar10"


def test_quality_bench_trains_top_and_random_archs(tmp_path):
    out = tmp_path / "q"
    argv = ["bench", "quality", "--dataset", "digits", "--search-preset", "tiny"]
    argv += ["--train-preset", "tiny", "--random", "2", "--out", str(out)]
    argv += ["--threads", "1", "--json", str(tmp_path / "q.json")]
    # The bench's plumbing is tested, not accuracy: 1 epoch on 256 images keeps it cheap.
    argv += ["--train-set", "optim.epochs=1", "--train-set", "data.train_limit=256"]
    assert main(argv) == 0
    summary = json.loads((tmp_path / "q.json").read_text())
    rows = summary["rows"]
    assert [r["name"] for r in rows] == ["top", "random1", "random2"]
    assert rows[0]["arch"] == summary["search"]["top"][0]["arch"]
    assert len({r["arch"] for r in rows}) == 3  # the random archs differ from the top one
    assert all(0.0 <= r["accuracy"] <= 1.0 and r["status"] == "completed" for r in rows)
    mean = np.mean([r["accuracy"] for r in rows[1:]])
    assert summary["metric"] == "accuracy"
    assert summary["random_mean_value"] == pytest.approx(mean)
    assert summary["top_beats_random_mean"] == (rows[0]["accuracy"] > mean)
    # A re-run finds every folder finished and reports the same figures.
    assert main(argv) == 0
    assert json.loads((tmp_path / "q.json").read_text())["rows"] == rows


def test_cifar10_subset_is_written_in_the_official_layout(tmp_path):
    if not all((CIFAR10_NPZ / f).is_file() for f in SUBSET_FILES.values()):
        pytest.skip(f"CIFAR-10 subset not found in {CIFAR10_NPZ}")
    train, test = read_cifar10(write_cifar10_subset(CIFAR10_NPZ, tmp_path))
    with np.load(CIFAR10_NPZ / SUBSET_FILES["part1"]) as z:
        first = z["x"][0].transpose(2, 0, 1)
    with np.load(CIFAR10_NPZ / SUBSET_FILES["heldout"]) as z:
        held_y = z["y"]
    assert train.x.shape == (20_000, 3, 32, 32)
    assert test.x.shape == (5_000, 3, 32, 32)
    assert np.array_equal(train.x[0].numpy(), first)
    assert np.array_equal(test.y.numpy(), held_y)


def test_quality_bench_on_ptb_compares_perplexity(tmp_path):
    ptb = CIFAR10_NPZ.parent / "ptb"
    if not (ptb / "train.txt.gz").is_file():
        pytest.skip(f"PTB not found in {ptb}")
    argv = ["bench", "quality", "--space", "rnn", "--dataset", "ptb", "--data-dir", str(ptb)]
    argv += ["--search-preset", "tiny", "--train-preset", "tiny", "--random", "1"]
    argv += ["--out", str(tmp_path / "q"), "--threads", "1", "--json", str(tmp_path / "q.json")]
    assert main(argv) == 0
    summary = json.loads((tmp_path / "q.json").read_text())
    assert summary["metric"] == "valid_perplexity"
    assert summary["higher_is_better"] is False
    top, rand = summary["rows"]
    assert top["valid_perplexity"] > 1.0
    assert summary["top_beats_random_mean"] == (top["valid_perplexity"] < rand["valid_perplexity"])
