"""Thin, idempotent tasks: each takes a job id, runs nao_core and records the outcome.

A task whose job is finished is a no-op; a re-delivered search or training resumes from its
run folder (nao_core saves its state every epoch), and pool rows and metrics are upserts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from celery import Task, signals
from celery.utils.log import get_task_logger
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from api import repository
from api.db import session_factory, session_scope
from api.models import Checkpoint, Job, JobStatus, utcnow
from api.settings import get_settings
from api.storage import sha256_file
from worker import artifacts
from worker.app import celery_app
from worker.progress import DbReporter
from worker.recovery import Heartbeat, is_held_elsewhere, worker_id
from worker.settings import get_worker_settings

logger = get_task_logger(__name__)


def _factory() -> sessionmaker[Session]:
    return session_factory(get_settings().resolved_database_url())


def _set_threads() -> None:
    import torch

    torch.set_num_threads(get_worker_settings().torch_threads)


@signals.worker_init.connect
def _warm_up(**_kw: Any) -> None:
    """Load torch and the nao_core entry points before the first job: loading them holds the
    interpreter for seconds, which inside a job would also stall its heartbeat thread."""
    import nao_core.search.ws
    import nao_core.train  # noqa: F401
    from nao_core.utils.allocator import keep_freed_memory

    keep_freed_memory()
    _set_threads()


class JobTask(Task):  # type: ignore[misc]
    """Marks the job failed when the task fails for good."""

    autoretry_for = (OperationalError,)  # transient database errors only
    retry_backoff = True
    max_retries = 3

    def on_failure(
        self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        job_id = int(args[0])
        with session_scope(_factory()) as s:
            repository.update_job(
                s,
                job_id,
                status=JobStatus.FAILED,
                error_type=type(exc).__name__,
                error_message=str(exc)[:4000],
                finished_at=utcnow(),
            )
        logger.error("job=%d failed: %s: %s", job_id, type(exc).__name__, exc)


def _start(job_id: int) -> Job | None:
    """Claim the job; None when there is nothing to do (finished, cancelled, unknown)."""
    with session_scope(_factory()) as s:
        job = repository.get_job(s, job_id, lock=True)
        if job is None:
            logger.warning("job=%d not found; message dropped", job_id)
            return None
        if repository.is_finished(job.status):
            logger.info("job=%d already %s; nothing to do", job_id, job.status)
            return None
        if is_held_elsewhere(job):
            logger.warning("job=%d runs on live worker %s; message dropped", job_id, job.worker)
            return None
        if job.status == JobStatus.CANCELLING:
            _finish(s, job, JobStatus.CANCELLED)
            return None
        job.status, job.worker = JobStatus.RUNNING, worker_id()
        job.heartbeat_at = utcnow()
        job.attempts += 1
        job.started_at = job.started_at or utcnow()
        s.flush()
        s.expunge(job)
        return job


def _finish(s: Session, job: Job, status: JobStatus, result: dict[str, Any] | None = None) -> None:
    values: dict[str, Any] = {"status": status, "finished_at": utcnow()}
    if result is not None:
        values["result"] = result
    if status == JobStatus.SUCCEEDED:
        values["progress"] = 1.0
    repository.update_job(s, job.id, **values)


def _run(job_id: int, body: Callable[[Job], tuple[JobStatus, dict[str, Any] | None]]) -> str:
    job = _start(job_id)
    if job is None:
        return "skipped"
    _set_threads()
    with Heartbeat(job_id):
        status, result = body(job)
    with session_scope(_factory()) as s:
        _finish(s, job, status, result)
    logger.info("job=%d %s", job_id, status)
    return str(status)


@celery_app.task(name="nao.search.run", base=JobTask, bind=True)
def run_search_job(self: Task, job_id: int) -> str:
    return _run(job_id, _search)


@celery_app.task(name="nao.train.final", base=JobTask, bind=True)
def run_train_job(self: Task, job_id: int) -> str:
    return _run(job_id, _train)


@celery_app.task(name="nao.eval.checkpoint", base=JobTask, bind=True)
def run_eval_job(self: Task, job_id: int) -> str:
    return _run(job_id, _evaluate)


def _reporter(job: Job, total_epochs: int) -> DbReporter:
    from nao_core.search_space import create_search_space

    ws = get_worker_settings()
    return DbReporter(
        _factory(),
        job.id,
        create_search_space(job.space or "cnn"),
        total_epochs,
        interval_s=ws.progress_interval_s,
        poll_s=ws.cancel_poll_s,
    )


def _search(job: Job) -> tuple[JobStatus, dict[str, Any] | None]:
    from nao_core.config import RnnSearchConfig, SearchConfig, from_dict
    from nao_core.search.ws import run_search

    cls = RnnSearchConfig if job.space == "rnn" else SearchConfig
    settings, cfg = get_settings(), from_dict(cls, job.config)
    reporter = _reporter(job, cfg.optim.epochs)
    result = run_search(
        cfg,
        run_dir=artifacts.run_dir(settings, job.id, "search"),
        data_dir=settings.data_dir,
        device=get_worker_settings().device,
        callback=reporter,
    )
    if result.status == "cancelled":
        return JobStatus.CANCELLED, None
    with session_scope(_factory()) as s:
        trained = [
            {"canonical_hash": r["hash"], "arch": r["arch"], "score_trained": r["score"]}
            for r in _with_hash(job, result.top)
            if r.get("score_source") == "rerank"
        ]
        row = repository.get_job(s, job.id)
        assert row is not None
        repository.upsert_architectures(s, row, trained)
    top = [{k: v for k, v in r.items() if k != "hash"} for r in _with_hash(job, result.top)]
    return JobStatus.SUCCEEDED, {"rounds": result.rounds, "epochs": result.epoch, "top": top}


def _with_hash(job: Job, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from nao_core.search_space import create_search_space

    space = create_search_space(job.space or "cnn")
    return [{**r, "hash": space.canonical_hash(space.parse(r["arch"]))} for r in rows]


def _train(job: Job) -> tuple[JobStatus, dict[str, Any] | None]:
    from nao_core.config import RnnTrainConfig, TrainConfig, from_dict
    from nao_core.train import run_train

    cls = RnnTrainConfig if job.config["space"] == "rnn" else TrainConfig
    settings, cfg = get_settings(), from_dict(cls, job.config["train"])
    space, arch = job.config["space"], job.config["arch"]
    out = artifacts.run_dir(settings, job.id, "train")
    result = run_train(
        arch,
        space,
        cfg,
        out_dir=out,
        data_dir=settings.data_dir,
        device=get_worker_settings().device,
        callback=_reporter(job, cfg.optim.epochs),
    )
    if result.status == "cancelled":
        return JobStatus.CANCELLED, None
    assert result.checkpoint is not None
    ckpt_id = _register_checkpoint(
        job, space, arch, result.checkpoint, _trained_score(result), result.params
    )
    public = {k: v for k, v in asdict(result).items() if k not in ("out_dir", "checkpoint")}
    return JobStatus.SUCCEEDED, {**public, "checkpoint_id": ckpt_id}


def _trained_score(result: Any) -> float | None:
    """Higher is better, as every score in the pool: accuracy for images, and for language
    models minus the log validation perplexity (the NAO-WS search's own score, -mean NLL)."""
    import math

    if result.valid_perplexity is not None:
        return -math.log(result.valid_perplexity)
    return result.accuracy


def _register_checkpoint(
    job: Job, space_name: str, arch: str, path: str, accuracy: float | None, params: int | None
) -> int:
    """Record the model (and its arch's trained score) once, however often this runs."""
    from pathlib import Path

    from nao_core.search_space import create_search_space

    space = create_search_space(space_name)
    store = artifacts.storage(get_settings())
    with session_scope(_factory()) as s:
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


def _evaluate(job: Job) -> tuple[JobStatus, dict[str, Any] | None]:
    from nao_core.train import evaluate_checkpoint

    settings = get_settings()
    with _factory()() as s:
        ckpt = repository.get_checkpoint(s, int(job.config["checkpoint_id"]))
        key = ckpt.path if ckpt else None
    if key is None:
        raise LookupError(f"checkpoint {job.config['checkpoint_id']} is gone")
    out = evaluate_checkpoint(
        artifacts.storage(settings).local_path(key),
        data_dir=settings.data_dir,
        device=get_worker_settings().device,
        split=job.config.get("split"),
    )
    out.pop("checkpoint", None)  # a local path
    return JobStatus.SUCCEEDED, out


# Searches without weight sharing (issue #6): their tasks live in worker.nows.
from worker import nows as _nows  # noqa: E402, F401

# Searches over a tabulated benchmark (nb201): worker.tabular.
from worker import tabular as _tabular  # noqa: E402, F401
