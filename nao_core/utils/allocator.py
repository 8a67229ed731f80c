"""Keep freed tensor memory inside the process on glibc, so CPU training stops page-faulting.

PyTorch's CPU allocator is plain ``malloc``/``free``. glibc serves every block above its mmap
threshold (at most 32 MiB, lower before it adapts) with a fresh ``mmap`` and gives it back with
``munmap`` on free, and it trims the heap's free top back to the kernel. A CPU training or
scoring step allocates and frees the same large activations again and again, so each new tensor
arrives as untouched pages and the kernel zero-fills them one 4 KiB fault at a time. Scoring an
architecture of the CNN supernet at batch 500 (activations of 41 MB) took 1.4 million minor
faults in a fresh process, and the kernel used 40 % of the CPU time (README, Benchmarks).

``keep_freed_memory()`` turns both off with ``mallopt``: no ``mmap`` for large blocks and no
trimming, so freed blocks go back to malloc's free lists and the next step reuses them warm.
The cost is that the process keeps its peak heap until it exits, which is what a training
worker wants anyway. It is a no-op off glibc (macOS, musl) and when ``NAO_MALLOC_TUNE=0``.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import sys

logger = logging.getLogger(__name__)

# glibc's <malloc.h> parameter numbers
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_INT_MAX = 2**31 - 1  # mallopt takes a C int


@functools.cache
def keep_freed_memory() -> bool:
    """Apply the glibc settings once per process; True when they are in effect."""
    if os.environ.get("NAO_MALLOC_TUNE", "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version.restype = ctypes.c_char_p
        libc.gnu_get_libc_version()  # only glibc has it: musl's mallopt is a stub
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    ok = mallopt(_M_MMAP_MAX, 0) == 1 and mallopt(_M_TRIM_THRESHOLD, _INT_MAX) == 1
    if not ok:
        logger.warning("mallopt refused the allocator settings; large tensors stay mmap-backed")
    return ok
