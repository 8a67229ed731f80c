"""Hyper-parameter sweeps over a search's top architectures.

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

from jobs import common, limits, owner
from jobs.errors import Conflict, InvalidInput, NotFound
from jobs.kind import Kind
from jobs.requests import SweepCreate, TrainingCreate
from jobs.training import Training
from store import repository
from store.models import FINISHED, Architecture, Job, JobKind, JobStatus, utcnow

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


class Sweep(Kind):
    name = "sweep"
    row_kind = JobKind.SWEEP
    resumable = False  # no task of its own: its runs are trainings

    def create(self, session: Session, body: SweepCreate, owner_id: int | None) -> Job:
        return create_sweep(session, body, owner_id)

    def cancel(self, session: Session, job: Job) -> Job:
        session.rollback()  # cancel_sweep takes its locks in its own order
        return cancel_sweep(session, job.id)


def create_sweep(session: Session, body: SweepCreate, owner_id: int | None) -> Job:
    """The sweep and its runs, all owned by the token ``owner_id``, which must own the search
    (or be an admin) and have room under its cap for every run."""
    search = repository.get_job(session, body.search_id)
    if search is None or search.kind != JobKind.SEARCH:
        raise NotFound(f"search {body.search_id} not found")
    if owner_id is not None:
        owner.check_owner(session, search, owner_id, "start a sweep on")
    if search.status != JobStatus.SUCCEEDED:
        raise InvalidInput("search_id", f"search {search.id} is {search.status}, not succeeded")
    points = _grid_points(body.grid)
    archs = _top_archs(session, search, body.top_k)
    if not archs:
        raise InvalidInput("search_id", f"search {search.id} has no scored architectures")
    if len(points) * len(archs) > MAX_RUNS:
        raise InvalidInput("grid", f"{len(points)} points x {len(archs)} archs > {MAX_RUNS}")
    base = common.apply(common.preset("train", body.preset), body.overrides, "overrides")
    for point in points:  # every point valid and within the limits before anything is queued
        cfg = common.apply(base, dict(point), "overrides")
        limits.check_config(
            cfg, {**limits.sources(body.overrides), **limits.sources(point, "grid")}
        )
    owner.check_capacity(session, owner_id, len(points) * len(archs))  # all runs, or none
    runs = []
    for arch in archs:
        for point in points:
            # by arch string, not architecture_id: a run must not overwrite the search's
            # trained score of its architecture (each run records its own row)
            child = Training().create(
                session,
                TrainingCreate(
                    arch=arch.arch,
                    space=arch.space,
                    preset=body.preset,
                    overrides={**body.overrides, **point},
                    dataset=body.dataset or arch.dataset,
                ),
                owner_id,
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
        created_by=owner_id,
        started_at=utcnow(),
    )
    session.add(sweep)
    session.commit()
    return sweep


def ranked_runs(session: Session, sweep: Job) -> list[dict[str, Any]]:
    """The sweep's runs, ranked by accuracy (best first, rank 1), unfinished ones last."""
    ids = [r["job_id"] for r in sweep.config["runs"]]
    jobs = {j.id: j for j in session.scalars(select(Job).where(Job.id.in_(ids)))}
    rows = []
    for r in sweep.config["runs"]:
        job = jobs.get(r["job_id"])
        acc = (job.result or {}).get("accuracy") if job is not None else None
        rows.append(
            {
                "rank": None,
                "job_id": r["job_id"],
                "status": job.status if job is not None else "deleted",
                "architecture_id": r["architecture_id"],
                "overrides": r["overrides"],
                "accuracy": acc,
            }
        )
    ranked = sorted((x for x in rows if x["accuracy"] is not None), key=lambda x: -x["accuracy"])
    for i, x in enumerate(ranked, start=1):
        x["rank"] = i
    return ranked + [x for x in rows if x["accuracy"] is None]


def get_sweep(session: Session, sweep_id: int) -> tuple[Job, list[dict[str, Any]]]:
    """The sweep and its runs best first; settles its status when every run has finished."""
    sweep = repository.get_job(session, sweep_id)
    if sweep is None or sweep.kind != JobKind.SWEEP:
        raise NotFound(f"sweep {sweep_id} not found")
    runs = ranked_runs(session, sweep)
    if sweep.status == JobStatus.RUNNING and all(r["status"] in FINISHED for r in runs):
        ok = any(r["status"] == JobStatus.SUCCEEDED for r in runs)
        status = JobStatus.SUCCEEDED if ok else JobStatus.FAILED
        top = runs[0] if runs and runs[0]["rank"] else None
        best = {**top, "url": f"/trainings/{top['job_id']}"} if top else None
        repository.update_job(
            session, sweep.id, status=status, finished_at=utcnow(), progress=1.0,
            result={"best": best, "runs": len(runs)},
        )  # fmt: skip
        session.commit()
        session.refresh(sweep)
    return sweep, runs


def cancel_sweep(session: Session, sweep_id: int, caller_id: int | None = None) -> Job:
    """Cancel every unfinished run of the sweep, then the sweep; finished runs keep results.
    ``caller_id``: the token asking, which must own the sweep or be an admin (None: the
    caller has checked, as ``registry.cancel`` does)."""
    sweep = repository.get_job(session, sweep_id, lock=True)
    if sweep is None or sweep.kind != JobKind.SWEEP:
        raise NotFound(f"sweep {sweep_id} not found")
    if caller_id is not None:
        owner.check_owner(session, sweep, caller_id, "cancel")
    if repository.is_finished(sweep.status):
        raise Conflict(f"sweep {sweep_id} is already {sweep.status}")
    ids = [r["job_id"] for r in sweep.config["runs"]]
    # Lock order sweep -> runs (by id), so two cancels of one sweep cannot deadlock.
    runs = session.scalars(select(Job).where(Job.id.in_(ids)).order_by(Job.id).with_for_update())
    pending = [j.id for j in runs if not repository.is_finished(j.status)]
    sweep.status, sweep.finished_at = JobStatus.CANCELLED, utcnow()
    sweep.result = {"best": None, "runs": len(ids), "cancelled_runs": len(pending)}
    session.commit()  # the sweep is settled before any run is touched
    training = Training()
    for job_id in pending:
        run = repository.get_job(session, job_id, lock=True)
        try:
            if run is not None:
                training.cancel(session, run)
        except Conflict:  # the run finished between the two transactions
            session.rollback()
    session.refresh(sweep)
    return sweep
