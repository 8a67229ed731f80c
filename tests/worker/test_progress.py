"""DbReporter and the task lifecycle, called directly (no broker, no worker process)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from factories import make_job
from service_fixtures import service_env
from sqlalchemy import func, select

from nao_core.search.pool import PoolEntry
from nao_core.search_space import create_search_space
from store.db import session_factory, session_scope
from store.migrate import upgrade
from store.models import Architecture, Job, JobStatus, Metric, PoolRound
from worker.progress import DbReporter


@pytest.fixture
def db_url(tmp_path: Path) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'nao.sqlite'}"
    upgrade(url)
    with service_env(database_url=url, home=str(tmp_path), storage_dir=str(tmp_path / "s")):
        yield url


def _pool(n: int, seed: int = 0, **fields) -> list[PoolEntry]:
    space = create_search_space("cnn")
    archs = space.sample_many(np.random.default_rng(seed), n)
    return [
        PoolEntry(i, a, round=0, score=i / n, score_source="supernet", scored_round=1, **fields)
        for i, a in enumerate(archs)
    ]


def _reporter(url: str, job_id: int) -> DbReporter:
    space = create_search_space("cnn")
    return DbReporter(session_factory(url), job_id, space, 4, interval_s=0, poll_s=0)


def test_rounds_and_metrics_are_recorded_once_when_replayed(db_url: str) -> None:
    factory = session_factory(db_url)
    with session_scope(factory) as s:
        job_id = make_job(s, status=JobStatus.RUNNING).id
    rep, pool = _reporter(db_url, job_id), _pool(6, predicted=0.25)
    proposals = [replace(e, id=10 + e.id, parent=e.id, step_size=2.0 + e.id, score=None)
                 for e in _pool(2, seed=1)]  # fmt: skip
    for _ in range(2):  # a re-delivered task replays the round it was killed in
        rep.on_phase("supernet", 4)
        rep.on_epoch_end(2, {"loss": 1.5, "acc": 0.3})
        rep.on_pool_scored(1, pool)
        rep.on_proposals(1, proposals)
    with factory() as s:
        assert s.scalar(select(func.count()).select_from(Architecture)) == 8
        columns = (PoolRound.round, PoolRound.pool_id, PoolRound.predicted, PoolRound.measured)
        rounds = s.execute(select(*columns).order_by(PoolRound.pool_id)).all()
        assert [tuple(r) for r in rounds] == [(1, i, 0.25, i / 6) for i in range(6)]
        steps = s.execute(select(Architecture.pool_id, Architecture.step_size)).all()
        assert {p: st for p, st in steps if st is not None} == {10: 2.0, 11: 3.0}
        assert s.scalar(select(func.count()).select_from(Metric)) == 3
        job = s.get(Job, job_id)
        assert job is not None
        assert (job.rounds, job.current, job.phase) == (1, 2, "supernet")
        assert job.progress == pytest.approx(0.5 * 0.95)
        best = s.scalar(select(func.max(Architecture.score_supernet)))
        assert best == pytest.approx(5 / 6)


def test_should_stop_sees_cancelling(db_url: str) -> None:
    factory = session_factory(db_url)
    with session_scope(factory) as s:
        job_id = make_job(s, status=JobStatus.RUNNING).id
    rep = _reporter(db_url, job_id)
    assert rep.should_stop() is False
    with session_scope(factory) as s:
        job = s.get(Job, job_id)
        assert job is not None
        job.status = JobStatus.CANCELLING
    assert rep.should_stop() is True


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (JobStatus.SUCCEEDED, JobStatus.SUCCEEDED),
        (JobStatus.CANCELLED, JobStatus.CANCELLED),
        (JobStatus.FAILED, JobStatus.FAILED),
        (JobStatus.CANCELLING, JobStatus.CANCELLED),
    ],
)
def test_redelivered_message_for_a_finished_job_is_a_noop(db_url, status, expected) -> None:
    from worker.search_ws import run_search_job

    factory = session_factory(db_url)
    with session_scope(factory) as s:
        job_id = make_job(s, status=status).id
    assert run_search_job.run(job_id) == "skipped"
    assert run_search_job.run(123456) == "skipped"
    with factory() as s:
        job = s.get(Job, job_id)
        assert job is not None
        assert job.status == expected
        assert job.attempts == 0


def test_a_user_error_fails_the_job_without_raising(db_url: str, caplog) -> None:
    """A config the method refuses is the user's error: the job is failed with it and the
    worker logs one line, instead of a task failure with a traceback."""
    from worker.search_ws import run_search_job

    factory = session_factory(db_url)
    with session_scope(factory) as s:
        job_id = make_job(s, status=JobStatus.QUEUED, config={"pool_size": 1}).id
    assert run_search_job.run(job_id) == "failed"
    with factory() as s:
        job = s.get(Job, job_id)
        assert job is not None
        assert job.status == JobStatus.FAILED
        assert job.error_type == "InvalidConfig"
        assert "pool_size" in (job.error_message or "")
        assert job.attempts == 1
    lines = [r for r in caplog.records if f"job={job_id} failed" in r.getMessage()]
    assert len(lines) == 1
    assert lines[0].exc_info is None


def test_a_task_failure_marks_the_job_failed(db_url: str) -> None:
    """Any other exception fails the task; its failure hook records it on the job."""
    from worker.search_ws import run_search_job

    factory = session_factory(db_url)
    with session_scope(factory) as s:
        job_id = make_job(s, status=JobStatus.RUNNING).id
    run_search_job.on_failure(RuntimeError("disk full"), "task-id", (job_id,), {}, None)
    with factory() as s:
        job = s.get(Job, job_id)
        assert job is not None
        assert job.status == JobStatus.FAILED
        assert job.error_type == "RuntimeError"
        assert job.error_message == "disk full"


def test_a_failed_job_shows_no_server_folder(db_url: str, tmp_path: Path, caplog) -> None:
    """A job row is readable without a token: its message names the storage, data and home
    folders by their variables; the worker log keeps the message in full."""
    from worker.search_ws import run_search_job

    factory = session_factory(db_url)
    with session_scope(factory) as s:
        job_id = make_job(s, status=JobStatus.RUNNING).id
    where = f"cannot write {tmp_path / 's' / 'run'}; no {tmp_path / 'data' / 'ptb'}"
    run_search_job.on_failure(OSError(where), "task-id", (job_id,), {}, None)
    with factory() as s:
        job = s.get(Job, job_id)
        assert job is not None
        assert job.error_message == "cannot write $NAO_STORAGE_DIR/run; no $NAO_DATA_DIR/ptb"
    assert any(where in r.getMessage() for r in caplog.records)


def test_a_job_row_keeps_the_worker_identity_and_shows_its_name(db_url: str) -> None:
    """Recovery tells workers apart by host and pid; callers see the worker's name only."""
    import os
    import socket

    from api.present import job_public
    from worker.lifecycle import start_job
    from worker.settings import get_worker_settings

    factory = session_factory(db_url)
    with session_scope(factory) as s:
        job_id = make_job(s, status=JobStatus.QUEUED).id
    get_worker_settings.cache_clear()
    try:
        with service_env(worker_name="gpu0"):
            start_job(job_id)
    finally:
        get_worker_settings.cache_clear()
    with factory() as s:
        job = s.get(Job, job_id)
        assert job is not None
        assert job.worker == f"gpu0/{socket.gethostname()}:{os.getpid()}"
        assert job_public(job).worker == "gpu0"
        job.worker = f"{socket.gethostname()}:{os.getpid()}"  # a row from before names
        assert job_public(job).worker == socket.gethostname()
