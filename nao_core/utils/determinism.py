"""``deterministic=true``: the framework's deterministic kernels for one run, then the flags
as they were (a worker process runs many jobs).

On CUDA, several kernels (cuDNN's fastest convolution algorithms, atomics-based reductions
such as index_add's backward, cuBLAS with a per-stream workspace split) may give different
bits on two runs of the same program. The setting turns on:

* ``torch.use_deterministic_algorithms(True, warn_only=True)``: every op with a
  deterministic implementation uses it; an op without one warns (once) instead of failing
  the run, and the warning names it;
* ``torch.backends.cudnn.deterministic = True`` and ``benchmark = False`` (cuDNN picks a
  fixed algorithm instead of timing candidates);
* ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` when the environment does not set it (cuBLAS reads it
  when PyTorch creates a stream's workspace: set it in the worker's environment to cover a
  process whose cuBLAS started earlier).

It costs speed and is off by default. On a CPU the same flags are set; ATen's CPU kernels
are deterministic for a fixed thread count already. What it cannot do: make two GPU models,
or a GPU and a CPU, agree bit for bit. Every run's provenance records these flags.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch

CUBLAS_WORKSPACE = ":4096:8"


@contextlib.contextmanager
def deterministic_mode(enabled: bool) -> Iterator[None]:
    """Within the block, deterministic kernels when ``enabled``; nothing otherwise."""
    if not enabled:
        yield
        return
    before = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
        os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
    )
    if before[4] is None:
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = CUBLAS_WORKSPACE
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        algorithms, warn_only, cudnn_deterministic, benchmark, workspace = before
        torch.use_deterministic_algorithms(algorithms, warn_only=warn_only)
        torch.backends.cudnn.deterministic = cudnn_deterministic
        torch.backends.cudnn.benchmark = benchmark
        if workspace is None:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
