"""What a caller asks for: the request bodies of every job kind (``XCreate``).

Pydantic checks types and ranges here; each kind's module checks the rest against
``nao_core`` (spaces, presets, overrides) and names the field that is wrong.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    StrictInt,
    WithJsonSchema,
    model_validator,
)

Name = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_./-]+$")
Seed = Field(default=None, ge=0, le=2**31 - 1)
Overrides = Field(default_factory=dict, max_length=64)
MAX_ID = 2**63 - 1  # ids are 64-bit in the database


def _finite(value: Any, where: str) -> None:
    """JSON as Python reads it allows NaN and Infinity; no setting of ours means either."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where}: {value} is not a finite number")
    if isinstance(value, dict):
        for key, item in value.items():
            _finite(item, f"{where}.{key}")
    elif isinstance(value, list):
        for item in value:
            _finite(item, where)


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @model_validator(mode="after")
    def _no_nan_in_free_values(self) -> _In:
        for name in ("overrides", "grid"):
            if name in type(self).model_fields:
                _finite(getattr(self, name), name)
        return self


class WarmStart(_In):
    """Start a search from a finished search's controller (and optionally its pool)."""

    search_id: StrictInt = Field(ge=1, le=MAX_ID, description="a finished search of the space")
    pool: bool = Field(
        default=False, description="also start from its measured pool (else the controller only)"
    )
    round: StrictInt | None = Field(
        default=None, ge=0, le=100_000, description="its controller after this round (latest)"
    )


class SearchCreate(_In):
    space: str = Name
    dataset: str | None = Field(default=None, min_length=1, max_length=64)
    preset: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="default: tiny (cnn, rnn); nb201 (nb201 with method nao or evolution)",
    )
    overrides: dict[str, Any] = Overrides
    seed: StrictInt | None = Seed
    budget: StrictInt | None = Field(
        default=None,
        ge=1,
        le=15_625,
        description="nao-ws: supernet epochs (optim.epochs, <= NAO_MAX_EPOCHS); nao on "
        "cnn/rnn: candidates (max_candidates, <= NAO_MAX_CANDIDATES); nb201: table queries "
        "(default 150, <= 15625)",
    )
    method: Literal["nao-ws", "nao", "random", "evolution"] | None = Field(
        default=None,
        description="cnn, rnn: nao-ws (default, weight sharing) or nao (every candidate "
        "trained); nb201: nao (default), random or evolution over the tabular file",
    )
    table: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="nb201: the name of a table under the data directory (default nb201)",
    )
    signal: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="nb201: the column searched on (default c10_valid_acc_200ep)",
    )
    report: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="nb201: the column reported for the best arch (default c10_test_acc_200ep)",
    )
    max_parallel: StrictInt | None = Field(
        default=None, ge=1, le=4096, description="nao: candidates queued or running at once"
    )
    max_gpu_hours: float | None = Field(
        default=None,
        gt=0,
        le=1e6,
        description="nao: stop after the round that passes it (<= NAO_MAX_GPU_HOURS)",
    )
    warm_start: WarmStart | None = Field(
        default=None,
        description="nao, nao-ws: start from a finished search's controller of the same space",
    )


class TrainingCreate(_In):
    architecture_id: StrictInt | None = Field(default=None, ge=1, le=MAX_ID)
    arch: str | None = Field(default=None, min_length=1, max_length=4096)
    arch_name: str | None = Field(default=None, min_length=1, max_length=64)
    space: str = Field(default="cnn", min_length=1, max_length=64)
    dataset: str | None = Field(default=None, min_length=1, max_length=64)
    preset: str = Field(default="tiny", min_length=1, max_length=64)
    overrides: dict[str, Any] = Overrides
    seed: StrictInt | None = Seed

    @model_validator(mode="after")
    def _one_arch(self) -> TrainingCreate:
        given = [
            self.architecture_id is not None,
            self.arch is not None,
            self.arch_name is not None,
        ]
        if sum(given) != 1:
            raise ValueError("give exactly one of architecture_id, arch, arch_name")
        return self


class EvaluationCreate(_In):
    checkpoint_id: StrictInt = Field(ge=1, le=MAX_ID)
    dataset: str | None = Field(default=None, min_length=1, max_length=64)
    split: Literal["test", "valid", "train"] | None = None


class SweepCreate(_In):
    """Train the top-k archs of a search under every point of a small override grid."""

    search_id: StrictInt = Field(ge=1, le=MAX_ID)
    top_k: StrictInt = Field(default=5, ge=1, le=20)
    grid: dict[str, list[Any]] = Field(
        min_length=1,
        max_length=4,
        description="TrainConfig keys to lists of values, e.g. {'optim.lr_max': [0.025, 0.05]}",
    )
    preset: str = Field(default="tiny", min_length=1, max_length=64)
    overrides: dict[str, Any] = Overrides  # applied to every run before the grid point
    dataset: str | None = Field(default=None, min_length=1, max_length=64)


# --- controller queries (jobs.query): improve, predict, interpolate --------------------------


def _arch_ref(value: Any) -> int | str:
    """A stored architecture's id (an integer), or an architecture's text (1..4096 chars)."""
    if isinstance(value, int) and not isinstance(value, bool):
        if not 1 <= value <= MAX_ID:
            raise ValueError(f"an architecture id is in 1..{MAX_ID}")
        return value
    if isinstance(value, str):
        if not 1 <= len(value) <= 4096:
            raise ValueError("an architecture's text has 1..4096 characters")
        return value
    raise ValueError("give an architecture id (integer) or an architecture's text (string)")


# An architecture in a query: a stored architecture's id, or its text in the search's space
# (one validator, so an error's location is the list item, not a member of a union).
ArchRef = Annotated[
    int | str,
    PlainValidator(_arch_ref),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 1, "maximum": MAX_ID},
                {"type": "string", "minLength": 1, "maxLength": 4096},
            ]
        }
    ),
]
Round = Field(
    default=None, ge=0, le=100_000, description="the controller after this round (latest)"
)


class ImproveCreate(_In):
    search_id: StrictInt | None = Field(
        default=None, ge=1, le=MAX_ID, description="whose controller (default: the arch's search)"
    )
    n: StrictInt = Field(default=5, ge=1, le=100, description="proposals wanted")
    step_sizes: list[Annotated[float, Field(gt=0, le=1000)]] | None = Field(
        default=None, min_length=1, max_length=64, description="gradient step sizes (eta)"
    )
    neighbours: bool = Field(
        default=True,
        description="also rank the architecture's one-token edits (proposals of step size 0)",
    )
    evaluate: bool = Field(
        default=False,
        description="measure the proposals: a table look-up (nb201), else a tiny training each",
    )
    round: StrictInt | None = Round


class PredictionCreate(_In):
    search_id: StrictInt = Field(ge=1, le=MAX_ID)
    archs: list[ArchRef] = Field(
        min_length=1, max_length=1000, description="architecture ids or texts of its space"
    )
    k: StrictInt = Field(default=5, ge=1, le=50, description="nearest measured archs per arch")
    round: StrictInt | None = Round


class InterpolationCreate(_In):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, populate_by_name=True)

    search_id: StrictInt = Field(ge=1, le=MAX_ID)
    from_: ArchRef = Field(alias="from", description="an architecture id or text")
    to: ArchRef = Field(description="an architecture id or text")
    steps: StrictInt = Field(default=10, ge=2, le=100, description="points on the path")
    round: StrictInt | None = Round
