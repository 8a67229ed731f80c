"""DbReporter: the nao_core ``Callback`` that writes progress, pool rounds and metrics to the
database as they happen and turns a ``cancelling`` job into ``should_stop() == True``.

Pool rows are upserted by (job, canonical hash), each round's predicted-vs-measured rows by
(job, round, pool id) and metrics by (job, name, step), so a round replayed after a
re-delivery is recorded exactly once.

A metric point the database cannot take (down, restarting) is kept, up to ``MAX_PENDING``
points, and written with the next one, so a short outage loses no point of the curves. The
cancel poll and the phase are skipped while it is down (the job runs on), and a round's rows
wait for it (up to ``ROUND_WAIT_S``) rather than fail the task, which would lose the kept
points with the reporter (a retry resumes after them, from the epoch's checkpoint).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from nao_core.search.pool import PoolEntry
from nao_core.search_space.base import SearchSpace
from store import repository
from store.db import session_scope
from store.models import Job, JobStatus
from store.settings import get_settings
from store.storage import job_storage, sha256_file
from worker.lifecycle import db
from worker.settings import get_worker_settings

logger = logging.getLogger(__name__)

MAX_PENDING = 10_000  # metric points kept while the database is unreachable; oldest dropped
ROUND_WAIT_S = 300.0  # how long a round's rows wait for the database before the task fails
UNREACHABLE = (OperationalError, InterfaceError)


def _first_line(exc: BaseException) -> str:
    return str(exc).split("\n")[0]


def record_controller(s: Session, job_id: int, round: int, path: str | Path) -> int:
    """A search's controller file of ``round`` (written by nao_core inside the job's run
    folder, so under the storage) as its ``controller`` checkpoint; once per round, updated
    when a replayed round wrote the file again. Returns the checkpoint's id."""
    file = Path(path)
    key = job_storage(get_settings()).key_for(file)
    size, digest = file.stat().st_size, sha256_file(file)
    return repository.record_controller_checkpoint(s, job_id, round, key, size, digest).id


def pool_rows(space: SearchSpace, entries: Sequence[PoolEntry]) -> list[dict[str, Any]]:
    return [
        {
            "arch": space.to_str(e.arch),
            "canonical_hash": space.canonical_hash(e.arch),
            "pool_id": e.id,
            "round": e.round,
            "parent_id": e.parent,
            "step_size": e.step_size,
            "score_supernet": e.score if e.score_source == "supernet" else None,
            "score_predictor": e.score if e.score_source == "predictor" else None,
        }
        for e in entries
    ]


class DbReporter:
    def __init__(
        self,
        factory: sessionmaker[Session],
        job_id: int,
        space: SearchSpace,
        total_epochs: int,
        *,
        interval_s: float = 1.0,
        poll_s: float = 1.0,
    ) -> None:
        self.factory, self.job_id, self.space = factory, job_id, space
        self.total_epochs = max(total_epochs, 1)
        self.interval_s, self.poll_s = interval_s, poll_s
        self._last_write = self._last_poll = 0.0
        self._stop = False
        self._pending: deque[tuple[int, dict[str, float]]] = deque(maxlen=MAX_PENDING)

    def on_phase(self, name: str, total: int) -> None:
        try:
            with session_scope(self.factory) as s:
                repository.update_job(s, self.job_id, phase=str(name), total=total)
        except UNREACHABLE as exc:  # only the progress display: the next phase sets it
            logger.warning("job=%d phase %s not recorded: %s", self.job_id, name, _first_line(exc))

    def on_epoch_end(self, epoch: int, metrics: Mapping[str, float]) -> None:
        if len(self._pending) == MAX_PENDING:
            logger.warning("job=%d metric point %d dropped (buffer full)", self.job_id, epoch)
        self._pending.append((epoch, dict(metrics)))
        try:
            with session_scope(self.factory) as s:
                for step, values in self._pending:
                    repository.record_metrics(s, self.job_id, step, values)
                now = time.monotonic()
                if now - self._last_write >= self.interval_s or epoch >= self.total_epochs:
                    self._last_write = now
                    progress = min(epoch / self.total_epochs, 1.0) * 0.95
                    repository.update_job(s, self.job_id, current=epoch, progress=progress)
        except UNREACHABLE as exc:  # the next call retries
            logger.warning(
                "job=%d %d metric points kept for later: %s",
                self.job_id,
                len(self._pending),
                _first_line(exc),
            )
            return
        self._pending.clear()

    def _until_written(self, write: Callable[[Session], None]) -> None:
        """Run ``write`` in a transaction, waiting out an unreachable database (backing off to
        5 s) for up to ``ROUND_WAIT_S``; the kept metric points go with it."""
        delay, waited = 0.25, 0.0
        while True:
            try:
                with session_scope(self.factory) as s:
                    for step, values in self._pending:
                        repository.record_metrics(s, self.job_id, step, values)
                    write(s)
            except UNREACHABLE as exc:
                if waited >= ROUND_WAIT_S:
                    raise
                logger.warning("job=%d waiting for the database: %s", self.job_id, _first_line(exc))
                time.sleep(delay)
                waited, delay = waited + delay, min(delay * 2, 5.0)
                continue
            self._pending.clear()
            return

    def on_pool_scored(self, round: int, pool: Sequence[PoolEntry]) -> None:
        self._write_pool(round, pool)
        scores = [e.score for e in pool if e.score is not None]
        rows = [{"pool_id": e.id, "predicted": e.predicted, "measured": e.score} for e in pool]

        def write(s: Session) -> None:
            repository.record_pool_round(s, self.job_id, round, rows)
            if scores:
                repository.record_metrics(s, self.job_id, round, {"pool_best": max(scores)})
            repository.update_job(s, self.job_id, rounds=round)

        self._until_written(write)
        logger.info("job=%d round=%d pool=%d recorded", self.job_id, round, len(pool))

    def on_proposals(self, round: int, archs: Sequence[PoolEntry]) -> None:
        self._write_pool(round, archs)

    def _write_pool(self, round: int, entries: Sequence[PoolEntry]) -> None:
        rows = pool_rows(self.space, entries)

        def write(s: Session) -> None:
            job = repository.get_job(s, self.job_id)
            assert job is not None
            repository.upsert_architectures(s, job, rows)

        self._until_written(write)

    def on_controller(self, round: int, path: str | Path) -> None:
        self._until_written(lambda s: record_controller(s, self.job_id, round, path))
        logger.info("job=%d round=%d controller recorded", self.job_id, round)

    def should_stop(self) -> bool:
        now = time.monotonic()
        if not self._stop and now - self._last_poll >= self.poll_s:
            self._last_poll = now
            try:
                with self.factory() as s:
                    status = repository.get_job_status(s, self.job_id)
            except UNREACHABLE as exc:  # run on; the next poll asks again
                logger.warning("job=%d cancel poll failed: %s", self.job_id, _first_line(exc))
                return self._stop
            self._stop = status in (JobStatus.CANCELLING, JobStatus.CANCELLED)
        return self._stop


def job_reporter(job: Job, total_epochs: int) -> DbReporter:
    """The reporter of a search or training job over ``total_epochs``."""
    from nao_core.search_space import create_search_space

    ws = get_worker_settings()
    return DbReporter(
        db(),
        job.id,
        create_search_space(job.space or "cnn"),
        total_epochs,
        interval_s=ws.progress_interval_s,
        poll_s=ws.cancel_poll_s,
    )
