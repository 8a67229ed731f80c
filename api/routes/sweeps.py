"""Hyper-parameter sweeps: a grid of trainings over a search's top architectures."""

from __future__ import annotations

from fastapi import APIRouter, Response

from api import sweeps
from api.deps import SessionDep, TokenDep
from api.schemas import SweepCreate, SweepPublic

router = APIRouter()


@router.post("/sweeps", status_code=202, tags=["sweeps"])
def create_sweep(
    body: SweepCreate, session: SessionDep, _t: TokenDep, response: Response
) -> SweepPublic:
    sweep = sweeps.create_sweep(session, body)
    response.headers["Location"] = f"/sweeps/{sweep.id}"
    return sweeps.get_sweep(session, sweep.id)


@router.get("/sweeps/{sweep_id}", tags=["sweeps"])
def get_sweep(sweep_id: int, session: SessionDep) -> SweepPublic:
    """The runs ranked by accuracy, best first (unfinished runs last)."""
    return sweeps.get_sweep(session, sweep_id)


@router.post("/sweeps/{sweep_id}/cancel", tags=["sweeps"])
def cancel_sweep(sweep_id: int, session: SessionDep, _t: TokenDep) -> SweepPublic:
    """Cancel every run not yet finished; finished runs keep their results and ranks."""
    sweeps.cancel_sweep(session, sweep_id)
    return sweeps.get_sweep(session, sweep_id)
