"""Checks and steps every job kind shares: a request's names and overrides become a
``nao_core`` config here, every bad value refused with the field it came from, and a job row
is committed before its task is sent (a worker never sees an uncommitted id)."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.orm import Session

from jobs import limits, owner
from jobs.errors import InvalidInput, Unavailable
from nao_core import catalog
from nao_core.config import apply_overrides
from nao_core.errors import InvalidConfig, UnknownName
from nao_core.presets import get_preset, list_presets
from nao_core.search_space import list_search_spaces
from store import broker, repository
from store.models import Job, JobStatus, utcnow
from store.redact import redact_paths
from store.settings import get_settings

logger = logging.getLogger(__name__)

# Preset families per space ("rnn" reads search-rnn/NAME, train-rnn/NAME; nao_core.presets).
_FAMILY = {"rnn": "-rnn"}


def check_space(space: str) -> None:
    if space not in list_search_spaces():
        known = ", ".join(list_search_spaces())
        raise InvalidInput("space", f"unknown space {space!r}; known: {known}")


def check_runnable(space: str, runnable: tuple[str, ...], what: str) -> None:
    if space not in runnable:
        raise InvalidInput(
            "space", f"space {space!r} has no {what} yet; supported: {', '.join(runnable)}"
        )


def check_dataset(dataset: str | None, space: str | None = None) -> None:
    if dataset is not None:
        limits.check_dataset_name(dataset, "dataset", space)


def check_installed(dataset: str, field: str = "dataset") -> None:
    """Refuse a job whose dataset is not in the server's data directory now, rather than
    accept it and fail it in the worker; the answer says how to install it."""
    try:
        catalog.require(dataset, get_settings().resolved_data_dir())
    except catalog.DataNotInstalled as exc:  # the folder as $NAO_DATA_DIR, as in job rows
        raise InvalidInput(field, redact_paths(str(exc))) from None


def preset_names(family: str) -> list[str]:
    """The preset names of ``family`` (``train``, ``search-rnn``, ``nao``, …), sorted."""
    return sorted(p.split("/", 1)[1] for p in list_presets() if p.startswith(f"{family}/"))


def preset(family: str, name: str) -> Any:
    try:
        return get_preset(f"{family}/{name}")
    except UnknownName:
        known = ", ".join(preset_names(family))
        raise InvalidInput("preset", f"unknown preset {name!r}; known: {known}") from None


def space_preset(kind: str, space: str, name: str, dataset: str | None = None) -> Any:
    """The ``kind`` preset (search, train) named ``name`` for ``space``; WikiText-2 trainings
    prefer the ``NAME-wt2`` recipe when there is one (``nao_core.presets.train_preset``)."""
    family = kind + _FAMILY.get(space, "")
    if kind == "train" and dataset == "wikitext2" and f"{name}-wt2" in preset_names(family):
        name = f"{name}-wt2"
    return preset(family, name)


def apply(cfg: Any, values: dict[str, Any], field: str) -> Any:
    """``apply_overrides`` with errors naming ``field`` (``overrides.<key>`` for overrides);
    no override may name a folder or file."""
    if field == "overrides":
        limits.check_override_names(values)
    try:
        return apply_overrides(cfg, values)
    except InvalidConfig as exc:
        key, _, why = str(exc).partition(": ")
        name = f"{field}.{key}" if field == "overrides" else field or key
        raise InvalidInput(name, why or str(exc)) from None


def apply_search_request(cfg: Any, body: Any, dataset_key: str, budget_key: str) -> Any:
    """A search preset with the request's overrides, then its own fields (space, dataset,
    seed, budget: the config keys ``dataset_key`` and ``budget_key``), each error naming the
    field of the request it came from; the result is held to the admission limits."""
    check_override_keys(body.overrides, {"space", dataset_key, "seed"})
    cfg = apply(cfg, body.overrides, "overrides")
    named = {
        ("space", "space"): body.space,
        (dataset_key, "dataset"): body.dataset,
        ("seed", "seed"): body.seed,
        (budget_key, "budget"): body.budget,
    }
    where = limits.sources(body.overrides)
    for (key, field), value in named.items():
        if value is not None:
            cfg = apply(cfg, {key: value}, field)
            where[key] = field
    limits.check_config(cfg, where, body.space)
    return cfg


def check_override_keys(overrides: dict[str, Any], reserved: set[str]) -> None:
    for key in overrides:
        if key in reserved:
            raise InvalidInput(f"overrides.{key}", "set by its own field of the request")


def submit(session: Session, job: Job, task: str, queue: str) -> Job:
    """Commit the job, then send ``task(job.id)`` to ``queue``; a broker that cannot take it
    fails the job at once (it must not stay queued forever) and answers 503. A token at its
    cap of unfinished jobs is refused first (429, ``jobs.owner``)."""
    owner.check_capacity(session, job.created_by)
    session.add(job)
    session.commit()
    try:
        broker.enqueue(task, job.id, queue)
    except Exception as exc:
        repository.update_job(
            session,
            job.id,
            status=JobStatus.FAILED,
            error_type=type(exc).__name__,
            error_message=redact_paths(f"could not enqueue: {exc}"),
            finished_at=utcnow(),
        )
        session.commit()
        raise Unavailable(f"job {job.id} could not be queued: {exc}") from exc
    logger.info("job=%d kind=%s queued", job.id, job.kind)
    return job
