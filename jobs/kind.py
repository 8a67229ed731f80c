"""The protocol every job kind implements, with the behaviour most kinds share.

A kind says how a request becomes a job row (``create``: every bad field a 4xx naming it),
which task runs the row and on which queue, how a job is cancelled, and what a worker does
with it when the worker that held it is lost (``resume_route``). ``jobs.registry`` lists the
kinds; the routes, cancellation and the workers' recovery go through it.
"""

from __future__ import annotations

from typing import Any, ClassVar

from sqlalchemy.orm import Session

from jobs.errors import Conflict
from store import broker, repository
from store.models import Job, JobKind, JobStatus, utcnow


class Kind:
    name: ClassVar[str]  # the registry's key
    row_kind: ClassVar[JobKind]  # the job row's ``kind`` column
    method: ClassVar[str | None] = None  # the row's ``config["method"]`` (searches)
    task: ClassVar[str | None] = None  # the task a job is sent as; None: no task of its own
    queue: ClassVar[str] = broker.GPU
    runner: ClassVar[str | None] = None  # the worker module that defines ``task``
    # A job whose worker was lost is sent again as a whole and resumes from its checkpoint.
    # False for jobs whose work is spread over tasks of their own, recovered one by one.
    resumable: ClassVar[bool] = True

    def holds(self, job: Job) -> bool:
        """True when ``job`` is of this kind."""
        return job.kind == self.row_kind and (job.config or {}).get("method") == self.method

    def accepts(self, body: Any) -> bool:
        """Kinds that share an endpoint (the searches): True when this kind takes ``body``."""
        return False

    def create(self, session: Session, body: Any, owner_id: int | None) -> Job:
        """Validate ``body`` into a job row owned by the token ``owner_id`` (None: no owner;
        only an admin cancels it), commit it and send its task."""
        raise NotImplementedError

    def cancel(self, session: Session, job: Job) -> Job:
        """Cancel ``job`` (locked by the caller): a queued job at once, a running one at its
        next epoch (the worker sees ``cancelling``). Commits."""
        if repository.is_finished(job.status):
            raise Conflict(f"job {job.id} is already {job.status}")
        revoke = self.stop(session, job)
        session.commit()
        if revoke:
            broker.revoke(revoke)
        return job

    def stop(self, session: Session, job: Job) -> list[str]:
        """Set the cancelled or cancelling status; returns task ids to revoke after commit."""
        if job.status == JobStatus.QUEUED:
            job.status, job.finished_at = JobStatus.CANCELLED, utcnow()
        elif job.status == JobStatus.RUNNING:
            job.status = JobStatus.CANCELLING
        return []

    def resume_route(self) -> tuple[str, str] | None:
        """The task and queue that resume a job of this kind after a lost worker."""
        if not self.resumable or self.task is None:
            return None
        return self.task, self.queue
