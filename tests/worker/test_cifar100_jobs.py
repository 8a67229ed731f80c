"""CIFAR-100 trainings of discovered cells through the API and a real Celery worker (issue #6
item 4): the worker reads ``cifar-100-python/`` from the configured data directory, trains a
100-class network, scores it, and an evaluation of its checkpoint gives the same accuracy;
without the files the job fails naming the file, the folder and where to get them.

No CIFAR-100 ships with ``shared/data``, so the files here are written in the official pickle
layout (fine and coarse labels, R/G/B planes) with seeded random pixels: what is tested is the
path from the API to the loader and the 100-way head, not an accuracy."""

from __future__ import annotations

import io
import pickle
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from service_fixtures import isolated_service, wait_finished

from nao_core.bench.quality import write_cifar_batch

pytestmark = [pytest.mark.db]


def _write_cifar100(root: Path, rng: np.random.Generator) -> None:
    folder = root / "cifar-100-python"
    for name, n in (("train", 300), ("test", 100)):
        fine = np.arange(n) % 100  # every class present
        write_cifar_batch(folder / name, rng.integers(0, 256, (n, 32, 32, 3), np.uint8), fine)
        with (folder / name).open("rb") as f:
            batch = pickle.load(f, encoding="bytes")
        batch[b"fine_labels"] = batch.pop(b"labels")
        batch[b"coarse_labels"] = [int(v) // 5 for v in fine]
        with (folder / name).open("wb") as f:
            pickle.dump(batch, f, protocol=2)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    _write_cifar100(root, np.random.default_rng(0))
    return root


@pytest.fixture(scope="module")
def pg_service(
    tmp_path_factory: pytest.TempPathFactory, data_dir: Path
) -> Iterator[dict[str, str]]:
    with isolated_service(tmp_path_factory.mktemp("home"), data_dir=str(data_dir)) as env:
        yield env


def test_cifar100_training_and_evaluation_of_a_named_cell(client, auth, worker) -> None:
    body = {"arch_name": "nao-ws-cnn", "dataset": "cifar100", "preset": "tiny"}
    r = client.post("/trainings", json=body, headers=auth)
    assert r.status_code == 202, r.text
    trained = wait_finished(client, r.json()["url"], 240)
    assert trained["status"] == "succeeded", trained
    assert trained["dataset"] == "cifar100"
    result = trained["result"]
    assert 0.0 <= result["accuracy"] <= 1.0
    ckpt = client.get(f"/checkpoints/{trained['checkpoint_id']}").json()
    assert ckpt["size"] > 0

    r = client.post("/evaluations", json={"checkpoint_id": trained["checkpoint_id"]}, headers=auth)
    assert r.status_code == 202, r.text
    evaluated = wait_finished(client, r.json()["url"], 240)
    assert evaluated["status"] == "succeeded", evaluated
    assert evaluated["result"]["accuracy"] == pytest.approx(result["accuracy"])
    assert evaluated["result"]["dataset"] == "cifar100"
    assert evaluated["result"]["images"] == 100  # the test batch

    got = client.get(f"/checkpoints/{trained['checkpoint_id']}/download", headers=auth)
    assert got.status_code == 200, got.text
    blob = got.content
    state = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    heads = [k for k, v in state["model"].items() if k.endswith("weight") and v.shape[0] == 100]
    assert heads, "no 100-way classifier in the checkpoint"


def test_missing_cifar100_files_fail_the_job_with_where_to_get_them(
    client, auth, worker, data_dir
) -> None:
    folder = data_dir / "cifar-100-python"
    moved = data_dir / "elsewhere"
    folder.rename(moved)
    try:
        body = {"arch_name": "nao-ws-cnn", "dataset": "cifar100", "preset": "tiny"}
        job = wait_finished(
            client, client.post("/trainings", json=body, headers=auth).json()["url"], 240
        )
    finally:
        moved.rename(folder)
    assert job["status"] == "failed"
    assert job["error_type"] == "MissingData"
    message = job["error_message"]
    assert "'train'" in message
    assert str(data_dir) in message
    assert "cifar-100-python.tar.gz" in message
