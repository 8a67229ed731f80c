"""Searches without weight sharing (``"method": "nao"``, issue #6): create, cancel, progress.

Torch-free like the rest of ``api``: the request becomes a ``NaoSearchConfig`` (preset
``nao-search/<name>`` plus overrides), stored in the job row as
``{"method": "nao", "search": {...}, "max_parallel": n, "max_gpu_hours": h}``, and the job is
enqueued as ``nao.search.plan``; the worker fans the candidates out (``worker.nows``).
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.orm import Session

from api import candidates as cand_repo
from api import repository
from api.errors import InvalidInput
from api.models import Job, JobKind, JobStatus, utcnow
from api.schemas import SearchCreate
from nao_core.config import CORPUS_NAMES

logger = logging.getLogger(__name__)

PLAN_TASK = "nao.search.plan"
# Spaces whose candidates ``run_train`` can train (it dispatches "rnn" to the LM training).
NAO_SPACES = ("cnn", "cnn-large", "rnn")


def create_nao_search(session: Session, body: SearchCreate) -> Job:
    from api import services

    services._check_space(body.space)
    services._check_runnable(body.space, "space", NAO_SPACES, "search without weight sharing")
    rnn = body.space == "rnn"
    if rnn:
        if body.dataset is not None and body.dataset not in CORPUS_NAMES:
            known = ", ".join(CORPUS_NAMES)
            raise InvalidInput("dataset", f"unknown corpus {body.dataset!r}; known: {known}")
    else:
        services._check_dataset(body.dataset)
    cfg = services._preset("nao-search-rnn" if rnn else "nao-search", body.preset)
    named: dict[str, Any] = {"space": body.space}
    if body.dataset is not None:
        named["candidate.data.dataset"] = body.dataset
    if body.seed is not None:
        named["seed"] = body.seed
    if body.budget is not None:
        named["max_candidates"] = body.budget
    services._check_override_keys(body.overrides, {"space", "candidate.data.dataset", "seed"})
    cfg = services._apply(cfg, body.overrides, "overrides")
    for key, value in named.items():
        field = {"candidate.data.dataset": "dataset", "max_candidates": "budget"}.get(key, key)
        cfg = services._apply(cfg, {key: value}, field)
    if cfg.max_candidates and cfg.max_candidates < 2:
        raise InvalidInput("budget", "must be >= 2 (the controller needs a range)")
    from nao_core.config import to_dict

    job = Job(
        kind=JobKind.SEARCH,
        space=body.space,
        dataset=cfg.candidate.data.dataset,
        preset=body.preset,
        config={
            "method": "nao",
            "search": to_dict(cfg),
            "max_parallel": body.max_parallel,
            "max_gpu_hours": body.max_gpu_hours,
        },
        request=body.model_dump(),
    )
    return services._submit(session, job, PLAN_TASK)


def cancel_candidates(session: Session, job: Job) -> list[str]:
    """Cancel the queued candidates of a cancelling search; with none running, the search
    is cancelled at once. Returns the task ids to revoke (after the caller's commit)."""
    ids = cand_repo.cancel_waiting(session, job.id)
    if job.status == JobStatus.CANCELLING and cand_repo.count_running(session, job.id) == 0:
        job.status, job.finished_at = JobStatus.CANCELLED, utcnow()
    return ids


def revoke(task_ids: list[str]) -> None:
    """Best effort: workers drop revoked messages; the tasks also check the job's status."""
    from worker.app import get_celery

    try:
        get_celery().control.revoke(task_ids)
    except Exception as exc:  # broker hiccup: the status check in the task still stops them
        logger.warning("revoke of %d candidates failed: %s", len(task_ids), exc)


def round_progress(session: Session, job: Job) -> dict[str, Any]:
    """Candidates done / queued / running (and pending, cancelled) per round."""
    tally = cand_repo.counts(session, job.id)
    return {
        "job_id": job.id,
        "method": job.config.get("method", "nao-ws"),
        "round": job.rounds,
        "phase": job.phase,
        "max_parallel": job.config.get("max_parallel"),
        "gpu_hours": cand_repo.trained_seconds(session, job.id) / 3600.0,
        "rounds": [{"round": r, **tally[r]} for r in sorted(tally)],
    }


def get_round_progress(session: Session, job_id: int) -> dict[str, Any]:
    from api.errors import NotFound

    job = repository.get_job(session, job_id)
    if job is None or job.kind != JobKind.SEARCH:
        raise NotFound(f"search {job_id} not found")
    return round_progress(session, job)
