"""Pydantic response bodies (``XPublic`` / ``XsPublic``); requests are in ``jobs.requests``."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

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
    best_score: float | None = None  # of a search: trained, else supernet, else tabular
    best_source: str | None = None


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


class SeriesPublic(BaseModel):
    count: int  # points recorded; ``steps``/``values`` hold at most the points asked for
    steps: list[int]
    values: list[float]


class JobSeriesPublic(BaseModel):
    job_id: int
    series: dict[str, SeriesPublic]


class CheckpointPublic(BaseModel):
    id: int
    job_id: int
    architecture_id: int | None
    kind: str  # model, controller (a search's, after one round), onnx, torchscript, card
    round: int | None = None  # a controller's round
    source_id: int | None = None  # an export's source checkpoint
    size: int
    sha256: str
    created_at: datetime
    download_url: str


class CheckpointsPublic(BaseModel):
    data: list[CheckpointPublic]
    count: int


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


# --- what the controller learned (GET /searches/{id}/rounds, /lineage) --------------------


class CalibrationPointPublic(BaseModel):
    pool_id: int
    predicted: float
    measured: float


class CalibrationPublic(BaseModel):
    """The controller's predictions against the supernet's scores at one evaluation point.

    ``predicted`` is on the controller's scale (its targets are the pool's scores normalised
    to [0, 1]), so the two agree in rank, not in value. A statistic no pair can define (one
    side constant) is null.
    """

    count: int
    kendall_tau: float | None
    pairwise_accuracy: float | None
    points: list[CalibrationPointPublic]


class RoundPublic(BaseModel):
    round: int
    count: int
    best: float | None
    median: float | None
    scores: list[float]  # measured, best first
    calibration: CalibrationPublic | None  # null before the controller's first fit


class RoundsPublic(BaseModel):
    job_id: int
    rounds: list[RoundPublic]


class LineagePublic(BaseModel):
    """One architecture and where it came from; ``parent_*`` and ``step_size`` are null for
    the random ones."""

    architecture_id: int
    pool_id: int | None
    round: int
    parent_pool_id: int | None
    parent_architecture_id: int | None
    step_size: float | None
    predicted: float | None  # the controller's belief when it proposed it
    score: float | None  # the best source's: trained, tabular, supernet, then predictor
    score_source: ScoreSource | None


class StepSizeCountPublic(BaseModel):
    step_size: float
    proposed: int
    in_top: int


class SeedCountPublic(BaseModel):
    parent_pool_id: int
    parent_architecture_id: int | None
    proposed: int
    in_top: int


class SearchLineagePublic(BaseModel):
    job_id: int
    proposals: list[LineagePublic]
    top: list[LineagePublic]
    by_step_size: list[StepSizeCountPublic]
    by_seed: list[SeedCountPublic]


# --- controller queries (POST /architectures/{id}/improve, /predictions, /interpolations) ----


class QueryPublic(BaseModel):
    """A finished controller query: which controller answered, and the answer's fields
    (``proposals``, ``predictions`` or ``path``), as its job's ``result`` holds them."""

    model_config = ConfigDict(extra="allow")

    job_id: int
    url: str  # the query's job
    search_id: int
    round: int | None  # the controller's round
    checkpoint_id: int  # the controller checkpoint that answered
