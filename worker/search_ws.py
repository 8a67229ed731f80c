"""``nao.search.run(job_id)``: a weight-sharing search (``jobs.search_ws``), resumable."""

from __future__ import annotations

from typing import Any

from celery import Task

from jobs.search_ws import WeightSharingSearch
from store import repository
from store.db import session_scope
from store.models import Job, JobStatus
from store.settings import get_settings
from store.storage import run_dir
from worker.app import celery_app
from worker.controllers import warm_start
from worker.lifecycle import JobTask, db, run_job
from worker.progress import job_reporter
from worker.settings import get_worker_settings


@celery_app.task(name=WeightSharingSearch.task, base=JobTask, bind=True)
def run_search_job(self: Task, job_id: int) -> str:
    return run_job(job_id, _search)


def _search(job: Job) -> tuple[JobStatus, dict[str, Any] | None]:
    from nao_core.config import RnnSearchConfig, SearchConfig, from_dict
    from nao_core.search.ws import run_search

    cls = RnnSearchConfig if job.space == "rnn" else SearchConfig
    config = {k: v for k, v in job.config.items() if k != "warm_start"}  # jobs.search_ws
    settings, cfg = get_settings(), from_dict(cls, config)
    start, start_pool = warm_start(job)
    result = run_search(
        cfg,
        run_dir=run_dir(settings, job.id, "search"),
        data_dir=settings.resolved_data_dir(),
        device=get_worker_settings().device,
        callback=job_reporter(job, cfg.optim.epochs),
        start=start,
        start_pool=start_pool,
    )
    if result.status == "cancelled":
        return JobStatus.CANCELLED, None
    with session_scope(db()) as s:
        trained = [
            {"canonical_hash": r["hash"], "arch": r["arch"], "score_trained": r["score"]}
            for r in _with_hash(job, result.top)
            if r.get("score_source") == "rerank"
        ]
        row = repository.get_job(s, job.id)
        assert row is not None
        repository.upsert_architectures(s, row, trained)
    top = [{k: v for k, v in r.items() if k != "hash"} for r in _with_hash(job, result.top)]
    out = {"rounds": result.rounds, "epochs": result.epoch, "top": top}
    if job.config.get("warm_start"):
        out["warm_start"] = job.config["warm_start"]
    return JobStatus.SUCCEEDED, out


def _with_hash(job: Job, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from nao_core.search_space import create_search_space

    space = create_search_space(job.space or "cnn")
    return [{**r, "hash": space.canonical_hash(space.parse(r["arch"]))} for r in rows]
