"""Top-k architectures across searches, filtered and ordered by any score source.

``GET /architectures`` is the hot read path: the query runs in the threadpool, the answer is
serialised once to JSON bytes and kept in the process's ``ReadCache`` (``api.readcache``),
from which ``CachedReads`` serves repeats until an architecture row changes.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from api.deps import MAX_ID, Id, ReadAccess, SessionDep
from api.errors import responses
from api.present import architecture_public, job_public
from api.readcache import ReadCache
from api.schemas import ArchitecturePublic, ArchitecturesPublic, JobsPublic, ScoreSource
from jobs.errors import NotFound
from nao_core.draw import draw_svg
from store import repository, summaries

router = APIRouter(tags=["architectures"], dependencies=[ReadAccess])


@router.get("/architectures", response_model=ArchitecturesPublic)
async def list_architectures(
    request: Request,
    session: SessionDep,
    top: Annotated[int, Query(ge=1, le=1000)] = 10,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
    order_by: ScoreSource = "supernet",
    search: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
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
def get_architecture(arch_id: Id, session: SessionDep) -> ArchitecturePublic:
    row = repository.get_architecture(session, arch_id)
    if row is None:
        raise NotFound(f"architecture {arch_id} not found")
    return architecture_public(row)


@router.get(
    "/architectures/{arch_id}/drawing.svg",
    response_class=Response,
    responses={
        200: {"content": {"image/svg+xml": {}}, "description": "The cells as an SVG drawing"},
        **responses(404),
    },
)
def architecture_drawing(arch_id: Id, session: SessionDep, inline: bool = False) -> Response:
    """The architecture's cells drawn (``nao draw``); ``inline=true`` gives the bare ``<svg>``
    element to put inside an HTML page."""
    row = repository.get_architecture(session, arch_id)
    if row is None:
        raise NotFound(f"architecture {arch_id} not found")
    svg = _drawing(row.space, row.arch, f"architecture {row.id}", not inline)
    headers = {"Cache-Control": "public, max-age=86400"}  # an architecture never changes
    return Response(svg, media_type="image/svg+xml", headers=headers)


@lru_cache(maxsize=4096)
def _drawing(space: str, arch: str, title: str, standalone: bool) -> str:
    """Drawings are pure functions of the row (about 10 ms each): a page of ten is drawn once."""
    return draw_svg(space, arch, title=title, standalone=standalone)


@router.get("/architectures/{arch_id}/jobs", responses=responses(404))
def architecture_jobs(arch_id: Id, session: SessionDep) -> JobsPublic:
    """The trainings and evaluations of this architecture, newest first, with checkpoints."""
    if repository.get_architecture(session, arch_id) is None:
        raise NotFound(f"architecture {arch_id} not found")
    rows = summaries.jobs_of_architecture(session, arch_id)
    return JobsPublic(data=[job_public(j) for j in rows], count=len(rows))
