"""The embedded deployment (SQLite + Celery over the SQLAlchemy transport) after ``kill -9``.

kombu's SQLAlchemy transport never re-delivers the message of a killed worker, so the job
comes back through ``worker.recovery``: its heartbeat goes stale, a live worker's reaper puts
it back to ``queued`` and enqueues it, and the task resumes from the job's checkpoint.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from factories import make_job
from service_fixtures import (
    assert_rounds_recorded_once,
    embedded_service,
    embedded_url,
    start_worker,
    stop,
    wait_for,
)

from store.db import session_factory, session_scope
from store.models import Job, JobKind, JobStatus, utcnow

SEARCH = {"space": "cnn", "dataset": "digits", "preset": "tiny"}


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[dict[str, str]]:
    """``nao up``'s settings: everything under one home, SQLite and the SQLAlchemy broker."""
    with embedded_service(tmp_path / "home") as env:
        yield env


def test_a_fresh_heartbeat_keeps_the_job_a_stale_one_requeues_it(embedded, monkeypatch) -> None:
    from worker import recovery

    sent: list[tuple[str, int, str]] = []

    def enqueue(name: str, job_id: int, queue: str = "gpu") -> None:
        sent.append((name, job_id, queue))

    monkeypatch.setattr(recovery.broker, "enqueue", enqueue)
    factory = session_factory(embedded_url(embedded))
    with session_scope(factory) as s:
        fresh = make_job(s, status=JobStatus.RUNNING, worker="a:1", heartbeat_at=utcnow())
        old = utcnow() - timedelta(seconds=60)
        lost = make_job(s, status=JobStatus.RUNNING, worker="b:2", heartbeat_at=old)
        done = make_job(s, status=JobStatus.SUCCEEDED, worker="b:2", heartbeat_at=old)
        stopping = make_job(s, status=JobStatus.CANCELLING, worker="b:2", heartbeat_at=old)
        # No single task holds these: a search without weight sharing (its candidates are
        # re-delivered on their own; the plan task's heartbeat ends with the plan) and a sweep.
        nows = make_job(
            s, status=JobStatus.RUNNING, worker="b:2", heartbeat_at=old, config={"method": "nao"}
        )
        nows_stopping = make_job(
            s, status=JobStatus.CANCELLING, heartbeat_at=old, config={"method": "nao"}
        )
        sweep = make_job(s, kind=JobKind.SWEEP, status=JobStatus.RUNNING, updated_at=old)
        ids = fresh.id, lost.id, done.id, stopping.id
        untouched = {nows.id: JobStatus.RUNNING, nows_stopping.id: JobStatus.CANCELLING}
        untouched[sweep.id] = JobStatus.RUNNING
    assert recovery.requeue_stale_jobs() == [ids[1]]
    assert sent == [("nao.search.run", ids[1], "gpu")]
    assert recovery.requeue_stale_jobs() == []  # once: it is queued now
    with factory() as s:
        rows = {j.id: j for j in s.query(Job)}
        assert rows[ids[0]].status == JobStatus.RUNNING
        assert recovery.is_held_elsewhere(rows[ids[0]])  # a live worker: a duplicate is dropped
        assert (rows[ids[1]].status, rows[ids[1]].worker) == (JobStatus.QUEUED, None)
        assert rows[ids[2]].status == JobStatus.SUCCEEDED
        assert rows[ids[3]].status == JobStatus.CANCELLED  # not run again: it was being stopped
        assert {i: rows[i].status for i in untouched} == untouched


@pytest.mark.slow
def test_kill_9_of_the_embedded_worker_mid_search_then_a_fresh_one_finishes(
    embedded, tmp_path: Path
) -> None:
    from fastapi.testclient import TestClient

    from api.main import create_app
    from store.tokens import create_token

    with session_scope(session_factory(embedded_url(embedded))) as s:
        auth = {"Authorization": f"Bearer {create_token(s, 'tests')}"}
    with TestClient(create_app()) as client:
        job = client.post("/searches", json={**SEARCH, "budget": 8}, headers=auth).json()
        first = start_worker(embedded, tmp_path / "a.log")
        try:
            wait_for(lambda: client.get(job["url"]).json()["rounds"] >= 1, 120, "round 1", 0.2)
        finally:
            stop(first, sig_kill=True)
        assert client.get(job["url"]).json()["status"] == "running"
        second = start_worker(embedded, tmp_path / "b.log")
        try:
            done: dict[str, Any] = wait_for(
                lambda: (
                    (j := client.get(job["url"]).json())["status"]
                    in ("succeeded", "failed", "cancelled")
                    and j
                ),
                180,
                "the search to finish",
                0.5,
            )
        finally:
            stop(second)
        assert done["status"] == "succeeded", done
        assert done["attempts"] >= 2
        assert done["rounds"] == 4
        assert_rounds_recorded_once(client, job["id"], embedded["NAO_STORAGE_DIR"], rounds=4)
