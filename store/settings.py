"""Settings both sides share: the database, the broker, storage and data directories.

Every value comes from ``NAO_*`` environment variables. The defaults are the embedded mode:
SQLite and a SQLAlchemy-backed Celery broker under ``NAO_HOME`` (``~/.nao``), so nothing but
this package has to be installed. Production sets ``NAO_DATABASE_URL`` (Postgres) and
``NAO_BROKER_URL`` (Redis).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NAO_", extra="ignore")

    home: Path = Path.home() / ".nao"
    database_url: str = ""  # default: sqlite:///<home>/nao.sqlite
    broker_url: str = ""  # default: sqla+sqlite:///<home>/broker.sqlite
    storage_dir: Path | None = None  # checkpoints and run folders; default: <home>/storage
    data_dir: Path | None = None  # datasets and tables (`nao data`); default: <home>/data
    queue_prefix: str = ""  # prefixes the queue names (tests run isolated workers)
    max_body_bytes: int = Field(default=64 * 1024, gt=0)
    # POST /predictions takes up to 1,000 architectures as text (a cnn-large cell: ~400 bytes)
    max_query_body_bytes: int = Field(default=1024 * 1024, gt=0)
    # What a request may send before the app sees it (api.protocol): 431, 408 beyond.
    max_header_bytes: int = Field(default=16 * 1024, ge=1024)  # request line and headers
    max_headers: int = Field(default=100, ge=1)
    request_read_timeout_s: float = Field(default=30.0, gt=0)  # a request's head and body
    visibility_timeout_s: int = Field(default=48 * 3600, gt=0)  # above the longest job
    # Admission limits (jobs/limits.py): the largest job one request may ask for, checked on
    # the resolved config of every kind; the paper presets fit (train-rnn/paper: 4000 epochs,
    # C=36, N=6, nhid 850, batch 500, nao-search-rnn/paper: 1500 + 3 x 300 candidates).
    max_epochs: int = Field(default=4000, ge=1)  # any epochs: supernet, training, controller
    max_channels: int = Field(default=512, ge=1)  # CNN width C
    max_hidden: int = Field(default=2048, ge=1)  # RNN nhid, controller hidden sizes
    max_layers: int = Field(default=24, ge=1)  # cells per stage N, controller MLP layers
    max_batch_size: int = Field(default=2048, ge=1)  # every batch size
    max_candidates: int = Field(default=5000, ge=2)  # pools, new archs, candidates trained
    max_gpu_hours: float = Field(default=1000.0, gt=0)  # a nao search's max_gpu_hours
    api_workers: int = Field(default=1, ge=1, le=64)  # uvicorn processes (`nao api`, `nao up`)
    db_pool_size: int = Field(default=10, ge=1)  # Postgres connections kept per process
    db_max_overflow: int = Field(default=5, ge=0)  # and opened beyond them under load
    read_cache: bool = True  # cached GET /architectures on Postgres (api.readcache)
    private_reads: bool = False  # every read endpoint needs a token too (the cache is then off)
    max_active_jobs_per_token: int = Field(default=20, ge=1)  # queued + running; admins exempt
    # How long a controller query (improve, predict, interpolate) is waited for before the
    # API answers 202 with the job's link instead of the result.
    query_wait_s: float = Field(default=30.0, ge=0, le=600)

    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'nao.sqlite'}"

    def resolved_broker_url(self) -> str:
        return self.broker_url or f"sqla+sqlite:///{self.home / 'broker.sqlite'}"

    def resolved_storage_dir(self) -> Path:
        return self.storage_dir or self.home / "storage"

    def resolved_data_dir(self) -> Path:
        """Where the datasets are read: the folder `nao data install` fills by default
        (``nao_core.catalog.default_data_dir``: NAO_DATA_DIR, else <home>/data)."""
        return self.data_dir or self.home / "data"

    def queue(self, name: str) -> str:
        return f"{self.queue_prefix}{name}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
