"""Pydantic response bodies (``XPublic`` / ``XsPublic``); requests are in ``jobs.requests``."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel

ScoreSource = Literal["supernet", "predictor", "trained", "tabular"]


class JobPublic(BaseModel):
    id: int
    kind: str
    status: str
    url: str
    space: str | None
    dataset: str | None
    preset: str | None
    phase: str | None
    progress: float
    current: int
    total: int
    rounds: int
    attempts: int
    worker: str | None
    error_type: str | None
    error_message: str | None
    architecture_id: int | None
    checkpoint_id: int | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    config: dict[str, Any]
    result: dict[str, Any] | None
    best: ArchitecturePublic | None = None


class JobsPublic(BaseModel):
    data: list[JobPublic]
    count: int


class ArchitecturePublic(BaseModel):
    id: int
    job_id: int
    space: str
    dataset: str
    arch: str
    canonical_hash: str
    pool_id: int | None
    round: int
    parent_id: int | None
    params: int | None
    scores: dict[str, float | None]
    created_at: datetime


class ArchitecturesPublic(BaseModel):
    data: list[ArchitecturePublic]
    count: int


class MetricPublic(BaseModel):
    name: str
    step: int
    value: float
    created_at: datetime


class MetricsPublic(BaseModel):
    data: list[MetricPublic]
    count: int


class CheckpointPublic(BaseModel):
    id: int
    job_id: int
    architecture_id: int | None
    kind: str
    size: int
    sha256: str
    created_at: datetime
    download_url: str


JobPublic.model_rebuild()


class SweepRunPublic(BaseModel):
    rank: int | None
    job_id: int
    url: str
    status: str
    architecture_id: int
    overrides: dict[str, Any]
    accuracy: float | None


class SweepPublic(BaseModel):
    id: int
    url: str
    status: str
    search_id: int
    runs: list[SweepRunPublic]
    best: SweepRunPublic | None
