"""Searches without weight sharing spread over every GPU worker (``jobs.search_nows``).

Three thin tasks drive ``nao_core.search.nows`` over the job's run folder:

* ``nao.search.plan(job_id)`` opens the search (random initial pool), writes one
  ``search_candidate`` row per candidate of the round and dispatches them;
* ``nao.search.candidate(job_id, pool_id)`` trains one candidate (resuming its own
  checkpoint), writes its score (``search_candidate`` and an ``architecture`` row with
  ``score_trained``) as soon as it is known, dispatches the next pending candidate and, when it
  is the round's last, sends the round's controller step;
* ``nao.search.round(job_id, round)`` records the round's scores, fits the controller and
  proposes the next round (new rows, dispatched), or finishes the job. It also writes what
  the controller learned: the round's candidates as evaluation point ``round + 1``
  (``pool_round``: the prediction each proposal was made with vs its trained score) and
  the proposals' step sizes on their architecture rows.

Instead of a Celery chord (which needs a result backend and hangs on a lost chord member),
the gather is the database: every candidate's completion and the round check happen under
the job's row lock, so exactly one completion sees the round complete and flips the job's
phase to ``controller``. A lost worker's message is re-delivered (``acks_late``,
``task_reject_on_worker_lost``) and re-runs that candidate from its last epoch; a row is
counted once, whatever the number of deliveries, because ``(job, pool_id)`` is unique and
a ``done`` row is never recounted. Each row records the message id that owns it, so a
duplicate message (a send repeated after a crash) finds another owner and does nothing.

Messages are sent *inside* the transaction that marks the rows queued, before its commit: a
receiver blocks on the row lock until the commit, and if the commit never happens the rows
stay pending with no owner, so the receiver claims them itself (nothing is lost, nothing
hangs). ``max_parallel`` bounds queued + running candidates of a search; ``max_gpu_hours``
ends the search after the round in which the candidates' summed training time passes it.

A candidate's folder is held under an OS lock (``flock``, dropped by the kernel when the
process dies, kill -9 included) while it trains: a message the broker re-delivers while its
first worker is still alive (a visibility timeout shorter than the candidate) finds the lock
taken and retries later instead of training the same folder twice. ``flock`` is per host;
workers on several hosts sharing one storage need the visibility timeout above the longest
candidate (the default, 48 h, is).

Cancellation: the API marks the search ``cancelling``, cancels its pending and queued rows
and revokes their messages; a running candidate sees the status at its next epoch
(``CandidateReporter.should_stop``), and the last one to stop marks the search cancelled.
"""

from __future__ import annotations

import fcntl
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from celery import Task
from celery.utils.log import get_task_logger
from sqlalchemy.orm import Session

from jobs.search_nows import CANDIDATE, PLAN, ROUND
from nao_core.errors import NaoCoreError
from store import broker, repository
from store import candidates as cand_repo
from store.db import session_scope
from store.models import CandidateStatus, Job, JobStatus, utcnow
from store.settings import get_settings
from store.storage import run_dir
from worker.app import celery_app
from worker.controllers import warm_start
from worker.lifecycle import JobTask, db, fail_job, finish_job, set_threads, start_job
from worker.progress import record_controller
from worker.settings import get_worker_settings

logger = get_task_logger(__name__)

PHASE_CANDIDATES, PHASE_CONTROLLER = "candidates", "controller"
RETRY_BUSY_S = 30


def _config(job: Job) -> Any:
    from nao_core.config import NaoSearchConfig, from_dict

    return from_dict(NaoSearchConfig, job.config["search"])


def _run_dir(job_id: int) -> Path:
    return run_dir(get_settings(), job_id, "search")


def _send(name: str, args: list[Any], task_id: str) -> None:
    broker.send(name, args, broker.GPU, task_id)


def _dispatch(s: Session, job: Job) -> int:
    """Send pending candidates up to ``max_parallel``; the caller holds the job lock."""
    limit = job.config.get("max_parallel")
    sent = cand_repo.claim_pending(s, job.id, int(limit) if limit else None)
    for pool_id, task_id in sent:
        _send(CANDIDATE, [job.id, pool_id], task_id)
    return len(sent)


def _open_round(s: Session, job: Job, round: int, plan: list[Any]) -> None:
    rows = [
        {"round": c.round, "pool_id": c.id, "arch": c.arch, "parent_id": c.parent} for c in plan
    ]
    cand_repo.add_candidates(s, job.id, rows)
    repository.update_job(
        s, job.id, rounds=round, phase=PHASE_CANDIDATES, current=0, total=len(plan)
    )
    s.flush()
    _dispatch(s, job)


# --- nao.search.plan -----------------------------------------------------------------------------


@celery_app.task(name=PLAN, base=JobTask, bind=True)
def plan_search(self: Task, job_id: int) -> str:
    from nao_core.search.nows import NaoSearch

    job = start_job(job_id)
    if job is None:
        return "skipped"
    set_threads()
    start, start_pool = warm_start(job)  # read when the search is created, kept in its state
    search = NaoSearch.open(_config(job), _run_dir(job_id), start=start, start_pool=start_pool)
    with session_scope(db()) as s:
        locked = repository.get_job(s, job_id, lock=True)
        if locked is None or locked.status != JobStatus.RUNNING:
            return "skipped"
        if cand_repo.round_candidates(s, job_id, search.round):
            _dispatch(s, locked)  # a re-delivered plan: the rows exist
        else:
            _open_round(s, locked, search.round, search.plan_round())
    logger.info("job=%d round=%d planned", job_id, search.round)
    return "planned"


# --- nao.search.candidate ------------------------------------------------------------------------


class CandidateReporter:
    """``Callback`` of one candidate: epoch progress on its row; stops when the job is
    cancelled (polled at most every ``poll_s``)."""

    def __init__(self, job_id: int, pool_id: int, poll_s: float) -> None:
        self.job_id, self.pool_id, self.poll_s = job_id, pool_id, poll_s
        self._last_poll, self._stop = 0.0, False

    def on_phase(self, name: str, total: int) -> None:
        pass

    def on_epoch_end(self, epoch: int, metrics: Any) -> None:
        with session_scope(db()) as s:
            row = cand_repo.get_candidate(s, self.job_id, self.pool_id)
            if row is not None:
                row.epoch = epoch

    def on_pool_scored(self, round: int, pool: Any) -> None:
        pass

    def on_proposals(self, round: int, archs: Any) -> None:
        pass

    def should_stop(self) -> bool:
        import time

        now = time.monotonic()
        if not self._stop and now - self._last_poll >= self.poll_s:
            self._last_poll = now
            with db()() as s:
                status = repository.get_job_status(s, self.job_id)
            self._stop = status != JobStatus.RUNNING
        return self._stop


def _claim(job_id: int, pool_id: int, task_id: str) -> tuple[Job, str] | None:
    """Mark the candidate running under this message; None when there is nothing to do."""
    with session_scope(db()) as s:
        job = repository.get_job(s, job_id, lock=True)  # always job, then candidate rows
        row = cand_repo.get_candidate(s, job_id, pool_id, lock=True)
        if row is None or job is None:
            return None
        if row.status in (CandidateStatus.DONE, CandidateStatus.CANCELLED):
            return None  # a re-delivery after it was recorded: counted once
        if row.task_id not in (None, task_id):
            return None  # a duplicate message; another one owns the row
        if job.status != JobStatus.RUNNING:
            row.status, row.finished_at = CandidateStatus.CANCELLED, utcnow()
            _settle_cancel(s, job_id)
            return None
        row.status, row.task_id = CandidateStatus.RUNNING, task_id
        row.attempts += 1
        row.worker, row.started_at = socket.gethostname(), row.started_at or utcnow()
        s.flush()
        s.expunge(job)
        return job, row.arch


def _settle_cancel(s: Session, job_id: int) -> None:
    """A cancelling job becomes cancelled once none of its candidates runs."""
    job = repository.get_job(s, job_id, lock=True)
    if job is None or job.status != JobStatus.CANCELLING:
        return
    cand_repo.cancel_waiting(s, job_id)
    if cand_repo.count_running(s, job_id) == 0:
        finish_job(s, job, JobStatus.CANCELLED)
        logger.info("job=%d cancelled", job_id)


@contextmanager
def _exclusive(folder: Path) -> Iterator[bool]:
    """An OS lock on ``folder`` (released when the process dies, even by kill -9): True when
    this process holds it, False when another live process trains this candidate."""
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


@celery_app.task(name=CANDIDATE, base=JobTask, bind=True)
def train_candidate(self: Task, job_id: int, pool_id: int) -> str:
    from nao_core.search.nows import candidate_dir

    folder = candidate_dir(_run_dir(job_id), pool_id)
    with _exclusive(folder) as mine:
        if not mine:
            # The broker re-delivered a message whose worker is alive and still training
            # (a visibility timeout shorter than the candidate): check again later, and take
            # over only if that worker has died by then.
            logger.info("job=%d candidate=%d busy elsewhere; retrying later", job_id, pool_id)
            raise self.retry(countdown=RETRY_BUSY_S, max_retries=None)
        try:
            return _train_claimed(self.request.id, job_id, pool_id, folder)
        except NaoCoreError as exc:  # the user's error (config, data): one line, no traceback
            fail_job(job_id, exc)
            return "failed"


def _train_claimed(task_id: str, job_id: int, pool_id: int, folder: Path) -> str:
    from nao_core.search.nows import evaluate_candidate

    claimed = _claim(job_id, pool_id, task_id)
    if claimed is None:
        return "skipped"
    job, arch = claimed
    set_threads()
    ws = get_worker_settings()
    out = evaluate_candidate(
        _config(job),
        arch,
        folder,
        data_dir=get_settings().resolved_data_dir(),
        device=ws.device,
        callback=CandidateReporter(job_id, pool_id, ws.cancel_poll_s),
    )
    if out.status != "completed":
        with session_scope(db()) as s:
            repository.get_job(s, job_id, lock=True)
            row = cand_repo.get_candidate(s, job_id, pool_id, lock=True)
            if row is not None and row.status == CandidateStatus.RUNNING:
                row.status, row.finished_at = CandidateStatus.CANCELLED, utcnow()
            _settle_cancel(s, job_id)
        return "cancelled"
    _record(job_id, pool_id, out)
    return "done"


def _record(job_id: int, pool_id: int, out: Any) -> None:
    """Store the score, the architecture row and progress; dispatch or close the round."""
    from nao_core.search_space import create_search_space

    with session_scope(db()) as s:
        job = repository.get_job(s, job_id, lock=True)  # serializes the round's gather
        row = cand_repo.get_candidate(s, job_id, pool_id, lock=True)
        if job is None or row is None:
            return
        if row.status != CandidateStatus.DONE:
            row.status, row.score, row.seconds = CandidateStatus.DONE, out.score, out.seconds
            row.epoch, row.finished_at = out.epoch, utcnow()
            space = create_search_space(job.space or "cnn")
            arch = {
                "arch": row.arch,
                "canonical_hash": space.canonical_hash(space.parse(row.arch)),
                "pool_id": row.pool_id,
                "round": row.round,
                "parent_id": row.parent_id,
                "params": out.params,
                "score_trained": out.score,
            }
            repository.upsert_architectures(s, job, [arch])
        if job.status == JobStatus.CANCELLING:
            _settle_cancel(s, job_id)
            return
        if job.status != JobStatus.RUNNING or row.round != job.rounds:
            return
        _progress(s, job)
        tally = cand_repo.counts(s, job_id).get(row.round, {})
        left = sum(n for st, n in tally.items() if st != CandidateStatus.DONE)
        if left == 0 and job.phase == PHASE_CANDIDATES:
            repository.update_job(s, job_id, phase=PHASE_CONTROLLER)
            _send(ROUND, [job_id, row.round], f"nao-round-{job_id}-{row.round}")
        else:
            _dispatch(s, job)


def _progress(s: Session, job: Job) -> None:
    tally = cand_repo.counts(s, job.id).get(job.rounds, {})
    done, total = tally.get(CandidateStatus.DONE, 0), sum(tally.values())
    rounds = int(job.config["search"]["rounds"]) + 1
    progress = min((job.rounds + done / max(total, 1)) / rounds, 1.0) * 0.95
    repository.update_job(s, job.id, current=done, total=total, progress=progress)


# --- nao.search.round ----------------------------------------------------------------------------


@celery_app.task(name=ROUND, base=JobTask, bind=True)
def close_round(self: Task, job_id: int, round: int) -> str:
    from nao_core.search.nows import NaoSearch

    with session_scope(db()) as s:
        # the lock waits for the commit of the completion that sent this message
        job = repository.get_job(s, job_id, lock=True)
        if job is None or job.status != JobStatus.RUNNING or job.rounds != round:
            return "skipped"
        rows = cand_repo.round_candidates(s, job_id, round)
        if any(c.status != CandidateStatus.DONE for c in rows):
            return "skipped"  # its sender rolled back; the round's last completion re-sends
        scores = {c.pool_id: c.score for c in rows}
        hours = cand_repo.trained_seconds(s, job_id) / 3600.0
        s.expunge(job)
    set_threads()
    search = NaoSearch.open(_config(job), _run_dir(job_id))
    if search.round == round and not search.done:
        for pool_id, score in scores.items():
            search.record(pool_id, float(score))  # type: ignore[arg-type]
        limit = job.config.get("max_gpu_hours")
        search.finish_round(round, stop=bool(limit) and hours >= float(limit))
        search.save()
    with session_scope(db()) as s:
        locked = repository.get_job(s, job_id, lock=True)
        if locked is None or locked.status != JobStatus.RUNNING or locked.rounds != round:
            return "skipped"  # a duplicate round message, or cancelled meanwhile
        _record_round(s, locked, search, round)
        kept = search.controller_path(round + 1)
        if kept.is_file():  # the controller fitted on this round (none when the search ended)
            record_controller(s, job_id, round + 1, kept)
        best = max(scores.values(), default=None)
        if best is not None:
            repository.record_metrics(s, job_id, round + 1, {"pool_best": float(best)})
        if search.done:
            finish_job(s, locked, JobStatus.SUCCEEDED, _result(search, hours))
            repository.update_job(s, job_id, rounds=round + 1, phase="done")
            logger.info("job=%d finished after round %d", job_id, round)
        else:
            _open_round(s, locked, search.round, search.plan_round())
            logger.info("job=%d round=%d opened", job_id, search.round)
    return "closed"


def _record_round(s: Session, job: Job, search: Any, round: int) -> None:
    """What the controller learned from ``round``: its candidates' predictions vs trained
    scores as evaluation point ``round + 1`` (``pool_round``), and each proposal's step size
    on its architecture row (the candidate rows have no column for it). Idempotent."""
    from worker.progress import pool_rows

    repository.record_pool_round(s, job.id, round + 1, search.round_points(round))
    proposals = [e for e in search.round_entries(round) if e.step_size is not None]
    if proposals:  # their scores are "trained": these rows only add the step size
        repository.upsert_architectures(s, job, pool_rows(search.space, proposals))


def _result(search: Any, hours: float) -> dict[str, Any]:
    result = search.result()
    out = {
        "method": "nao",
        "rounds": result.rounds,
        "candidates": result.candidates,
        "gpu_hours": hours,
        "top": result.top,
    }
    if search.warm_start:
        out["warm_start"] = search.warm_start
    return out
