"""Hyper-parameter sweeps: a grid of trainings over a search's top architectures."""

from __future__ import annotations

from fastapi import APIRouter, Response
from sqlalchemy.orm import Session

from api.deps import Id, ReadAccess, SessionDep, TokenDep
from api.errors import responses
from api.schemas import SweepPublic, SweepRunPublic
from jobs import registry, sweep
from jobs.requests import SweepCreate

router = APIRouter(dependencies=[ReadAccess])


def _public(session: Session, sweep_id: int) -> SweepPublic:
    job, runs = sweep.get_sweep(session, sweep_id)
    rows = [SweepRunPublic(**r, url=f"/trainings/{r['job_id']}") for r in runs]
    return SweepPublic(
        id=job.id,
        url=f"/sweeps/{job.id}",
        status=job.status,
        search_id=job.config["search_id"],
        runs=rows,
        best=rows[0] if rows and rows[0].rank else None,
    )


@router.post(
    "/sweeps", status_code=202, tags=["sweeps"], responses=responses(401, 403, 404, 429, 503)
)
def create_sweep(
    body: SweepCreate, session: SessionDep, token: TokenDep, response: Response
) -> SweepPublic:
    """Only the search's owner or an admin token starts a sweep on it."""
    job = registry.create(session, "sweep", body, token.id)
    response.headers["Location"] = f"/sweeps/{job.id}"
    return _public(session, job.id)


@router.get("/sweeps/{sweep_id}", tags=["sweeps"], responses=responses(404))
def get_sweep(sweep_id: Id, session: SessionDep) -> SweepPublic:
    """The runs ranked by accuracy, best first (unfinished runs last)."""
    return _public(session, sweep_id)


@router.post("/sweeps/{sweep_id}/cancel", tags=["sweeps"], responses=responses(401, 403, 404, 409))
def cancel_sweep(sweep_id: Id, session: SessionDep, token: TokenDep) -> SweepPublic:
    """Cancel every run not yet finished; finished runs keep their results and ranks."""
    sweep.cancel_sweep(session, sweep_id, token.id)
    return _public(session, sweep_id)
