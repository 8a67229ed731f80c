"""Redis killed (``kill -9``) and started again while jobs are queued and running, with its
append-only file and without persistence (every queued message lost): the Celery workers
reconnect by themselves, and every accepted job, including those sent right after the
restart, succeeds having run once (``attempts == 1``), with no row written twice. What the
broker lost, the workers' reapers send again (``NAO_REQUEUE_AFTER_S``, worker/recovery.py).

Redis is a private ``redis-server`` on a port of its own (the machine's shared one is never
touched); the database a fresh Postgres one (``isolated_service``)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from service_fixtures import PrivateRedis, isolated_service, start_worker, stop, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.db]

SLOW = {"space": "nb201", "method": "nao", "budget": 30}  # 4 rounds: 10-20 s of training
CHEAP = {"space": "nb201", "method": "random", "budget": 5}
RECOVERY = {"heartbeat_s": "0.5", "stale_after_s": "8", "requeue_after_s": "5"}


def assert_ran_once(client: Any, jobs: list[dict[str, Any]], timeout: float) -> None:
    """Every job of ``jobs`` succeeds, claimed once, each queried architecture one row."""
    for job in jobs:
        done = wait_for(
            lambda j=job: (
                (r := client.get(j["url"]).json())["status"] in ("succeeded", "failed", "cancelled")
                and r
            ),
            timeout,
            f"job {job['id']}",
            0.5,
        )
        assert (done["status"], done["attempts"]) == ("succeeded", 1), done
        query = {"top": 1000, "search": job["id"], "order_by": "tabular"}
        rows = client.get("/architectures", params=query).json()
        archs = [a["arch"] for a in rows["data"]]
        assert len(archs) == len(set(archs)) == done["total"], (done, len(archs))


@pytest.mark.parametrize("appendonly", [True, False], ids=["appendonly", "no-persistence"])
def test_redis_restarted_under_queued_and_running_jobs(appendonly: bool, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from api.main import create_app
    from store.db import session_factory, session_scope
    from store.tokens import create_token

    redis = PrivateRedis(tmp_path / "redis", appendonly)
    redis.start()
    home = tmp_path / "home"
    home.mkdir()
    try:
        with isolated_service(home, broker_url=redis.url, **RECOVERY) as env:
            with session_scope(session_factory(env["NAO_DATABASE_URL"])) as s:
                auth = {"Authorization": f"Bearer {create_token(s, 'tests', admin=True)}"}
            logs = [tmp_path / "w1.log", tmp_path / "w2.log"]
            workers = [start_worker(env, log) for log in logs]
            try:
                with TestClient(create_app()) as client:
                    post = lambda body: client.post("/searches", json=body, headers=auth).json()  # noqa: E731
                    jobs = [post({**SLOW, "seed": i}) for i in range(2)]
                    jobs += [post({**CHEAP, "seed": i}) for i in range(4)]
                    running = lambda: [client.get(j["url"]).json()["status"] for j in jobs[:2]]  # noqa: E731
                    wait_for(lambda: running() == ["running"] * 2, 90, "two running jobs", 0.3)
                    redis.kill()  # 2 running (their messages unacked), 4 queued
                    # The running two finish with the broker down (their acks fail), then
                    # their workers' consumers retry the connection while Redis stays down.
                    assert_ran_once(client, jobs[:2], timeout=90)
                    time.sleep(1)
                    before = [log.stat().st_size for log in logs]
                    redis.start()
                    jobs += [post({**CHEAP, "seed": 10 + i}) for i in range(2)]  # at once
                    assert_ran_once(client, jobs, timeout=120)
                assert [w.poll() for w in workers] == [None, None], "a worker exited"
            finally:
                for w in workers:
                    stop(w)
        after = "".join(log.read_bytes()[n:].decode() for log, n in zip(logs, before, strict=True))
        for log in logs:  # each worker lost the broker, and connected again after the restart
            assert "Connection to broker lost" in log.read_text()
        assert after.count("Connected to redis://") >= 2, after[-4000:]
        if not appendonly:  # the 4 queued jobs' messages were lost: each was sent again
            for job in jobs[2:6]:
                assert f"job={job['id']} queued for" in after, after[-4000:]
    finally:
        redis.kill()
