"""Checkpoint storage behind one small interface; today a directory (a shared volume).

Keys are relative POSIX paths made by the worker from ids (``jobs/12/train/model.pt``); no
path a user sends is ever used. An object store only has to implement ``Storage``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from store.settings import Settings

CHUNK = 1 << 20


class Storage(Protocol):
    def size(self, key: str) -> int: ...

    def open_range(self, key: str, start: int, end: int) -> Iterator[bytes]: ...

    def local_path(self, key: str) -> Path: ...


class DirectoryStorage:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def local_path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root):
            raise ValueError(f"storage key escapes the root: {key!r}")
        return path

    def key_for(self, path: Path) -> str:
        return path.resolve().relative_to(self.root).as_posix()

    def size(self, key: str) -> int:
        return self.local_path(key).stat().st_size

    def open_range(self, key: str, start: int, end: int) -> Iterator[bytes]:
        """Bytes ``start..end`` inclusive, in chunks."""
        with self.local_path(key).open("rb") as f:
            f.seek(start)
            left = end - start + 1
            while left > 0:
                chunk = f.read(min(CHUNK, left))
                if not chunk:
                    break
                left -= len(chunk)
                yield chunk


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def job_storage(settings: Settings) -> DirectoryStorage:
    """The storage under the configured directory, created on first use."""
    root = settings.resolved_storage_dir()
    root.mkdir(parents=True, exist_ok=True)
    return DirectoryStorage(root)


def run_dir(settings: Settings, job_id: int, kind: str) -> Path:
    """A job's working folder (``jobs/<id>/<kind>``), keyed by job id, never by user input."""
    path = job_storage(settings).root / "jobs" / str(job_id) / kind
    path.mkdir(parents=True, exist_ok=True)
    return path
