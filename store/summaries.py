"""Read-side aggregates for the dashboard: each one query, bounded whatever the table sizes.

The best score of many searches at once (one grouped query over the ``(job_id, score)``
indexes), a job's metric series thinned to a number of points a chart can show, and the jobs
that trained or evaluated one architecture.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from store.models import Architecture, Job, Metric

# A search's best score: what a full training measured, else the supernet's or the table's.
BEST_SOURCES = ("trained", "supernet", "tabular")


def best_scores(session: Session, job_ids: Sequence[int]) -> dict[int, tuple[float, str]]:
    """``{job_id: (score, source)}`` for the jobs that have scored architectures.

    One correlated ``max`` per job and source rather than a ``GROUP BY``: each is answered
    from the end of its ``(job_id, score)`` index, so a search of a million architectures
    costs what a search of ten does.
    """
    if not job_ids:
        return {}
    columns = [
        select(func.max(getattr(Architecture, f"score_{s}")))
        .where(Architecture.job_id == Job.id)
        .correlate(Job)
        .scalar_subquery()
        for s in BEST_SOURCES
    ]
    stmt = select(Job.id, *columns).where(Job.id.in_(list(job_ids)))
    out: dict[int, tuple[float, str]] = {}
    for job_id, *values in session.execute(stmt):
        found = [(v, s) for v, s in zip(values, BEST_SOURCES, strict=True) if v is not None]
        if found:
            out[job_id] = (float(found[0][0]), found[0][1])
    return out


def metric_series(session: Session, job_id: int, max_points: int) -> dict[str, dict[str, Any]]:
    """Every metric of the job as ``{name: {"count", "steps", "values"}}``, each thinned to at
    most ``max_points`` by keeping every k-th point and always the last (a best-so-far curve
    keeps its shape; its final value is exact)."""
    rows = session.execute(
        select(Metric.name, Metric.step, Metric.value)
        .where(Metric.job_id == job_id)
        .order_by(Metric.name, Metric.step)
    ).all()
    grouped: dict[str, list[tuple[int, float]]] = {}
    for name, step, value in rows:
        grouped.setdefault(name, []).append((step, value))
    out = {}
    for name, points in grouped.items():
        every = max(1, math.ceil(len(points) / max_points))
        kept = points[::every]
        if kept[-1] != points[-1]:
            kept = [*kept[: max_points - 1], points[-1]]
        out[name] = {
            "count": len(points),
            "steps": [p[0] for p in kept],
            "values": [p[1] for p in kept],
        }
    return out


def jobs_of_architecture(session: Session, arch_id: int, limit: int = 50) -> Sequence[Job]:
    """The trainings and evaluations of one architecture, newest first."""
    stmt = select(Job).where(Job.architecture_id == arch_id).order_by(Job.id.desc()).limit(limit)
    return session.scalars(stmt).all()
