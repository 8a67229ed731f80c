"""Checkpoint downloads (Content-Length, ETag, Range) and top-k architecture reads."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from factories import make_architecture, make_checkpoint, make_job

from store.db import session_factory, session_scope
from store.models import JobKind

DATA = os.urandom(3 * 1024 * 1024 + 17)


@pytest.fixture(scope="module")
def ids(pg_service: dict[str, str]) -> dict[str, int]:
    root = Path(pg_service["NAO_STORAGE_DIR"])
    with session_scope(session_factory(pg_service["NAO_DATABASE_URL"])) as s:
        search = make_job(s)
        other = make_job(s, space="nb201", dataset="cifar10")
        for n in range(30):
            make_architecture(s, search, n=n, score_supernet=n / 100, round=n % 3)
        make_architecture(s, search, n=99, score_trained=0.5)
        for n in range(5):
            make_architecture(s, other, n=n, score_tabular=0.9 - n / 10)
        train = make_job(s, kind=JobKind.TRAIN)
        ckpt = make_checkpoint(s, train, root, DATA)
        return {"search": search.id, "other": other.id, "checkpoint": ckpt.id}


def test_top_architectures_best_first(client, ids) -> None:
    r = client.get("/architectures", params={"top": 10, "search": ids["search"]})
    rows = r.json()["data"]
    assert len(rows) == 10
    scores = [a["scores"]["supernet"] for a in rows]
    assert scores == sorted(scores, reverse=True)
    assert scores[0] == pytest.approx(0.29)
    assert client.get(f"/architectures/{rows[0]['id']}").json() == rows[0]


def test_architecture_filters_and_orders(client, ids) -> None:
    trained = client.get("/architectures", params={"order_by": "trained", "search": ids["search"]})
    assert [a["arch"] for a in trained.json()["data"]] == ["arch-99"]
    tab = client.get("/architectures", params={"order_by": "tabular", "space": "nb201"}).json()
    assert [a["scores"]["tabular"] for a in tab["data"]] == pytest.approx([0.9, 0.8, 0.7, 0.6, 0.5])
    none = client.get("/architectures", params={"dataset": "cifar100", "order_by": "tabular"})
    assert none.json()["data"] == []
    page = client.get("/architectures", params={"top": 5, "offset": 5, "search": ids["search"]})
    assert page.json()["data"][0]["scores"]["supernet"] == pytest.approx(0.24)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"top": 0}, "top"),
        ({"top": 100000}, "top"),
        ({"top": "ten"}, "top"),
        ({"order_by": "loss"}, "order_by"),
        ({"search": -1}, "search"),
    ],
)
def test_bad_architecture_queries(client, params, field) -> None:
    r = client.get("/architectures", params=params)
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["query", field]


def test_checkpoint_metadata(client, ids) -> None:
    meta = client.get(f"/checkpoints/{ids['checkpoint']}").json()
    assert meta["size"] == len(DATA)
    assert meta["sha256"] == hashlib.sha256(DATA).hexdigest()
    assert meta["download_url"] == f"/checkpoints/{ids['checkpoint']}/download"
    assert "path" not in meta


def test_download_whole_file(client, auth, ids) -> None:
    r = client.get(f"/checkpoints/{ids['checkpoint']}/download", headers=auth)
    assert r.status_code == 200
    assert r.content == DATA
    assert r.headers["content-length"] == str(len(DATA))
    assert r.headers["etag"] == f'"{hashlib.sha256(DATA).hexdigest()}"'
    assert r.headers["content-disposition"].startswith("attachment; filename=")
    assert r.headers["accept-ranges"] == "bytes"


def test_download_ranges_resume(client, auth, ids) -> None:
    url = f"/checkpoints/{ids['checkpoint']}/download"
    head = client.get(url, headers={**auth, "Range": "bytes=0-999"})
    assert head.status_code == 206
    assert head.content == DATA[:1000]
    assert head.headers["content-range"] == f"bytes 0-999/{len(DATA)}"
    rest = client.get(url, headers={**auth, "Range": "bytes=1000-"})
    assert rest.status_code == 206
    assert head.content + rest.content == DATA
    tail = client.get(url, headers={**auth, "Range": "bytes=-10"})
    assert tail.content == DATA[-10:]
    bad = client.get(url, headers={**auth, "Range": f"bytes={len(DATA)}-"})
    assert bad.status_code == 416
    stale = client.get(url, headers={**auth, "Range": "bytes=0-9", "If-Range": '"old"'})
    assert stale.status_code == 200
    assert len(stale.content) == len(DATA)


def test_download_needs_a_token(client, ids) -> None:
    url = f"/checkpoints/{ids['checkpoint']}/download"
    assert client.get(url).status_code == 401
    assert client.get(url, headers={"Authorization": "Bearer nope"}).status_code == 401


def test_head_gives_the_download_headers_without_the_body(client, auth, ids) -> None:
    url = f"/checkpoints/{ids['checkpoint']}/download"
    head = client.head(url, headers=auth)
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == str(len(DATA))
    assert head.headers["etag"] == f'"{hashlib.sha256(DATA).hexdigest()}"'
    assert client.head(url).status_code == 401


def test_if_none_match_star_or_a_listed_tag_is_304(client, auth, ids) -> None:
    url = f"/checkpoints/{ids['checkpoint']}/download"
    etag = f'"{hashlib.sha256(DATA).hexdigest()}"'
    for value in ("*", f'"other", {etag}', f"W/{etag}"):
        got = client.get(url, headers={**auth, "If-None-Match": value})
        assert got.status_code == 304, value
    assert client.get(url, headers={**auth, "If-None-Match": '"other"'}).status_code == 200


def test_a_trained_model_downloads_with_the_etag_of_its_bytes(client, auth, pg_service) -> None:
    """Through the worker's own path (the training task, run here without a broker): the
    ETag is the sha256 of the bytes downloaded, which are the file the worker wrote."""
    from worker.training import run_train_job

    body = {"arch_name": "naonet-b", "dataset": "digits", "preset": "tiny",
            "overrides": {"optim.epochs": 1, "data.train_limit": 128}}  # fmt: skip
    job = client.post("/trainings", json=body, headers=auth)
    assert job.status_code == 202, job.text
    assert run_train_job.run(job.json()["id"]) == "succeeded"
    trained = client.get(job.json()["url"]).json()
    meta = client.get(f"/checkpoints/{trained['checkpoint_id']}").json()
    blob = client.get(meta["download_url"], headers=auth)
    assert blob.status_code == 200
    digest = hashlib.sha256(blob.content).hexdigest()
    assert blob.headers["etag"] == f'"{digest}"'
    written = Path(pg_service["NAO_STORAGE_DIR"]) / "jobs" / str(trained["id"]) / "train"
    assert blob.content == (written / "model.pt").read_bytes()
    assert meta["sha256"] == digest
    head = client.head(meta["download_url"], headers=auth)
    assert head.headers["etag"] == blob.headers["etag"]
