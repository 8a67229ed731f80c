"""Postgres stopped for ~10 s under a running NAO-WS search (several epochs and a round) and
started again: a real Celery worker runs on, the API answers 503 with Retry-After meanwhile,
and the search succeeds in its first attempt with every epoch's metric points and every
round recorded exactly once (``worker.progress`` keeps the points the database refused and
makes a round wait for it).

The database is a private Postgres on a port of its own (``PrivatePostgres``; the machine's
shared one is never stopped); the broker is the shared Redis under a unique queue prefix."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from service_fixtures import (
    REDIS,
    assert_rounds_recorded_once,
    clear_redis_prefix,
    redis_available,
    service_env,
    start_worker,
    stop,
    wait_for,
    wait_succeeded,
)

pytestmark = [pytest.mark.slow, pytest.mark.db]

EPOCHS, EVAL_EVERY = 24, 8  # ~0.8 s an epoch: a 10 s outage spans a dozen and round 2
SEARCH = {
    "space": "cnn",
    "dataset": "digits",
    "preset": "tiny",
    "budget": EPOCHS,
    "overrides": {"eval_every": EVAL_EVERY, "data.train_limit": 1000},
}


def test_postgres_stopped_mid_search_loses_no_point(private_pg, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from api.main import create_app
    from store.db import session_factory, session_scope
    from store.migrate import upgrade
    from store.tokens import create_token

    if not redis_available():
        pytest.skip("Redis not reachable")
    home, prefix = tmp_path / "home", f"o{uuid.uuid4().hex[:8]}."
    home.mkdir()
    log = tmp_path / "worker.log"
    with service_env(
        home=str(home),
        database_url=private_pg.url,
        broker_url=REDIS,
        storage_dir=str(home / "storage"),
        queue_prefix=prefix,
        read_cache="false",
        heartbeat_s="1",
    ) as env:
        upgrade(private_pg.url)
        with session_scope(session_factory(private_pg.url)) as s:
            auth = {"Authorization": f"Bearer {create_token(s, 'tests')}"}
        worker = start_worker(env, log)
        try:
            with TestClient(create_app(), raise_server_exceptions=False) as client:
                job = client.post("/searches", json=SEARCH, headers=auth).json()
                url = job["url"]
                wait_for(lambda: client.get(url).json()["current"] >= 3, 90, "epoch 3", 0.2)
                private_pg.stop()
                down_at = time.monotonic()
                answer = client.get(url)
                assert answer.status_code == 503, answer.text
                assert answer.headers["Retry-After"].isdigit()
                time.sleep(max(0.0, 10 - (time.monotonic() - down_at)))
                private_pg.start()
                done = wait_succeeded(client, url, timeout=90)
                assert done["attempts"] == 1, done  # ran on: no retry, no re-queue
                assert done["rounds"] == EPOCHS // EVAL_EVERY
                metrics = client.get(f"/jobs/{job['id']}/metrics", params={"limit": 1000})
                steps: dict[str, list[int]] = {}
                for m in metrics.json()["data"]:
                    steps.setdefault(m["name"], []).append(m["step"])
                per_epoch = {name: sorted(s) for name, s in steps.items() if name != "pool_best"}
                assert {"lr", "train_loss"} <= set(per_epoch), steps
                for name, recorded in per_epoch.items():  # each epoch once, none missing
                    assert recorded == list(range(1, EPOCHS + 1)), (name, recorded)
                assert_rounds_recorded_once(
                    client, job["id"], env["NAO_STORAGE_DIR"], EPOCHS // EVAL_EVERY
                )
            assert worker.poll() is None, "the worker exited"
        finally:
            stop(worker)
            session_factory.cache_clear()
            clear_redis_prefix(prefix)
    text = log.read_text()
    assert "metric points kept for later" in text, text[-4000:]  # the outage was mid-job
