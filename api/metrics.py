"""``GET /metrics`` in Prometheus' text format.

* ``nao_http_request_duration_seconds{method,route,status}``: a histogram per route template
  (``/searches/{job_id}``, not each id), timed by ``RequestTimer``, plain ASGI like the other
  middleware;
* ``nao_jobs{kind,status}``: jobs by kind and state, counted in the database at scrape time;
* ``nao_queue_depth{queue}``: messages waiting in each broker queue;
* ``nao_worker_heartbeat_age_seconds{worker}``: for each worker holding a running job, the age
  of its last heartbeat (a lost worker shows as a growing age until the reaper re-queues);
* ``nao_worker_seen_age_seconds{worker}``: for every worker seen in the last day, idle or busy,
  the age of its status row (each worker upserts it every heartbeat period, worker/status.py);
* ``nao_gpu_memory_used_bytes{worker,device}``, ``nao_gpu_memory_total_bytes{worker,device}``
  and ``nao_gpu_utilization_percent{worker,device}``: the GPU of each of those workers, as it
  last reported it (none for a CPU worker; no utilisation without pynvml on the worker).

With several API processes (``NAO_API_WORKERS``) set ``PROMETHEUS_MULTIPROC_DIR`` to an empty
folder: each process then writes its histogram there and any of them serves the sum.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from store import broker
from store.db import session_factory
from store.models import Job, WorkerStatus, utcnow
from store.repository import ACTIVE
from store.settings import get_settings
from store.workers import workers_seen_since

REQUESTS = Histogram(
    "nao_http_request_duration_seconds",
    "Time to answer an HTTP request, by route template",
    ["method", "route", "status"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
    registry=None,  # registered per scrape below, or summed over processes from files
)

router = APIRouter(include_in_schema=False)


class RequestTimer:
    """Times every HTTP request into ``REQUESTS`` under its route's template."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), [500]

        async def recorded(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recorded)
        finally:
            route = getattr(scope.get("route"), "path", None) or "(unrouted)"
            REQUESTS.labels(scope["method"], route, str(status[0])).observe(
                time.perf_counter() - start
            )


class ServiceCollector(Collector):
    """Jobs, queues and heartbeats, read when Prometheus scrapes (nothing kept in between)."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        jobs = GaugeMetricFamily("nao_jobs", "Jobs by kind and state", labels=["kind", "status"])
        ages = GaugeMetricFamily(
            "nao_worker_heartbeat_age_seconds",
            "Seconds since each worker holding a running job last stamped its heartbeat",
            labels=["worker"],
        )
        factory = session_factory(get_settings().resolved_database_url())
        with factory() as s:
            for kind, status, n in s.execute(
                select(Job.kind, Job.status, func.count()).group_by(Job.kind, Job.status)
            ):
                jobs.add_metric([kind, status], n)
            now = utcnow()
            for worker, seen in s.execute(
                select(Job.worker, func.max(Job.heartbeat_at))
                .where(Job.status.in_(ACTIVE), Job.worker.is_not(None))
                .group_by(Job.worker)
            ):
                if seen is not None:
                    ages.add_metric([worker], (now - seen).total_seconds())
            statuses = workers_seen_since(s, now - SEEN_WITHIN)
        yield jobs
        yield ages
        yield from _worker_metrics(statuses, now)
        depth = GaugeMetricFamily("nao_queue_depth", "Messages waiting", labels=["queue"])
        for queue, n in broker.queue_depths().items():
            depth.add_metric([queue], n)
        yield depth


SEEN_WITHIN = timedelta(days=1)  # older rows: workers long gone, not shown


def _worker_metrics(rows: Sequence[WorkerStatus], now: datetime) -> Iterator[GaugeMetricFamily]:
    seen = GaugeMetricFamily(
        "nao_worker_seen_age_seconds",
        "Seconds since each worker, idle or busy, last reported itself",
        labels=["worker"],
    )
    gpu = {
        column: GaugeMetricFamily(name, text, labels=["worker", "device"])
        for column, name, text in (
            ("gpu_memory_used_bytes", "nao_gpu_memory_used_bytes", "GPU memory in use"),
            ("gpu_memory_total_bytes", "nao_gpu_memory_total_bytes", "GPU memory in all"),
            ("gpu_utilization_percent", "nao_gpu_utilization_percent", "GPU utilisation"),
        )
    }
    for row in rows:
        seen.add_metric([row.worker], (now - row.seen_at).total_seconds())
        for column, family in gpu.items():
            value = getattr(row, column)
            if value is not None:
                family.add_metric([row.worker, row.device], value)
    yield seen
    yield from gpu.values()


def _registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(ServiceCollector())
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)  # every API process's histogram, summed
    else:
        registry.register(REQUESTS)
    return registry


@router.get("/metrics")
def metrics() -> Response:
    return Response(generate_latest(_registry()), media_type=CONTENT_TYPE_LATEST)
