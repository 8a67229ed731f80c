"""A fitted controller kept after its search: weights, target scale, space and pool in one file.

A search fits its controller once per round; ``ControllerBundle`` holds what a later question
to that controller needs (``nao_core.controller.queries``): the space (rebuilt from the
registry by name), the ``ControllerConfig`` that shapes the model, the weights of every
ensemble member, the scale that maps the predictor's [0, 1] output back to the pool's scores,
the round, the pool it was fitted on (architectures in text form and raw scores, higher
better) and free ``meta`` (dataset, method, search or run information).

Files are ``controllers/round-NNN.pt`` in a run folder, written atomically through
``engine.checkpoint`` as plain tensors, numbers, strings, lists and dicts (``kind:
"controller"``), so ``torch.load(..., weights_only=True)`` reads them and loading one can
never run code.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nao_core.config import ControllerConfig, from_dict, to_dict
from nao_core.controller.errors import (
    ControllerCheckpointError,
    IncompatibleController,
    SpaceMismatch,
)
from nao_core.controller.model import Controller
from nao_core.engine.checkpoint import load_checkpoint, save_checkpoint
from nao_core.errors import InvalidConfig, MissingData, UnknownName
from nao_core.search_space import create_search_space
from nao_core.search_space.base import Arch, SearchSpace

KIND, VERSION = "controller", 1
CONTROLLERS_DIR = "controllers"
_ROUND_FILE = re.compile(r"^round-(\d+)\.pt$")


@dataclass(frozen=True)
class TargetScale:
    """How pool scores became the predictor's [0, 1] targets, and the way back.

    ``minmax``: target = (score - lo) / (hi - lo); back: lo + p (hi - lo). ``rank``: target =
    mean rank / (n - 1); back: the pool's sorted scores interpolated at p (n - 1), so a
    prediction maps to the score that would hold that rank in the pool.
    """

    transform: str
    lo: float
    hi: float
    sorted_scores: tuple[float, ...] = ()  # for "rank"

    @classmethod
    def fit(cls, scores: Sequence[float], transform: str) -> TargetScale:
        values = np.sort(np.asarray(scores, dtype=np.float64))
        ranked = tuple(float(v) for v in values) if transform == "rank" else ()
        return cls(transform, float(values[0]), float(values[-1]), ranked)

    def to_score(self, target: np.ndarray | float) -> np.ndarray:
        p = np.clip(np.asarray(target, dtype=np.float64), 0.0, 1.0)
        if self.transform == "rank":
            n = len(self.sorted_scores)
            if n < 2:
                return np.full_like(p, self.lo)
            return np.interp(p * (n - 1), np.arange(n), np.asarray(self.sorted_scores))
        if self.hi - self.lo < 1e-12:  # all-equal scores were fitted as 0.5
            return np.full_like(p, self.lo)
        return self.lo + p * (self.hi - self.lo)

    def to_dict(self) -> dict[str, Any]:
        return {
            "transform": self.transform,
            "lo": self.lo,
            "hi": self.hi,
            "sorted_scores": list(self.sorted_scores),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TargetScale:
        return cls(
            str(data["transform"]),
            float(data["lo"]),
            float(data["hi"]),
            tuple(float(v) for v in data["sorted_scores"]),
        )


@dataclass(frozen=True, eq=False)  # members hold tensors: compare by identity
class ControllerBundle:
    """One round's fitted controller (an ensemble of ``len(members)`` >= 1) and its pool.

    Attributes:
        space: Registered name of the search space (``create_search_space``).
        controller: The config the members were built and fitted with.
        members: Each member's ``state_dict`` (CPU tensors).
        target: The target normalisation of the fit.
        round: Controller round, 1-based: round r's controller proposed round r's archs.
        pool_archs: The fitted pool in text form (``space.to_str``), in fit order.
        pool_scores: Their raw scores, higher better.
        meta: Free JSON-able information (dataset, method, search or run).
        space_config: Constructor config of the space; the registered spaces take none.
    """

    space: str
    controller: ControllerConfig
    members: tuple[dict[str, torch.Tensor], ...]
    target: TargetScale
    round: int
    pool_archs: tuple[str, ...]
    pool_scores: tuple[float, ...]
    meta: dict[str, Any] = field(default_factory=dict)
    space_config: dict[str, Any] = field(default_factory=dict)

    def search_space(self) -> SearchSpace:
        return create_search_space(self.space)

    def pool(self) -> list[Arch]:
        space = self.search_space()
        return [space.parse(text) for text in self.pool_archs]

    def build_controllers(self) -> list[Controller]:
        """The members as ``Controller``s in eval mode. Module initialisation draws from
        torch's global generator; it runs on a private copy, so callers' streams stay put."""
        space = self.search_space()
        out = []
        with torch.random.fork_rng(devices=[]):
            for state in self.members:
                c = Controller(space, self.controller)
                c.load_state_dict(state)
                out.append(c.eval())
        return out


def bundle_from_controllers(
    space: SearchSpace,
    controllers: Sequence[Controller],
    archs: Sequence[Arch],
    scores: Sequence[float],
    round: int,
    meta: dict[str, Any] | None = None,
) -> ControllerBundle:
    """A bundle of ``controllers`` as they are now, fitted on ``archs``/``scores``.

    Copies the weights (the search keeps training its controllers) and touches no random
    generator, so a search that keeps bundles runs exactly as one that does not.
    """
    if not controllers:
        raise ValueError("a controller bundle needs at least one member")
    cfg = controllers[0].cfg
    members = tuple(
        {k: v.detach().to("cpu", copy=True) for k, v in c.state_dict().items()} for c in controllers
    )
    return ControllerBundle(
        space=space.name,
        controller=cfg,
        members=members,
        target=TargetScale.fit(scores, cfg.target_transform),
        round=int(round),
        pool_archs=tuple(space.to_str(a) for a in archs),
        pool_scores=tuple(float(s) for s in scores),
        meta=_plain(meta or {}),
    )


def _plain(meta: dict[str, Any]) -> dict[str, Any]:
    """``meta`` as JSON types only (a weights-only load reads nothing else)."""
    try:
        return json.loads(json.dumps(meta))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"controller bundle meta must be JSON-able: {exc}") from exc


def save_bundle(bundle: ControllerBundle, path: str | Path) -> Path:
    """Write ``bundle`` to ``path`` atomically; returns the path."""
    space = bundle.search_space()
    payload = {
        "kind": KIND,
        "version": VERSION,
        "space": {
            "name": bundle.space,
            "config": dict(bundle.space_config),
            "length": space.length,
            "vocab_size": space.vocab_size,
            "group": space.group,
        },
        "controller_config": to_dict(bundle.controller),
        "members": [dict(m) for m in bundle.members],
        "target": bundle.target.to_dict(),
        "round": bundle.round,
        "pool": {"archs": list(bundle.pool_archs), "scores": list(bundle.pool_scores)},
        "meta": _plain(bundle.meta),
    }
    save_checkpoint(path, payload)
    return Path(path)


def load_bundle(path: str | Path, map_location: str | torch.device = "cpu") -> ControllerBundle:
    """Read a file written by ``save_bundle``.

    Raises:
        MissingData: If there is no file at ``path``.
        ControllerCheckpointError: If the file is not a controller checkpoint, or its space is
            unknown here or has another token layout than the one it was fitted on.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingData(f"controller checkpoint {path} not found")
    try:
        payload = load_checkpoint(path, map_location=map_location)
    except Exception as exc:  # torch's unpickler raises anything on a file it cannot read
        raise ControllerCheckpointError(f"{path} is not a controller checkpoint") from exc
    if payload.get("kind") != KIND:
        kind = payload.get("kind", "unknown")
        raise ControllerCheckpointError(
            f"{path} is not a controller checkpoint (it holds a {kind!r} checkpoint)"
        )
    try:
        bundle = _bundle_from_payload(payload)
    except (KeyError, TypeError, ValueError, InvalidConfig) as exc:
        raise ControllerCheckpointError(f"{path}: malformed controller checkpoint: {exc}") from exc
    _check_space(path, payload["space"])
    try:
        bundle.build_controllers()  # weights that do not fit the model fail here, not later
    except RuntimeError as exc:
        raise ControllerCheckpointError(
            f"{path}: weights do not fit the controller: {exc}"
        ) from exc
    return bundle


def _bundle_from_payload(payload: dict[str, Any]) -> ControllerBundle:
    pool = payload["pool"]
    return ControllerBundle(
        space=str(payload["space"]["name"]),
        controller=from_dict(ControllerConfig, payload["controller_config"]),
        members=tuple(dict(m) for m in payload["members"]),
        target=TargetScale.from_dict(payload["target"]),
        round=int(payload["round"]),
        pool_archs=tuple(str(a) for a in pool["archs"]),
        pool_scores=tuple(float(s) for s in pool["scores"]),
        meta=dict(payload.get("meta") or {}),
        space_config=dict(payload["space"].get("config") or {}),
    )


def _check_space(path: Path, saved: dict[str, Any]) -> None:
    try:
        space = create_search_space(str(saved["name"]))
    except UnknownName as exc:
        raise ControllerCheckpointError(f"{path}: {exc}") from exc
    layout = {k: saved.get(k) for k in ("length", "vocab_size", "group")}
    here = {"length": space.length, "vocab_size": space.vocab_size, "group": space.group}
    if layout != here:
        raise ControllerCheckpointError(
            f"{path}: space {space.name!r} was fitted with tokens {layout}, this installation "
            f"has {here}"
        )


# --- where a run keeps its controllers ------------------------------------------------------


def controller_path(run_dir: str | Path, round: int) -> Path:
    """``run_dir/controllers/round-NNN.pt``: the controller of round ``round``."""
    return Path(run_dir) / CONTROLLERS_DIR / f"round-{round:03d}.pt"


def list_controllers(run_dir: str | Path) -> list[tuple[int, Path]]:
    """(round, path) of every controller file in a run folder, by round."""
    folder = Path(run_dir) / CONTROLLERS_DIR
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _ROUND_FILE.match(p.name))]
    return sorted(found)


def latest_controller(run_dir: str | Path) -> Path:
    """The last round's controller file of a run folder.

    Raises:
        MissingData: If the folder holds no controller (a search without one, or none yet).
    """
    found = list_controllers(run_dir)
    if not found:
        raise MissingData(
            f"{run_dir} holds no controller ({CONTROLLERS_DIR}/round-*.pt): the search has "
            "not fitted one yet, or its method trains none"
        )
    return found[-1][1]


# --- warm start ------------------------------------------------------------------------------

_SHAPE_FIELDS = ("hidden_size", "mlp_layers", "mlp_hidden_size")


def check_warm_start(bundle: ControllerBundle, space: SearchSpace, cfg: ControllerConfig) -> None:
    """Raise unless ``bundle``'s weights fit a run over ``space`` with controller ``cfg``.

    Raises:
        SpaceMismatch: If the bundle was fitted on another space.
        IncompatibleController: If its hidden sizes or MLP differ from ``cfg``'s.
    """
    if bundle.space != space.name:
        raise SpaceMismatch(
            f"warm start: the controller was fitted on space {bundle.space!r}, this search "
            f"runs on {space.name!r}"
        )
    differ = [
        f"{name} {getattr(bundle.controller, name)} != {getattr(cfg, name)}"
        for name in _SHAPE_FIELDS
        if getattr(bundle.controller, name) != getattr(cfg, name)
    ]
    if differ:
        raise IncompatibleController(
            "warm start: the controller's shape differs from this search's controller config "
            f"(controller.{'; controller.'.join(differ)})"
        )


def warm_start_controllers(bundle: ControllerBundle, controllers: Sequence[Controller]) -> None:
    """Load the bundle's weights into ``controllers``: member i % k into controller i, so a
    run with a larger ensemble than the bundle's starts its extra members from the same ones."""
    for i, c in enumerate(controllers):
        c.load_state_dict(bundle.members[i % len(bundle.members)])


def warm_start_record(bundle: ControllerBundle, pool: bool) -> dict[str, Any]:
    """What a run records about where it started from (its result and provenance)."""
    return {
        "round": bundle.round,
        "space": bundle.space,
        "members": len(bundle.members),
        "pool": bool(pool),
        "pool_size": len(bundle.pool_archs),
        "meta": _plain(bundle.meta),
    }


def best_first(bundle: ControllerBundle) -> list[Arch]:
    """The bundle's pool, best measured score first (ties in fit order)."""
    order = sorted(range(len(bundle.pool_scores)), key=lambda i: (-bundle.pool_scores[i], i))
    pool = bundle.pool()
    return [pool[i] for i in order]
