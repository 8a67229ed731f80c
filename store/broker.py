"""The Celery app's configuration and the client side of the broker (torch-free).

Both sides use one app: the API and the workers' own bookkeeping send tasks *by name*
(``enqueue``), so neither imports task code; ``worker.app`` adds the task modules to the same
configuration. Long GPU jobs: ``acks_late`` + prefetch 1, a broker visibility timeout above the
longest job, and messages of a lost worker re-queued (``task_reject_on_worker_lost``); the tasks
are idempotent and resume from the job's last checkpoint, so a re-delivery is safe.
"""

from __future__ import annotations

import logging
from functools import lru_cache

from celery import Celery
from kombu import Queue
from kombu.exceptions import ChannelError

from store.settings import Settings, get_settings

logger = logging.getLogger(__name__)

GPU, CPU = "gpu", "default"  # queue names before the prefix: training, and CPU-only work
# Short requests a user waits for (controller queries, exports): a queue of their own, so
# they never wait behind a search or a training on the GPU/CPU queues.
QUERY = "query"


def _transport_options(settings: Settings) -> dict[str, object]:
    """Redis re-delivers unacked messages after ``visibility_timeout``: keep it above the
    longest job. The SQLAlchemy transport of the embedded mode takes no such option."""
    if settings.resolved_broker_url().startswith(("redis", "rediss")):
        return {"visibility_timeout": settings.visibility_timeout_s}
    return {}


SQLA_POLL_S = 0.1


def _poll_faster(url: str) -> None:
    """The SQLAlchemy transport of the embedded mode polls its tables, every second by
    default: a controller query a caller waits for would wait up to a second to be picked
    up. A poll is one indexed SELECT. Set on the class: kombu hands this transport's options
    to ``create_engine``, which refuses ``polling_interval``."""
    if url.startswith("sqla+"):
        from kombu.transport import sqlalchemy

        sqlalchemy.Transport.polling_interval = SQLA_POLL_S


def create_celery(settings: Settings) -> Celery:
    app = Celery("nao", broker=settings.resolved_broker_url())
    _poll_faster(settings.resolved_broker_url())
    gpu, default = settings.queue(GPU), settings.queue(CPU)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_queues=[Queue(gpu), Queue(default), Queue(settings.queue(QUERY))],
        task_default_queue=default,  # every send names its queue (`send`)
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


def send(task_name: str, args: list[object], queue: str = GPU, task_id: str | None = None) -> None:
    """Send ``task_name(*args)`` to ``queue`` (``GPU`` or ``CPU``, before the prefix)."""
    get_celery().send_task(task_name, args=args, queue=get_settings().queue(queue), task_id=task_id)


def enqueue(task_name: str, job_id: int, queue: str = GPU) -> None:
    """Send ``task_name(job_id)``: every job task takes the job id alone."""
    send(task_name, [job_id], queue)


def revoke(task_ids: list[str]) -> None:
    """Best effort: workers drop revoked messages; the tasks also check the job's status."""
    try:
        get_celery().control.revoke(task_ids)
    except Exception as exc:  # broker hiccup: the status check in the task still stops them
        logger.warning("revoke of %d tasks failed: %s", len(task_ids), exc)


def broker_reachable() -> bool:
    try:
        with get_celery().connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
    except Exception:  # any transport error means "not ready"
        return False
    return True


def queue_depths() -> dict[str, int]:
    """Messages waiting in the gpu, default and query queues (what the broker reports; a queue
    the transport cannot count is left out)."""
    settings, out = get_settings(), {}
    try:
        with get_celery().connection_for_read() as conn:
            channel = conn.default_channel
            for name in (settings.queue(GPU), settings.queue(CPU), settings.queue(QUERY)):
                try:
                    out[name] = int(channel.queue_declare(queue=name, passive=True).message_count)
                except ChannelError:  # never declared: nothing was ever sent to it
                    out[name] = 0
    except Exception as exc:  # broker down: the scrape still answers, without this gauge
        logger.warning("queue depth: %s: %s", type(exc).__name__, exc)
    return out
