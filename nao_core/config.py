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
    # "bf16": training matmuls/LSTMs under bf16 autocast with fp32 weights, loss and optimizer
    # (a third faster on AMX CPUs, but slower to converge in short fits); "auto" = fp32
    # (``controller.fit.use_bf16``). The embedding-space step is always fp32.
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    # Model replicas that train slices of each batch in parallel CPU threads (at most one per
    # torch thread), one intra-op thread each, their gradients summed in a fixed order (the
    # same update as one model). The count, not the host, fixes the numerics: a seed gives
    # the same controller and proposals on any machine. 2 keeps a 2-core host's speed
    # (docs/benchmarks.md). 0 = auto, one per torch thread (at most one per 25 rows of a
    # batch): NOT reproducible across hosts (``controller.fit.fit_replicas``).
    replicas: int = 2
    # Decoder attention: "general" (Luong, q = W_in h: NAO_V1's CNN controller) or "dot"
    # (q = h: the NAO-WS RNN controller); both then tanh(W_out [context; h]) (nao-spec §2.2).
    attention: Literal["general", "dot"] = "general"
    # Predictor MLP initialisation: 0 = PyTorch's default (NAO_V1's CNN controller); r > 0 =
    # weights U(-r, r) and zero biases (the NAO-WS RNN controller: 0.04, nao-spec §2.2).
    mlp_init_range: float = 0.0
    # Tokens concatenated into one encoder step: 0 = the space's pairing (input, op) as in
    # NAO_V1 and NAO-WS; 1 = one token per step (the TF NAO RNN EPD, 22/22/22, nao-spec §2.2).
    token_group: int = 0
    # architecture optimisation (nao-spec §3)
    top_seeds: int = 100
    new_archs: int = 300
    max_step_size: int = 50  # eta = 1, 2, ..., max_step_size + 1
    step_escalations: int = 0  # wider eta ranges tried when a round runs dry (0 = authors')
    proposal_order: Literal["step", "predicted"] = "step"
    # Semi-supervised NAO (SemiNAS, Luo et al. 2020), 0 = NAO as published: after each fit,
    # this many random unseen architectures are labelled by the predictor and the controller
    # is fitted again for ``pseudo_epochs`` on the real and the pseudo labels together. The
    # decoder then learns far more architectures than the few evaluated, so moved embeddings
    # decode to new ones instead of collapsing onto the pool (``controller.semi``).
    pseudo_labels: int = 0
    pseudo_epochs: int = 40

    def __post_init__(self) -> None:
        for name in ("hidden_size", "mlp_hidden_size", "batch_size", "epochs", "top_seeds"):
            _check(getattr(self, name) > 0, f"controller.{name}", "must be > 0")
        _check(self.mlp_layers >= 0, "controller.mlp_layers", "must be >= 0")
        _check(self.new_archs >= 0, "controller.new_archs", "must be >= 0")
        _check(self.replicas >= 0, "controller.replicas", "must be >= 0 (0 = auto, per host)")
        _check(self.attention in ("general", "dot"), "controller.attention", "general|dot")
        _check(self.mlp_init_range >= 0, "controller.mlp_init_range", "must be >= 0 (0 = default)")
        _check(self.token_group >= 0, "controller.token_group", "must be >= 0 (0 = the space's)")
        _check(self.max_step_size >= 0, "controller.max_step_size", "must be >= 0")
        _check(self.step_escalations >= 0, "controller.step_escalations", "must be >= 0")
        _check(self.pseudo_labels >= 0, "controller.pseudo_labels", "must be >= 0 (0 = off)")
        _check(self.pseudo_epochs > 0, "controller.pseudo_epochs", "must be > 0")
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
    # JSON's spellings too, as in the API's request bodies: true, false, null
    words = {"true": True, "false": False, "null": None}
    if raw.lower() in words:
        return words[raw.lower()]
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

# ``DATASET_NAMES`` (image datasets and corpora, for torch-free callers such as the API) is
# defined with the RNN configs below; ``tests/api/test_layering.py`` checks it against the data
# registry.

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
    # Order of pool members with equal scores: "random" = a key hashed from the seed, the
    # evaluation point and the arch; "age" = older first (the authors' stable sort).
    tie_break: Literal["random", "age"] = "random"
    precision: Precision = "auto"  # fp32 on CPU and CUDA alike (evaluator/supernet.py says why)
    # On CUDA, replay each architecture's training step from a CUDA graph (engine/graphs.py),
    # keeping at most cuda_graph_cache of them; ignored on a CPU. Off until its GPU tests
    # (tests/nao_core/test_graphs.py) have run on a GPU: a probe of the technique gave 7.5x.
    cuda_graphs: bool = False
    cuda_graph_cache: int = 1024
    # Deterministic kernels (torch.use_deterministic_algorithms, cuDNN deterministic, no
    # benchmark, CUBLAS_WORKSPACE_CONFIG) for the run: repeatable bits on CUDA, at some speed
    # (``nao_core.utils.determinism``). Off by default.
    deterministic: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        _check(self.pool_size >= 2, "pool_size", "must be >= 2 (the controller needs a range)")
        _check(self.eval_every > 0, "eval_every", "must be > 0")
        _check(self.score_batches > 0, "score_batches", "must be > 0")
        _check(self.tie_break in ("random", "age"), "tie_break", "must be 'random' or 'age'")
        _check(self.cuda_graph_cache > 0, "cuda_graph_cache", "must be > 0")
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
    cuda_graphs: bool = False  # on CUDA, replay the training step from a CUDA graph (as above)
    deterministic: bool = False  # as SearchConfig.deterministic
    seed: int = 0

    def __post_init__(self) -> None:
        _check(self.eval_every > 0, "eval_every", "must be > 0")
        _check(self.precision in ("auto", "fp32", "bf16"), "precision", "auto|fp32|bf16")


# --- search without weight sharing (nao-spec §5) ------------------------------------------------


def _candidate_training() -> TrainConfig:
    """nao-spec §5.1 step 2: N=3, F=32, 25 epochs, batch 128, 45k/5k split, lr 0.024 on the
    first quarter of a T=100 cosine (so it ends near 0.0205), weight decay 5e-4, clip 5, drop
    path keep 0.7, aux head 0.4, no cutout, no classifier dropout."""
    return TrainConfig(
        data=DataConfig(train_portion=0.9, batch_size=128, eval_split="valid"),
        model=NetworkConfig(
            layers=3, channels=32, keep_prob=1.0, drop_path_keep_prob=0.7, use_aux_head=True
        ),
        optim=OptimConfig(epochs=25, lr_max=0.024, lr_min=0.0205, weight_decay=5e-4),
    )


def _nao_controller() -> ControllerConfig:
    """The TF NAO CNN EPD (nao-spec §2.2): no MLP, encoder dropout 0.1, batch 50, 1000 epochs,
    no symmetry augmentation (``epd/train.sh`` passes no ``--symmetry``, §5.1 step 4); ~300
    new archs from the top 100 (§3)."""
    return ControllerConfig(mlp_layers=0, encoder_dropout=0.1, batch_size=50, swap_augment=False)


@dataclass(frozen=True)
class NaoSearchConfig:
    """NAO without weight sharing (nao-spec §5): train every candidate on its own, fit the
    controller on all scored candidates, move the top ones, repeat.

    ``rounds`` counts controller rounds after the initial pool (round 0), so ``rounds + 1``
    rounds of candidates are trained; ``max_candidates`` (0 = no limit) caps the candidates
    trained over the whole search; ``step_sizes`` are the fixed eta of the authors'
    ``generate.sh`` runs (10, 20, 30), all decoded in one pass.
    """

    space: str = "cnn-large"
    # TrainConfig for the CNN spaces, RnnTrainConfig for "rnn" (run_train dispatches on space)
    candidate: TrainConfig | RnnTrainConfig = dataclasses.field(default_factory=_candidate_training)
    controller: ControllerConfig = dataclasses.field(default_factory=_nao_controller)
    initial_pool: int = 1000
    rounds: int = 3
    max_candidates: int = 0
    step_sizes: tuple[float, ...] = (10.0, 20.0, 30.0)
    top_k: int = 5  # archs reported as the result's "top"
    tie_break: Literal["random", "age"] = "random"  # as SearchConfig.tie_break
    seed: int = 0

    def __post_init__(self) -> None:
        _check(
            self.initial_pool >= 2, "initial_pool", "must be >= 2 (the controller needs a range)"
        )
        _check(self.tie_break in ("random", "age"), "tie_break", "must be 'random' or 'age'")
        _check(self.rounds >= 0, "rounds", "must be >= 0")
        _check(self.max_candidates >= 0, "max_candidates", "must be >= 0 (0 = no limit)")
        _check(len(self.step_sizes) > 0, "step_sizes", "must not be empty")
        _check(all(s > 0 for s in self.step_sizes), "step_sizes", "must all be > 0")
        _check(self.top_k > 0, "top_k", "must be > 0")
        rnn = self.space == "rnn"
        _check(
            isinstance(self.candidate, RnnTrainConfig) == rnn,
            "candidate",
            "an RNN train config for space 'rnn', a CNN one otherwise",
        )
        if isinstance(self.candidate, TrainConfig):  # LMs always score on the valid split
            _check(
                self.candidate.data.eval_split == "valid",
                "candidate.data.eval_split",
                "must be 'valid': candidates are scored on the validation split",
            )


# --- RNN language models: NAO-WS search on PTB and final training (nao-spec §4.4, §6.4) -------

IMAGE_DATASET_NAMES = ("cifar10", "cifar100", "digits")  # ``nao_core.data.list_datasets()``
# Word-level corpora (``nao_core.data.corpus``) and the folder each is looked up in under a
# data_dir: ``<data_dir>/ptb``, ``<data_dir>/wikitext-2`` or ``data_dir`` itself.
CORPUS_DIRS = {"ptb": "ptb", "wikitext2": "wikitext-2"}
CORPUS_NAMES = tuple(CORPUS_DIRS)
DATASET_NAMES = IMAGE_DATASET_NAMES + CORPUS_NAMES


def is_corpus(dataset: str) -> bool:
    """Whether ``dataset`` is a language-model corpus (else an image dataset)."""
    return dataset in CORPUS_DIRS


@dataclass(frozen=True)
class CorpusConfig:
    """Which corpus a run uses and how it is batchified (nao-spec §4.4, §6.4)."""

    dataset: str = "ptb"
    train_limit: int = 0  # keep only the first n training tokens (0 = all), for quick runs
    eval_limit: int = 0  # keep only the first n valid and test tokens (0 = all)
    batch_size: int = 64  # columns of the training stream
    eval_batch_size: int = 10  # columns of the valid stream
    test_batch_size: int = 1  # columns of the test stream
    bptt: int = 35

    def __post_init__(self) -> None:
        _check(self.dataset in CORPUS_DIRS, "data.dataset", f"must be one of {CORPUS_NAMES}")
        _check(self.train_limit >= 0, "data.train_limit", "must be >= 0")
        _check(self.eval_limit >= 0, "data.eval_limit", "must be >= 0")
        for name in ("batch_size", "eval_batch_size", "test_batch_size", "bptt"):
            _check(getattr(self, name) > 0, f"data.{name}", "must be > 0")


@dataclass(frozen=True)
class RnnModelConfig:
    """Size and dropouts of an RNN LM (supernet or stand-alone); AWD-LSTM's dropout names."""

    nhid: int = 850  # embedding = hidden size (tied decoder)
    dropout: float = 0.75  # locked, on the cell outputs
    dropouth: float = 0.25  # variational, on h_{t-1} and every s_p inside the cell
    dropoutx: float = 0.75  # variational, on x_t inside the cell
    dropouti: float = 0.2  # locked, on the embeddings
    dropoute: float = 0.0  # whole words of the embedding matrix

    def __post_init__(self) -> None:
        _check(self.nhid > 0, "nhid", "must be > 0")
        for name in ("dropout", "dropouth", "dropoutx", "dropouti", "dropoute"):
            _check(0.0 <= getattr(self, name) < 1.0, name, "must be in [0, 1)")


@dataclass(frozen=True)
class RnnOptimConfig:
    """Plain SGD with the lr scaled by seq_len / bptt per window; NT-ASGD in final training.

    ``asgd="nt"``: after each evaluation, switch to averaged SGD once more than ``nonmono``
    evaluations are logged and the valid loss is above the minimum of all but the last
    ``nonmono`` (AWD-LSTM's non-monotone trigger, nao-spec §6.4); ``asgd_after`` > 0 forces
    the switch at the end of that epoch. ``asgd="off"`` never averages (the search).
    """

    epochs: int = 4000
    lr: float = 20.0
    weight_decay: float = 8e-7
    grad_clip: float = 0.25  # 0 disables clipping
    tar_beta: float = 1e-3  # temporal activation regularisation
    ar_alpha: float = 0.0  # activation regularisation
    asgd: Literal["nt", "off"] = "nt"
    nonmono: int = 5
    asgd_after: int = 0

    def __post_init__(self) -> None:
        _check(self.epochs >= 0, "optim.epochs", "must be >= 0")
        _check(self.lr > 0, "optim.lr", "must be > 0")
        _check(self.weight_decay >= 0, "optim.weight_decay", "must be >= 0")
        _check(self.grad_clip >= 0, "optim.grad_clip", "must be >= 0")
        _check(self.tar_beta >= 0, "optim.tar_beta", "must be >= 0")
        _check(self.ar_alpha >= 0, "optim.ar_alpha", "must be >= 0")
        _check(self.asgd in ("nt", "off"), "optim.asgd", "must be 'nt' or 'off'")
        _check(self.nonmono >= 0, "optim.nonmono", "must be >= 0")
        _check(self.asgd_after >= 0, "optim.asgd_after", "must be >= 0")


def _search_optim() -> RnnOptimConfig:
    return RnnOptimConfig(epochs=1000, lr=0.25, weight_decay=5e-7, grad_clip=10.0, asgd="off")


@dataclass(frozen=True)
class RnnRerankConfig:
    """Short stand-alone training of the top archs at the end of an RNN search.

    The NAO-WS RNN code has no rerank (its top 10 go to final training); ours trains each
    candidate with the final recipe (SGD lr 20, clip 0.25, no averaging) at the search's
    width for ``optim.epochs`` and scores it on the valid stream.
    """

    top_k: int = 5  # 0 skips the rerank: the supernet's top archs are the result
    batch_size: int = 64
    model: RnnModelConfig = dataclasses.field(default_factory=lambda: RnnModelConfig(nhid=300))
    optim: RnnOptimConfig = dataclasses.field(
        default_factory=lambda: RnnOptimConfig(epochs=10, weight_decay=5e-7, asgd="off")
    )

    def __post_init__(self) -> None:
        _check(self.top_k >= 0, "rerank.top_k", "must be >= 0")
        _check(self.batch_size > 0, "rerank.batch_size", "must be > 0")


def _rnn_search_controller() -> ControllerConfig:
    # PT NAO-WS RNN row of nao-spec §2.2 and §4.4: MLP 4x200 initialised U(+-0.04) with zero
    # biases, embedding dropout 0.1, dot-product attention, Adam kept across rounds, no
    # symmetry augmentation, eta = 1..30.
    return ControllerConfig(
        mlp_layers=4,
        mlp_dropout=0.0,
        encoder_dropout=0.1,
        swap_augment=False,
        reset_optimizer=False,
        max_step_size=29,
        attention="dot",
        mlp_init_range=0.04,
    )


@dataclass(frozen=True)
class RnnSearchConfig:
    """NAO-WS search of an RNN cell on a corpus (nao-spec §4.4); defaults are the paper's.

    Field names match ``SearchConfig`` where the search loop reads them (``optim.epochs``,
    ``controller``, ``pool_size``, ``eval_every``, ``rerank.top_k``, ``seed``).
    """

    space: str = "rnn"
    data: CorpusConfig = dataclasses.field(
        default_factory=lambda: CorpusConfig(batch_size=256, eval_batch_size=256)
    )
    supernet: RnnModelConfig = dataclasses.field(default_factory=lambda: RnnModelConfig(nhid=300))
    optim: RnnOptimConfig = dataclasses.field(default_factory=_search_optim)
    controller: ControllerConfig = dataclasses.field(default_factory=_rnn_search_controller)
    rerank: RnnRerankConfig = dataclasses.field(default_factory=RnnRerankConfig)
    pool_size: int = 1000
    eval_every: int = 200  # epochs between pool evaluations; the last epoch is always one
    score_batches: int = 1  # fixed bptt windows of the valid stream scoring every arch
    tie_break: Literal["random", "age"] = "random"  # as SearchConfig.tie_break
    average_s0: bool = True  # search cell output = mean(s0..s11), as NAO-WS (nao-spec §8.17)
    # fp32 by default: under bf16 autocast the recurrent state would be rounded at every one
    # of the 35 x 12 highway steps of a window; "auto" / "bf16" are allowed for speed.
    precision: Precision = "fp32"
    deterministic: bool = False  # as SearchConfig.deterministic
    seed: int = 1267

    def __post_init__(self) -> None:
        _check(self.space == "rnn", "space", "an RNN search config is for the 'rnn' space")
        _check(self.pool_size >= 2, "pool_size", "must be >= 2 (the controller needs a range)")
        _check(self.eval_every > 0, "eval_every", "must be > 0")
        _check(self.score_batches > 0, "score_batches", "must be > 0")
        _check(self.tie_break in ("random", "age"), "tie_break", "must be 'random' or 'age'")
        _check(self.optim.epochs > 0, "optim.epochs", "must be > 0 in a search")
        _check(self.precision in ("auto", "fp32", "bf16"), "precision", "auto|fp32|bf16")


@dataclass(frozen=True)
class RnnTrainConfig:
    """Final training of an RNN cell, DARTS/NAO recipe on PTB (nao-spec §6.4).

    WikiText-2 (``train-rnn/paper-wt2``): nhid 700, dropouth 0.15, weight decay 5e-7, 2000
    epochs.
    """

    data: CorpusConfig = dataclasses.field(default_factory=CorpusConfig)
    model: RnnModelConfig = dataclasses.field(default_factory=RnnModelConfig)
    optim: RnnOptimConfig = dataclasses.field(default_factory=RnnOptimConfig)
    eval_every: int = 1  # epochs between valid evaluations (the NT-ASGD trigger reads them)
    precision: Precision = "fp32"  # as RnnSearchConfig.precision
    deterministic: bool = False  # as SearchConfig.deterministic
    seed: int = 1267

    def __post_init__(self) -> None:
        _check(self.eval_every > 0, "eval_every", "must be > 0")
        _check(self.precision in ("auto", "fp32", "bf16"), "precision", "auto|fp32|bf16")


# --- search strategies over any evaluator (nao_core.search.strategies) ---


@dataclass(frozen=True)
class NaoConfig:
    initial_pool: int = 600
    random_per_round: int = 0  # the TF NAO-WS recipe adds 50 fresh random archs each round
    ensemble: int = 1  # controllers trained side by side; >1 ranks proposals by their mean
    # Proposal acquisition (``search.strategies._propose``); 0 and 0 = NAO as published.
    # An ensemble's score for a candidate: mean + acquisition_kappa * std of its members.
    acquisition_kappa: float = 0.0
    # The best this-many seeds' one-token mutations join the decoded candidates, all ranked
    # by the predictor.
    mutation_seeds: int = 0
    controller: ControllerConfig = dataclasses.field(default_factory=ControllerConfig)

    def __post_init__(self) -> None:
        if self.initial_pool < 2:
            raise InvalidConfig("nao.initial_pool: must be >= 2 (the controller needs a range)")
        if self.ensemble < 1:
            raise InvalidConfig("nao.ensemble: must be >= 1")
        if self.random_per_round < 0:
            raise InvalidConfig("nao.random_per_round: must be >= 0")
        if self.mutation_seeds < 0:
            raise InvalidConfig("nao.mutation_seeds: must be >= 0")


@dataclass(frozen=True)
class EvolutionConfig:
    population_size: int = 20
    sample_size: int = 5

    def __post_init__(self) -> None:
        if not 1 <= self.sample_size <= self.population_size:
            raise InvalidConfig("evolution.sample_size: must be in 1..population_size")
