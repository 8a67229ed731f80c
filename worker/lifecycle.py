"""What every job task shares: claiming its job, the heartbeat while it runs, recording the
outcome, and marking it failed when the task fails for good.

Tasks are thin and idempotent: each takes a job id, runs nao_core and records the outcome. A
task whose job is finished is a no-op; a re-delivered search or training resumes from its run
folder (nao_core saves its state every epoch), and pool rows and metrics are upserts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery import Task, signals
from celery.utils.log import get_task_logger
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from nao_core.errors import NaoCoreError
from store import repository
from store.db import session_factory, session_scope
from store.models import Job, JobStatus, utcnow
from store.redact import redact_paths
from store.settings import get_settings
from worker.recovery import Heartbeat, is_held_elsewhere
from worker.settings import get_worker_settings, worker_id

logger = get_task_logger(__name__)


def db() -> sessionmaker[Session]:
    return session_factory(get_settings().resolved_database_url())


def set_threads() -> None:
    import torch

    torch.set_num_threads(get_worker_settings().torch_threads)


@signals.worker_init.connect
def _warm_up(**_kw: Any) -> None:
    """Load torch and the nao_core entry points before the first job: loading them holds the
    interpreter for seconds, which inside a job would also stall its heartbeat thread."""
    import nao_core.search.ws
    import nao_core.train  # noqa: F401
    from nao_core.utils.allocator import keep_freed_memory

    keep_freed_memory()
    set_threads()


class JobTask(Task):  # type: ignore[misc]
    """Marks the job failed when the task fails for good."""

    autoretry_for = (OperationalError,)  # transient database errors only
    retry_backoff = True
    max_retries = 3

    def on_failure(
        self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        fail_job(int(args[0]), exc)


def fail_job(job_id: int, exc: BaseException) -> None:
    """Mark the job failed with the error's type and message, and log one line; the stored
    message names the server's folders by their variables, the log line in full."""
    with session_scope(db()) as s:
        repository.update_job(
            s,
            job_id,
            status=JobStatus.FAILED,
            error_type=type(exc).__name__,
            error_message=redact_paths(str(exc))[:4000],  # readable without a token
            finished_at=utcnow(),
        )
    logger.error("job=%d failed: %s: %s", job_id, type(exc).__name__, exc)


def start_job(job_id: int) -> Job | None:
    """Claim the job; None when there is nothing to do (finished, cancelled, unknown)."""
    with session_scope(db()) as s:
        job = repository.get_job(s, job_id, lock=True)
        if job is None:
            logger.warning("job=%d not found; message dropped", job_id)
            return None
        if repository.is_finished(job.status):
            logger.info("job=%d already %s; nothing to do", job_id, job.status)
            return None
        if is_held_elsewhere(job):
            logger.warning("job=%d runs on live worker %s; message dropped", job_id, job.worker)
            return None
        if job.status == JobStatus.CANCELLING:
            finish_job(s, job, JobStatus.CANCELLED)
            return None
        job.status, job.worker = JobStatus.RUNNING, worker_id()
        job.heartbeat_at = utcnow()
        job.attempts += 1
        job.started_at = job.started_at or utcnow()
        s.flush()
        s.expunge(job)
        return job


def finish_job(
    s: Session, job: Job, status: JobStatus, result: dict[str, Any] | None = None
) -> None:
    values: dict[str, Any] = {"status": status, "finished_at": utcnow()}
    if result is not None:
        values["result"] = result
    if status == JobStatus.SUCCEEDED:
        values["progress"] = 1.0
    repository.update_job(s, job.id, **values)


def run_job(job_id: int, body: Callable[[Job], tuple[JobStatus, dict[str, Any] | None]]) -> str:
    job = start_job(job_id)
    if job is None:
        return "skipped"
    set_threads()
    try:
        with Heartbeat(job_id):
            status, result = body(job)
    except NaoCoreError as exc:  # the user's error (config, data): one line, no traceback
        fail_job(job_id, exc)
        return str(JobStatus.FAILED)
    with session_scope(db()) as s:
        finish_job(s, job, status, result)
    logger.info("job=%d %s", job_id, status)
    return str(status)
