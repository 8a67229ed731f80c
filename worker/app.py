"""The Celery app and its configuration only (torch-free); tasks live in ``worker.tasks``.

Long GPU jobs: ``acks_late`` + prefetch 1, a broker visibility timeout above the longest job,
and messages of a lost worker re-queued (``task_reject_on_worker_lost``); the tasks are
idempotent and resume from the job's last checkpoint, so a re-delivery is safe.
"""

from __future__ import annotations

from functools import lru_cache

from celery import Celery
from kombu import Queue

from api.settings import ApiSettings, get_settings


def _transport_options(settings: ApiSettings) -> dict[str, object]:
    """Redis re-delivers unacked messages after ``visibility_timeout``: keep it above the
    longest job. The SQLAlchemy transport of the embedded mode takes no such option."""
    if settings.resolved_broker_url().startswith(("redis", "rediss")):
        return {"visibility_timeout": settings.visibility_timeout_s}
    return {}


def create_celery(settings: ApiSettings) -> Celery:
    app = Celery("nao", broker=settings.resolved_broker_url(), include=["worker.tasks"])
    gpu, default = settings.queue("gpu"), settings.queue("default")
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_queues=[Queue(gpu), Queue(default)],
        task_default_queue=default,
        # Tabular searches are CPU work; an exact name wins over the pattern.
        task_routes={"nao.search.tabular": {"queue": default}, "nao.*": {"queue": gpu}},
        broker_transport_options=_transport_options(settings),
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
    )
    return app


@lru_cache
def _cached(broker_url: str, prefix: str) -> Celery:
    return create_celery(get_settings())


def get_celery() -> Celery:
    """The app for the current settings (tests switch settings within one process)."""
    s = get_settings()
    return _cached(s.resolved_broker_url(), s.queue_prefix)


celery_app = get_celery()
app = celery_app
