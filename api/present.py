"""ORM rows → public schemas (URLs built from ids)."""

from __future__ import annotations

from api.schemas import ArchitecturePublic, CheckpointPublic, JobPublic
from store.models import SCORE_SOURCES, Architecture, Checkpoint, Job
from store.redact import worker_name

_PATHS = {
    "search": "searches",
    "train": "trainings",
    "eval": "evaluations",
    "sweep": "sweeps",
    "query": "jobs",  # controller queries and exports have no endpoint of their own
    "export": "jobs",
}


def job_public(job: Job, best: Architecture | None = None) -> JobPublic:
    return JobPublic(
        id=job.id,
        kind=job.kind,
        status=job.status,
        url=f"/{_PATHS[job.kind]}/{job.id}",
        space=job.space,
        dataset=job.dataset,
        preset=job.preset,
        phase=job.phase,
        progress=job.progress or 0.0,
        current=job.current or 0,
        total=job.total or 0,
        rounds=job.rounds or 0,
        attempts=job.attempts or 0,
        worker=worker_name(job.worker),
        error_type=job.error_type,
        error_message=job.error_message,
        architecture_id=job.architecture_id,
        checkpoint_id=job.checkpoint_id,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        config=job.config,
        result=job.result,
        best=architecture_public(best) if best else None,
    )


def architecture_public(a: Architecture) -> ArchitecturePublic:
    return ArchitecturePublic(
        id=a.id,
        job_id=a.job_id,
        space=a.space,
        dataset=a.dataset,
        arch=a.arch,
        canonical_hash=a.canonical_hash,
        pool_id=a.pool_id,
        round=a.round,
        parent_id=a.parent_id,
        params=a.params,
        scores={s: getattr(a, f"score_{s}") for s in SCORE_SOURCES},
        created_at=a.created_at,
    )


def checkpoint_public(c: Checkpoint) -> CheckpointPublic:
    return CheckpointPublic(
        id=c.id,
        job_id=c.job_id,
        architecture_id=c.architecture_id,
        kind=c.kind,
        round=c.round,
        source_id=c.source_id,
        size=c.size,
        sha256=c.sha256,
        created_at=c.created_at,
        download_url=f"/checkpoints/{c.id}/download",
    )
