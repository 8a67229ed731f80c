"""Enqueue a task by name; the API never imports task code (or torch)."""

from __future__ import annotations

from api.settings import get_settings


def enqueue(task_name: str, job_id: int, queue: str = "gpu") -> None:
    """Send ``task_name(job_id)`` to ``queue`` (gpu or default, before the prefix)."""
    from worker.app import get_celery

    get_celery().send_task(task_name, args=[job_id], queue=get_settings().queue(queue))


def broker_reachable() -> bool:
    from worker.app import get_celery

    try:
        with get_celery().connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
    except Exception:  # any transport error means "not ready"
        return False
    return True
