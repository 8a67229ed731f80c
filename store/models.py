"""ORM tables: job, architecture, pool_round, metric, checkpoint, api_token, search_candidate,
worker_status.

Top-k reads (``GET /architectures?top=10``) are served by one index per score source, plain
and per search, so they stay index scans at millions of rows. Statuses are ``StrEnum``s
stored as strings.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from store.db import Base

SCORE_SOURCES = ("supernet", "predictor", "trained", "tabular")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp that is timezone-aware UTC whatever the backend: Postgres keeps the zone,
    SQLite keeps none and gives naive values back, which this reads as the UTC they were."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class JobKind(StrEnum):
    SEARCH = "search"
    TRAIN = "train"
    EVAL = "eval"
    SWEEP = "sweep"  # a grid of trainings over a search's top archs; no task of its own
    QUERY = "query"  # improve / predict / interpolate with a search's controller
    EXPORT = "export"  # a checkpoint built into ONNX / TorchScript with its model card


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


FINISHED = frozenset({JobStatus.CANCELLED, JobStatus.SUCCEEDED, JobStatus.FAILED})

_Id = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrements INTEGER only


class Job(Base):
    __tablename__ = "job"

    id: Mapped[int] = mapped_column(_Id, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.QUEUED)
    space: Mapped[str | None] = mapped_column(String(32))
    dataset: Mapped[str | None] = mapped_column(String(32))
    preset: Mapped[str | None] = mapped_column(String(32))
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    phase: Mapped[str | None] = mapped_column(String(32))
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    current: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[int] = mapped_column(Integer, default=0)
    rounds: Mapped[int] = mapped_column(Integer, default=0)
    error_type: Mapped[str | None] = mapped_column(String(128))
    error_message: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    worker: Mapped[str | None] = mapped_column(String(255))
    # The token that created the job: its owner, who may cancel it (besides an admin token).
    created_by: Mapped[int | None] = mapped_column(
        ForeignKey("api_token.id", ondelete="SET NULL"), index=True
    )
    architecture_id: Mapped[int | None] = mapped_column(
        ForeignKey("architecture.id", ondelete="SET NULL", use_alter=True)
    )
    checkpoint_id: Mapped[int | None] = mapped_column(
        ForeignKey("checkpoint.id", ondelete="SET NULL", use_alter=True)
    )
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    heartbeat_at: Mapped[datetime | None] = mapped_column(UtcDateTime())  # worker alive
    # When its task was last sent, and how many times the reaper re-sent it to a queued job
    # (worker/recovery.py: a queued job whose message was lost is sent again).
    enqueued_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=utcnow)
    resends: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)

    __table_args__ = (
        Index("ix_job_kind_id", "kind", "id"),
        Index("ix_job_status", "status"),
    )


class Architecture(Base):
    __tablename__ = "architecture"

    id: Mapped[int] = mapped_column(_Id, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"))
    space: Mapped[str] = mapped_column(String(32))
    dataset: Mapped[str] = mapped_column(String(32))
    arch: Mapped[str] = mapped_column(Text)
    canonical_hash: Mapped[str] = mapped_column(String(64))
    pool_id: Mapped[int | None] = mapped_column(Integer)  # id in the search's pool
    round: Mapped[int] = mapped_column(Integer, default=0)
    parent_id: Mapped[int | None] = mapped_column(Integer)  # pool id of the parent
    step_size: Mapped[float | None] = mapped_column(Float)  # eta that reached it from the parent
    # The stored architecture an ``improve`` call moved this one from (any search's row). No
    # foreign key: adding one would make SQLite rebuild the table, which nulls job links.
    parent_arch_id: Mapped[int | None] = mapped_column(_Id)
    params: Mapped[int | None] = mapped_column(BigInteger)
    score_supernet: Mapped[float | None] = mapped_column(Float)
    score_predictor: Mapped[float | None] = mapped_column(Float)
    score_trained: Mapped[float | None] = mapped_column(Float)
    score_tabular: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)

    __table_args__ = (
        UniqueConstraint("job_id", "canonical_hash", name="uq_architecture_job_hash"),
        *(Index(f"ix_architecture_{s}", f"score_{s}") for s in SCORE_SOURCES),
        *(Index(f"ix_architecture_job_{s}", "job_id", f"score_{s}") for s in SCORE_SOURCES),
        *(
            Index(f"ix_architecture_space_dataset_{s}", "space", "dataset", f"score_{s}")
            for s in SCORE_SOURCES
        ),
        # top-k by space alone: partial, so a sparse source's index holds only its scored rows
        *(
            Index(
                f"ix_architecture_space_{s}",
                "space",
                f"score_{s}",
                postgresql_where=text(f"score_{s} IS NOT NULL"),
                sqlite_where=text(f"score_{s} IS NOT NULL"),
            )
            for s in SCORE_SOURCES
        ),
    )


class PoolRound(Base):
    """One pool member at one evaluation point of a weight-sharing search: the controller's
    prediction just before the supernet scored it (None at the first point, before any fit)
    and the supernet's score. ``(job, round, pool_id)`` is written once."""

    __tablename__ = "pool_round"

    id: Mapped[int] = mapped_column(_Id, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"), index=True)
    round: Mapped[int] = mapped_column(Integer)
    pool_id: Mapped[int] = mapped_column(Integer)
    predicted: Mapped[float | None] = mapped_column(Float)
    measured: Mapped[float | None] = mapped_column(Float)

    __table_args__ = (UniqueConstraint("job_id", "round", "pool_id"),)


class Metric(Base):
    """One value of a job's time series; ``(job, name, step)`` is written once."""

    __tablename__ = "metric"

    id: Mapped[int] = mapped_column(_Id, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    step: Mapped[int] = mapped_column(Integer)
    value: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)

    __table_args__ = (UniqueConstraint("job_id", "name", "step", name="uq_metric_job_name_step"),)


class Checkpoint(Base):
    __tablename__ = "checkpoint"

    id: Mapped[int] = mapped_column(_Id, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"), index=True)
    architecture_id: Mapped[int | None] = mapped_column(
        ForeignKey("architecture.id", ondelete="SET NULL")
    )
    # "model" (a trained network), "controller" (a search's controller after one round),
    # "onnx" / "torchscript" / "card" (built from the ``source`` checkpoint)
    kind: Mapped[str] = mapped_column(String(16))
    round: Mapped[int | None] = mapped_column(Integer)  # a controller checkpoint's round
    # What an export was built from. Exports share their source's job, so deleting the job
    # deletes both; no foreign key, for the same SQLite reason as ``parent_arch_id``.
    source_id: Mapped[int | None] = mapped_column(_Id, index=True)
    path: Mapped[str] = mapped_column(Text)  # key inside the storage, never a user's path
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class TokenRole(StrEnum):
    USER = "user"  # cancels its own jobs, within NAO_MAX_ACTIVE_JOBS_PER_TOKEN
    ADMIN = "admin"  # cancels any job; no cap


class ApiToken(Base):
    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(_Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(16), default=TokenRole.USER, server_default="user")
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime())  # refused from then on
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class CandidateStatus(StrEnum):
    PENDING = "pending"  # planned, not sent (waiting for the search's max_parallel)
    QUEUED = "queued"  # sent to the GPU queue
    RUNNING = "running"
    DONE = "done"
    CANCELLED = "cancelled"


class SearchCandidate(Base):
    """One candidate of a search without weight sharing: trained by its own task.

    ``(job, pool_id)`` is unique, so a redelivered candidate updates its row and is never
    counted twice; ``task_id`` is the message that owns it.
    """

    __tablename__ = "search_candidate"

    id: Mapped[int] = mapped_column(_Id, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"))
    round: Mapped[int] = mapped_column(Integer)
    pool_id: Mapped[int] = mapped_column(Integer)
    arch: Mapped[str] = mapped_column(Text)
    parent_id: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default=CandidateStatus.PENDING)
    task_id: Mapped[str | None] = mapped_column(String(64))
    score: Mapped[float | None] = mapped_column(Float)
    epoch: Mapped[int] = mapped_column(Integer, default=0)
    seconds: Mapped[float | None] = mapped_column(Float)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    worker: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime())

    __table_args__ = (
        UniqueConstraint("job_id", "pool_id", name="uq_search_candidate_job_pool"),
        Index("ix_search_candidate_job_round_status", "job_id", "round", "status"),
    )


class WorkerStatus(Base):
    """One live worker process, upserted by its own status thread every ``heartbeat_s``
    (worker/status.py), whether or not it runs a job: when it was last seen and, on CUDA, its
    GPU's memory and utilisation (None on a CPU, or utilisation without pynvml). ``GET
    /metrics`` reads it at scrape time; a worker that stops cleanly deletes its row."""

    __tablename__ = "worker_status"

    worker: Mapped[str] = mapped_column(String(255), primary_key=True)  # NAME/HOST:PID
    host: Mapped[str] = mapped_column(String(255))
    device: Mapped[str] = mapped_column(String(32))  # "cuda:0", "cpu"
    seen_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    gpu_memory_used_bytes: Mapped[int | None] = mapped_column(BigInteger)
    gpu_memory_total_bytes: Mapped[int | None] = mapped_column(BigInteger)
    gpu_utilization_percent: Mapped[float | None] = mapped_column(Float)
