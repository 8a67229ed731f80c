"""Where a job's files live in the storage, keyed by job id (never by user input)."""

from __future__ import annotations

from pathlib import Path

from api.settings import ApiSettings
from api.storage import DirectoryStorage


def storage(settings: ApiSettings) -> DirectoryStorage:
    root = settings.resolved_storage_dir()
    root.mkdir(parents=True, exist_ok=True)
    return DirectoryStorage(root)


def run_dir(settings: ApiSettings, job_id: int, kind: str) -> Path:
    path = storage(settings).root / "jobs" / str(job_id) / kind
    path.mkdir(parents=True, exist_ok=True)
    return path
