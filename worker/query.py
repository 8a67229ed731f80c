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
from worker.app import celery_app
from worker.controllers import load_controller
from worker.lifecycle import JobTask, db, run_job

logger = get_task_logger(__name__)

EVAL_PRESET = "tiny"  # the training preset that measures an improved architecture


@celery_app.task(name=TASK, base=JobTask, bind=True)
def run_query(self: Task, job_id: int) -> str:
    return run_job(job_id, _query)


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
    found = improve_arch(
        bundle,
        cfg["arch"],
        int(cfg["n"]),
        step_sizes=cfg.get("step_sizes"),
        neighbours=bool(cfg.get("neighbours", True)),
    )
    proposals = [
        {
            "arch": p.text,
            "canonical_hash": p.canonical_hash,
            "predicted": p.predicted,
            "step_size": p.step_size,
            "parent_architecture_id": job.architecture_id,
        }
        for p in found
    ]
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
        stored = _ids(s, job.id, [p["canonical_hash"] for p in proposals])
    for p in proposals:
        p["architecture_id"] = stored[p["canonical_hash"]]
    result: dict[str, Any] = {"operation": "improve", "seed": cfg["arch"], "proposals": proposals}
    if cfg.get("evaluate"):
        result["evaluation"] = _evaluate(job, proposals)
    return result


def _ids(s: Any, job_id: int, hashes: list[str]) -> dict[str, int]:
    """Architecture ids of a job's rows by canonical hash (one query)."""
    return repository.architecture_ids_by_hash(s, job_id, hashes)


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

    answers = predict(bundle, [a["arch"] for a in cfg["archs"]], k=int(cfg.get("k", 5)))
    space = bundle.search_space()
    neighbours = {n.arch for a in answers for n in a.neighbours}
    hashes = {text: space.canonical_hash(space.parse(text)) for text in neighbours}
    with db()() as s:
        ids = _ids(s, int(cfg["search_id"]), sorted(set(hashes.values())))
    out = []
    for given, a in zip(cfg["archs"], answers, strict=True):
        out.append(
            {
                "arch": a.arch,
                "architecture_id": given["architecture_id"],
                "canonical_hash": a.canonical_hash,
                "predicted": a.predicted,
                "rank": a.rank,
                "pool_size": a.pool_size,
                "measured": a.measured,
                "interval": list(a.interval),
                "level": a.level,
                "distance": a.distance,
                "spread": a.spread,
                "neighbours": [
                    {
                        "arch": n.arch,
                        "architecture_id": ids.get(hashes[n.arch]),
                        "score": n.score,
                        "distance": n.distance,
                    }
                    for n in a.neighbours
                ],
            }
        )
    return {"operation": "predict", "predictions": out}


def _interpolate(bundle: Any, cfg: dict[str, Any]) -> dict[str, Any]:
    from nao_core.controller.queries import interpolate

    points = interpolate(bundle, cfg["from"]["arch"], cfg["to"]["arch"], int(cfg["steps"]))
    path = [
        {"t": p.t, "arch": p.text, "canonical_hash": p.canonical_hash, "predicted": p.predicted}
        for p in points
    ]
    return {"operation": "interpolate", "from": cfg["from"], "to": cfg["to"], "path": path}
