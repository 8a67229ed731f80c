"""Exceptions raised by nao_core. Callers (CLI, API, worker) map them to messages and statuses."""

from __future__ import annotations

import errno


class NaoCoreError(Exception):
    """Base class of every error nao_core raises on purpose."""


class InvalidArchitecture(NaoCoreError, ValueError):
    """An architecture (or its token sequence / string) does not belong to its search space."""


class UnknownName(NaoCoreError, KeyError):
    """A registry lookup (space, preset, named architecture, dataset) found nothing."""

    def __init__(self, kind: str, name: str, known: list[str]) -> None:
        self.kind, self.name, self.known = kind, name, known
        super().__init__(f"unknown {kind} {name!r}; known: {', '.join(known) or 'none'}")

    def __str__(self) -> str:  # KeyError would quote the whole message
        return self.args[0]


class InvalidConfig(NaoCoreError, ValueError):
    """A config value or override is out of range or of the wrong type."""


class TrainingDiverged(NaoCoreError, RuntimeError):
    """A loss became NaN or infinite."""

    def __init__(self, step: int, loss: float) -> None:
        self.step, self.loss = step, loss
        super().__init__(f"training diverged at step {step}: loss={loss}")


class MissingData(NaoCoreError, FileNotFoundError):
    """A dataset or table file is not where the configuration says it is."""


class Cancelled(NaoCoreError):
    """A run stopped because its callback asked it to; its last checkpoint resumes it."""

    def __init__(self, epoch: int, where: str = "") -> None:
        self.epoch, self.where = epoch, where
        super().__init__(f"cancelled after epoch {epoch}" + (f" ({where})" if where else ""))


class StorageFull(NaoCoreError, OSError):
    """A file could not be written: no space left on the volume that holds it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.errno = errno.ENOSPC
