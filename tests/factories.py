"""Small row factories for the service tests."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from store.models import Architecture, Checkpoint, Job, JobKind, JobStatus


def make_job(db: Session, **overrides: Any) -> Job:
    values: dict[str, Any] = {
        "kind": JobKind.SEARCH,
        "status": JobStatus.SUCCEEDED,
        "space": "cnn",
        "dataset": "digits",
        "preset": "tiny",
        "config": {},
        "request": {},
        **overrides,
    }
    job = Job(**values)
    db.add(job)
    db.flush()
    return job


def make_architecture(db: Session, job: Job, **overrides: Any) -> Architecture:
    n = overrides.pop("n", 0)
    values: dict[str, Any] = {
        "job_id": job.id,
        "space": job.space,
        "dataset": job.dataset,
        "arch": f"arch-{n}",
        "canonical_hash": hashlib.sha256(f"{job.id}-{n}".encode()).hexdigest(),
        **overrides,
    }
    row = Architecture(**values)
    db.add(row)
    db.flush()
    return row


def make_checkpoint(db: Session, job: Job, storage_root: Path, data: bytes) -> Checkpoint:
    key = f"jobs/{job.id}/train/model.pt"
    path = storage_root / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    row = Checkpoint(
        job_id=job.id,
        kind="model",
        path=key,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )
    db.add(row)
    db.flush()
    return row
