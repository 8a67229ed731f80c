"""Job lifecycle: validate → create → commit → enqueue; cancel. No HTTP types here.

User input becomes a nao_core config here, so every bad value is refused with the field it
came from before anything is stored or queued.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.orm import Session

from api import queue, repository
from api.errors import Conflict, InvalidInput, NotFound, Unavailable
from api.models import Job, JobKind, JobStatus, utcnow
from api.schemas import EvaluationCreate, SearchCreate, TrainingCreate
from nao_core.config import (
    CORPUS_NAMES,
    DATASET_NAMES,
    IMAGE_DATASET_NAMES,
    apply_overrides,
    is_corpus,
    to_dict,
)
from nao_core.errors import InvalidArchitecture, InvalidConfig, UnknownName
from nao_core.presets import get_preset
from nao_core.search_space import create_search_space, list_search_spaces
from nao_core.search_space.named import get_named_arch

logger = logging.getLogger(__name__)

TASKS = {
    JobKind.SEARCH: "nao.search.run",
    JobKind.TRAIN: "nao.train.final",
    JobKind.EVAL: "nao.eval.checkpoint",
}


# Spaces nao_core can run end to end today: the weight-sharing search has a supernet only for
# "cnn" (``nao_core.evaluator.supernet.create_supernet_evaluator``) and final training builds
# CNNs and LMs. nb201 is searched on its tabular file (``api.tabular``, routed first).
SEARCH_SPACES = ("cnn", "rnn")
TRAIN_SPACES = ("cnn", "cnn-large", "rnn")
# Preset families per space ("rnn" reads search-rnn/NAME, train-rnn/NAME; nao_core.presets).
_FAMILY = {"rnn": "-rnn"}


def _check_runnable(space: str, field: str, runnable: tuple[str, ...], what: str) -> None:
    if space not in runnable:
        raise InvalidInput(
            field, f"space {space!r} has no {what} yet; supported: {', '.join(runnable)}"
        )


def _preset(kind: str, name: str) -> Any:
    try:
        return get_preset(f"{kind}/{name}")
    except UnknownName:
        known = sorted(p.split("/", 1)[1] for p in _preset_names(kind))
        raise InvalidInput(
            "preset", f"unknown preset {name!r}; known: {', '.join(known)}"
        ) from None


def _preset_names(kind: str) -> list[str]:
    from nao_core.presets import list_presets

    return [p for p in list_presets() if p.startswith(f"{kind}/")]


def _check_space(space: str) -> None:
    if space not in list_search_spaces():
        known = ", ".join(list_search_spaces())
        raise InvalidInput("space", f"unknown space {space!r}; known: {known}")


def _check_dataset(dataset: str | None, space: str | None = None) -> None:
    if dataset is not None and dataset not in DATASET_NAMES:
        known = ", ".join(DATASET_NAMES)
        raise InvalidInput("dataset", f"unknown dataset {dataset!r}; known: {known}")
    if dataset is not None and space is not None and is_corpus(dataset) != (space == "rnn"):
        fits = CORPUS_NAMES if space == "rnn" else IMAGE_DATASET_NAMES
        raise InvalidInput(
            "dataset", f"space {space!r} runs on {', '.join(fits)}, not on {dataset!r}"
        )


def _space_preset(kind: str, space: str, name: str, dataset: str | None = None) -> Any:
    """The ``kind`` preset (search, train) named ``name`` for ``space``; WikiText-2 trainings
    prefer the ``NAME-wt2`` recipe when there is one (``nao_core.presets.train_preset``)."""
    family = kind + _FAMILY.get(space, "")
    if kind == "train" and dataset == "wikitext2" and f"{family}/{name}-wt2" in _all_presets():
        name = f"{name}-wt2"
    return _preset(family, name)


def _all_presets() -> set[str]:
    from nao_core.presets import list_presets

    return set(list_presets())


def _apply(cfg: Any, values: dict[str, Any], field: str) -> Any:
    """``apply_overrides`` with errors naming ``field`` (``overrides.<key>`` for overrides)."""
    try:
        return apply_overrides(cfg, values)
    except InvalidConfig as exc:
        key, _, why = str(exc).partition(": ")
        name = f"{field}.{key}" if field == "overrides" else field or key
        raise InvalidInput(name, why or str(exc)) from None


def _check_override_keys(overrides: dict[str, Any], reserved: set[str]) -> None:
    for key in overrides:
        if key in reserved:
            raise InvalidInput(f"overrides.{key}", "set by its own field of the request")


MAX_TRAINING_BUDGET = 10_000  # supernet epochs or trained candidates


def create_search(session: Session, body: SearchCreate) -> Job:
    _check_space(body.space)
    from api import tabular

    if body.space in tabular.TABULAR_SPACES:  # before method "nao": NAO over the table
        return tabular.create_tabular_search(session, body)
    if body.method not in (None, "nao-ws", "nao"):
        raise InvalidInput(
            "method", f"space {body.space!r} is searched with nao-ws or nao, not {body.method!r}"
        )
    for field in ("table", "signal", "report"):
        if getattr(body, field) is not None:
            raise InvalidInput(field, f"only used by tabular spaces ({tabular.TABULAR_SPACES[0]})")
    if body.budget is not None and body.budget > MAX_TRAINING_BUDGET:
        raise InvalidInput("budget", f"must be <= {MAX_TRAINING_BUDGET} for space {body.space!r}")
    body = body.model_copy(
        update={"method": body.method or "nao-ws", "preset": body.preset or "tiny"}
    )
    if body.method == "nao":
        from api import nows

        return nows.create_nao_search(session, body)
    if body.max_parallel is not None or body.max_gpu_hours is not None:
        raise InvalidInput("method", "max_parallel and max_gpu_hours need method 'nao'")
    _check_space(body.space)
    _check_runnable(body.space, "space", SEARCH_SPACES, "weight-sharing search")
    _check_dataset(body.dataset, body.space)
    cfg = _space_preset("search", body.space, body.preset)
    named: dict[str, Any] = {"space": body.space}
    if body.dataset is not None:
        named["data.dataset"] = body.dataset
    if body.seed is not None:
        named["seed"] = body.seed
    if body.budget is not None:
        named["optim.epochs"] = body.budget
    _check_override_keys(body.overrides, {"space", "data.dataset", "seed"})
    cfg = _apply(cfg, body.overrides, "overrides")
    for key, value in named.items():
        field = {"data.dataset": "dataset", "optim.epochs": "budget"}.get(key, key)
        cfg = _apply(cfg, {key: value}, field)
    job = Job(
        kind=JobKind.SEARCH,
        space=body.space,
        dataset=cfg.data.dataset,
        preset=body.preset,
        config=to_dict(cfg),
        request=body.model_dump(),
    )
    return _submit(session, job)


def create_training(session: Session, body: TrainingCreate) -> Job:
    arch_row = None
    if body.architecture_id is not None:
        arch_row = repository.get_architecture(session, body.architecture_id)
        if arch_row is None:
            raise NotFound(f"architecture {body.architecture_id} not found")
        space, arch = arch_row.space, arch_row.arch
    elif body.arch_name is not None:
        try:
            space, parsed = get_named_arch(body.arch_name)
        except UnknownName as exc:
            raise InvalidInput("arch_name", str(exc)) from None
        arch = create_search_space(space).to_str(parsed)
    else:
        _check_space(body.space)
        _check_runnable(body.space, "space", TRAIN_SPACES, "final training")
        space = body.space
        try:
            s = create_search_space(space)
            arch = s.to_str(s.parse(body.arch or ""))
        except InvalidArchitecture as exc:
            raise InvalidInput("arch", str(exc)) from None
    dataset = body.dataset or (arch_row.dataset if arch_row else None)
    _check_dataset(dataset, space)
    cfg = _space_preset("train", space, body.preset, dataset)
    cfg = _apply(cfg, body.overrides, "overrides")
    if dataset is not None:
        cfg = _apply(cfg, {"data.dataset": dataset}, "dataset")
    if body.seed is not None:
        cfg = _apply(cfg, {"seed": body.seed}, "seed")
    job = Job(
        kind=JobKind.TRAIN,
        space=space,
        dataset=cfg.data.dataset,
        preset=body.preset,
        config={"space": space, "arch": arch, "train": to_dict(cfg)},
        request=body.model_dump(),
        architecture_id=arch_row.id if arch_row else None,
    )
    return _submit(session, job)


def create_evaluation(session: Session, body: EvaluationCreate) -> Job:
    ckpt = repository.get_checkpoint(session, body.checkpoint_id)
    if ckpt is None:
        raise NotFound(f"checkpoint {body.checkpoint_id} not found")
    source = repository.get_job(session, ckpt.job_id)
    dataset = source.dataset if source else None
    _check_dataset(body.dataset)
    if body.dataset is not None and body.dataset != dataset:
        raise InvalidInput("dataset", f"the checkpoint was trained on {dataset!r}")
    job = Job(
        kind=JobKind.EVAL,
        space=source.space if source else None,
        dataset=dataset,
        config={"checkpoint_id": ckpt.id, "split": body.split},
        request=body.model_dump(),
        checkpoint_id=ckpt.id,
        architecture_id=ckpt.architecture_id,
    )
    return _submit(session, job)


def task_route(kind: str, config: dict[str, Any] | None) -> tuple[str, str] | None:
    """The task that runs a job of ``kind`` with ``config``, and its queue (gpu, default).

    None for the jobs no single task holds, which a worker must never re-queue as a whole: a
    sweep (its runs are ordinary trainings) and a search without weight sharing (its
    candidates are tasks of their own, re-delivered one by one; the plan task only opens a
    round, and no heartbeat covers the row while the candidates train).
    """
    method = (config or {}).get("method")
    if kind == JobKind.SEARCH and method == "tabular":
        from api import tabular

        return tabular.TASK, tabular.QUEUE
    if kind == JobKind.SWEEP or (kind == JobKind.SEARCH and method == "nao"):
        return None
    return TASKS[JobKind(kind)], "gpu"


def _submit(session: Session, job: Job, task: str | None = None) -> Job:
    """Commit the job, then enqueue it (``task`` on the gpu queue, else the job's own route):
    a worker never sees an uncommitted id."""
    session.add(job)
    session.commit()
    route = (task, "gpu") if task else task_route(job.kind, job.config)
    assert route is not None, f"job {job.id} of kind {job.kind} has no task of its own"
    try:
        queue.enqueue(route[0], job.id, route[1])
    except Exception as exc:  # broker down: the job must not stay queued forever
        repository.update_job(
            session,
            job.id,
            status=JobStatus.FAILED,
            error_type=type(exc).__name__,
            error_message=f"could not enqueue: {exc}",
            finished_at=utcnow(),
        )
        session.commit()
        raise Unavailable(f"job {job.id} could not be queued: {exc}") from exc
    logger.info("job=%d kind=%s queued", job.id, job.kind)
    return job


def cancel_job(session: Session, job_id: int) -> Job:
    job = repository.get_job(session, job_id, lock=True)
    if job is None:
        raise NotFound(f"job {job_id} not found")
    if job.kind == JobKind.SWEEP:  # no worker runs a sweep: cancel its runs instead
        from api import sweeps

        session.rollback()
        return sweeps.cancel_sweep(session, job_id)
    if repository.is_finished(job.status):
        raise Conflict(f"job {job_id} is already {job.status}")
    if job.status == JobStatus.QUEUED:
        job.status, job.finished_at = JobStatus.CANCELLED, utcnow()
    elif job.status == JobStatus.RUNNING:
        job.status = JobStatus.CANCELLING  # the worker stops at the next epoch
    revoke: list[str] = []
    if job.config.get("method") == "nao":
        from api import nows

        revoke = nows.cancel_candidates(session, job)
    session.commit()
    if revoke:
        from api import nows

        nows.revoke(revoke)
    return job
