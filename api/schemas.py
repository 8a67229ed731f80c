"""Pydantic response bodies (``XPublic`` / ``XsPublic``); requests are in ``jobs.requests``."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

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


class ProposalPublic(BaseModel):
    arch: str
    canonical_hash: str
    architecture_id: int  # the stored proposal (a row of the query job)
    parent_architecture_id: int | None  # the architecture it was improved from
    predicted: float  # the controller's predicted score, the search's scale
    step_size: float
    score: float | None = None  # evaluate on a tabular space: the table's signal
    report: dict[str, float] | None = None  # and its report column
    training_job_id: int | None = None  # evaluate elsewhere: its training
    training_url: str | None = None
    training_error: str | None = None  # why no training was queued (the token's cap, …)


class NeighbourPublic(BaseModel):
    arch: str
    architecture_id: int | None  # the search's row
    score: float  # measured
    distance: float  # in the controller's embedding


class PredictionPublic(BaseModel):
    arch: str
    architecture_id: int | None  # when it was given by id
    canonical_hash: str
    predicted: float
    rank: int  # of ``predicted`` among the pool's measured scores (1 = above all)
    pool_size: int
    measured: float | None  # when it is in the pool the controller was fitted on
    interval: list[float]  # [low, high], nominal coverage ``level``
    level: float
    distance: float  # mean distance to its neighbours
    spread: float  # the ensemble members' standard deviation (0 for one)
    neighbours: list[NeighbourPublic]


class PathPointPublic(BaseModel):
    t: float  # where on the path (0 = from, 1 = to) it was first decoded
    arch: str
    canonical_hash: str
    predicted: float


class ArchRefPublic(BaseModel):
    arch: str
    architecture_id: int | None


class QueryPublic(BaseModel):
    """A finished controller query: which controller answered, and the answer (as its job's
    ``result`` holds it): ``proposals`` (improve), ``predictions`` or ``path``."""

    model_config = ConfigDict(populate_by_name=True)

    job_id: int
    url: str  # the query's job
    search_id: int
    round: int | None  # the controller's round
    checkpoint_id: int  # the controller checkpoint that answered
    operation: str  # improve, predict, interpolate
    seed: str | None = None  # improve: the architecture improved
    proposals: list[ProposalPublic] | None = None
    evaluation: str | None = None  # improve with evaluate: "tabular" or "training"
    predictions: list[PredictionPublic] | None = None
    from_: ArchRefPublic | None = Field(default=None, alias="from")
    to: ArchRefPublic | None = None
    path: list[PathPointPublic] | None = None
