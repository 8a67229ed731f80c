"""``nao.query(job_id)``: ask a search's stored controller (``jobs.query``) and write the answer.

The job's config names the controller checkpoint (picked when the request was checked) and
the operation; the task loads the bundle (kept per process: a query worker answers many
questions of the same controller), runs ``nao_core.controller.queries`` and writes the
answer as the job's result.

``improve`` also stores its proposals as architecture rows of the query job (the space and
dataset of the search, ``score_predictor`` = the predicted score, ``parent_arch_id`` = the seed's
row, ``step_size``), so they can be listed, drawn, trained and improved again like any
architecture. With ``evaluate``, a tabular space's proposals get their table score
(``score_tabular``) right here; other spaces get one ``tiny`` training job each (the cheapest
job that gives a real score), linked in the answer, whose trained score lands on the
proposal's row. Rows are upserts by (job, canonical hash) and the trainings are created
once (their ids are kept in the result), so a re-delivered query repeats nothing.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any

from celery import Task
from celery.utils.log import get_task_logger

from jobs import registry
from jobs.errors import ServiceError
from jobs.query import TASK
from jobs.requests import TrainingCreate
from store import repository
from store.db import session_scope
from store.models import Job, JobStatus
from store.settings import get_settings
from store.storage import job_storage
from worker.app import celery_app
from worker.lifecycle import JobTask, db, run_job

logger = get_task_logger(__name__)

EVAL_PRESET = "tiny"  # the training preset that measures an improved architecture
_BUNDLES: OrderedDict[tuple[str, str], Any] = OrderedDict()  # (path, sha256) -> bundle
_KEEP = 8  # bundles kept per process


@celery_app.task(name=TASK, base=JobTask, bind=True)
def run_query(self: Task, job_id: int) -> str:
    return run_job(job_id, _query)


def load_controller(checkpoint_id: int) -> Any:
    """The controller bundle of a stored checkpoint, loaded once per process and file."""
    from nao_core.controller.bundle import load_bundle

    with db()() as s:
        ckpt = repository.get_checkpoint(s, checkpoint_id)
        if ckpt is None:
            raise LookupError(f"controller checkpoint {checkpoint_id} is gone")
        key, sha = ckpt.path, ckpt.sha256
    path = job_storage(get_settings()).local_path(key)
    cached = _BUNDLES.get((str(path), sha))
    if cached is not None:
        _BUNDLES.move_to_end((str(path), sha))
        return cached
    bundle = load_bundle(Path(path))
    _BUNDLES[(str(path), sha)] = bundle
    while len(_BUNDLES) > _KEEP:
        _BUNDLES.popitem(last=False)
    return bundle


def _query(job: Job) -> tuple[JobStatus, dict[str, Any] | None]:
    cfg = job.config
    bundle = load_controller(int(cfg["checkpoint_id"]))
    operation = cfg["operation"]
    if operation == "improve":
        return JobStatus.SUCCEEDED, _improve(job, bundle)
    if operation == "predict":
        return JobStatus.SUCCEEDED, _predict(bundle, cfg)
    if operation == "interpolate":
        return JobStatus.SUCCEEDED, _interpolate(bundle, cfg)
    raise ValueError(f"unknown query operation {operation!r}")


def _improve(job: Job, bundle: Any) -> dict[str, Any]:
    from nao_core.controller.queries import improve_arch

    cfg = job.config
    space = bundle.search_space()
    seed = space.parse(cfg["arch"])
    found = improve_arch(bundle, seed, int(cfg["n"]), step_sizes=cfg.get("step_sizes"))
    proposals = [_proposal(space, p) for p in found]
    rows = [
        {
            "arch": p["arch"],
            "canonical_hash": p["canonical_hash"],
            "parent_arch_id": job.architecture_id,
            "step_size": p["step_size"],
            "score_predictor": p["predicted"],
        }
        for p in proposals
    ]
    with session_scope(db()) as s:
        row = repository.get_job(s, job.id)
        assert row is not None
        repository.upsert_architectures(s, row, rows)
        for p in proposals:
            stored = repository.find_architecture(s, job.id, p["canonical_hash"])
            assert stored is not None
            p["architecture_id"] = stored.id
            p["parent_architecture_id"] = job.architecture_id
    result: dict[str, Any] = {"operation": "improve", "seed": cfg["arch"], "proposals": proposals}
    if cfg.get("evaluate"):
        result["evaluation"] = _evaluate(job, proposals)
    return result


def _proposal(space: Any, p: Any) -> dict[str, Any]:
    arch = space.parse(p.arch) if isinstance(p.arch, str) else p.arch
    return {
        "arch": space.to_str(arch),
        "canonical_hash": space.canonical_hash(arch),
        "predicted": float(p.predicted),
        "step_size": float(p.step_size),
    }


def _evaluate(job: Job, proposals: list[dict[str, Any]]) -> str:
    """Measure the proposals: from the search's table (tabular spaces) into ``score_tabular``
    and each proposal's ``score``, else one training job each (``training_job_id``)."""
    with db()() as s:
        search = repository.get_job(s, int(job.config["search_id"]))
        assert search is not None
        s.expunge(search)
    if search.config.get("method") == "tabular":
        _table_scores(job, search, proposals)
        return "tabular"
    _trainings(job, proposals)
    return "training"


def _table_scores(job: Job, search: Job, proposals: list[dict[str, Any]]) -> None:
    from worker.search_tabular import _evaluator

    table = _evaluator(search.config["table"], search.config["signal"])
    report = search.config["report"]
    for p in proposals:
        arch = table.space.parse(p["arch"])
        p["score"] = table.evaluate(arch)
        p["report"] = {report: table.metric(arch, report)}
    with session_scope(db()) as s:
        row = repository.get_job(s, job.id)
        assert row is not None
        scored = [
            {"canonical_hash": p["canonical_hash"], "arch": p["arch"], "score_tabular": p["score"]}
            for p in proposals
        ]
        repository.upsert_architectures(s, row, scored)


def _trainings(job: Job, proposals: list[dict[str, Any]]) -> None:
    """One training job per proposal, created once: a re-delivered query finds the ids it
    recorded the first time in its result."""
    with db()() as s:
        previous = (repository.get_job(s, job.id) or job).result or {}
    done = {p["architecture_id"]: p.get("training_job_id") for p in previous.get("proposals", [])}
    for p in proposals:
        if done.get(p["architecture_id"]):
            p["training_job_id"] = done[p["architecture_id"]]
            continue
        body = TrainingCreate(
            architecture_id=p["architecture_id"], preset=EVAL_PRESET, dataset=job.dataset
        )
        try:
            with db()() as s:
                child = registry.create(s, "train", body, job.created_by)
                p["training_job_id"], p["training_url"] = child.id, f"/trainings/{child.id}"
        except ServiceError as exc:  # the owner's cap, a dataset gone: say so, go on
            p["training_error"] = exc.message
        with session_scope(db()) as s:  # recorded as it goes
            repository.update_job(
                s, job.id, result={"operation": "improve", "proposals": proposals}
            )


def _predict(bundle: Any, cfg: dict[str, Any]) -> dict[str, Any]:
    from nao_core.controller.queries import predict

    space = bundle.search_space()
    archs = [space.parse(a["arch"]) for a in cfg["archs"]]
    answers = predict(bundle, archs, k=int(cfg.get("k", 5)))
    out = []
    for given, answer in zip(cfg["archs"], answers, strict=True):
        out.append({**given, **_plain(answer, space)})
    return {"operation": "predict", "predictions": out}


def _interpolate(bundle: Any, cfg: dict[str, Any]) -> dict[str, Any]:
    from nao_core.controller.queries import interpolate

    space = bundle.search_space()
    a, b = space.parse(cfg["from"]["arch"]), space.parse(cfg["to"]["arch"])
    path = interpolate(bundle, a, b, int(cfg["steps"]))
    return {
        "operation": "interpolate",
        "from": cfg["from"],
        "to": cfg["to"],
        "path": [_plain(p, space) for p in path],
    }


def _plain(value: Any, space: Any) -> Any:
    """A query's answer as JSON: dataclasses as dicts, architectures as their text."""
    import dataclasses

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name), space) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _plain(v, space) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v, space) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    try:
        return float(value)  # numpy scalars
    except (TypeError, ValueError):
        return space.to_str(value)
