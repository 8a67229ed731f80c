"""The ``worker_status`` table: each worker upserts its own row (worker/status.py), the
metrics endpoint reads them (api/metrics.py)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from store.models import WorkerStatus, utcnow


def report_worker(
    session: Session,
    worker: str,
    host: str,
    device: str,
    memory_used: int | None = None,
    memory_total: int | None = None,
    utilization: float | None = None,
) -> None:
    """Insert or update ``worker``'s row, seen now. Only the worker itself writes its row
    (the key is its ``NAME/HOST:PID``), so a read then a write cannot race another writer."""
    row = session.get(WorkerStatus, worker)
    if row is None:
        row = WorkerStatus(worker=worker)
        session.add(row)
    row.host, row.device, row.seen_at = host, device, utcnow()
    row.gpu_memory_used_bytes, row.gpu_memory_total_bytes = memory_used, memory_total
    row.gpu_utilization_percent = utilization


def forget_worker(session: Session, worker: str) -> None:
    """Remove the row of a worker that stops cleanly (a lost one keeps ageing)."""
    session.execute(delete(WorkerStatus).where(WorkerStatus.worker == worker))


def workers_seen_since(session: Session, since: datetime) -> Sequence[WorkerStatus]:
    return session.scalars(
        select(WorkerStatus).where(WorkerStatus.seen_at >= since).order_by(WorkerStatus.worker)
    ).all()
