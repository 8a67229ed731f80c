"""Top-k architectures across searches, filtered and ordered by any score source.

``GET /architectures`` is the hot read path: the query runs in the threadpool, the answer is
serialised once to JSON bytes and kept in the process's ``ReadCache`` (``api.readcache``),
from which ``CachedReads`` serves repeats until an architecture row changes.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from api.deps import SessionDep
from api.errors import responses
from api.present import architecture_public
from api.readcache import ReadCache
from api.schemas import ArchitecturePublic, ArchitecturesPublic, ScoreSource
from jobs.errors import NotFound
from store import repository

router = APIRouter(tags=["architectures"])


@router.get("/architectures", response_model=ArchitecturesPublic)
async def list_architectures(
    request: Request,
    session: SessionDep,
    top: Annotated[int, Query(ge=1, le=1000)] = 10,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
    order_by: ScoreSource = "supernet",
    search: Annotated[int | None, Query(ge=1)] = None,
    space: Annotated[str | None, Query(max_length=64)] = None,
    dataset: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    cache: ReadCache = request.app.state.read_cache
    generation = cache.generation  # read before the query: a racing write voids the entry

    def query() -> bytes:
        rows = repository.top_architectures(
            session,
            order_by=order_by,
            limit=top,
            offset=offset,
            job_id=search,
            space=space,
            dataset=dataset,
        )
        page = ArchitecturesPublic(data=[architecture_public(a) for a in rows], count=len(rows))
        return page.model_dump_json().encode()

    body = await run_in_threadpool(query)
    cache.put(request.scope["query_string"], body, generation)
    return Response(body, media_type="application/json")


@router.get("/architectures/{arch_id}", responses=responses(404))
def get_architecture(arch_id: int, session: SessionDep) -> ArchitecturePublic:
    row = repository.get_architecture(session, arch_id)
    if row is None:
        raise NotFound(f"architecture {arch_id} not found")
    return architecture_public(row)
