"""``GET /metrics``: Prometheus' text format with request latency by route template, jobs by
kind and state, queue depth, the heartbeat age of the workers holding running jobs, and each
worker's last report (liveness, GPU memory and utilisation) from ``worker_status``."""

from __future__ import annotations

from datetime import timedelta

import pytest
from factories import make_job
from prometheus_client.parser import text_string_to_metric_families

from store.db import session_factory, session_scope
from store.models import JobKind, JobStatus, WorkerStatus, utcnow
from store.workers import report_worker


@pytest.fixture(scope="module")
def seeded(pg_service: dict[str, str]) -> dict[str, int]:
    with session_scope(session_factory(pg_service["NAO_DATABASE_URL"])) as s:
        for _ in range(3):
            make_job(s, kind=JobKind.TRAIN, status=JobStatus.FAILED)
        running = make_job(
            s, status=JobStatus.RUNNING, worker="gpu0@host",
            heartbeat_at=utcnow() - timedelta(seconds=40),
        )  # fmt: skip
        report_worker(s, "gpu1@a/a:7", "a", "cuda:0", 3 * 2**30, 80 * 2**30, 42.0)
        report_worker(s, "gpu2@a/a:8", "a", "cuda:0", 2**30, 80 * 2**30)  # no pynvml
        report_worker(s, "cpu@b/b:9", "b", "cpu")  # liveness only
        report_worker(s, "gone@c/c:1", "c", "cpu")
    with session_scope(session_factory(pg_service["NAO_DATABASE_URL"])) as s:
        s.get(WorkerStatus, "gone@c/c:1").seen_at = utcnow() - timedelta(days=2)
        return {"running": running.id}


def _samples(client) -> dict[str, list]:
    r = client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    return {f.name: f.samples for f in text_string_to_metric_families(r.text)}


def test_jobs_queues_and_heartbeats(client, seeded) -> None:
    metrics = _samples(client)
    jobs = {(s.labels["kind"], s.labels["status"]): s.value for s in metrics["nao_jobs"]}
    assert jobs[("train", "failed")] >= 3
    assert jobs[("search", "running")] >= 1
    ages = {s.labels["worker"]: s.value for s in metrics["nao_worker_heartbeat_age_seconds"]}
    assert 40 <= ages["gpu0@host"] < 400
    queues = {s.labels["queue"] for s in metrics["nao_queue_depth"]}
    assert len(queues) == 3  # the gpu, default and query queues, under the test's prefix


def test_requests_are_timed_by_route_template(client, seeded) -> None:
    client.get(f"/searches/{seeded['running']}")
    client.get("/searches/999999999")
    metrics = _samples(client)
    counts = {
        (s.labels["route"], s.labels["status"]): s.value
        for s in metrics["nao_http_request_duration_seconds"]
        if s.name.endswith("_count")
    }
    assert counts[("/searches/{job_id}", "200")] >= 1
    assert counts[("/searches/{job_id}", "404")] >= 1
    assert not any(str(seeded["running"]) in route for route, _ in counts)


def test_worker_liveness_and_gpus(client, seeded) -> None:
    metrics = _samples(client)
    seen = {s.labels["worker"]: s.value for s in metrics["nao_worker_seen_age_seconds"]}
    assert set(seen) == {"gpu1@a/a:7", "gpu2@a/a:8", "cpu@b/b:9"}  # not the one gone a day
    assert all(0 <= age < 60 for age in seen.values())

    def gpu(name: str) -> dict[tuple[str, str], float]:
        return {(s.labels["worker"], s.labels["device"]): s.value for s in metrics[name]}

    assert gpu("nao_gpu_memory_used_bytes") == {
        ("gpu1@a/a:7", "cuda:0"): 3 * 2**30,
        ("gpu2@a/a:8", "cuda:0"): 2**30,
    }
    assert gpu("nao_gpu_memory_total_bytes") == {
        ("gpu1@a/a:7", "cuda:0"): 80 * 2**30,
        ("gpu2@a/a:8", "cuda:0"): 80 * 2**30,
    }
    assert gpu("nao_gpu_utilization_percent") == {("gpu1@a/a:7", "cuda:0"): 42.0}
