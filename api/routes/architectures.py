"""Top-k architectures across searches, filtered and ordered by any score source."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api import repository
from api.deps import SessionDep
from api.errors import NotFound
from api.present import architecture_public
from api.schemas import ArchitecturePublic, ArchitecturesPublic, ScoreSource

router = APIRouter(tags=["architectures"])


@router.get("/architectures")
def list_architectures(
    session: SessionDep,
    top: Annotated[int, Query(ge=1, le=1000)] = 10,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
    order_by: ScoreSource = "supernet",
    search: Annotated[int | None, Query(ge=1)] = None,
    space: Annotated[str | None, Query(max_length=64)] = None,
    dataset: Annotated[str | None, Query(max_length=64)] = None,
) -> ArchitecturesPublic:
    rows = repository.top_architectures(
        session,
        order_by=order_by,
        limit=top,
        offset=offset,
        job_id=search,
        space=space,
        dataset=dataset,
    )
    return ArchitecturesPublic(data=[architecture_public(a) for a in rows], count=len(rows))


@router.get("/architectures/{arch_id}")
def get_architecture(arch_id: int, session: SessionDep) -> ArchitecturePublic:
    row = repository.get_architecture(session, arch_id)
    if row is None:
        raise NotFound(f"architecture {arch_id} not found")
    return architecture_public(row)
