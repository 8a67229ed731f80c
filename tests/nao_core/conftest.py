"""Fixtures the method's tests share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Torch on one thread for the test, restored after it: tiny matmuls on a busy 2-core
    machine mostly wait at a second thread's barriers (seconds per step)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
