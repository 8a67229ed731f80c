"""Worker process settings (``NAO_*``); database, broker and storage: ``store.settings``."""

from __future__ import annotations

import os
import socket
from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class WorkerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NAO_", extra="ignore")

    device: str = "auto"  # one worker process per GPU: set CUDA_VISIBLE_DEVICES per process
    torch_threads: int = Field(default=1, ge=1)  # 1 matters a lot on small CPU machines
    progress_interval_s: float = Field(default=1.0, ge=0)
    cancel_poll_s: float = Field(default=1.0, ge=0)
    # Lost-worker recovery (worker/recovery.py): a running job's heartbeat is stamped every
    # heartbeat_s; one not stamped for stale_after_s is re-queued by any live worker.
    heartbeat_s: float = Field(default=15.0, gt=0)
    stale_after_s: float = Field(default=120.0, gt=0)
    # The name a job's ``worker`` shows callers (default: the host name); the row also keeps
    # host and pid, which recovery uses to tell this process from other live workers.
    worker_name: str = Field(default="", max_length=64, pattern=r"^[A-Za-z0-9_.@-]*$")
    # A job queued this long since its task was sent is sent again (its message may be lost:
    # Redis restarted, the API died before sending); doubled per re-send, up to 8x.
    requeue_after_s: float = Field(default=300.0, gt=0)


@lru_cache
def get_worker_settings() -> WorkerSettings:
    return WorkerSettings()


def worker_id() -> str:
    """This process, ``NAME/HOST:PID``: host and pid tell two workers on one host apart; the
    name (``NAO_WORKER_NAME``, default the host) is all the API shows (``store.redact``)."""
    host = socket.gethostname()
    return f"{get_worker_settings().worker_name or host}/{host}:{os.getpid()}"
