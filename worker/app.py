"""The worker's Celery app: the shared configuration (``store.broker``) plus the task modules."""

from __future__ import annotations

from jobs.registry import runners
from store.broker import get_celery

celery_app = get_celery()
celery_app.conf.include = runners()  # one module per job kind defines its tasks
app = celery_app
