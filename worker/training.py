"""``nao.train.final(job_id)``: final training of one architecture (``jobs.training``),
resumable; the model is recorded once as a checkpoint, with its architecture's score."""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

from celery import Task

from jobs.training import Training
from store import repository
from store.db import session_scope
from store.models import Checkpoint, Job, JobStatus
from store.settings import get_settings
from store.storage import job_storage, run_dir, sha256_file
from worker.app import celery_app
from worker.lifecycle import JobTask, db, run_job
from worker.progress import job_reporter
from worker.settings import get_worker_settings


@celery_app.task(name=Training.task, base=JobTask, bind=True)
def run_train_job(self: Task, job_id: int) -> str:
    return run_job(job_id, _train)


def _train(job: Job) -> tuple[JobStatus, dict[str, Any] | None]:
    from nao_core.config import RnnTrainConfig, TrainConfig, from_dict
    from nao_core.train import run_train

    cls = RnnTrainConfig if job.config["space"] == "rnn" else TrainConfig
    settings, cfg = get_settings(), from_dict(cls, job.config["train"])
    space, arch = job.config["space"], job.config["arch"]
    result = run_train(
        arch,
        space,
        cfg,
        out_dir=run_dir(settings, job.id, "train"),
        data_dir=settings.resolved_data_dir(),
        device=get_worker_settings().device,
        callback=job_reporter(job, cfg.optim.epochs),
    )
    if result.status == "cancelled":
        return JobStatus.CANCELLED, None
    assert result.checkpoint is not None
    ckpt_id = _register_checkpoint(
        job, space, arch, result.checkpoint, trained_score(result), result.params
    )
    public = {k: v for k, v in asdict(result).items() if k not in ("out_dir", "checkpoint")}
    return JobStatus.SUCCEEDED, {**public, "checkpoint_id": ckpt_id}


def trained_score(result: Any) -> float | None:
    """Higher is better, as every score in the pool: accuracy for images, and for language
    models minus the log validation perplexity (the NAO-WS search's own score, -mean NLL)."""
    if result.valid_perplexity is not None:
        return -math.log(result.valid_perplexity)
    return result.accuracy


def _register_checkpoint(
    job: Job, space_name: str, arch: str, path: str, accuracy: float | None, params: int | None
) -> int:
    """Record the model (and its arch's trained score) once, however often this runs."""
    from nao_core.search_space import create_search_space

    space = create_search_space(space_name)
    store = job_storage(get_settings())
    with session_scope(db()) as s:
        row = repository.get_job(s, job.id)
        assert row is not None
        arch_id = job.architecture_id
        if arch_id is None:
            digest = space.canonical_hash(space.parse(arch))
            fields = {"arch": arch, "canonical_hash": digest, "score_trained": accuracy}
            repository.upsert_architectures(s, row, [{**fields, "params": params}])
            found = repository.find_architecture(s, job.id, digest)
            arch_id = found.id if found else None
        else:
            target = repository.get_architecture(s, arch_id)
            if target is not None:
                target.score_trained, target.params = accuracy, params
        ckpt = repository.find_checkpoint(s, job.id, "model")
        if ckpt is None:
            file = Path(path)
            ckpt = Checkpoint(
                job_id=job.id,
                architecture_id=arch_id,
                kind="model",
                path=store.key_for(file),
                size=file.stat().st_size,
                sha256=sha256_file(file),
            )
            s.add(ckpt)
            s.flush()
        repository.update_job(s, job.id, checkpoint_id=ckpt.id, architecture_id=arch_id)
        return ckpt.id
