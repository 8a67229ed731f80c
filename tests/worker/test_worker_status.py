"""The worker's status thread (worker/status.py): it upserts its own ``worker_status`` row
with what the GPU probe reads, nulls on a CPU, and removes the row when it stops. No GPU here:
the tests pass their own probe."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

from store.db import session_factory
from store.migrate import upgrade
from store.models import WorkerStatus
from worker.status import GpuSample, StatusReporter, cuda_probe


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'nao.sqlite'}"
    upgrade(url)
    return url


def _rows(url: str) -> list[WorkerStatus]:
    with session_factory(url)() as s:
        return list(s.query(WorkerStatus))


def test_upserts_the_probed_numbers_then_forgets_the_row(db_url: str) -> None:
    asked: list[torch.device] = []
    used = iter(range(1, 10_000))

    def fake(device: torch.device) -> GpuSample:
        asked.append(device)
        return GpuSample(next(used) * 2**20, 80 * 2**30, 37.5)

    reporter = StatusReporter(probe=fake, device="cuda:1", database_url=db_url, every_s=0.05)
    reporter.report_once()
    [row] = _rows(db_url)
    first_seen = row.seen_at
    assert (row.worker, row.device) == (reporter.worker, "cuda:1")
    assert (row.gpu_memory_used_bytes, row.gpu_memory_total_bytes) == (2**20, 80 * 2**30)
    assert row.gpu_utilization_percent == 37.5

    reporter.start()  # the thread updates the same row every period
    deadline = time.monotonic() + 10
    while _rows(db_url)[0].gpu_memory_used_bytes < 4 * 2**20:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    [row] = _rows(db_url)
    assert row.seen_at > first_seen
    assert asked[0] == torch.device("cuda:1")
    reporter.stop()
    assert _rows(db_url) == []  # a clean stop leaves no row to age


def test_cpu_worker_reports_liveness_with_nulls(db_url: str) -> None:
    StatusReporter(device="cpu", database_url=db_url).report_once()  # the real probe
    [row] = _rows(db_url)
    assert row.device == "cpu"
    assert (
        row.gpu_memory_used_bytes,
        row.gpu_memory_total_bytes,
        row.gpu_utilization_percent,
    ) == (None, None, None)
    assert cuda_probe(torch.device("cpu")) == GpuSample()


def test_without_cuda_access_nothing_is_probed(db_url: str) -> None:
    def never(device: torch.device) -> GpuSample:
        raise AssertionError("probed")

    StatusReporter(probe=never, database_url=db_url, use_cuda=False).report_once()
    [row] = _rows(db_url)
    assert row.gpu_memory_total_bytes is None


def test_a_failed_write_is_retried_next_period(db_url: str, tmp_path: Path) -> None:
    reporter = StatusReporter(
        probe=lambda d: GpuSample(), device="cpu",
        database_url=f"sqlite:///{tmp_path / 'missing' / 'x.sqlite'}", every_s=0.05,
    )  # fmt: skip
    reporter.start()
    time.sleep(0.2)
    reporter.stop()
    assert not reporter._thread.is_alive()  # it logged and kept going until stopped


def test_a_real_idle_worker_reports_itself_until_it_stops(
    pg_service: dict[str, str], tmp_path: Path
) -> None:
    """Started at worker_ready with the reaper, idle (no job), removed at a clean shutdown."""
    from service_fixtures import start_worker, stop, wait_for

    url = pg_service["NAO_DATABASE_URL"]
    proc = start_worker(pg_service, tmp_path / "worker.log")
    try:
        [row] = wait_for(lambda: _rows(url), 60, "the worker's status row")
        assert row.worker.endswith(f":{proc.pid}")
        assert (row.device, row.gpu_memory_total_bytes) == ("cpu", None)
        seen = row.seen_at
        wait_for(lambda: _rows(url)[0].seen_at > seen, 10, "a second report")  # 0.5 s beats
    finally:
        stop(proc)
    assert _rows(url) == []
