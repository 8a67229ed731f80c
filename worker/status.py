"""Each worker's own status row: liveness and GPU memory and utilisation, idle or busy.

Workers serve no HTTP, so a worker-level thread (``StatusReporter``, started with the
``Reaper`` at ``worker_ready`` and stopped at shutdown) upserts the worker's ``worker_status``
row every ``heartbeat_s``; ``GET /metrics`` reads the rows when Prometheus scrapes. On CUDA the
row holds the device's used and total memory (``torch.cuda.mem_get_info``: the whole device,
every process on it) and its utilisation (``torch.cuda.utilization``, which needs pynvml: null
without it); on a CPU the GPU columns are null and the row only says the worker is alive.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass

import torch

from nao_core.utils.device import resolve_device
from store import workers
from store.db import session_factory, session_scope
from store.settings import get_settings
from worker.settings import get_worker_settings, worker_id

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GpuSample:
    memory_used_bytes: int | None = None
    memory_total_bytes: int | None = None
    utilization_percent: float | None = None


def cuda_probe(device: torch.device) -> GpuSample:
    """The GPU numbers of ``device``; all None unless it is a CUDA device and CUDA is up."""
    if device.type != "cuda" or not torch.cuda.is_available():
        return GpuSample()
    free, total = torch.cuda.mem_get_info(device)
    try:
        utilization: float | None = float(torch.cuda.utilization(device))
    except Exception:  # pynvml missing (ModuleNotFoundError) or NVML unsupported here
        utilization = None
    return GpuSample(total - free, total, utilization)


def device_label(device: torch.device) -> str:
    if device.type == "cuda" and device.index is None and torch.cuda.is_available():
        return f"cuda:{torch.cuda.current_device()}"
    return str(device)


Probe = Callable[[torch.device], GpuSample]


class StatusReporter:
    """Upserts this worker's ``worker_status`` row at start and every ``heartbeat_s``; on
    stop, deletes it. ``probe`` reads the GPU (a test passes its own); with ``use_cuda``
    False nothing touches CUDA and the row holds liveness only."""

    def __init__(
        self,
        probe: Probe = cuda_probe,
        device: str | torch.device | None = None,
        database_url: str | None = None,
        every_s: float | None = None,
        use_cuda: bool = True,
    ) -> None:
        self.worker, self.host = worker_id(), socket.gethostname()
        self.probe, self._device = probe, device
        self._url = database_url
        self._every, self._use_cuda = every_s, use_cuda
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="nao-status", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout=timeout_s)

    def _factory(self):  # type: ignore[no-untyped-def]
        return session_factory(self._url or get_settings().resolved_database_url())

    def report_once(self) -> None:
        setting = self._device or get_worker_settings().device
        if self._use_cuda:
            device = resolve_device(setting)
            sample, label = self.probe(device), device_label(device)
        else:  # "auto" would ask CUDA
            sample, label = GpuSample(), str(setting)
        with session_scope(self._factory()) as s:
            workers.report_worker(
                s, self.worker, self.host, label,
                sample.memory_used_bytes, sample.memory_total_bytes, sample.utilization_percent,
            )  # fmt: skip

    def _run(self) -> None:
        every = self._every or get_worker_settings().heartbeat_s
        while True:
            try:
                self.report_once()
            except Exception as exc:  # DB down, a driver hiccup: the next period retries
                logger.warning("worker status: %s: %s", type(exc).__name__, exc)
            if self._stop.wait(every):
                break
        try:
            with session_scope(self._factory()) as s:
                workers.forget_worker(s, self.worker)
        except Exception as exc:
            logger.warning("worker status not removed: %s: %s", type(exc).__name__, exc)


def for_consumer(consumer: object) -> StatusReporter:
    """The reporter of the worker whose Celery consumer is ``consumer``: it reads the GPU,
    except under a forking pool (CUDA touched in the parent breaks CUDA in every child it
    forks; the tasks run in the children), where it reports liveness only."""
    pool = getattr(consumer, "pool", None)
    return StatusReporter(use_cuda="prefork" not in type(pool).__module__)
