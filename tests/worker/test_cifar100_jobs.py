"""CIFAR-100 trainings of discovered cells through the API and a real Celery worker (issue #6
item 4): the worker reads ``cifar-100-python/`` from the configured data directory, trains a
100-class network, scores it, and an evaluation of its checkpoint gives the same accuracy.
Without the files a request is refused (422) naming the dataset, the folder and the install
command; files that vanish after the job was accepted fail it in the worker with one log line.

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


def test_a_training_without_its_files_is_refused_naming_where_and_how(
    client, auth, data_dir
) -> None:
    folder = data_dir / "cifar-100-python"
    moved = data_dir / "elsewhere"
    folder.rename(moved)
    try:
        body = {"arch_name": "nao-ws-cnn", "dataset": "cifar100", "preset": "tiny"}
        r = client.post("/trainings", json=body, headers=auth)
    finally:
        moved.rename(folder)
    assert r.status_code == 422, r.text
    (detail,) = r.json()["detail"]
    assert detail["loc"] == ["body", "dataset"]
    assert str(data_dir) not in detail["msg"]  # the folder by its variable, as in job rows
    assert "nao data install cifar100 --data-dir $NAO_DATA_DIR" in detail["msg"]
    assert "cifar-100-python.tar.gz" in detail["msg"]


def test_files_gone_after_acceptance_fail_the_job_in_one_log_line(
    client, auth, worker, data_dir
) -> None:
    """The worker still checks: the job fails with the catalog's message, and the worker logs
    one line for this user error, no traceback."""
    from store import broker
    from store.db import session_factory, session_scope
    from store.models import Job, JobKind
    from store.settings import get_settings

    folder = data_dir / "cifar-100-python"
    moved = data_dir / "elsewhere"
    body = {"arch_name": "nao-ws-cnn", "dataset": "cifar100", "preset": "tiny"}
    accepted = client.get(client.post("/trainings", json=body, headers=auth).headers["Location"])
    with session_scope(session_factory(get_settings().resolved_database_url())) as s:
        original = s.get(Job, accepted.json()["id"])
        assert original is not None
        job = Job(
            kind=JobKind.TRAIN, space=original.space, dataset="cifar100",
            config=original.config, request=original.request,
        )  # fmt: skip
        s.add(job)
        s.flush()
        job_id = job.id
    wait_finished(client, accepted.json()["url"], 240)  # the worker is idle again
    folder.rename(moved)
    try:
        broker.enqueue("nao.train.final", job_id)
        failed = wait_finished(client, f"/trainings/{job_id}", 120)
    finally:
        moved.rename(folder)
    assert failed["status"] == "failed"
    assert failed["error_type"] == "MissingData"
    assert "'train'" in failed["error_message"]
    assert "nao data install cifar100 --data-dir $NAO_DATA_DIR" in failed["error_message"]
    assert str(data_dir) not in failed["error_message"]  # readable without a token
    log = worker.log.read_text()
    assert f"--data-dir {data_dir}" in log  # the worker log keeps the message in full
    assert f"job={job_id} failed: MissingData" in log
    assert "Traceback" not in log
