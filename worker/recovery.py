"""Lost-worker recovery: job heartbeats, and re-queueing jobs whose worker is gone.

A broker alone does not bring back the job of a worker killed with ``kill -9``. Redis
re-delivers the unacknowledged message only after the visibility timeout (set above the
longest job, so hours). The SQLAlchemy transport of the embedded mode never does: kombu marks
a fetched message invisible in its table and keeps the ack in the consumer's memory, so the
message dies with the process. The database is the source of truth instead:

* while a task runs, a ``Heartbeat`` thread stamps ``job.heartbeat_at`` every ``heartbeat_s``;
* every live worker runs a ``Reaper``: at start and then every ``stale_after_s / 2`` it puts
  running jobs not stamped for ``stale_after_s`` back to ``queued`` (a conditional update:
  one reaper wins) and enqueues them again, and the task resumes from the job's checkpoint;
  a lost ``cancelling`` job is simply marked ``cancelled``;
* a task whose job is running on another worker with a fresh heartbeat drops the message
  (``is_held_elsewhere``), so a late re-delivery never runs a job twice at once;
* the same reaper re-sends the task of a job that stayed ``queued`` for ``requeue_after_s``
  since its task was last sent (``job.enqueued_at``): its message may be gone (Redis restarted
  without persistence, the API killed between its commit and its send, a re-queue while the
  broker was down). A job only waiting behind others gets a duplicate message, which is
  harmless (a task whose job is running elsewhere or finished is a no-op,
  ``lifecycle.start_job``); the period doubles with each re-send (``job.resends``), up to 8x,
  so a long wait costs a few messages.

Safe with many workers (production) as long as ``stale_after_s`` is well above
``heartbeat_s``.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from celery import signals
from sqlalchemy.exc import SQLAlchemyError

from jobs import registry
from store import broker, repository
from store.db import session_factory, session_scope
from store.models import Job, JobStatus, utcnow
from store.settings import get_settings
from worker.settings import get_worker_settings, worker_id

logger = logging.getLogger(__name__)


def _aware(t: datetime | None) -> datetime | None:
    return t.replace(tzinfo=UTC) if t is not None and t.tzinfo is None else t  # SQLite: naive


def is_held_elsewhere(job: Job, now: datetime | None = None) -> bool:
    """True when another live worker runs ``job`` (fresh heartbeat, not this process)."""
    if job.status not in repository.ACTIVE or job.worker in (None, worker_id()):
        return False
    seen = _aware(job.heartbeat_at)
    if seen is None:
        return False
    stale_after = timedelta(seconds=get_worker_settings().stale_after_s)
    return (now or utcnow()) - seen < stale_after


def requeue_stale_jobs() -> list[int]:
    """Re-queue the running jobs whose worker is gone and finish the cancelling ones; returns
    the re-queued ids. Jobs no single task holds (``resume_route`` None) are left alone."""
    factory = session_factory(get_settings().resolved_database_url())
    before = utcnow() - timedelta(seconds=get_worker_settings().stale_after_s)
    requeued: list[tuple[int, tuple[str, str]]] = []
    with session_scope(factory) as s:
        for job in repository.stale_jobs(s, before):
            route = registry.resume_route(job)
            if route is None:
                continue
            if job.status == JobStatus.CANCELLING:
                if repository.cancel_if_stale(s, job.id, before):
                    logger.warning("job=%d lost its worker while cancelling; cancelled", job.id)
            elif repository.requeue_if_stale(s, job.id, before):
                requeued.append((job.id, route))
    for job_id, (task, queue_name) in requeued:  # after the commit: no worker sees it running
        logger.warning("job=%d its worker is gone (no heartbeat); re-queued", job_id)
        try:
            broker.enqueue(task, job_id, queue_name)
        except Exception as exc:  # broker down: resend_queued_jobs sends it later
            logger.warning("job=%d re-queue not sent: %s: %s", job_id, type(exc).__name__, exc)
    return [job_id for job_id, _ in requeued]


MAX_BACKOFF = 8  # the re-send period grows 1x, 2x, 4x, 8x, 8x, ...


def resend_queued_jobs() -> list[int]:
    """Send again the task of every job queued for ``requeue_after_s`` (times its back-off)
    since its task was last sent; returns their ids. A failed send ends the sweep; it and the
    rest are sent next time."""
    factory = session_factory(get_settings().resolved_database_url())
    period = get_worker_settings().requeue_after_s
    now = utcnow()
    with factory() as s:
        due = [
            (job.id, job.resends, registry.kind_of(job))
            for job in repository.unsent_jobs(s, now - timedelta(seconds=period))
            if now - _aware(job.enqueued_at or job.updated_at)  # type: ignore[operator]
            >= timedelta(seconds=period * min(2**job.resends, MAX_BACKOFF))
        ]
    resent = []
    for job_id, resends, kind in due:
        if kind.task is None:  # a sweep: no task of its own
            continue
        try:  # send, then record: a send lost in between is only a duplicate (a no-op)
            broker.enqueue(kind.task, job_id, kind.queue)
        except Exception as exc:  # the broker is down: the rest wait for the next sweep
            logger.warning("job=%d re-send failed: %s: %s", job_id, type(exc).__name__, exc)
            break  # (each failed send takes its retries: a sweep of all would hold the reaper)
        with session_scope(factory) as s:
            repository.stamp_resend(s, job_id, resends)
        logger.warning("job=%d queued for %.0f s since its last send; re-sent", job_id, period)
        resent.append(job_id)
    return resent


class Heartbeat:
    """Stamps the job's heartbeat every ``heartbeat_s`` while the block runs."""

    def __init__(self, job_id: int) -> None:
        self.job_id, self.worker = job_id, worker_id()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{job_id}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        factory = session_factory(get_settings().resolved_database_url())
        every = get_worker_settings().heartbeat_s
        while not self._stop.wait(every):
            try:
                with session_scope(factory) as s:
                    mine = repository.stamp_heartbeat(s, self.job_id, self.worker)
            except SQLAlchemyError as exc:  # transient: the next beat retries
                logger.warning("job=%d heartbeat failed: %s", self.job_id, exc)
                continue
            if not mine:
                logger.warning("job=%d is no longer held by %s", self.job_id, self.worker)
                return


class Reaper:
    """A worker-side thread that re-queues lost jobs and re-sends the queued jobs whose
    message may be lost, at start and every ``min(stale_after_s, requeue_after_s) / 2``."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="nao-reaper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        ws = get_worker_settings()
        every = max(min(ws.stale_after_s, ws.requeue_after_s) / 2, 0.5)
        while True:
            for sweep in (requeue_stale_jobs, resend_queued_jobs):
                try:
                    sweep()
                except Exception as exc:  # DB or broker down: try again next time
                    logger.warning("reaper: %s: %s", type(exc).__name__, exc)
            if self._stop.wait(every):
                return


_reaper: Reaper | None = None
_status: Any = None  # worker.status.StatusReporter: this worker's liveness and GPU row


@signals.worker_ready.connect
def _start_reaper(sender: Any = None, **_kw: Any) -> None:
    global _reaper, _status
    from worker import status  # torch: loaded when the worker is ready, not at import

    _reaper = Reaper()
    _reaper.start()
    _status = status.for_consumer(sender)
    _status.start()


@signals.worker_shutdown.connect
def _stop_reaper(**_kw: Any) -> None:
    if _reaper is not None:
        _reaper.stop()
    if _status is not None:
        _status.stop()
