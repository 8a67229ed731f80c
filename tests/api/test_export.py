"""``GET /checkpoints/{id}/export``: refused without a job when it cannot be built, built once
per checkpoint and format by a real worker on the query queue, then served like a checkpoint
(ETag, Range, token) with its model card; on Postgres + Redis and on the embedded service
(SQLite, the SQLAlchemy broker)."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from factories import make_architecture, make_job
from service_fixtures import (
    embedded_service,
    isolated_service,
    service_env,
    start_worker,
    stop,
)

from store.db import session_factory, session_scope
from store.models import Checkpoint, Job, JobKind

CIFAR_MEAN, CIFAR_STD = [0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616]


def _cnn_payload() -> dict[str, Any]:
    """A CIFAR-shaped NAONet-B as final training saves it, batch norm statistics set."""
    import torch

    from nao_core.config import apply_overrides, to_dict
    from nao_core.models import CnnNetwork
    from nao_core.presets import get_preset
    from nao_core.search_space import create_search_space
    from nao_core.search_space.named import get_named_arch

    space, arch = get_named_arch("naonet-b")
    s = create_search_space(space)
    arch = s.parse(arch) if isinstance(arch, str) else arch
    args = {"layers": 1, "channels": 8, "num_classes": 10, "in_channels": 3, "image_size": 32,
            "keep_prob": 0.8, "drop_path_keep_prob": 0.9, "use_aux_head": True}  # fmt: skip
    torch.manual_seed(0)
    net = CnnNetwork(arch, space, **args)
    with torch.no_grad():
        for _ in range(3):
            net(torch.randn(16, 3, 32, 32))
        net.classifier.weight.mul_(0.1)  # logits of a trained net's size (~6, not ~150)
    cfg = apply_overrides(get_preset("train/tiny"), {"data.dataset": "cifar10"})
    return {
        "kind": "model", "config": to_dict(cfg), "space": space, "arch": s.to_str(arch),
        "dataset": "cifar10", "model_args": args,
        "input": {"shape": [3, 32, 32], "mean": CIFAR_MEAN, "std": CIFAR_STD},
        "metrics": {"eval_acc": 0.61, "eval_loss": 1.1}, "model": net.state_dict(),
    }  # fmt: skip


def _store(db: Any, root: Path, job: Job, name: str, payload: dict[str, Any]) -> int:
    from nao_core.engine.checkpoint import save_checkpoint

    key = f"jobs/{job.id}/train/{name}"
    save_checkpoint(root / key, payload)
    data = (root / key).read_bytes()
    row = Checkpoint(job_id=job.id, kind=payload["kind"], path=key, size=len(data),
                     sha256=hashlib.sha256(data).hexdigest())  # fmt: skip
    db.add(row)
    db.flush()
    return row.id


def _rows(env: dict[str, str], url: str) -> dict[str, int]:
    root = Path(env["NAO_STORAGE_DIR"])
    with session_scope(session_factory(url)) as db:
        cnn = make_job(db, kind=JobKind.TRAIN, space="cnn", dataset="cifar10")
        rnn = make_job(db, kind=JobKind.TRAIN, space="rnn", dataset="ptb")
        search = make_job(db, space="nb201", dataset="cifar10")
        payload = _cnn_payload()
        found = make_job(db, space="cnn", dataset="cifar10", preset="small")
        arch = make_architecture(db, found, arch=payload["arch"], score_supernet=0.7)
        model = _store(db, root, cnn, "model.pt", payload)
        db.get(Checkpoint, model).architecture_id = arch.id
        broken = make_job(db, kind=JobKind.TRAIN, space="cnn", dataset="cifar10")
        key = f"jobs/{broken.id}/train/model.pt"
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        (root / key).write_bytes(b"not a checkpoint")
        db.add(Checkpoint(job_id=broken.id, kind="model", path=key, size=16, sha256="0" * 64))
        db.flush()
        broken_id = db.query(Checkpoint).filter(Checkpoint.job_id == broken.id).one().id
        return {
            "model": model,
            "search": found.id,
            "broken": broken_id,
            "arch": arch.id,
            "rnn": _store(db, root, rnn, "model.pt", {"kind": "model", "model": {}}),
            "controller": _store(db, root, search, "c.pt", {"kind": "controller"}),
            "cnn_job": cnn.id,
        }


@pytest.fixture(scope="module", params=["postgres", "embedded"])
def service(request, tmp_path_factory) -> Iterator[dict[str, Any]]:
    """The service of one backend, migrated, with a model, an RNN model and a controller
    checkpoint stored; a client and an admin token. No worker yet."""
    from fastapi.testclient import TestClient

    from api.main import create_app
    from store.tokens import create_token

    home = tmp_path_factory.mktemp(request.param)
    if request.param == "postgres":
        context = isolated_service(home, query_wait_s="0")
    else:
        context = embedded_service(home, query_wait_s="0")
    with context as env:
        url = env.get("NAO_DATABASE_URL") or f"sqlite:///{home / 'nao.sqlite'}"
        ids = _rows(env, url)
        with session_scope(session_factory(url)) as s:
            token = create_token(s, "tests", admin=True)
        with TestClient(create_app()) as client:
            yield {"env": env, "url": url, "ids": ids, "client": client,
                   "auth": {"Authorization": f"Bearer {token}"}}  # fmt: skip


def _export_jobs(url: str) -> list[Job]:
    with session_scope(session_factory(url)) as s:
        rows = s.query(Job).filter(Job.kind == JobKind.EXPORT).order_by(Job.id).all()
        s.expunge_all()
        return rows


def test_what_cannot_be_exported_creates_no_job(service) -> None:
    c, auth, ids = service["client"], service["auth"], service["ids"]
    r = c.get(f"/checkpoints/{ids['controller']}/export?format=onnx", headers=auth)
    assert r.status_code == 409
    assert "only a trained model" in r.json()["detail"]
    r = c.get(f"/checkpoints/{ids['rnn']}/export?format=onnx", headers=auth)
    assert r.status_code == 409
    assert "torchscript only" in r.json()["detail"]
    r = c.get(f"/checkpoints/{ids['model']}/export?format=tflite", headers=auth)
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["query", "format"]
    r = c.get(f"/checkpoints/{ids['model']}/export", headers=auth)
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["query", "format"]
    assert c.get("/checkpoints/999999/export?format=onnx", headers=auth).status_code == 404
    r = c.get(f"/checkpoints/{ids['model']}/card?format=pdf", headers=auth)
    assert r.json()["detail"][0]["loc"] == ["query", "format"]
    assert c.get(f"/checkpoints/{ids['controller']}/card.md", headers=auth).status_code == 409
    assert c.get(f"/checkpoints/{ids['rnn']}/card?format=onnx", headers=auth).status_code == 409
    assert c.get(f"/checkpoints/{ids['model']}/export?format=onnx").status_code == 401
    assert _export_jobs(service["url"]) == []


@pytest.mark.slow
def test_built_once_then_served_like_a_checkpoint(service, tmp_path) -> None:
    import onnxruntime as ort
    import torch

    from nao_core.train import load_model

    c, auth, ids, env = service["client"], service["auth"], service["ids"], service["env"]
    url = f"/checkpoints/{ids['model']}/export?format=onnx"
    # Concurrent first requests, no worker yet: one job, each told to come back.
    answers: list[Any] = []

    def ask() -> None:
        answers.append(c.get(url, headers=auth))

    threads = [threading.Thread(target=ask) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {a.status_code for a in answers} == {202}
    (job,) = _export_jobs(service["url"])
    assert {a.json()["id"] for a in answers} == {job.id}
    assert answers[0].headers["location"] == f"/jobs/{job.id}"
    assert int(answers[0].headers["retry-after"]) > 0
    assert job.config == {"checkpoint_id": ids["model"], "format": "onnx"}

    worker = start_worker(env, tmp_path / "worker.log", queues="query", name="export")
    try:
        with service_env(query_wait_s="240"):
            whole = c.get(url, headers=auth)
            assert whole.status_code == 200, (whole.text, (tmp_path / "worker.log").read_text())
            card = c.get(f"/checkpoints/{ids['model']}/card?format=onnx", headers=auth)
            markdown = c.get(f"/checkpoints/{ids['model']}/card.md?format=onnx", headers=auth)
            part = c.get(url, headers={**auth, "Range": "bytes=0-99"})
            again = c.get(url, headers={**auth, "If-None-Match": whole.headers["etag"]})
            failed = c.get(f"/checkpoints/{ids['broken']}/export?format=torchscript", headers=auth)
    finally:
        stop(worker)
    assert whole.headers["etag"] == f'"{hashlib.sha256(whole.content).hexdigest()}"'
    assert whole.headers["content-disposition"].endswith(f'checkpoint-{ids["model"]}.onnx"')
    assert (part.status_code, part.content) == (206, whole.content[:100])
    assert again.status_code == 304
    assert len(_export_jobs(service["url"])) == 2  # served again without a new job
    # A file the worker cannot read: the job fails and the answer says why.
    assert failed.status_code == 500
    assert "not a readable checkpoint" in failed.json()["detail"]

    # The served file computes what the model does.
    path = tmp_path / "model.onnx"
    path.write_bytes(whole.content)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    images = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(9))
    (got,) = session.run(None, {"images": images.numpy()})
    model, _ = load_model(Path(env["NAO_STORAGE_DIR"]) / f"jobs/{ids['cnn_job']}/train/model.pt")
    with torch.no_grad():
        expected = model(images)[0].numpy()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)

    # Its card, and the rows: the file and its cards are checkpoints of the model's job.
    assert card.status_code == 200
    assert card.headers["content-type"].startswith("application/json")
    body = card.json()
    assert body["source"]["checkpoint_id"] == ids["model"]
    assert body["export"]["format"] == "onnx"
    assert body["export"]["inputs"][0]["normalisation"]["mean"] == CIFAR_MEAN
    assert body["model"]["drawing_url"] == f"/architectures/{ids['arch']}/drawing.svg"
    assert body["search"]["id"] == ids["search"]
    assert body["search"]["url"] == f"/jobs/{ids['search']}"
    assert body["search"]["architecture_score"] == 0.7
    assert markdown.headers["content-type"].startswith("text/markdown")
    assert body["model"]["arch"] in markdown.text
    rows = c.get(f"/jobs/{ids['cnn_job']}/checkpoints").json()["data"]
    kinds = {r["kind"]: r for r in rows if r["kind"] != "card"}
    assert kinds["onnx"]["source_id"] == ids["model"]
    cards = [r for r in rows if r["kind"] == "card"]
    assert len(cards) == 2
    assert {r["source_id"] for r in cards} == {kinds["onnx"]["id"]}
    assert {r["job_id"] for r in rows} == {ids["cnn_job"]}
    job = c.get(f"/jobs/{job.id}").json()
    assert job["status"] == "succeeded"
    assert job["result"]["check"]["max_abs_diff"] <= 1e-4
    assert json.loads(card.content) == body
