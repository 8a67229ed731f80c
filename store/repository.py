"""All SQL of the service: jobs, architectures, pool rounds, metrics, checkpoints."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, and_, case, func, insert, select, update
from sqlalchemy.orm import Session

from store.models import (
    FINISHED,
    Architecture,
    Checkpoint,
    Job,
    JobKind,
    JobStatus,
    Metric,
    PoolRound,
    utcnow,
)


def get_job(session: Session, job_id: int, *, lock: bool = False) -> Job | None:
    stmt = select(Job).where(Job.id == job_id)
    if lock:
        stmt = stmt.with_for_update()
    return session.scalar(stmt)


def list_jobs(
    session: Session, kind: str | None, status: str | None, limit: int, offset: int
) -> tuple[Sequence[Job], int]:
    stmt = select(Job)
    if kind:
        stmt = stmt.where(Job.kind == kind)
    if status:
        stmt = stmt.where(Job.status == status)
    count = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = session.scalars(stmt.order_by(Job.id.desc()).limit(limit).offset(offset)).all()
    return rows, count


def count_unfinished_jobs(session: Session, owner_id: int) -> int:
    """Jobs of the token ``owner_id`` that are queued, running or cancelling. Sweeps are not
    counted: their runs are (they are trainings of their own)."""
    stmt = select(func.count()).where(
        Job.created_by == owner_id, Job.status.not_in(FINISHED), Job.kind != JobKind.SWEEP
    )
    return session.scalar(stmt) or 0


def get_job_status(session: Session, job_id: int) -> str | None:
    return session.scalar(select(Job.status).where(Job.id == job_id))


def update_job(session: Session, job_id: int, **values: Any) -> None:
    session.execute(update(Job).where(Job.id == job_id).values(updated_at=utcnow(), **values))


ACTIVE = (JobStatus.RUNNING, JobStatus.CANCELLING)


def stamp_heartbeat(session: Session, job_id: int, worker: str) -> bool:
    """Mark ``worker`` alive on its job; False when the job is no longer its to run."""
    res = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.worker == worker, Job.status.in_(ACTIVE))
        .values(heartbeat_at=utcnow())
    )
    return bool(res.rowcount)  # type: ignore[attr-defined]


def _unseen_since(before: datetime) -> Any:
    return func.coalesce(Job.heartbeat_at, Job.updated_at) < before


def stale_jobs(session: Session, before: datetime) -> Sequence[Job]:
    """Running or cancelling jobs whose worker has not been seen since ``before``."""
    stmt = select(Job).where(Job.status.in_(ACTIVE), _unseen_since(before))
    return list(session.scalars(stmt.order_by(Job.id)))


def requeue_if_stale(session: Session, job_id: int, before: datetime) -> bool:
    """Put a lost running job back to ``queued``; only one of racing callers gets True."""
    res = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.RUNNING, _unseen_since(before))
        .values(status=JobStatus.QUEUED, worker=None, updated_at=utcnow(), enqueued_at=utcnow())
    )
    return bool(res.rowcount)  # type: ignore[attr-defined]


def _last_sent() -> Any:
    return func.coalesce(Job.enqueued_at, Job.updated_at)


def unsent_jobs(session: Session, before: datetime) -> Sequence[Job]:
    """Queued jobs whose task was last sent before ``before`` (and that no worker took)."""
    stmt = select(Job).where(Job.status == JobStatus.QUEUED, _last_sent() < before)
    return list(session.scalars(stmt.order_by(Job.id)))


def stamp_resend(session: Session, job_id: int, resends: int) -> bool:
    """Record a re-send of queued job ``job_id`` seen with ``resends``; False when another
    caller recorded one first or the job left ``queued``."""
    res = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.QUEUED, Job.resends == resends)
        .values(enqueued_at=utcnow(), resends=resends + 1)
    )
    return bool(res.rowcount)  # type: ignore[attr-defined]


def cancel_if_stale(session: Session, job_id: int, before: datetime) -> bool:
    """Finish a cancelling job whose worker is gone (nothing is left to stop)."""
    now = utcnow()
    res = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.CANCELLING, _unseen_since(before))
        .values(status=JobStatus.CANCELLED, finished_at=now, updated_at=now)
    )
    return bool(res.rowcount)  # type: ignore[attr-defined]


def is_finished(status: str) -> bool:
    return status in FINISHED


def score_column(source: str) -> Any:
    return getattr(Architecture, f"score_{source}")


def top_architectures(
    session: Session,
    *,
    order_by: str,
    limit: int,
    offset: int = 0,
    job_id: int | None = None,
    space: str | None = None,
    dataset: str | None = None,
) -> Sequence[Architecture]:
    """Best first by ``score_<order_by>``; rows without that score are left out (index scan)."""
    col = score_column(order_by)
    stmt = select(Architecture).where(col.is_not(None))
    if job_id is not None:
        stmt = stmt.where(Architecture.job_id == job_id)
    if space is not None:
        stmt = stmt.where(Architecture.space == space)
    if dataset is not None:
        stmt = stmt.where(Architecture.dataset == dataset)
    stmt = stmt.order_by(col.desc(), Architecture.id).limit(limit).offset(offset)
    return session.scalars(stmt).all()


def get_architecture(session: Session, arch_id: int) -> Architecture | None:
    return session.get(Architecture, arch_id)


def find_architecture(session: Session, job_id: int, canonical_hash: str) -> Architecture | None:
    return session.scalar(
        select(Architecture).where(
            Architecture.job_id == job_id, Architecture.canonical_hash == canonical_hash
        )
    )


def architecture_ids_by_hash(
    session: Session, job_id: int, hashes: Sequence[str]
) -> dict[str, int]:
    """``{canonical_hash: id}`` of a job's rows among ``hashes`` (one indexed query)."""
    if not hashes:
        return {}
    stmt = select(Architecture.canonical_hash, Architecture.id).where(
        Architecture.job_id == job_id, Architecture.canonical_hash.in_(list(hashes))
    )
    return dict(session.execute(stmt).tuples().all())


def upsert_architectures(session: Session, job: Job, rows: Iterable[dict[str, Any]]) -> int:
    """Insert or update pool rows keyed by (job, canonical hash); returns the number inserted.

    Idempotent: replaying a round after a re-delivery updates the same rows.
    """
    rows = list(rows)
    hashes = [r["canonical_hash"] for r in rows]
    existing = {
        a.canonical_hash: a
        for a in session.scalars(
            select(Architecture).where(
                Architecture.job_id == job.id, Architecture.canonical_hash.in_(hashes)
            )
        )
    }
    inserted = 0
    for row in rows:
        found = existing.get(row["canonical_hash"])
        if found is None:
            session.add(Architecture(job_id=job.id, space=job.space, dataset=job.dataset, **row))
            inserted += 1
        else:
            for key, value in row.items():
                if value is not None:
                    setattr(found, key, value)
    session.flush()
    return inserted


def record_pool_round(
    session: Session, job_id: int, round: int, rows: Iterable[dict[str, Any]]
) -> int:
    """Write evaluation point ``round`` of a search: one row per pool member (``pool_id``,
    ``predicted``, ``measured``); returns the number inserted.

    Idempotent: a round replayed after a re-delivery overwrites its own rows.
    """
    rows = list(rows)
    existing = {
        r.pool_id: r
        for r in session.scalars(
            select(PoolRound).where(PoolRound.job_id == job_id, PoolRound.round == round)
        )
    }
    new = []
    for row in rows:
        found = existing.get(row["pool_id"])
        if found is None:
            new.append({"job_id": job_id, "round": round, **row})
        else:
            found.predicted, found.measured = row.get("predicted"), row.get("measured")
    if new:
        session.execute(insert(PoolRound), new)
    session.flush()
    return len(new)


def list_pool_rounds(session: Session, job_id: int) -> Sequence[Row[Any]]:
    """``(round, pool_id, predicted, measured)`` of every recorded round of a search, in
    round order (an index range scan of ``uq_pool_round_job_id``)."""
    stmt = (
        select(PoolRound.round, PoolRound.pool_id, PoolRound.predicted, PoolRound.measured)
        .where(PoolRound.job_id == job_id)
        .order_by(PoolRound.round, PoolRound.pool_id)
    )
    return session.execute(stmt).all()


def list_lineage(session: Session, job_id: int, *, sources: Sequence[str]) -> Sequence[Row[Any]]:
    """Every architecture of a search with what its lineage needs, in pool order.

    Each row is ``(id, pool_id, round, parent_id, step_size, score, score_source, predicted)``:
    ``parent_id`` is the parent's pool id; ``score`` is the first of ``sources`` the row has,
    named by ``score_source``; ``predicted`` is the prediction recorded at the evaluation point
    after the one the architecture entered at (for a proposal, the controller's belief when it
    proposed it).
    """
    columns = [score_column(s) for s in sources]
    source = case(*((c.is_not(None), s) for c, s in zip(columns, sources, strict=True)))
    proposed = and_(
        PoolRound.job_id == Architecture.job_id,
        PoolRound.round == Architecture.round + 1,
        PoolRound.pool_id == Architecture.pool_id,
    )
    stmt = (
        select(
            Architecture.id,
            Architecture.pool_id,
            Architecture.round,
            Architecture.parent_id,
            Architecture.step_size,
            func.coalesce(*columns),
            source,
            PoolRound.predicted,
        )
        .outerjoin(PoolRound, proposed)
        .where(Architecture.job_id == job_id)
        .order_by(Architecture.pool_id, Architecture.id)
    )
    return session.execute(stmt).all()


def record_metrics(session: Session, job_id: int, step: int, values: dict[str, float]) -> None:
    """Write ``values`` at ``step`` once; a replayed step overwrites its own rows."""
    names = list(values)
    existing = {
        m.name: m
        for m in session.scalars(
            select(Metric).where(
                Metric.job_id == job_id, Metric.step == step, Metric.name.in_(names)
            )
        )
    }
    for name, value in values.items():
        if name in existing:
            existing[name].value = value
        else:
            session.add(Metric(job_id=job_id, name=name, step=step, value=float(value)))
    session.flush()


def list_metrics(
    session: Session, job_id: int, name: str | None, limit: int, offset: int
) -> Sequence[Metric]:
    stmt = select(Metric).where(Metric.job_id == job_id)
    if name:
        stmt = stmt.where(Metric.name == name)
    stmt = stmt.order_by(Metric.name, Metric.step).limit(limit).offset(offset)
    return session.scalars(stmt).all()


def get_checkpoint(session: Session, checkpoint_id: int) -> Checkpoint | None:
    return session.get(Checkpoint, checkpoint_id)


def find_checkpoint(session: Session, job_id: int, kind: str) -> Checkpoint | None:
    return session.scalar(
        select(Checkpoint).where(Checkpoint.job_id == job_id, Checkpoint.kind == kind)
    )


def list_checkpoints(
    session: Session, job_id: int, kind: str | None = None
) -> Sequence[Checkpoint]:
    """A job's checkpoints, oldest first (a search's controllers in round order)."""
    stmt = select(Checkpoint).where(Checkpoint.job_id == job_id)
    if kind is not None:
        stmt = stmt.where(Checkpoint.kind == kind)
    return session.scalars(stmt.order_by(Checkpoint.round, Checkpoint.id)).all()


def controller_checkpoint(
    session: Session, job_id: int, round: int | None = None
) -> Checkpoint | None:
    """A search's controller after ``round`` (None: its latest round), or None."""
    stmt = select(Checkpoint).where(Checkpoint.job_id == job_id, Checkpoint.kind == "controller")
    if round is not None:
        stmt = stmt.where(Checkpoint.round == round)
    return session.scalar(stmt.order_by(Checkpoint.round.desc(), Checkpoint.id.desc()).limit(1))


def record_controller_checkpoint(
    session: Session, job_id: int, round: int, key: str, size: int, sha256: str
) -> Checkpoint:
    """The controller checkpoint of ``round`` of a search, written once per round: a round
    replayed after a re-delivery updates its row (the file was written again in place)."""
    row = controller_checkpoint(session, job_id, round)
    if row is None:
        row = Checkpoint(
            job_id=job_id, kind="controller", round=round, path=key, size=size, sha256=sha256
        )
        session.add(row)
    else:
        row.path, row.size, row.sha256 = key, size, sha256
    session.flush()
    return row


def architectures_by_id(session: Session, ids: Iterable[int]) -> dict[int, Architecture]:
    """The architecture rows of ``ids`` that exist, by id (one query)."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    rows = session.scalars(select(Architecture).where(Architecture.id.in_(wanted)))
    return {a.id: a for a in rows}


def mark_cancelled_if_queued(session: Session, job_id: int) -> bool:
    res = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.QUEUED)
        .values(status=JobStatus.CANCELLED, finished_at=utcnow(), updated_at=utcnow())
    )
    return bool(res.rowcount)  # type: ignore[attr-defined]
