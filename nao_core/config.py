"""Experiment configuration: frozen dataclasses, dict round trips and ``--set`` overrides.

Every config is a tree of frozen dataclasses. ``apply_overrides(cfg, ["a.b=3"])`` returns a
new tree with the dotted fields replaced; values are read with ``ast.literal_eval`` (never
``eval``) and checked against the field's declared type, so a typo or a wrong type is an
``InvalidConfig`` naming the key.
"""

from __future__ import annotations

import ast
import dataclasses
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, is_dataclass, replace
from typing import Any, Literal, TypeVar

from nao_core.errors import InvalidConfig

T = TypeVar("T")


def _check(cond: bool, key: str, why: str) -> None:
    if not cond:
        raise InvalidConfig(f"{key}: {why}")


@dataclass(frozen=True)
class ControllerConfig:
    """Encoder-predictor-decoder hyperparameters; defaults are NAO_V1's (nao-spec §2.1, §3)."""

    hidden_size: int = 96  # encoder = decoder hidden size; embedding = hidden / space.group
    mlp_layers: int = 3
    mlp_hidden_size: int = 200
    mlp_dropout: float = 0.1
    encoder_dropout: float = 0.0
    decoder_dropout: float = 0.0
    trade_off: float = 0.8  # lambda: weight of the predictor MSE against the decoder NLL
    lr: float = 1e-3
    weight_decay: float = 1e-4
    grad_clip: float = 5.0
    batch_size: int = 100
    epochs: int = 1000
    swap_augment: bool = True  # one branch swap per cell and sample, where the space has any
    masked_training: bool = False  # the authors train the decoder without the validity mask
    target_transform: Literal["minmax", "rank"] = "minmax"  # minmax is the authors'
    # Weight of a pairwise logistic ranking loss added to the predictor's MSE (0 = the
    # authors' loss). Ranking is what the search uses the predictor for.
    rank_weight: float = 0.0
    reset_optimizer: bool = True  # NAO_V1 re-creates Adam every round; the model is kept
    # Training matmuls/LSTMs under bf16 autocast with fp32 weights, loss and optimizer;
    # "auto" = bf16 where the CPU has native bf16. The embedding-space step is always fp32.
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    # architecture optimisation (nao-spec §3)
    top_seeds: int = 100
    new_archs: int = 300
    max_step_size: int = 50  # eta = 1, 2, ..., max_step_size + 1
    proposal_order: Literal["step", "predicted"] = "step"

    def __post_init__(self) -> None:
        for name in ("hidden_size", "mlp_hidden_size", "batch_size", "epochs", "top_seeds"):
            _check(getattr(self, name) > 0, f"controller.{name}", "must be > 0")
        _check(self.mlp_layers >= 0, "controller.mlp_layers", "must be >= 0")
        _check(self.new_archs >= 0, "controller.new_archs", "must be >= 0")
        _check(self.max_step_size >= 0, "controller.max_step_size", "must be >= 0")
        _check(0.0 <= self.trade_off <= 1.0, "controller.trade_off", "must be in [0, 1]")
        for name in ("mlp_dropout", "encoder_dropout", "decoder_dropout"):
            _check(0.0 <= getattr(self, name) < 1.0, f"controller.{name}", "must be in [0, 1)")
        _check(self.lr > 0, "controller.lr", "must be > 0")
        _check(self.rank_weight >= 0, "controller.rank_weight", "must be >= 0")
        _check(self.weight_decay >= 0, "controller.weight_decay", "must be >= 0")
        _check(self.grad_clip > 0, "controller.grad_clip", "must be > 0")
        _check(self.precision in ("auto", "fp32", "bf16"), "controller.precision", "auto|fp32|bf16")
        _check(
            self.proposal_order in ("step", "predicted"),
            "controller.proposal_order",
            "must be 'step' or 'predicted'",
        )


# --- generic helpers ---------------------------------------------------------------------------


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def from_dict(cls: type[T], data: Mapping[str, Any]) -> T:
    """Build ``cls`` from a (possibly partial) nested dict; unknown keys are errors."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = set(data) - names
    if unknown:
        raise InvalidConfig(f"unknown config keys for {cls.__name__}: {', '.join(sorted(unknown))}")
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        hint = hints[key]
        if is_dataclass(hint) and isinstance(value, Mapping):
            kwargs[key] = from_dict(hint, value)  # type: ignore[arg-type]
        else:
            kwargs[key] = _coerce(key, value, hint)
    return cls(**kwargs)


def apply_overrides(cfg: T, overrides: Iterable[str] | Mapping[str, Any]) -> T:
    """Return ``cfg`` with dotted keys replaced: ``["controller.epochs=200", ...]`` or a dict."""
    items = (
        list(overrides.items())
        if isinstance(overrides, Mapping)
        else [_split_override(o) for o in overrides]
    )
    for key, raw in items:
        cfg = _set_path(cfg, key.split("."), raw, key)
    return cfg


def _split_override(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise InvalidConfig(f"override {text!r}: expected key=value")
    return key.strip(), _literal(raw.strip())


def _literal(raw: str) -> Any:
    try:
        return ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return raw  # a bare word such as predicted is a string


def _set_path(cfg: Any, path: list[str], value: Any, full: str) -> Any:
    if not is_dataclass(cfg):
        raise InvalidConfig(f"{full}: {path[0]!r} is not a config section")
    hints = typing.get_type_hints(type(cfg))
    if path[0] not in hints or path[0] not in {f.name for f in fields(cfg)}:
        known = ", ".join(f.name for f in fields(cfg))
        raise InvalidConfig(f"{full}: unknown key {path[0]!r}; known: {known}")
    if len(path) > 1:
        return replace(cfg, **{path[0]: _set_path(getattr(cfg, path[0]), path[1:], value, full)})
    if isinstance(value, str) and hints[path[0]] is not str:
        value = _literal(value)
    return replace(cfg, **{path[0]: _coerce(full, value, hints[path[0]])})


def _coerce(key: str, value: Any, hint: Any) -> Any:
    """Check ``value`` against a field type; ints widen to floats, lists become tuples."""
    origin = typing.get_origin(hint)
    if origin is Literal:
        _check(value in typing.get_args(hint), key, f"must be one of {typing.get_args(hint)}")
        return value
    if origin in (types.UnionType, typing.Union):
        for arm in typing.get_args(hint):
            try:
                return _coerce(key, value, arm)
            except InvalidConfig:
                continue
        raise InvalidConfig(f"{key}: {value!r} does not match {hint}")
    if hint is type(None):
        _check(value is None, key, "must be null")
        return None
    if origin is tuple:
        _check(isinstance(value, list | tuple), key, f"must be a list, got {type(value).__name__}")
        args = typing.get_args(hint)
        elem = args[0] if args else Any
        return tuple(value if elem is Any else (_coerce(key, v, elem) for v in value))
    if hint is float:
        _check(
            isinstance(value, int | float) and not isinstance(value, bool),
            key,
            f"must be a number, got {value!r}",
        )
        return float(value)
    if hint is int:
        _check(
            isinstance(value, int) and not isinstance(value, bool),
            key,
            f"must be an integer, got {value!r}",
        )
        return value
    if hint is bool:
        _check(isinstance(value, bool), key, f"must be true or false, got {value!r}")
        return value
    if hint is str:
        _check(isinstance(value, str), key, f"must be a string, got {value!r}")
        return value
    if is_dataclass(hint):
        _check(isinstance(value, Mapping), key, "must be a mapping")
        return from_dict(hint, value)  # type: ignore[arg-type]
    return value


# --- weight-sharing search and final training (nao-spec §4.1, §6.1) ----------------------------

# Names registered in ``nao_core.data`` (which imports torch); kept here for torch-free callers
# such as the API. ``tests/api/test_deps.py`` checks the two agree.
DATASET_NAMES = ("cifar10", "cifar100", "digits")

Precision = Literal["auto", "fp32", "bf16"]  # auto = bf16 autocast on CUDA, fp32 on a CPU


@dataclass(frozen=True)
class DataConfig:
    """Which images a run uses and how they are batched (nao-spec §4.1 "Data", §6.1)."""

    dataset: str = "cifar10"
    train_portion: float = 0.9  # of the official training set; the rest is the valid split
    train_limit: int = 0  # keep only the first n training images (0 = all), for quick runs
    split_seed: int = 0
    batch_size: int = 64
    eval_batch_size: int = 500
    cutout: int = 0  # side of the cutout square on training batches (16 in final training)
    eval_split: Literal["valid", "test"] = "valid"  # what final training reports on

    def __post_init__(self) -> None:
        _check(0.0 < self.train_portion <= 1.0, "data.train_portion", "must be in (0, 1]")
        _check(self.train_limit >= 0, "data.train_limit", "must be >= 0")
        _check(self.batch_size > 0, "data.batch_size", "must be > 0")
        _check(self.eval_batch_size > 0, "data.eval_batch_size", "must be > 0")
        _check(self.cutout >= 0, "data.cutout", "must be >= 0")
        _check(self.eval_split in ("valid", "test"), "data.eval_split", "must be valid|test")


@dataclass(frozen=True)
class NetworkConfig:
    """Shape and regularisation of a supernet or a stand-alone CNN (nao-spec §4.1, §6.1)."""

    layers: int = 3  # N: cells per stage, 3N + 2 cells in all
    channels: int = 20  # C: width of the first stage
    keep_prob: float = 1.0  # 1 - dropout before the classifier
    drop_path_keep_prob: float = 0.9
    use_aux_head: bool = False

    def __post_init__(self) -> None:
        _check(self.layers > 0, "layers", "must be > 0")
        _check(self.channels > 0, "channels", "must be > 0")
        _check(0.0 < self.keep_prob <= 1.0, "keep_prob", "must be in (0, 1]")
        _check(0.0 < self.drop_path_keep_prob <= 1.0, "drop_path_keep_prob", "must be in (0, 1]")


@dataclass(frozen=True)
class OptimConfig:
    """SGD with momentum, cosine learning rate per epoch, global grad-norm clip."""

    epochs: int = 150
    lr_max: float = 0.025
    lr_min: float = 0.001
    momentum: float = 0.9
    weight_decay: float = 3e-4
    grad_clip: float = 5.0  # 0 disables clipping
    aux_weight: float = 0.4

    def __post_init__(self) -> None:
        _check(self.epochs >= 0, "optim.epochs", "must be >= 0")
        _check(self.lr_max > 0, "optim.lr_max", "must be > 0")
        _check(0.0 <= self.lr_min <= self.lr_max, "optim.lr_min", "must be in [0, lr_max]")
        _check(0.0 <= self.momentum < 1.0, "optim.momentum", "must be in [0, 1)")
        _check(self.weight_decay >= 0, "optim.weight_decay", "must be >= 0")
        _check(self.grad_clip >= 0, "optim.grad_clip", "must be >= 0")
        _check(self.aux_weight >= 0, "optim.aux_weight", "must be >= 0")


@dataclass(frozen=True)
class RerankConfig:
    """Final selection of a search: short stand-alone training of the top archs (§4.1)."""

    top_k: int = 5  # 0 skips the rerank: the supernet's top archs are the result
    batch_size: int = 64
    model: NetworkConfig = dataclasses.field(
        default_factory=lambda: NetworkConfig(
            layers=3, channels=20, keep_prob=0.6, drop_path_keep_prob=0.8, use_aux_head=True
        )
    )
    optim: OptimConfig = dataclasses.field(default_factory=lambda: OptimConfig(epochs=10))

    def __post_init__(self) -> None:
        _check(self.top_k >= 0, "rerank.top_k", "must be >= 0")
        _check(self.batch_size > 0, "rerank.batch_size", "must be > 0")


@dataclass(frozen=True)
class SearchConfig:
    """NAO-WS search, PyTorch V1 recipe (nao-spec §4.1); defaults are the paper's."""

    space: str = "cnn"
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    supernet: NetworkConfig = dataclasses.field(default_factory=NetworkConfig)
    optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)
    controller: ControllerConfig = dataclasses.field(default_factory=ControllerConfig)
    rerank: RerankConfig = dataclasses.field(default_factory=RerankConfig)
    pool_size: int = 600
    eval_every: int = 30  # epochs between pool evaluations; the last epoch is always one
    score_batches: int = 1  # fixed valid batches (of data.eval_batch_size) scoring every arch
    precision: Precision = "auto"
    seed: int = 0

    def __post_init__(self) -> None:
        _check(self.pool_size >= 2, "pool_size", "must be >= 2 (the controller needs a range)")
        _check(self.eval_every > 0, "eval_every", "must be > 0")
        _check(self.score_batches > 0, "score_batches", "must be > 0")
        _check(self.optim.epochs > 0, "optim.epochs", "must be > 0 in a search")
        _check(self.precision in ("auto", "fp32", "bf16"), "precision", "auto|fp32|bf16")


@dataclass(frozen=True)
class TrainConfig:
    """Final training of one architecture, NAO_V1 CIFAR recipe (nao-spec §6.1)."""

    data: DataConfig = dataclasses.field(
        default_factory=lambda: DataConfig(
            train_portion=1.0, batch_size=128, cutout=16, eval_split="test"
        )
    )
    model: NetworkConfig = dataclasses.field(
        default_factory=lambda: NetworkConfig(
            layers=6, channels=36, keep_prob=0.6, drop_path_keep_prob=0.8, use_aux_head=True
        )
    )
    optim: OptimConfig = dataclasses.field(
        default_factory=lambda: OptimConfig(epochs=600, lr_min=0.0)
    )
    eval_every: int = 1  # epochs between evaluations on data.eval_split; the last always
    precision: Precision = "auto"
    seed: int = 0

    def __post_init__(self) -> None:
        _check(self.eval_every > 0, "eval_every", "must be > 0")
        _check(self.precision in ("auto", "fp32", "bf16"), "precision", "auto|fp32|bf16")
