"""All SQL on ``search_candidate``: the rows of a search without weight sharing (issue #6).

Torch-free: the API reads round progress and cancels through it; the worker plans,
dispatches and records candidates through it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from store.models import CandidateStatus, SearchCandidate, utcnow

ACTIVE = (CandidateStatus.QUEUED, CandidateStatus.RUNNING)
WAITING = (CandidateStatus.PENDING, CandidateStatus.QUEUED)


def add_candidates(session: Session, job_id: int, rows: Iterable[dict[str, Any]]) -> int:
    """Insert the rows (``round``, ``pool_id``, ``arch``, ``parent_id``) not there yet."""
    rows = list(rows)
    have = set(
        session.scalars(
            select(SearchCandidate.pool_id).where(
                SearchCandidate.job_id == job_id,
                SearchCandidate.pool_id.in_([r["pool_id"] for r in rows]),
            )
        )
    )
    new = [SearchCandidate(job_id=job_id, **r) for r in rows if r["pool_id"] not in have]
    session.add_all(new)
    session.flush()
    return len(new)


def get_candidate(
    session: Session, job_id: int, pool_id: int, *, lock: bool = False
) -> SearchCandidate | None:
    stmt = select(SearchCandidate).where(
        SearchCandidate.job_id == job_id, SearchCandidate.pool_id == pool_id
    )
    if lock:
        stmt = stmt.with_for_update()
    return session.scalar(stmt)


def round_candidates(session: Session, job_id: int, round: int) -> Sequence[SearchCandidate]:
    return session.scalars(
        select(SearchCandidate)
        .where(SearchCandidate.job_id == job_id, SearchCandidate.round == round)
        .order_by(SearchCandidate.pool_id)
    ).all()


def claim_pending(session: Session, job_id: int, limit: int | None) -> list[tuple[int, str]]:
    """Mark up to ``limit`` (None = all) pending candidates queued under fresh task ids, so
    that no more than the search's ``max_parallel`` are queued or running; returns
    ``(pool_id, task_id)`` to send. The caller holds the job's row lock."""
    if limit is not None:
        active = session.scalar(
            select(func.count()).where(
                SearchCandidate.job_id == job_id, SearchCandidate.status.in_(ACTIVE)
            )
        )
        limit = max(limit - int(active or 0), 0)
        if limit == 0:
            return []
    stmt = (
        select(SearchCandidate)
        .where(SearchCandidate.job_id == job_id, SearchCandidate.status == CandidateStatus.PENDING)
        .order_by(SearchCandidate.round, SearchCandidate.pool_id)
        .with_for_update()
    )
    if limit is not None:
        stmt = stmt.limit(limit)
    out = []
    for row in session.scalars(stmt):
        row.status, row.task_id = CandidateStatus.QUEUED, str(uuid.uuid4())
        out.append((row.pool_id, row.task_id))
    session.flush()
    return out


def counts(session: Session, job_id: int) -> dict[int, dict[str, int]]:
    """``{round: {status: n}}`` over every candidate of the search."""
    out: dict[int, dict[str, int]] = {}
    rows = session.execute(
        select(SearchCandidate.round, SearchCandidate.status, func.count())
        .where(SearchCandidate.job_id == job_id)
        .group_by(SearchCandidate.round, SearchCandidate.status)
    )
    for round, status, n in rows:
        out.setdefault(int(round), {s.value: 0 for s in CandidateStatus})[str(status)] = int(n)
    return out


def count_running(session: Session, job_id: int) -> int:
    return int(
        session.scalar(
            select(func.count()).where(
                SearchCandidate.job_id == job_id,
                SearchCandidate.status == CandidateStatus.RUNNING,
            )
        )
        or 0
    )


def cancel_waiting(session: Session, job_id: int) -> list[str]:
    """Mark pending and queued candidates cancelled; the task ids to revoke."""
    rows = session.scalars(
        select(SearchCandidate)
        .where(SearchCandidate.job_id == job_id, SearchCandidate.status.in_(WAITING))
        .with_for_update()
    ).all()
    ids = [r.task_id for r in rows if r.task_id]
    session.execute(
        update(SearchCandidate)
        .where(SearchCandidate.id.in_([r.id for r in rows]))
        .values(status=CandidateStatus.CANCELLED, finished_at=utcnow())
    )
    return ids


def trained_seconds(session: Session, job_id: int) -> float:
    return float(
        session.scalar(
            select(func.coalesce(func.sum(SearchCandidate.seconds), 0.0)).where(
                SearchCandidate.job_id == job_id
            )
        )
        or 0.0
    )
