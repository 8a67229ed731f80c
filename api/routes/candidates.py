"""Per-round candidate progress of a search without weight sharing."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api import nows
from api.deps import SessionDep

router = APIRouter()


@router.get("/searches/{job_id}/candidates", tags=["searches"])
def search_candidates(job_id: int, session: SessionDep) -> dict[str, Any]:
    """Candidates pending / queued / running / done / cancelled per round."""
    return nows.get_round_progress(session, job_id)
