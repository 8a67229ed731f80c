"""Per-round candidate progress of a search without weight sharing."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.deps import Id, ReadAccess, SessionDep
from api.errors import responses
from jobs.search_nows import get_round_progress

router = APIRouter(dependencies=[ReadAccess])


@router.get("/searches/{job_id}/candidates", tags=["searches"], responses=responses(404))
def search_candidates(job_id: Id, session: SessionDep) -> dict[str, Any]:
    """Candidates pending / queued / running / done / cancelled per round."""
    return get_round_progress(session, job_id)
