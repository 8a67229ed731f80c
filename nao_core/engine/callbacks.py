"""Progress and cancellation hooks, the seam between long runs and whoever watches them.

The search and training code call a ``Callback`` at phase starts, epoch ends, pool scoring
and controller proposals, and ask ``should_stop()`` at least once per epoch (and between
rerank candidates). The worker's ``DbReporter`` implements it; here are a no-op and a
logging implementation. Calls happen on the training thread, so implementations should be
cheap (throttle writes) and must not raise to stop a run: return True from ``should_stop``.

There is no per-step hook on purpose: reporting a step's loss would need a host sync per
step (see ``metrics.py``); the epoch metrics are read once per epoch.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from nao_core.search.pool import PoolEntry

logger = logging.getLogger(__name__)


class Phase(StrEnum):
    """Names passed to ``on_phase``; ``total`` counts epochs, archs or candidates."""

    SUPERNET = "supernet"  # supernet training, total = epochs
    SCORE = "score"  # scoring the pool with the supernet, total = archs
    CONTROLLER = "controller"  # fitting the controller + proposing, total = controller epochs
    RERANK = "rerank"  # short stand-alone training of the top archs, total = candidates
    TRAIN = "train"  # final training, total = epochs


class Callback(Protocol):
    def on_phase(self, name: str, total: int) -> None:
        """A phase starts; ``total`` is its length in its own unit."""
        ...

    def on_epoch_end(self, epoch: int, metrics: Mapping[str, float]) -> None:
        """``epoch`` (1-based, the number of epochs done) finished with ``metrics``."""
        ...

    def on_pool_scored(self, round: int, pool: Sequence[PoolEntry]) -> None:
        """Evaluation point ``round`` (1-based) scored and sorted the pool, best first."""
        ...

    def on_proposals(self, round: int, archs: Sequence[PoolEntry]) -> None:
        """The controller proposed ``archs`` after round ``round``; they replace the worst."""
        ...

    def on_controller(self, round: int, path: Path) -> None:
        """The controller fitted in round ``round`` (1-based) was kept at ``path``
        (``controllers/round-NNN.pt`` in the run folder, ``nao_core.controller.bundle``)."""
        ...

    def should_stop(self) -> bool:
        """True to stop the run at the next safe point (its state is saved first)."""
        ...


class NullCallback:
    """Does nothing and never stops."""

    def on_phase(self, name: str, total: int) -> None:
        pass

    def on_epoch_end(self, epoch: int, metrics: Mapping[str, float]) -> None:
        pass

    def on_pool_scored(self, round: int, pool: Sequence[PoolEntry]) -> None:
        pass

    def on_proposals(self, round: int, archs: Sequence[PoolEntry]) -> None:
        pass

    def on_controller(self, round: int, path: Path) -> None:
        pass

    def should_stop(self) -> bool:
        return False


class LoggingCallback(NullCallback):
    """Logs every event at INFO with stable keys; never stops."""

    def __init__(self, log: logging.Logger | None = None) -> None:
        self.log = log or logger

    def on_phase(self, name: str, total: int) -> None:
        self.log.info("phase=%s total=%d", name, total)

    def on_epoch_end(self, epoch: int, metrics: Mapping[str, float]) -> None:
        text = " ".join(f"{k}={v:.4g}" for k, v in metrics.items())
        self.log.info("epoch=%d %s", epoch, text)

    def on_pool_scored(self, round: int, pool: Sequence[PoolEntry]) -> None:
        scores = [e.score for e in pool if e.score is not None]
        if scores:
            self.log.info(
                "round=%d pool=%d best=%.4f median=%.4f worst=%.4f",
                round,
                len(pool),
                scores[0],
                sorted(scores)[len(scores) // 2],
                scores[-1],
            )

    def on_proposals(self, round: int, archs: Sequence[PoolEntry]) -> None:
        self.log.info("round=%d proposals=%d", round, len(archs))

    def on_controller(self, round: int, path: Path) -> None:
        self.log.info("round=%d controller=%s", round, path)


def announce_controller(callback: object, round: int, path: Path) -> None:
    """``callback.on_controller(round, path)``, skipped for a callback written before that
    hook existed (it only listens, so a search must not fail for want of it)."""
    hook = getattr(callback, "on_controller", None)
    if hook is not None:
        hook(round, path)
