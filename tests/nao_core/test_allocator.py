"""keep_freed_memory: large tensors freed and allocated again stop costing page faults."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from nao_core.utils.allocator import keep_freed_memory

_PROBE = """
import ctypes, json, resource
from nao_core.utils.allocator import keep_freed_memory
applied = keep_freed_memory()
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = (ctypes.c_size_t,)
libc.free.argtypes = (ctypes.c_void_p,)
size = 64 * 2**20  # a batch-500 activation of the CNN supernet is 41 MB

def step():  # what a training step does to one activation: allocate, write, free
    p = libc.malloc(size)
    ctypes.memset(p, 1, size)
    libc.free(p)

step()  # the first block is new to the process either way
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    step()
after = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
print(json.dumps({"applied": applied, "faults_per_alloc": (after - before) / 10}))
"""


def _probe(tune: str) -> dict:
    env = {**os.environ, "NAO_MALLOC_TUNE": tune}
    out = subprocess.run(
        [sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt is Linux-only")
def test_freed_tensors_are_reused_without_page_faults() -> None:
    tuned, default = _probe("1"), _probe("0")
    assert tuned["applied"] is True
    assert default["applied"] is False
    # 64 MiB is 16,384 pages of 4 KiB: by default glibc mmaps the block, unmaps it on free
    # and the next one faults in page by page
    assert default["faults_per_alloc"] > 4000
    assert tuned["faults_per_alloc"] < 100


def test_idempotent() -> None:
    assert keep_freed_memory() is keep_freed_memory()
