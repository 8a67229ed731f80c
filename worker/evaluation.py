"""``nao.eval.checkpoint(job_id)``: evaluate a stored checkpoint (``jobs.evaluation``)."""

from __future__ import annotations

from typing import Any

from celery import Task

from jobs.evaluation import Evaluation
from store import repository
from store.models import Job, JobStatus
from store.settings import get_settings
from store.storage import job_storage
from worker.app import celery_app
from worker.lifecycle import JobTask, db, run_job
from worker.settings import get_worker_settings


@celery_app.task(name=Evaluation.task, base=JobTask, bind=True)
def run_eval_job(self: Task, job_id: int) -> str:
    return run_job(job_id, _evaluate)


def _evaluate(job: Job) -> tuple[JobStatus, dict[str, Any] | None]:
    from nao_core.train import evaluate_checkpoint

    settings = get_settings()
    with db()() as s:
        ckpt = repository.get_checkpoint(s, int(job.config["checkpoint_id"]))
        key = ckpt.path if ckpt else None
    if key is None:
        raise LookupError(f"checkpoint {job.config['checkpoint_id']} is gone")
    out = evaluate_checkpoint(
        job_storage(settings).local_path(key),
        data_dir=settings.resolved_data_dir(),
        device=get_worker_settings().device,
        split=job.config.get("split"),
    )
    out.pop("checkpoint", None)  # a local path
    return JobStatus.SUCCEEDED, out
