"""Helpers shared by the nao_core tests: one torch thread for a block, a callback that stops
a run after a given epoch, and one that logs the epochs a run trains."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from nao_core.engine.callbacks import NullCallback


@contextmanager
def one_thread() -> Iterator[None]:
    # Module fixtures run before the function-scoped thread setting of conftest; tiny ops on
    # a busy 2-core machine are many times faster on one thread than on two.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class StopAfter(NullCallback):
    """``should_stop()`` once epoch ``epoch`` has ended."""

    def __init__(self, epoch: int) -> None:
        self.epoch, self.stop_at = 0, epoch

    def on_epoch_end(self, epoch, metrics) -> None:
        self.epoch = epoch

    def should_stop(self) -> bool:
        return self.epoch >= self.stop_at


class EpochLog(NullCallback):
    """The epochs a run ended, in order, with their metrics: a resumed run must log only the
    epochs after its checkpoint (a restart from scratch reaches the same result, so a resume
    test that checks the result alone cannot tell the two apart)."""

    def __init__(self) -> None:
        self.metrics: list[tuple[int, dict[str, float]]] = []

    @property
    def epochs(self) -> list[int]:
        return [e for e, _ in self.metrics]

    def on_epoch_end(self, epoch, metrics) -> None:
        self.metrics.append((epoch, dict(metrics)))
