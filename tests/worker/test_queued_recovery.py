"""Faults the service recovers from without anyone's help (worker/recovery.py, api/main.py,
worker/progress.py): a queued job whose message is lost is sent again and runs once; a
metric point written while the database is down is kept and written later; a job whose
checkpoint does not fit on the storage volume fails saying so."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from factories import make_job
from service_fixtures import embedded_service, embedded_url, start_worker, stop, wait_for
from sqlalchemy import update

from jobs import registry
from nao_core.errors import StorageFull
from nao_core.search_space import create_search_space
from store.db import session_factory, session_scope
from store.models import Job, JobKind, JobStatus, Metric, utcnow

EVOLUTION = {"space": "nb201", "method": "evolution", "budget": 30, "seed": 0}


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[dict[str, str]]:
    """``nao up``'s settings (SQLite, the SQLAlchemy broker) with a 3 s re-send period."""
    with embedded_service(tmp_path / "home", requeue_after_s="3") as env:
        yield env


def test_queued_jobs_are_resent_after_the_period_then_less_often(embedded, monkeypatch) -> None:
    from worker import recovery

    sent: list[tuple[str, int, str]] = []
    monkeypatch.setattr(recovery.broker, "enqueue", lambda t, j, q="gpu": sent.append((t, j, q)))
    factory = session_factory(embedded_url(embedded))
    now = utcnow()
    with session_scope(factory) as s:
        fresh = make_job(s, status=JobStatus.QUEUED, enqueued_at=now)
        lost = make_job(s, status=JobStatus.QUEUED, enqueued_at=now - timedelta(seconds=5))
        # Re-sent once already: due after 2 periods. A row from before the migration: no stamp.
        once = make_job(s, status=JobStatus.QUEUED, enqueued_at=now - timedelta(seconds=5))
        once.resends = 1
        old = make_job(s, status=JobStatus.QUEUED)
        s.execute(  # no ORM: its column defaults would fill both in
            update(Job)
            .where(Job.id == old.id)
            .values(enqueued_at=None, updated_at=now - timedelta(seconds=60))
        )
        nows = make_job(s, status=JobStatus.QUEUED, config={"method": "nao"})
        nows.enqueued_at = now - timedelta(seconds=5)  # a search without weight sharing: its plan
        sweep = make_job(s, kind=JobKind.SWEEP, status=JobStatus.QUEUED)
        sweep.enqueued_at = now - timedelta(seconds=5)  # no task of its own: never sent
        running = make_job(s, status=JobStatus.RUNNING, heartbeat_at=now)
        running.enqueued_at = now - timedelta(seconds=60)
        s.flush()
        task = registry.kind_of(lost).task
        expected = [(task, lost.id, "gpu"), (task, old.id, "gpu"),
                    ("nao.search.plan", nows.id, "gpu")]  # fmt: skip
        ids = fresh.id, lost.id, once.id
    assert recovery.resend_queued_jobs() == [lost.id, old.id, nows.id]
    assert sent == expected
    assert recovery.resend_queued_jobs() == []  # stamped: not again before the next period
    with factory() as s:
        rows = {j.id: j for j in s.query(Job)}
        assert [rows[i].resends for i in ids] == [0, 1, 1]
        assert rows[ids[1]].enqueued_at > now
        assert rows[ids[1]].status == JobStatus.QUEUED


def test_a_failed_resend_is_retried_at_the_next_sweep(embedded, monkeypatch) -> None:
    from worker import recovery

    def down(*_a: Any) -> None:
        raise ConnectionError("redis down")

    factory = session_factory(embedded_url(embedded))
    with session_scope(factory) as s:
        due = utcnow() - timedelta(seconds=5)
        ids = [make_job(s, status=JobStatus.QUEUED, enqueued_at=due).id for _ in range(3)]
    tried: list[int] = []
    monkeypatch.setattr(recovery.broker, "enqueue", lambda t, j, q="gpu": down(tried.append(j)))
    assert recovery.resend_queued_jobs() == []
    assert tried == ids[:1]  # the broker is down: the sweep stops at its first failed send
    sent: list[int] = []
    monkeypatch.setattr(recovery.broker, "enqueue", lambda t, j, q="gpu": sent.append(j))
    assert recovery.resend_queued_jobs() == ids
    assert sent == ids


def test_a_stale_job_requeued_while_the_broker_is_down_is_resent_later(
    embedded, monkeypatch
) -> None:
    from worker import recovery

    def down(*_a: Any) -> None:
        raise ConnectionError("redis down")

    factory = session_factory(embedded_url(embedded))
    with session_scope(factory) as s:
        old = utcnow() - timedelta(seconds=60)
        job_id = make_job(s, status=JobStatus.RUNNING, worker="b:2", heartbeat_at=old).id
    monkeypatch.setattr(recovery.broker, "enqueue", down)
    assert recovery.requeue_stale_jobs() == [job_id]  # queued, its send failed
    with session_scope(factory) as s:  # the period passes
        s.get(Job, job_id).enqueued_at = utcnow() - timedelta(seconds=5)
    sent: list[int] = []
    monkeypatch.setattr(recovery.broker, "enqueue", lambda t, j, q="gpu": sent.append(j))
    assert recovery.resend_queued_jobs() == [job_id]
    assert sent == [job_id]


def test_a_duplicate_message_never_runs_a_job_twice(embedded) -> None:
    from worker.lifecycle import start_job

    factory = session_factory(embedded_url(embedded))
    with session_scope(factory) as s:
        job_id = make_job(s, status=JobStatus.QUEUED).id
    assert start_job(job_id) is not None  # the first message claims it
    with session_scope(factory) as s:  # as if another worker held it, alive
        s.get(Job, job_id).worker = "elsewhere:1"
    assert start_job(job_id) is None  # the duplicate, while it runs: dropped
    with session_scope(factory) as s:
        s.get(Job, job_id).status = JobStatus.SUCCEEDED
    assert start_job(job_id) is None  # the duplicate, after it finished: a no-op
    with factory() as s:
        assert s.get(Job, job_id).attempts == 1


def test_a_full_storage_volume_fails_the_job_saying_so(embedded) -> None:
    from worker.lifecycle import run_job

    factory = session_factory(embedded_url(embedded))
    with session_scope(factory) as s:
        job_id = make_job(s, status=JobStatus.QUEUED).id

    def body(_job: Job) -> Any:
        raise StorageFull("no space left on the storage volume (0.0 MiB free) writing x")

    assert run_job(job_id, body) == "failed"
    with factory() as s:
        job = s.get(Job, job_id)
        assert (job.status, job.error_type) == (JobStatus.FAILED, "StorageFull")
        assert job.error_message.startswith("no space left on the storage volume")


def test_metric_points_written_while_the_database_is_down_are_written_later(embedded) -> None:
    from worker.progress import DbReporter

    factory = session_factory(embedded_url(embedded))
    with session_scope(factory) as s:
        job_id = make_job(s, status=JobStatus.RUNNING).id
    space = create_search_space("cnn")
    rep = DbReporter(factory, job_id, space, 4, interval_s=0, poll_s=0)
    rep.on_epoch_end(1, {"loss": 1.0})
    rep.factory = session_factory("postgresql+psycopg://nobody@127.0.0.1:1/down")  # refused
    rep.on_epoch_end(2, {"loss": 0.9})  # kept, not raised
    rep.on_epoch_end(3, {"loss": 0.8})
    rep.factory = factory  # the database is back
    rep.on_epoch_end(4, {"loss": 0.7})
    with factory() as s:
        points = s.query(Metric.step, Metric.value).filter(Metric.job_id == job_id)
        assert sorted(points.all()) == [(1, 1.0), (2, 0.9), (3, 0.8), (4, 0.7)]
        assert s.get(Job, job_id).current == 4


@pytest.mark.slow
def test_queued_jobs_with_no_message_run_once(embedded, tmp_path: Path, monkeypatch) -> None:
    """The API killed between its commit and its send, and a broker that lost its messages
    (Redis restarted without persistence; here the embedded broker's table emptied): the
    worker's reaper sends both again and each runs once."""
    from fastapi.testclient import TestClient

    from api.main import create_app
    from jobs import common
    from store.tokens import create_token

    with session_scope(session_factory(embedded_url(embedded))) as s:
        auth = {"Authorization": f"Bearer {create_token(s, 'tests')}"}
    with TestClient(create_app()) as client:
        with monkeypatch.context() as m:  # the API dies right after its commit
            m.setattr(common.broker, "enqueue", lambda *_a: None)
            unsent = client.post("/searches", json=EVOLUTION, headers=auth).json()
        lost = client.post("/searches", json={**EVOLUTION, "seed": 1}, headers=auth).json()
        kept = client.post("/searches", json={**EVOLUTION, "seed": 2}, headers=auth).json()
        broker_db = Path(embedded["NAO_HOME"]) / "broker.sqlite"
        with sqlite3.connect(broker_db) as conn:  # lose one message: the second search's
            rows = conn.execute("SELECT id, payload FROM kombu_message").fetchall()
            mine = [i for i, p in rows if f"[{lost['id']}]" in str(p)]
            assert len(mine) == 1, rows
            conn.execute("DELETE FROM kombu_message WHERE id = ?", mine)
        worker = start_worker(embedded, tmp_path / "w.log")
        try:
            for job in (unsent, lost, kept):
                done = wait_for(
                    lambda j=job: (
                        (r := client.get(j["url"]).json())["status"] in ("succeeded", "failed")
                        and r
                    ),
                    120,
                    f"job {job['id']}",
                    0.5,
                )
                assert done["status"] == "succeeded", done
                assert done["attempts"] == 1, done  # ran once, whatever the messages
        finally:
            stop(worker)
    log = (tmp_path / "w.log").read_text()
    assert f"job={unsent['id']} queued" in log
    assert f"job={lost['id']} queued" in log
