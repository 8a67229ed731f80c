"""Questions to a search's controller: improve an architecture, predict scores, interpolate.

Each request is checked without torch (``jobs.query``), becomes a ``query`` job on the
``query`` queue, and is then waited for: the answer is 200 with the result when a query
worker finishes it within ``NAO_QUERY_WAIT_S``, else 202 with the job (``Location``:
``/jobs/{id}``, whose ``result`` holds the answer once it is done). The wait polls the job's
row from the event loop, holding neither a thread nor a database connection in between.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from api.deps import Id, ReadAccess, SessionDep, TokenDep
from api.errors import responses
from api.present import job_public
from api.schemas import JobPublic, QueryPublic
from jobs.errors import ServiceError
from jobs.query import Query
from jobs.requests import ImproveCreate, InterpolationCreate, PredictionCreate
from store import repository
from store.db import session_factory
from store.models import Job, JobStatus
from store.settings import get_settings

router = APIRouter(tags=["controller"], dependencies=[ReadAccess])
_KIND = Query()
_FIRST_POLL_S, _MAX_POLL_S = 0.02, 0.25
# A query's failure in the worker, as the status a caller would have got had it been caught
# before the job (the controller's own checks: nao_core.controller.errors).
_FAILED_STATUS = {"SpaceMismatch": 409, "IncompatibleController": 409, "InvalidQuery": 422}

ANSWERS: dict[int | str, dict[str, Any]] = {
    202: {"model": JobPublic, "description": "Not done within NAO_QUERY_WAIT_S: the job"},
    **responses(401, 404, 429, 503),
    409: {
        "model": responses(409)[409]["model"],
        "description": "The search has no controller (random, evolution) or none stored yet, "
        "or an architecture is of another space",
    },
}


class QueryFailed(ServiceError):
    """The query's job failed in the worker."""

    def __init__(self, message: str, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code


def _finished(job_id: int) -> Job | None:
    """The job's row once it has finished, else None (a short session of its own)."""
    with session_factory(get_settings().resolved_database_url())() as s:
        job = repository.get_job(s, job_id)
        if job is None or not repository.is_finished(job.status):
            return None
        s.expunge(job)
        return job


async def _wait(job_id: int, wait_s: float) -> Job | None:
    """Poll until the job finished or ``wait_s`` ran out (then None)."""
    deadline, delay = time.monotonic() + wait_s, _FIRST_POLL_S
    while True:
        job = await run_in_threadpool(_finished, job_id)
        if job is not None:
            return job
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        await asyncio.sleep(min(delay, left))
        delay = min(delay * 2, _MAX_POLL_S)


def _answer(job: Job) -> QueryPublic:
    if job.status != JobStatus.SUCCEEDED:
        why = f"{job.error_type}: {job.error_message}" if job.error_type else job.status
        code = _FAILED_STATUS.get(job.error_type or "", 500)
        raise QueryFailed(f"query job {job.id} {job.status}: {why}", code)
    cfg = job.config
    return QueryPublic.model_validate(
        {
            **(job.result or {}),
            "job_id": job.id,
            "url": f"/jobs/{job.id}",
            "search_id": int(cfg["search_id"]),
            "round": cfg.get("round"),
            "checkpoint_id": int(cfg["checkpoint_id"]),
        }
    )


async def _run(create: Callable[[], Job], session: Session, response: Response) -> Any:
    def submit() -> tuple[int, JobPublic]:
        job = create()
        out = job_public(job)
        session.close()  # no connection held while waiting
        return job.id, out

    job_id, queued = await run_in_threadpool(submit)
    job = await _wait(job_id, get_settings().query_wait_s)
    if job is None:
        return JSONResponse(
            queued.model_dump(mode="json"), status_code=202, headers={"Location": queued.url}
        )
    return _answer(job)


@router.post("/architectures/{arch_id}/improve", responses=ANSWERS)
async def improve_architecture(
    arch_id: Id, body: ImproveCreate, session: SessionDep, token: TokenDep, response: Response
) -> QueryPublic:
    """Better architectures decoded after gradient steps from this one in the controller's
    embedding (``proposals``), stored as architectures with their predicted score and the
    seed as parent; ``evaluate: true`` measures them."""
    return await _run(lambda: _KIND.improve(session, arch_id, body, token.id), session, response)


@router.post("/predictions", responses=ANSWERS)
async def predict(
    body: PredictionCreate, session: SessionDep, token: TokenDep, response: Response
) -> QueryPublic:
    """The controller's predicted score of each architecture, its rank among the search's
    measured pool, its nearest measured architectures and an uncertainty."""
    return await _run(lambda: _KIND.predict(session, body, token.id), session, response)


@router.post("/interpolations", responses=ANSWERS)
async def interpolate(
    body: InterpolationCreate, session: SessionDep, token: TokenDep, response: Response
) -> QueryPublic:
    """The distinct architectures decoded along the straight path between two embeddings,
    with their predicted scores."""
    return await _run(lambda: _KIND.interpolate(session, body, token.id), session, response)
