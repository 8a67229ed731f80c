"""End to end through real Celery worker processes on Postgres + Redis: the full flow, and
kill -9 of a worker mid-search followed by a fresh worker finishing it (the message re-delivered
by the broker). Cancellation at an exact epoch, and recovery of a stale job by a live worker's
reaper, are in test_service_claims.py (CI's service tier)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from service_fixtures import (
    assert_rounds_recorded_once,
    start_worker,
    stop,
    wait_for,
    wait_succeeded,
)

pytestmark = [pytest.mark.slow, pytest.mark.db]

SEARCH = {"space": "cnn", "dataset": "digits", "preset": "tiny"}


def test_full_flow_search_train_download_evaluate(client, auth, worker) -> None:
    search = client.post("/searches", json=SEARCH, headers=auth).json()
    done = wait_succeeded(client, search["url"])
    assert done["rounds"] == 2
    assert done["progress"] == 1.0
    assert done["best"] is not None
    assert done["result"]["top"]

    top = client.get("/architectures", params={"top": 10, "search": search["id"]}).json()["data"]
    assert 1 <= len(top) <= 10
    ranked = client.get(
        "/architectures", params={"top": 10, "search": search["id"], "order_by": "trained"}
    ).json()["data"]
    assert len(ranked) == 2  # the tiny preset reranks its top 2
    best = ranked[0]

    training = client.post(
        "/trainings", json={"architecture_id": best["id"], "preset": "tiny"}, headers=auth
    ).json()
    trained = wait_succeeded(client, training["url"])
    ckpt_id = trained["checkpoint_id"]
    assert trained["result"]["checkpoint_id"] == ckpt_id
    meta = client.get(f"/checkpoints/{ckpt_id}").json()
    blob = client.get(meta["download_url"], headers=auth)
    assert blob.status_code == 200
    assert hashlib.sha256(blob.content).hexdigest() == meta["sha256"]
    assert client.get(f"/architectures/{best['id']}").json()["scores"]["trained"] == pytest.approx(
        trained["result"]["accuracy"]
    )

    evaluation = client.post("/evaluations", json={"checkpoint_id": ckpt_id}, headers=auth).json()
    evaluated = wait_succeeded(client, evaluation["url"])
    assert evaluated["result"]["accuracy"] == pytest.approx(trained["result"]["accuracy"])
    metrics = client.get(f"/jobs/{search['id']}/metrics").json()["data"]
    assert {"lr", "pool_best"} <= {m["name"] for m in metrics}


def test_kill_9_mid_search_then_a_fresh_worker_finishes(
    client, auth, pg_service, worker, tmp_path: Path
) -> None:
    stop(worker)  # this test runs its own workers
    job = client.post("/searches", json={**SEARCH, "budget": 8}, headers=auth).json()
    first = start_worker(pg_service, tmp_path / "a.log")
    try:
        wait_for(lambda: client.get(job["url"]).json()["rounds"] >= 1, 120, "round 1", 0.2)
    finally:
        stop(first, sig_kill=True)
    assert client.get(job["url"]).json()["status"] == "running"
    second = start_worker(pg_service, tmp_path / "b.log")
    try:
        done = wait_succeeded(client, job["url"], timeout=150)
    finally:
        stop(second)
    assert done["attempts"] >= 2
    assert done["rounds"] == 4
    assert_rounds_recorded_once(client, job["id"], pg_service["NAO_STORAGE_DIR"], rounds=4)
