"""Every job kind, and the lookups the routes, cancellation and recovery go through.

Adding a kind: a module in ``jobs/`` with a ``Kind`` subclass (how a request becomes a job,
its task and queue, how it is cancelled and recovered), its worker module (``runner``: the
task that runs it), and one line in ``KINDS``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from jobs import common, owner
from jobs.errors import NotFound
from jobs.evaluation import Evaluation
from jobs.export import Export
from jobs.kind import Kind
from jobs.query import Query
from jobs.requests import SearchCreate
from jobs.search_nows import NoWeightSharingSearch
from jobs.search_tabular import TabularSearch
from jobs.search_ws import WeightSharingSearch
from jobs.sweep import Sweep
from jobs.training import Training
from store import repository
from store.models import Job, JobKind

# Searches are matched in this order: tabular spaces, then method "nao", then weight sharing.
KINDS: tuple[Kind, ...] = (
    TabularSearch(),
    NoWeightSharingSearch(),
    WeightSharingSearch(),
    Training(),
    Evaluation(),
    Sweep(),
    Query(),
    Export(),
)
_BY_NAME = {k.name: k for k in KINDS}


def get(name: str) -> Kind:
    return _BY_NAME[name]


def kind_of(job: Job) -> Kind:
    """The kind of a stored job."""
    for kind in KINDS:
        if kind.holds(job):
            return kind
    raise LookupError(f"job {job.id}: no kind holds kind={job.kind!r} config.method")


def runners() -> list[str]:
    """The worker modules that define the kinds' tasks (the worker imports them)."""
    return sorted({k.runner for k in KINDS if k.runner})


def create_search(session: Session, body: SearchCreate, owner_id: int | None) -> Job:
    """A search of the kind that accepts ``body``, owned by the token ``owner_id``."""
    common.check_space(body.space)
    for kind in KINDS:
        if kind.row_kind == JobKind.SEARCH and kind.accepts(body):
            return kind.create(session, body, owner_id)
    raise AssertionError("the weight-sharing search accepts every search")


def create(session: Session, name: str, body: Any, owner_id: int | None) -> Job:
    """A job of kind ``name``, owned by the token ``owner_id`` (``Kind.create``)."""
    return get(name).create(session, body, owner_id)


def cancel(session: Session, job_id: int, caller_id: int) -> Job:
    """Cancel the job if the token ``caller_id`` owns it or is an admin (else 403)."""
    job = repository.get_job(session, job_id, lock=True)
    if job is None:
        raise NotFound(f"job {job_id} not found")
    owner.check_owner(session, job, caller_id, "cancel")
    return kind_of(job).cancel(session, job)


def resume_route(job: Job) -> tuple[str, str] | None:
    """The task and queue that resume ``job`` after its worker was lost; None for the kinds
    recovered task by task (a search without weight sharing) or with no task (a sweep)."""
    return kind_of(job).resume_route()
