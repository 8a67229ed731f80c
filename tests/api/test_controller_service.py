"""A search's controller as a service, through real Celery workers on Postgres + Redis: a
search keeps its controller after every round (a ``controller`` checkpoint, downloadable with
its sha256), a query worker on its own queue answers improve, predict and interpolate with
valid, distinct architectures of the search's space, and a new search warm-starts from it."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import pytest
from service_fixtures import start_worker, stop, wait_for, wait_succeeded

from nao_core.search_space import create_search_space

pytestmark = [pytest.mark.db]

# 10 random, then rounds of 5 proposals: rounds 1 and 2 fit a controller
NB201 = {"space": "nb201", "method": "nao", "budget": 20, "seed": 0,
         "overrides": {"initial_pool": 10, "controller.new_archs": 5}}  # fmt: skip


@pytest.fixture(scope="module")
def query_worker(pg_service: dict[str, str], tmp_path_factory: Any) -> Iterator[Any]:
    log = tmp_path_factory.mktemp("qlogs") / "query.log"
    proc = start_worker(pg_service, log, queues="query", name="query")
    yield proc
    stop(proc)


@pytest.fixture(scope="module")
def nb201_search(client: Any, auth: Any, worker: Any) -> dict[str, Any]:
    job = client.post("/searches", json=NB201, headers=auth).json()
    return wait_succeeded(client, job["url"], 180)


def _controllers(client: Any, job_id: int) -> list[dict[str, Any]]:
    r = client.get(f"/jobs/{job_id}/checkpoints", params={"kind": "controller"})
    assert r.status_code == 200, r.text
    return r.json()["data"]


def _archs(client: Any, job_id: int, order_by: str = "tabular") -> list[dict[str, Any]]:
    params = {"top": 1000, "search": job_id, "order_by": order_by}
    return client.get("/architectures", params=params).json()["data"]


def _ok(r: Any) -> dict[str, Any]:
    assert r.status_code == 200, r.text
    return r.json()


def test_a_tabular_search_keeps_one_controller_per_round(client, auth, nb201_search) -> None:
    ckpts = _controllers(client, nb201_search["id"])
    assert [c["round"] for c in ckpts] == [1, 2]
    for c in ckpts:
        assert c["kind"] == "controller"
        assert c["job_id"] == nb201_search["id"]
        blob = client.get(c["download_url"], headers=auth)
        assert blob.status_code == 200
        assert hashlib.sha256(blob.content).hexdigest() == c["sha256"]
        assert blob.headers["etag"] == f'"{c["sha256"]}"'
        part = client.get(c["download_url"], headers={**auth, "Range": "bytes=0-9"})
        assert part.status_code == 206
        assert part.content == blob.content[:10]


def test_improve_stores_new_archs_with_their_lineage(
    client, auth, nb201_search, query_worker
) -> None:
    space = create_search_space("nb201")
    best = _archs(client, nb201_search["id"])[0]
    out = _ok(client.post(f"/architectures/{best['id']}/improve", json={"n": 4}, headers=auth))
    assert out["search_id"] == nb201_search["id"]
    assert out["round"] == 2
    proposals = out["proposals"]
    assert 1 <= len(proposals) <= 4
    hashes = {p["canonical_hash"] for p in proposals}
    assert len(hashes) == len(proposals)
    for p in proposals:
        arch = space.parse(p["arch"])
        assert space.canonical_hash(arch) == p["canonical_hash"]
        assert p["canonical_hash"] != best["canonical_hash"]
        assert p["parent_architecture_id"] == best["id"]
        row = client.get(f"/architectures/{p['architecture_id']}").json()
        assert row["space"] == "nb201"
        assert row["job_id"] == out["job_id"]
        assert row["scores"]["predictor"] == pytest.approx(p["predicted"])
    job = client.get(out["url"]).json()
    assert job["kind"] == "query"
    assert job["status"] == "succeeded"
    assert job["result"]["proposals"] == [
        {k: v for k, v in p.items() if v is not None} for p in proposals
    ]
    # a proposal improves again, with the search it came from
    again = client.post(
        f"/architectures/{proposals[0]['architecture_id']}/improve", json={"n": 1}, headers=auth
    )
    assert _ok(again)["search_id"] == nb201_search["id"]
    # evaluate: the table's score, on the answer and the rows
    out = _ok(
        client.post(
            f"/architectures/{best['id']}/improve",
            json={"n": 2, "evaluate": True, "step_sizes": [5, 20], "neighbours": False},
            headers=auth,
        )
    )
    assert out["evaluation"] == "tabular"
    for p in out["proposals"]:
        assert p["step_size"] in (5.0, 20.0)
        row = client.get(f"/architectures/{p['architecture_id']}").json()
        assert row["scores"]["tabular"] == pytest.approx(p["score"])
        assert 0 < p["score"] <= 100


def test_predictions_and_interpolations(client, auth, nb201_search, query_worker) -> None:
    space = create_search_space("nb201")
    rows = _archs(client, nb201_search["id"])
    text = space.to_str(space.sample(__import__("numpy").random.default_rng(7)))
    body = {"search_id": nb201_search["id"], "archs": [rows[0]["id"], text], "k": 3}
    out = _ok(client.post("/predictions", json=body, headers=auth))
    first, second = out["predictions"]
    assert first["architecture_id"] == rows[0]["id"]
    assert first["arch"] == rows[0]["arch"]
    assert second["architecture_id"] is None
    for p in (first, second):
        assert len(p["neighbours"]) == 3
        assert 1 <= p["rank"] <= p["pool_size"] + 1
        low, high = p["interval"]
        assert low <= p["predicted"] <= high
        for n in p["neighbours"]:
            assert n["architecture_id"] is not None  # a measured arch of the search
            assert n["distance"] >= 0
    body = {"search_id": nb201_search["id"], "from": rows[0]["id"], "to": text, "steps": 8}
    out = _ok(client.post("/interpolations", json=body, headers=auth))
    path = out["path"]
    assert 1 <= len(path) <= 8
    assert len({p["canonical_hash"] for p in path}) == len(path)
    assert [p["t"] for p in path] == sorted(p["t"] for p in path)
    for p in path:
        space.parse(p["arch"])


def test_a_search_warm_starts_from_the_controller(client, auth, nb201_search, worker) -> None:
    body = {**NB201, "budget": 15, "seed": 3,
            "warm_start": {"search_id": nb201_search["id"], "pool": True}}  # fmt: skip
    job = client.post("/searches", json=body, headers=auth)
    assert job.status_code == 202, job.text
    done = wait_succeeded(client, job.json()["url"], 180)
    warm = done["config"]["warm_start"]
    assert warm["search_id"] == nb201_search["id"]
    assert warm["round"] == 2
    assert done["result"]["warm_start"] == warm
    # used: its initial pool is the source's best architectures, not random ones
    source = {a["arch"] for a in _archs(client, nb201_search["id"])}
    first = [a for a in _archs(client, done["id"]) if a["pool_id"] <= 10]
    assert len(first) == 10
    assert {a["arch"] for a in first} <= source


def test_a_weight_sharing_search_keeps_its_controllers(client, auth, worker, query_worker) -> None:
    """NAO-WS on cnn: a controller per round through the reporter; improving one of its
    architectures with ``evaluate`` queues a tiny training of each proposal, linked."""
    body = {"space": "cnn", "dataset": "digits", "preset": "tiny", "seed": 0}
    done = wait_succeeded(client, client.post("/searches", json=body, headers=auth).json()["url"])
    ckpts = _controllers(client, done["id"])
    assert ckpts
    assert [c["round"] for c in ckpts] == list(range(1, len(ckpts) + 1))
    blob = client.get(ckpts[-1]["download_url"], headers=auth)
    assert hashlib.sha256(blob.content).hexdigest() == ckpts[-1]["sha256"]
    best = _archs(client, done["id"], "supernet")[0]
    out = _ok(
        client.post(
            f"/architectures/{best['id']}/improve", json={"n": 2, "evaluate": True}, headers=auth
        )
    )
    assert out["evaluation"] == "training"
    space = create_search_space("cnn")
    for p in out["proposals"]:
        space.parse(p["arch"])
        training = client.get(p["training_url"]).json()
        assert training["kind"] == "train"
        assert training["architecture_id"] == p["architecture_id"]
        assert training["preset"] == "tiny"
        assert training["dataset"] == "digits"
        client.post(f"/trainings/{training['id']}/cancel", headers=auth)


@pytest.mark.slow
def test_a_search_without_weight_sharing_keeps_its_controllers(
    client, auth, worker, query_worker
) -> None:
    body = {"space": "cnn", "dataset": "digits", "preset": "tiny", "method": "nao", "seed": 0}
    done = wait_succeeded(client, client.post("/searches", json=body, headers=auth).json()["url"])
    ckpts = _controllers(client, done["id"])
    assert [c["round"] for c in ckpts] == [1, 2]  # the tiny preset: 2 rounds after the pool
    best = _archs(client, done["id"], "trained")[0]
    out = _ok(client.post(f"/architectures/{best['id']}/improve", json={"n": 2}, headers=auth))
    assert out["round"] == 2
    for p in out["proposals"]:
        create_search_space("cnn").parse(p["arch"])
    # warm start: the first round's candidates include the source's best
    warm = {**body, "seed": 4, "warm_start": {"search_id": done["id"], "pool": True}}
    again = wait_succeeded(client, client.post("/searches", json=warm, headers=auth).json()["url"])
    assert again["result"]["warm_start"]["pool"] is True
    theirs = {a["canonical_hash"] for a in _archs(client, done["id"], "trained")}
    first = [a for a in _archs(client, again["id"], "trained") if a["round"] == 0]
    assert first
    assert {a["canonical_hash"] for a in first} <= theirs


@pytest.mark.slow
def test_the_query_worker_answers_while_a_search_holds_the_main_one(
    client, auth, nb201_search, worker, query_worker
) -> None:
    """A long search occupies the only gpu/default worker; a prediction is still answered
    at once by the query worker, on its own queue."""
    import time

    long = {"space": "cnn", "dataset": "digits", "preset": "tiny", "budget": 2000, "seed": 1}
    search = client.post("/searches", json=long, headers=auth).json()
    try:
        wait_for(lambda: client.get(search["url"]).json()["status"] == "running", 60, "running")
        body = {
            "search_id": nb201_search["id"],
            "archs": [_archs(client, nb201_search["id"])[0]["id"]],
        }
        started = time.monotonic()
        out = _ok(client.post("/predictions", json=body, headers=auth))
        assert time.monotonic() - started < 15
        assert len(out["predictions"]) == 1
        assert client.get(search["url"]).json()["status"] == "running"
    finally:
        client.post(f"/searches/{search['id']}/cancel", headers=auth)


@pytest.mark.slow
def test_a_weight_sharing_search_warm_starts(client, auth, worker) -> None:
    """NAO-WS from a finished NAO-WS search's controller and pool: recorded in the config,
    reported in the result, and its first pool holds the source's architectures."""
    body = {"space": "cnn", "dataset": "digits", "preset": "tiny", "seed": 0}
    source = wait_succeeded(client, client.post("/searches", json=body, headers=auth).json()["url"])
    warm = {**body, "seed": 5, "warm_start": {"search_id": source["id"], "pool": True}}
    job = client.post("/searches", json=warm, headers=auth)
    assert job.status_code == 202, job.text
    done = wait_succeeded(client, job.json()["url"])
    assert done["config"]["warm_start"]["search_id"] == source["id"]
    assert done["result"]["warm_start"] == done["config"]["warm_start"]
    theirs = {a["canonical_hash"] for a in _archs(client, source["id"], "supernet")}
    first = [a for a in _archs(client, done["id"], "supernet") if a["round"] == 0]
    assert first
    assert {a["canonical_hash"] for a in first} <= theirs


def test_a_query_that_fails_in_the_worker_says_why(client, auth, pg_service, query_worker) -> None:
    """A controller file gone from the storage: the job fails, and the caller hears it."""
    import numpy as np
    from factories import make_job

    from store.db import session_factory, session_scope
    from store.models import Checkpoint

    with session_scope(session_factory(pg_service["NAO_DATABASE_URL"])) as db:
        search = make_job(db, space="nb201", dataset="cifar10", config={"method": "nao"})
        db.add(Checkpoint(job_id=search.id, kind="controller", round=1, path="jobs/gone.pt",
                          size=1, sha256="0" * 64))  # fmt: skip
        search_id = search.id
    space = create_search_space("nb201")
    text = space.to_str(space.sample(np.random.default_rng(0)))
    r = client.post("/predictions", json={"search_id": search_id, "archs": [text]}, headers=auth)
    assert r.status_code == 500
    assert r.json()["detail"].startswith("query job ")
    assert "failed: MissingData: controller checkpoint $NAO_STORAGE_DIR/jobs/gone.pt" in r.text


@pytest.mark.slow
def test_an_rnn_search_keeps_its_controllers(client, auth, worker, query_worker) -> None:
    body = {"space": "rnn", "dataset": "ptb", "preset": "tiny", "seed": 0}
    done = wait_succeeded(
        client, client.post("/searches", json=body, headers=auth).json()["url"], 300
    )
    ckpts = _controllers(client, done["id"])
    assert [c["round"] for c in ckpts] == list(range(1, len(ckpts) + 1))
    assert ckpts
    rows = _archs(client, done["id"], "supernet")
    out = _ok(client.post(f"/architectures/{rows[0]['id']}/improve", json={"n": 3}, headers=auth))
    space = create_search_space("rnn")
    for p in out["proposals"]:
        space.parse(p["arch"])
    body = {"search_id": done["id"], "from": rows[0]["id"], "to": rows[-1]["id"], "steps": 5}
    assert _ok(client.post("/interpolations", json=body, headers=auth))["path"]
