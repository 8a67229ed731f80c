"""Searches, trainings and evaluations: one job model, three entry points."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from sqlalchemy.orm import Session

from api.deps import Id, ReadAccess, SessionDep, TokenDep
from api.errors import responses
from api.present import checkpoint_public, job_public
from api.schemas import (
    CheckpointsPublic,
    JobPublic,
    JobSeriesPublic,
    JobsPublic,
    MetricPublic,
    MetricsPublic,
    SeriesPublic,
)
from jobs import registry
from jobs.errors import NotFound
from jobs.requests import EvaluationCreate, SearchCreate, TrainingCreate
from store import repository, summaries
from store.models import Job, JobKind

router = APIRouter(dependencies=[ReadAccess])  # reads: NAO_PRIVATE_READS

Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0, le=10_000_000)]


def _load(session: Session, job_id: int, kind: JobKind | None) -> Job:
    job = repository.get_job(session, job_id)
    if job is None or (kind is not None and job.kind != kind):
        raise NotFound(f"{kind or 'job'} {job_id} not found")
    return job


def _public(session: Session, job: Job) -> JobPublic:
    if job.kind != JobKind.SEARCH:
        return job_public(job)
    for source in summaries.BEST_SOURCES:
        rows = repository.top_architectures(session, order_by=source, limit=1, job_id=job.id)
        if rows:
            out = job_public(job, rows[0])
            out.best_score, out.best_source = getattr(rows[0], f"score_{source}"), source
            return out
    return job_public(job)


def _accepted(job: Job, response: Response) -> JobPublic:
    out = job_public(job)  # just queued: no architectures to look up yet
    response.headers["Location"] = out.url
    return out


@router.post("/searches", status_code=202, tags=["searches"], responses=responses(401, 429, 503))
def create_search(
    body: SearchCreate, session: SessionDep, token: TokenDep, response: Response
) -> JobPublic:
    return _accepted(registry.create_search(session, body, token.id), response)


@router.post(
    "/trainings", status_code=202, tags=["trainings"], responses=responses(401, 404, 429, 503)
)
def create_training(
    body: TrainingCreate, session: SessionDep, token: TokenDep, response: Response
) -> JobPublic:
    return _accepted(registry.create(session, "train", body, token.id), response)


@router.post(
    "/evaluations", status_code=202, tags=["evaluations"], responses=responses(401, 404, 429, 503)
)
def create_evaluation(
    body: EvaluationCreate, session: SessionDep, token: TokenDep, response: Response
) -> JobPublic:
    return _accepted(registry.create(session, "eval", body, token.id), response)


def _register(path: str, kind: JobKind | None, tag: str) -> None:
    def list_(
        session: SessionDep, status: str | None = None, limit: Limit = 50, offset: Offset = 0
    ) -> JobsPublic:
        rows, count = repository.list_jobs(session, kind, status, limit, offset)
        best = summaries.best_scores(session, [j.id for j in rows if j.kind == JobKind.SEARCH])
        data = [job_public(j) for j in rows]
        for row in data:
            if row.id in best:
                row.best_score, row.best_source = best[row.id]
        return JobsPublic(data=data, count=count)

    def get(job_id: Id, session: SessionDep) -> JobPublic:
        return _public(session, _load(session, job_id, kind))

    def cancel(job_id: Id, session: SessionDep, token: TokenDep) -> JobPublic:
        _load(session, job_id, kind)
        return _public(session, registry.cancel(session, job_id, token.id))

    router.add_api_route(f"/{path}", list_, methods=["GET"], tags=[tag], name=f"list_{path}")
    router.add_api_route(
        f"/{path}/{{job_id}}",
        get,
        methods=["GET"],
        tags=[tag],
        name=f"get_{path}",
        responses=responses(404),
    )
    router.add_api_route(
        f"/{path}/{{job_id}}/cancel",
        cancel,
        methods=["POST"],
        tags=[tag],
        name=f"cancel_{path}",
        responses=responses(401, 403, 404, 409),
    )


_register("searches", JobKind.SEARCH, "searches")
_register("trainings", JobKind.TRAIN, "trainings")
_register("evaluations", JobKind.EVAL, "evaluations")
_register("jobs", None, "jobs")


@router.get("/jobs/{job_id}/metrics", tags=["jobs"], responses=responses(404))
def job_metrics(
    job_id: Id,
    session: SessionDep,
    name: str | None = None,
    limit: Limit = 1000,
    offset: Offset = 0,
) -> MetricsPublic:
    _load(session, job_id, None)
    rows = repository.list_metrics(session, job_id, name, limit, offset)
    data = [
        MetricPublic(name=m.name, step=m.step, value=m.value, created_at=m.created_at) for m in rows
    ]
    return MetricsPublic(data=data, count=len(data))


@router.get("/jobs/{job_id}/series", tags=["jobs"], responses=responses(404))
def job_series(
    job_id: Id, session: SessionDep, points: Annotated[int, Query(ge=2, le=5000)] = 500
) -> JobSeriesPublic:
    """Every metric of the job, each thinned to at most ``points`` (the last one kept): what a
    chart needs, however many steps were recorded."""
    _load(session, job_id, None)
    series = summaries.metric_series(session, job_id, points)
    return JobSeriesPublic(job_id=job_id, series={k: SeriesPublic(**v) for k, v in series.items()})


@router.get("/jobs/{job_id}/checkpoints", tags=["jobs"], responses=responses(404))
def job_checkpoints(
    job_id: Id,
    session: SessionDep,
    kind: Annotated[str | None, Query(max_length=16, pattern=r"^[a-z]+$")] = None,
) -> CheckpointsPublic:
    """The checkpoints of a job, oldest first: a training's model, a search's controller
    after each round (``?kind=controller``), an export's files."""
    _load(session, job_id, None)
    rows = repository.list_checkpoints(session, job_id, kind)
    return CheckpointsPublic(data=[checkpoint_public(c) for c in rows], count=len(rows))
