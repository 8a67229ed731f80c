"""Questions to a fitted controller after its search: improve, predict, interpolate.

Every function takes a ``ControllerBundle`` (``controller.bundle``); an ensemble's members are
averaged, and every answer is deterministic for a given input (eval mode, no dropout, greedy
decoding). Scores are on the pool's scale (``TargetScale.to_score`` maps the predictor's
[0, 1] back), higher better.

* ``improve_arch``: NAO's embedding-space step (``controller.improve``, nao-spec §3) from one
  architecture: move its embedding along the predictor's gradient with eta = 1..max_step+1,
  decode, keep the new architectures (not the seed, not in the pool), best predicted first.
  When that range decodes fewer than ``n`` new ones, up to ``ESCALATIONS`` wider ranges (each
  4x the last) are tried, as ``controller.step_escalations`` does in a search. An ensemble
  takes the union of its members' candidates ranked by the members' mean prediction, as a
  search's round does. By default the seed's one-token edits join the candidates (step size
  0) and the predictor ranks them all: from a single seed, a decoder fitted on a search's
  pool decodes few new architectures (docs/benchmarks.md measures both).
* ``predict``: the predicted score, its rank among the pool's measured scores, the ``k``
  nearest measured architectures in embedding space, and an uncertainty (see ``Prediction``).
* ``interpolate``: decode along the straight path between two architectures' embeddings.

Uncertainty (docs/method.md gives the measured calibration). The controller is fitted on its
pool, so its residuals there say little about its error elsewhere. What does: how much the
measured scores of architectures differ from those of their neighbours in the controller's
embedding. For every pool member i we predict its score as the mean of its ``k`` nearest
*other* members (leave-one-out, no refit needed) and divide the absolute error by the
standard deviation s_i of those neighbours' scores (floored at a tenth of the pool's). The
interval for a query x is predicted(x) +- q * s(x), with q the ceil((n+1) level)/n quantile
of those normalised errors (normalised split-conformal, the kNN spread as the difficulty) and
s(x) the spread of the measured scores of x's ``k`` nearest measured architectures: where
measured neighbours disagree, wider. The kNN errors stand in for the controller's own error
off its pool, which a fitted controller cannot measure: an assumption the benchmark checks.
Distances are Euclidean between the unit-norm embeddings, averaged over members. With an
ensemble, the members' standard deviation (``spread``) widens the interval too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from nao_core.controller.bundle import ControllerBundle
from nao_core.controller.errors import InvalidQuery, SpaceMismatch
from nao_core.controller.improve import improve
from nao_core.controller.model import Controller, pool_embedding
from nao_core.errors import InvalidArchitecture
from nao_core.search_space import create_search_space, list_search_spaces
from nao_core.search_space.base import Arch, SearchSpace

MAX_IMPROVE = 100  # proposals per improve
MAX_PREDICT = 1000  # architectures per predict
MAX_STEPS = 100  # points on an interpolation path
MAX_K = 50  # neighbours per prediction
ESCALATIONS = 4  # wider step ranges tried when the default one decodes too few new archs
LEVEL = 0.8  # nominal coverage of the prediction interval
FLOOR_SHARE = 0.1  # a neighbourhood's score spread counts as at least this share of the pool's


@dataclass(frozen=True)
class Improvement:
    arch: Arch  # canonical form
    text: str
    canonical_hash: str
    predicted: float  # score scale
    predicted_normalized: float  # the predictor's [0, 1] output, members' mean
    step_size: float


@dataclass(frozen=True)
class Neighbour:
    pool_index: int  # index into ``bundle.pool_archs``
    arch: str
    score: float  # measured
    distance: float


@dataclass(frozen=True)
class Prediction:
    """One architecture's predicted score and how far to trust it.

    Attributes:
        predicted: Predicted score, the pool's scale.
        rank: Rank of ``predicted`` among the pool's measured scores (1 = better than all).
        neighbours: The ``k`` nearest measured architectures in embedding space.
        distance: Mean distance to them (0 = a measured architecture).
        spread: Standard deviation of the members' predictions (0 for one member).
        interval: (low, high): predicted +- the normalised kNN leave-one-out half-width
            (module docstring), nominal coverage ``level``, widened by ``spread``.
        measured: The measured score when the architecture is in the pool, else None.
    """

    arch: str
    canonical_hash: str
    predicted: float
    predicted_normalized: float
    rank: int
    pool_size: int
    neighbours: tuple[Neighbour, ...]
    distance: float
    spread: float
    interval: tuple[float, float]
    level: float
    measured: float | None


@dataclass(frozen=True)
class InterpolationPoint:
    t: float  # first position on the path (0 = a, 1 = b) that decoded to this arch
    arch: Arch
    text: str
    canonical_hash: str
    predicted: float


# --- validation ----------------------------------------------------------------------------


def resolve_arch(bundle: ControllerBundle, arch: Arch | str) -> Arch:
    """``arch`` (an architecture or its text) as an architecture of the bundle's space.

    Raises:
        SpaceMismatch: If it is an architecture of another registered space.
        InvalidArchitecture: If it is no architecture at all.
    """
    space = bundle.search_space()
    if not isinstance(arch, str):
        try:
            space.validate(arch)
        except InvalidArchitecture as exc:
            raise SpaceMismatch(
                f"{type(arch).__name__} is not an architecture of the controller's space "
                f"{space.name!r}"
            ) from exc
        return arch
    try:
        return space.parse(arch)
    except InvalidArchitecture as exc:
        for other in list_search_spaces():
            if other == space.name:
                continue
            try:
                create_search_space(other).parse(arch)
            except InvalidArchitecture:
                continue
            raise SpaceMismatch(
                f"{arch!r} is an architecture of space {other!r}; the controller's space is "
                f"{space.name!r}"
            ) from exc
        raise


def check_n(n: int) -> int:
    return _check_range("n", n, 1, MAX_IMPROVE)


def check_steps(steps: int) -> int:
    return _check_range("steps", steps, 2, MAX_STEPS)


def check_k(k: int) -> int:
    return _check_range("k", k, 1, MAX_K)


def _check_range(name: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise InvalidQuery(f"{name}: must be an integer in {lo}..{hi}, got {value!r}")
    if not lo <= int(value) <= hi:
        raise InvalidQuery(f"{name}: must be in {lo}..{hi}, got {value}")
    return int(value)


def check_step_sizes(step_sizes: Sequence[float] | None) -> list[float] | None:
    if step_sizes is None:
        return None
    values = list(step_sizes)
    if not 1 <= len(values) <= MAX_IMPROVE:
        raise InvalidQuery(f"step_sizes: 1..{MAX_IMPROVE} values, got {len(values)}")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int | float) or not (0 < v < 1e6):
            raise InvalidQuery(f"step_sizes: each must be a number in (0, 1e6), got {v!r}")
    return [float(v) for v in values]


# --- shared pieces -------------------------------------------------------------------------


def _tokens(space: SearchSpace, archs: Sequence[Arch]) -> torch.Tensor:
    return torch.tensor([space.encode(a) for a in archs], dtype=torch.long).view(-1, space.length)


@torch.no_grad()
def _members_forward(
    controllers: Sequence[Controller], tokens: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per member: predictions (M, B) in [0, 1] and embeddings (M, B, H)."""
    preds, embs = [], []
    for c in controllers:
        _, emb = c.encoder(tokens)
        embs.append(emb)
        preds.append(c.predictor(emb))
    return torch.stack(preds).double(), torch.stack(embs).double()


def _distances(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """Members' mean Euclidean distance between embeddings (M, A, H) and (M, B, H): (A, B)."""
    return torch.cdist(a, b).mean(dim=0).numpy()


# --- improve -------------------------------------------------------------------------------


def improve_arch(
    bundle: ControllerBundle,
    arch: Arch | str,
    n: int,
    step_sizes: Sequence[float] | None = None,
    *,
    neighbours: bool = True,
) -> list[Improvement]:
    """Up to ``n`` new architectures reached from ``arch`` by gradient steps, best predicted
    first: distinct, canonical, neither ``arch`` nor a pool member (module docstring).

    With ``neighbours`` the candidates also hold every one-token edit of ``arch`` (step size
    0): the predictor ranks the gradient step's decodes and the seed's whole neighbourhood
    alike. A decoder fitted on ~100 architectures reaches few new ones from one seed.

    Raises:
        InvalidQuery: If ``n`` is not in 1..100 or a step size is not positive.
        SpaceMismatch, InvalidArchitecture: If ``arch`` is not of the controller's space.
    """
    n, etas = check_n(n), check_step_sizes(step_sizes)
    seed = resolve_arch(bundle, arch)
    space = bundle.search_space()
    controllers = bundle.build_controllers()
    known = {space.canonical_key(a) for a in bundle.pool()} | {space.canonical_key(seed)}
    ranges = [etas] if etas is not None else _default_ranges(bundle)
    found: dict[str, tuple[Arch, float]] = {}  # key -> (arch, step size), in order found
    if neighbours:
        for near in space.one_token_edits(seed):
            key = space.canonical_key(near)
            if key not in known:
                found.setdefault(key, (space.canonical(near), 0.0))
    stepped = 0  # candidates the gradient step found
    for etas_now in ranges:
        for c in controllers:
            for p in improve(c, space, [seed], 10**9, known | set(found), step_sizes=etas_now):
                key = space.canonical_key(p.arch)
                if key not in found:
                    found[key] = (space.canonical(p.arch), p.step_size)
                    stepped += 1
        if stepped >= n:
            break
    if not found:
        return []
    archs = [a for a, _ in found.values()]
    steps = [eta for _, eta in found.values()]
    preds, _ = _members_forward(controllers, _tokens(space, archs))
    mean = preds.mean(dim=0).numpy()
    scores = bundle.target.to_score(mean)
    order = sorted(range(len(archs)), key=lambda i: (-mean[i], i))[:n]
    return [
        Improvement(
            archs[i],
            space.to_str(archs[i]),
            space.canonical_hash(archs[i]),
            float(scores[i]),
            float(mean[i]),
            float(steps[i]),
        )
        for i in order
    ]


def _default_ranges(bundle: ControllerBundle) -> list[list[float]]:
    """eta = 1..max_step+1, then ``ESCALATIONS`` ranges each 4x wider, as many steps."""
    top = bundle.controller.max_step_size + 1
    ranges = [[float(e) for e in range(1, top + 1)]]
    for _ in range(ESCALATIONS):
        last = ranges[-1][-1]
        ranges.append(np.geomspace(last * 1.05, last * 4, len(ranges[0])).tolist())
    return ranges


# --- predict -------------------------------------------------------------------------------


def predict(bundle: ControllerBundle, archs: Sequence[Arch | str], k: int = 5) -> list[Prediction]:
    """Predicted score, pool rank, nearest measured architectures and uncertainty of each.

    Raises:
        InvalidQuery: If there are no or more than 1,000 architectures, or k is not in 1..50.
        SpaceMismatch, InvalidArchitecture: If an architecture is not of the controller's space.
    """
    k = check_k(k)
    if not 1 <= len(archs) <= MAX_PREDICT:
        raise InvalidQuery(f"archs: 1..{MAX_PREDICT} architectures, got {len(archs)}")
    space = bundle.search_space()
    queries = [resolve_arch(bundle, a) for a in archs]
    controllers = bundle.build_controllers()
    pool = bundle.pool()
    pool_scores = np.asarray(bundle.pool_scores, dtype=np.float64)
    k = min(k, len(pool))
    preds, embs = _members_forward(controllers, _tokens(space, queries))
    _, pool_embs = _members_forward(controllers, _tokens(space, pool))
    dist = _distances(embs, pool_embs)  # (Q, P)
    factor, floor = interval_factor(_distances(pool_embs, pool_embs), pool_scores, k)
    mean = preds.mean(dim=0).numpy()
    member_scores = bundle.target.to_score(preds.numpy())  # (M, Q)
    spread = member_scores.std(axis=0) if len(controllers) > 1 else np.zeros(len(queries))
    scores = bundle.target.to_score(mean)
    pool_index = {space.canonical_key(a): i for i, a in enumerate(pool)}
    out = []
    for q, arch in enumerate(queries):
        near = np.argsort(dist[q], kind="stable")[:k]
        d = float(dist[q, near].mean())
        width = factor * max(float(pool_scores[near].std()), floor) + spread[q]
        where = pool_index.get(space.canonical_key(arch))
        out.append(
            Prediction(
                arch=space.to_str(arch),
                canonical_hash=space.canonical_hash(arch),
                predicted=float(scores[q]),
                predicted_normalized=float(mean[q]),
                rank=1 + int((pool_scores > scores[q]).sum()),
                pool_size=len(pool),
                neighbours=tuple(_neighbour(bundle, pool_scores, dist[q], int(i)) for i in near),
                distance=d,
                spread=float(spread[q]),
                interval=(float(scores[q] - width), float(scores[q] + width)),
                level=LEVEL,
                measured=None if where is None else float(pool_scores[where]),
            )
        )
    return out


def _neighbour(bundle: ControllerBundle, scores: np.ndarray, dist: np.ndarray, i: int) -> Neighbour:
    return Neighbour(i, bundle.pool_archs[i], float(scores[i]), float(dist[i]))


def interval_factor(pool_dist: np.ndarray, scores: np.ndarray, k: int) -> tuple[float, float]:
    """(q, floor): q is the conformal ``LEVEL`` quantile over the pool of |y_i - mean of its k
    nearest others| / max(their scores' std, floor), floor = ``FLOOR_SHARE`` x the pool's
    score std (module docstring); q = 0 for a pool too small to hold one out."""
    n = len(scores)
    floor = FLOOR_SHARE * float(np.std(scores))
    k = min(k, n - 1)
    if k < 1 or floor == 0.0:
        return 0.0, floor
    d = pool_dist.copy()
    np.fill_diagonal(d, np.inf)
    near = np.argsort(d, axis=1, kind="stable")[:, :k]  # (P, k)
    err = np.abs(scores - scores[near].mean(axis=1))
    z = err / np.maximum(scores[near].std(axis=1), floor)
    level = min(math.ceil((n + 1) * LEVEL) / n, 1.0)
    return float(np.quantile(z, level, method="higher")), floor


# --- interpolate ---------------------------------------------------------------------------


def interpolate(
    bundle: ControllerBundle, a: Arch | str, b: Arch | str, steps: int
) -> list[InterpolationPoint]:
    """The distinct architectures decoded along the straight path between the embeddings of
    ``a`` and ``b`` at ``steps`` evenly spaced points, in path order.

    Each step's attention memory is (1 - t) e_a + t e_b, normalised per step like the
    embedding-space step, re-pooled into the embedding; the first member decodes the path
    (members have embeddings of their own), the members' mean predicts the scores.

    Raises:
        InvalidQuery: If ``steps`` is not in 2..100.
        SpaceMismatch, InvalidArchitecture: If ``a`` or ``b`` is not of the controller's space.
    """
    steps = check_steps(steps)
    start, end = resolve_arch(bundle, a), resolve_arch(bundle, b)
    space = bundle.search_space()
    controllers = bundle.build_controllers()
    lead = controllers[0]
    ts = torch.linspace(0.0, 1.0, steps)
    with torch.no_grad():
        memory, _ = lead.encoder(_tokens(space, [start, end]))  # (2, T, H)
        path = (1 - ts).view(-1, 1, 1) * memory[0] + ts.view(-1, 1, 1) * memory[1]  # (S, T, H)
        path = torch.nn.functional.normalize(path, dim=-1)
        decoded = lead.decoder.greedy(path, pool_embedding(path), lead.mask).tolist()
    seen: dict[str, int] = {}
    archs: list[Arch] = []
    first_t: list[float] = []
    for i, toks in enumerate(decoded):
        arch = space.canonical(space.decode(toks))
        key = space.canonical_key(arch)
        if key in seen:
            continue
        seen[key] = len(archs)
        archs.append(arch)
        first_t.append(float(ts[i]))
    preds, _ = _members_forward(controllers, _tokens(space, archs))
    scores = bundle.target.to_score(preds.mean(dim=0).numpy())
    return [
        InterpolationPoint(t, arch, space.to_str(arch), space.canonical_hash(arch), float(s))
        for t, arch, s in zip(first_t, archs, scores, strict=True)
    ]
