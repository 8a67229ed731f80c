"""What the controller of a search learned, for a dashboard: its rounds and its lineage.

``/rounds``: per evaluation point, the pool's measured scores and, from the second point on,
how well the controller's predictions (made just before the supernet scored the pool) rank
them: Kendall's tau-b and pairwise accuracy (``nao_core.ranking``).

``/lineage``: every proposal with its parent, step size and the controller's prediction, the
search's top architectures, and how many proposals each step size and each seed produced and
how many of those reached the top.

Both read one indexed range of rows per search (a pool of 600 over 5 rounds is 3,000 round
rows and 1,800 architectures) and do the rest in memory.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Sequence
from itertools import groupby
from operator import itemgetter
from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy.orm import Session

from api.deps import Id, ReadAccess, SessionDep
from api.errors import responses
from api.schemas import (
    CalibrationPointPublic,
    CalibrationPublic,
    LineagePublic,
    RoundPublic,
    RoundsPublic,
    SearchLineagePublic,
    SeedCountPublic,
    StepSizeCountPublic,
)
from jobs.errors import NotFound
from nao_core.ranking import rank_agreement
from store import repository
from store.models import JobKind

router = APIRouter(tags=["searches"], dependencies=[ReadAccess])

# An architecture's score is its best source's; the top ranks trained scores above the rest.
_SOURCES = ("trained", "tabular", "supernet", "predictor")
_RANK = {source: rank for rank, source in enumerate(_SOURCES)}


def _check_search(session: Session, job_id: int) -> None:
    job = repository.get_job(session, job_id)
    if job is None or job.kind != JobKind.SEARCH:
        raise NotFound(f"search {job_id} not found")


@router.get("/searches/{job_id}/rounds", responses=responses(404))
def search_rounds(job_id: Id, session: SessionDep) -> RoundsPublic:
    """Per evaluation point: the pool's measured scores and the controller's calibration."""
    _check_search(session, job_id)
    rows = repository.list_pool_rounds(session, job_id)
    rounds = [_round(r, list(group)) for r, group in groupby(rows, key=itemgetter(0))]
    return RoundsPublic(job_id=job_id, rounds=rounds)


def _round(round: int, rows: Sequence[Any]) -> RoundPublic:
    """``rows``: ``(round, pool_id, predicted, measured)`` of one evaluation point."""
    scores = sorted((m for _, _, _, m in rows if m is not None), reverse=True)
    points = [(p, a, m) for _, p, a, m in rows if a is not None and m is not None]
    calibration = None
    if points:
        _, predicted, measured = zip(*points, strict=True)
        tau, accuracy = rank_agreement(predicted, measured)
        calibration = CalibrationPublic(
            count=len(points),
            kendall_tau=None if math.isnan(tau) else tau,
            pairwise_accuracy=None if math.isnan(accuracy) else accuracy,
            points=[
                CalibrationPointPublic(pool_id=p, predicted=a, measured=m) for p, a, m in points
            ],
        )
    return RoundPublic(
        round=round,
        count=len(rows),
        best=scores[0] if scores else None,
        median=statistics.median(scores) if scores else None,
        scores=scores,
        calibration=calibration,
    )


@router.get("/searches/{job_id}/lineage", responses=responses(404))
def search_lineage(
    job_id: Id, session: SessionDep, top: Annotated[int, Query(ge=1, le=100)] = 10
) -> SearchLineagePublic:
    """The controller's proposals, the top ``top`` architectures, and which step sizes and
    seeds produced proposals that reached that top."""
    _check_search(session, job_id)
    rows = repository.list_lineage(session, job_id, sources=_SOURCES)
    arch_of = {pool_id: arch_id for arch_id, pool_id, *_ in rows if pool_id is not None}
    items = [
        LineagePublic(
            architecture_id=arch_id,
            pool_id=pool_id,
            round=rnd,
            parent_pool_id=parent,
            parent_architecture_id=None if parent is None else arch_of.get(parent),
            step_size=step,
            predicted=predicted,
            score=score,
            score_source=source,
        )
        for arch_id, pool_id, rnd, parent, step, score, source, predicted in rows
    ]
    scored = [i for i in items if i.score is not None]
    scored.sort(key=lambda i: (_RANK[i.score_source or ""], -(i.score or 0.0), i.architecture_id))
    best = scored[:top]
    in_top = {i.architecture_id for i in best}
    steps: dict[float, list[int]] = defaultdict(lambda: [0, 0])  # [proposed, in top]
    seeds: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    proposals = []
    for p in items:
        if p.parent_pool_id is None:
            continue  # a random one
        proposals.append(p)
        hit = int(p.architecture_id in in_top)
        tallies = [seeds[p.parent_pool_id]]
        if p.step_size is not None:
            tallies.append(steps[p.step_size])
        for tally in tallies:
            tally[0] += 1
            tally[1] += hit
    return SearchLineagePublic(
        job_id=job_id,
        proposals=proposals,
        top=best,
        by_step_size=[
            StepSizeCountPublic(step_size=s, proposed=n, in_top=k)
            for s, (n, k) in sorted(steps.items())
        ],
        by_seed=[
            SeedCountPublic(
                parent_pool_id=p, parent_architecture_id=arch_of.get(p), proposed=n, in_top=k
            )
            for p, (n, k) in sorted(seeds.items())
        ],
    )
