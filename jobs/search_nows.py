"""Search without weight sharing (``"method": "nao"`` on cnn, cnn-large, rnn; nao-spec §5).

The request becomes a ``NaoSearchConfig`` (preset ``nao-search/<name>``, ``nao-search-rnn``
for rnn, plus overrides), stored as ``{"method": "nao", "search": {...}, "max_parallel": n,
"max_gpu_hours": h}``, and the job is sent as ``nao.search.plan``. The worker
(``worker.search_nows``) fans the candidates out as tasks of their own, so a lost worker's
candidate is re-delivered alone and the job is never re-sent as a whole.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from jobs import common, limits, query
from jobs.errors import InvalidInput, NotFound
from jobs.kind import Kind
from jobs.requests import SearchCreate
from jobs.search_ws import check_trained_search
from nao_core.config import CORPUS_NAMES, to_dict
from store import candidates, repository
from store.models import Job, JobKind, JobStatus, utcnow

PLAN, CANDIDATE, ROUND = "nao.search.plan", "nao.search.candidate", "nao.search.round"
# Spaces whose candidates ``run_train`` can train (it dispatches "rnn" to the LM training).
SPACES = ("cnn", "cnn-large", "rnn")


class NoWeightSharingSearch(Kind):
    name = "search-nao"
    row_kind = JobKind.SEARCH
    method = "nao"
    task = PLAN
    runner = "worker.search_nows"
    resumable = False  # its candidates and rounds are tasks of their own

    def accepts(self, body: SearchCreate) -> bool:
        return body.method == "nao"

    def create(self, session: Session, body: SearchCreate, owner_id: int | None) -> Job:
        body = check_trained_search(body)
        limits.check_gpu_hours(body.max_gpu_hours)
        common.check_runnable(body.space, SPACES, "search without weight sharing")
        rnn = body.space == "rnn"
        if rnn:
            if body.dataset is not None and body.dataset not in CORPUS_NAMES:
                known = ", ".join(CORPUS_NAMES)
                raise InvalidInput("dataset", f"unknown corpus {body.dataset!r}; known: {known}")
        else:
            common.check_dataset(body.dataset)
        assert body.preset is not None
        cfg = common.preset("nao-search-rnn" if rnn else "nao-search", body.preset)
        cfg = common.apply_search_request(cfg, body, "candidate.data.dataset", "max_candidates")
        if cfg.max_candidates and cfg.max_candidates < 2:
            raise InvalidInput("budget", "must be >= 2 (the controller needs a range)")
        where = limits.sources(body.overrides)
        if body.budget is not None:
            where["max_candidates"] = "budget"
        limits.check_candidates(cfg, where)
        common.check_installed(cfg.candidate.data.dataset)
        ctrl = to_dict(cfg.controller)
        warm = query.warm_start(session, body.warm_start, body.space, self.method, ctrl)
        job = Job(
            kind=JobKind.SEARCH,
            space=body.space,
            dataset=cfg.candidate.data.dataset,
            preset=body.preset,
            config={
                "method": self.method,
                "search": to_dict(cfg),
                "max_parallel": body.max_parallel,
                "max_gpu_hours": body.max_gpu_hours,
                **({"warm_start": warm} if warm else {}),
            },
            request=body.model_dump(),
            created_by=owner_id,
        )
        return common.submit(session, job, PLAN, self.queue)

    def stop(self, session: Session, job: Job) -> list[str]:
        """Cancel the queued candidates too; with none running, the search is cancelled at
        once (else the last running one settles it). Returns their task ids to revoke."""
        super().stop(session, job)
        ids = candidates.cancel_waiting(session, job.id)
        if job.status == JobStatus.CANCELLING and candidates.count_running(session, job.id) == 0:
            job.status, job.finished_at = JobStatus.CANCELLED, utcnow()
        return ids


def round_progress(session: Session, job: Job) -> dict[str, Any]:
    """Candidates done / queued / running (and pending, cancelled) per round."""
    tally = candidates.counts(session, job.id)
    return {
        "job_id": job.id,
        "method": job.config.get("method", "nao-ws"),
        "round": job.rounds,
        "phase": job.phase,
        "max_parallel": job.config.get("max_parallel"),
        "gpu_hours": candidates.trained_seconds(session, job.id) / 3600.0,
        "rounds": [{"round": r, **tally[r]} for r in sorted(tally)],
    }


def get_round_progress(session: Session, job_id: int) -> dict[str, Any]:
    job = repository.get_job(session, job_id)
    if job is None or job.kind != JobKind.SEARCH:
        raise NotFound(f"search {job_id} not found")
    return round_progress(session, job)
