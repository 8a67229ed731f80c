"""Hyper-parameter sweeps over a search's top architectures (issue #6 item 5).

The paper: "we perform grid search on the hyper-parameters for the top-5 architectures
discovered". ``POST /sweeps`` takes the search's top-k architectures (by trained score, else
by supernet score) and a small grid of ``TrainConfig`` overrides, validates every grid point
against the training preset, and creates one ordinary training job per (architecture, point):
each runs, resumes and cancels like any ``POST /trainings`` job. The sweep itself is a job row
of kind ``sweep`` that no worker runs: it records its runs, and reading it ranks them by
accuracy and settles its status once every run has finished. Cancelling the sweep cancels
every run not yet finished (queued ones at once, running ones at their next epoch) and the
sweep itself at once: no worker would ever settle a ``cancelling`` sweep.
"""

from __future__ import annotations

import itertools
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from api import repository
from api.errors import Conflict, InvalidInput, NotFound
from api.models import FINISHED, Architecture, Job, JobKind, JobStatus, utcnow
from api.schemas import SweepCreate, SweepPublic, SweepRunPublic, TrainingCreate

MAX_RUNS = 64


def _grid_points(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    for key, values in grid.items():
        if not values:
            raise InvalidInput(f"grid.{key}", "needs at least one value")
        if len(values) != len({repr(v) for v in values}):
            raise InvalidInput(f"grid.{key}", "values repeat")
    keys = list(grid)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*grid.values())]


def _top_archs(session: Session, search: Job, k: int) -> list[Architecture]:
    for source in ("trained", "supernet"):
        rows = repository.top_architectures(session, order_by=source, limit=k, job_id=search.id)
        if rows:
            return list(rows)
    return []


def create_sweep(session: Session, body: SweepCreate) -> Job:
    from api import services

    search = repository.get_job(session, body.search_id)
    if search is None or search.kind != JobKind.SEARCH:
        raise NotFound(f"search {body.search_id} not found")
    if search.status != JobStatus.SUCCEEDED:
        raise InvalidInput("search_id", f"search {search.id} is {search.status}, not succeeded")
    points = _grid_points(body.grid)
    archs = _top_archs(session, search, body.top_k)
    if not archs:
        raise InvalidInput("search_id", f"search {search.id} has no scored architectures")
    if len(points) * len(archs) > MAX_RUNS:
        raise InvalidInput("grid", f"{len(points)} points x {len(archs)} archs > {MAX_RUNS}")
    base = services._apply(services._preset("train", body.preset), body.overrides, "overrides")
    for point in points:  # every point valid before anything is queued
        services._apply(base, dict(point), "overrides")
    runs = []
    for arch in archs:
        for point in points:
            # by arch string, not architecture_id: a run must not overwrite the search's
            # trained score of its architecture (each run records its own row)
            child = services.create_training(
                session,
                TrainingCreate(
                    arch=arch.arch,
                    space=arch.space,
                    preset=body.preset,
                    overrides={**body.overrides, **point},
                    dataset=body.dataset or arch.dataset,
                ),
            )
            runs.append({"job_id": child.id, "architecture_id": arch.id, "overrides": point})
    sweep = Job(
        kind=JobKind.SWEEP,
        status=JobStatus.RUNNING,
        space=search.space,
        dataset=search.dataset,
        preset=body.preset,
        config={"search_id": search.id, "top_k": body.top_k, "grid": body.grid, "runs": runs},
        request=body.model_dump(),
        started_at=utcnow(),
    )
    session.add(sweep)
    session.commit()
    return sweep


def _runs(session: Session, sweep: Job) -> list[SweepRunPublic]:
    ids = [r["job_id"] for r in sweep.config["runs"]]
    jobs = {j.id: j for j in session.scalars(select(Job).where(Job.id.in_(ids)))}
    rows = []
    for r in sweep.config["runs"]:
        job = jobs.get(r["job_id"])
        acc = (job.result or {}).get("accuracy") if job is not None else None
        rows.append(
            SweepRunPublic(
                rank=None,
                job_id=r["job_id"],
                url=f"/trainings/{r['job_id']}",
                status=job.status if job is not None else "deleted",
                architecture_id=r["architecture_id"],
                overrides=r["overrides"],
                accuracy=acc,
            )
        )
    ranked = sorted((x for x in rows if x.accuracy is not None), key=lambda x: -(x.accuracy or 0))
    for i, x in enumerate(ranked, start=1):
        x.rank = i
    return ranked + [x for x in rows if x.accuracy is None]


def get_sweep(session: Session, sweep_id: int) -> SweepPublic:
    """The sweep with its runs best first; settles its status when every run has finished."""
    sweep = repository.get_job(session, sweep_id)
    if sweep is None or sweep.kind != JobKind.SWEEP:
        raise NotFound(f"sweep {sweep_id} not found")
    runs = _runs(session, sweep)
    if sweep.status == JobStatus.RUNNING and all(r.status in FINISHED for r in runs):
        ok = any(r.status == JobStatus.SUCCEEDED for r in runs)
        status = JobStatus.SUCCEEDED if ok else JobStatus.FAILED
        best = runs[0].model_dump() if runs and runs[0].rank else None
        repository.update_job(
            session, sweep.id, status=status, finished_at=utcnow(), progress=1.0,
            result={"best": best, "runs": len(runs)},
        )  # fmt: skip
        session.commit()
        session.refresh(sweep)
    return SweepPublic(
        id=sweep.id,
        url=f"/sweeps/{sweep.id}",
        status=sweep.status,
        search_id=sweep.config["search_id"],
        runs=runs,
        best=runs[0] if runs and runs[0].rank else None,
    )


def cancel_sweep(session: Session, sweep_id: int) -> Job:
    """Cancel every unfinished run of the sweep, then the sweep; finished runs keep results."""
    from api import services

    sweep = repository.get_job(session, sweep_id, lock=True)
    if sweep is None or sweep.kind != JobKind.SWEEP:
        raise NotFound(f"sweep {sweep_id} not found")
    if repository.is_finished(sweep.status):
        raise Conflict(f"sweep {sweep_id} is already {sweep.status}")
    ids = [r["job_id"] for r in sweep.config["runs"]]
    # Lock order sweep -> runs (by id), so two cancels of one sweep cannot deadlock.
    runs = session.scalars(select(Job).where(Job.id.in_(ids)).order_by(Job.id).with_for_update())
    pending = [j.id for j in runs if not repository.is_finished(j.status)]
    sweep.status, sweep.finished_at = JobStatus.CANCELLED, utcnow()
    sweep.result = {"best": None, "runs": len(ids), "cancelled_runs": len(pending)}
    session.commit()  # the sweep is settled before any run is touched
    for job_id in pending:
        try:
            services.cancel_job(session, job_id)
        except Conflict:  # the run finished between the two transactions
            session.rollback()
    session.refresh(sweep)
    return sweep
