"""``nao.search.tabular(job_id)``: NAO, random search or evolution over a tabulated benchmark.

The job's config (``jobs.search_tabular``) names the table, the strategy, the signal and report
columns, the query budget and the seed. The strategy (``nao_core.search.strategies``) queries
a ``TabularEvaluator`` through ``_Recorder``, which every ``FLUSH_EVERY`` queries (or
``progress_interval_s``) upserts the queried architectures (``score_tabular`` = the signal),
records the ``best_signal`` series (step = queries), updates progress and reads the job's
status, stopping the search once it is ``cancelling``.

What the controller learned (``nao`` only; the recorder is the strategy's ``RoundObserver``):
an architecture's ``pool_id`` is its query number (1-based) and its ``round`` the strategy's
round that queried it (0 = the random initial pool, r = round r's proposals and random
fill-ins); a proposal also gets ``parent_id`` (the seed's query number) and ``step_size``.
The tabular search has no standing pool, so its evaluation point r + 1 (a ``pool_round``
row per architecture, as NAO-WS numbers them: point 1 before any fit) is what round r queried:
``measured`` = the table's signal, ``predicted`` = the controller's prediction when it
proposed the architecture (None for random ones). The calibration of point r + 1 thus
compares round r's controller with the table on its own proposals, and the lineage join
(point = round + 1) finds each proposal's prediction.

NAO's controller is kept after every round (``controllers/round-NNN.pt`` in the job's run
folder, recorded as a ``controller`` checkpoint), and a warm start's controller and pool
(``jobs.query.warm_start``) are handed to ``run_nao``.

A run is deterministic from its seed, so a re-delivered task simply runs again: rows are
upserts by (job, canonical hash) and metrics by (job, name, step), nothing is duplicated.
"""

from __future__ import annotations

import time
from typing import Any

from celery import Task
from celery.utils.log import get_task_logger
from sqlalchemy.orm import Session, sessionmaker

from jobs.search_tabular import TABLES, TASK, table_path
from store import repository
from store.db import session_scope
from store.models import Job, JobStatus
from store.settings import get_settings
from store.storage import run_dir
from worker.app import celery_app
from worker.controllers import warm_start
from worker.lifecycle import JobTask, db, run_job
from worker.progress import record_controller
from worker.settings import get_worker_settings

logger = get_task_logger(__name__)

FLUSH_EVERY = 25  # queries between writes (and status checks)
_EVALUATORS: dict[tuple[str, str], Any] = {}  # one parse of a table per worker process


class _Stopped(Exception):
    """The job was cancelled: unwinds the strategy."""


def _evaluator(name: str, signal: str) -> Any:
    from nao_core.evaluator.tabular import TabularEvaluator
    from nao_core.search_space import create_search_space

    path = table_path(name, get_settings().resolved_data_dir())
    key = (str(path), signal)
    if key not in _EVALUATORS:
        _EVALUATORS[key] = TabularEvaluator(path, create_search_space(TABLES[name].space), signal)
    return _EVALUATORS[key]


class _Recorder:
    """An evaluator over the table that writes what the strategy queries as it goes, and the
    ``RoundObserver`` of ``nao`` (see the module docstring)."""

    def __init__(
        self, inner: Any, factory: sessionmaker[Session], job_id: int, budget: int
    ) -> None:
        self.inner, self.space = inner, inner.space
        self.factory, self.job_id, self.budget = factory, job_id, budget
        self.interval_s = get_worker_settings().progress_interval_s
        self.queries = 0
        self.best: tuple[float, Any] | None = None
        self._rows: list[dict[str, Any]] = []
        self._metrics: dict[int, float] = {}
        self._points: dict[int, list[dict[str, Any]]] = {}  # evaluation point -> pool_round rows
        self._last = time.monotonic()
        self.round, self.observed = 0, False  # observed: the strategy reports its rounds
        self._proposed: dict[str, Any] = {}  # canonical hash -> this round's RoundProposal

    def on_round(self, round: int, proposals: Any) -> None:
        self.round, self.observed = round, True
        self._proposed = {self.space.canonical_hash(p.arch): p for p in proposals}

    def evaluate(self, arch: Any) -> float:
        score = float(self.inner.evaluate(arch))
        self.queries += 1
        key = self.space.canonical_hash(arch)
        proposal = self._proposed.get(key)
        self._rows.append(
            {
                "arch": self.space.to_str(arch),
                "canonical_hash": key,
                "pool_id": self.queries,
                "round": self.round,
                "parent_id": None if proposal is None else proposal.parent + 1,
                "step_size": None if proposal is None else proposal.step_size,
                "score_tabular": score,
            }
        )
        if self.observed:  # a nao run: its rounds are evaluation points
            predicted = None if proposal is None else proposal.predicted
            self._points.setdefault(self.round + 1, []).append(
                {"pool_id": self.queries, "predicted": predicted, "measured": score}
            )
        if self.best is None or score > self.best[0]:
            self.best = (score, arch)
            self._metrics[self.queries] = score
        due = len(self._rows) >= FLUSH_EVERY or time.monotonic() - self._last >= self.interval_s
        if due or self.queries >= self.budget:
            self.flush()
        return score

    def flush(self) -> None:
        """Write the pending rows, the best-so-far series and progress; stop if cancelling."""
        self._last = time.monotonic()
        if self.best is not None:
            self._metrics[self.queries] = self.best[0]
        with session_scope(self.factory) as s:
            job = repository.get_job(s, self.job_id)
            assert job is not None
            if self._rows:
                repository.upsert_architectures(s, job, self._rows)
            for point, rows in self._points.items():
                repository.record_pool_round(s, self.job_id, point, rows)
            for step, value in self._metrics.items():
                repository.record_metrics(s, self.job_id, step, {"best_signal": value})
            progress = min(self.queries / max(self.budget, 1), 1.0) * 0.99
            repository.update_job(
                s, self.job_id, current=self.queries, total=self.budget, progress=progress
            )
            status = job.status
        self._rows, self._metrics, self._points = [], {}, {}
        if status in (JobStatus.CANCELLING, JobStatus.CANCELLED):
            raise _Stopped


def _strategy_config(method: str, data: dict[str, Any] | None) -> Any:
    from nao_core.config import EvolutionConfig, NaoConfig, from_dict

    cls = {"nao": NaoConfig, "evolution": EvolutionConfig}.get(method)
    return None if cls is None or data is None else from_dict(cls, data)


def _search(job: Job) -> tuple[JobStatus, dict[str, Any] | None]:
    from nao_core.search.strategies import create_strategy

    cfg = job.config
    method, budget, seed = cfg["strategy"], int(cfg["budget"]), int(cfg["seed"])
    table = _evaluator(cfg["table"], cfg["signal"])
    table.check_column(cfg["report"])
    factory = db()
    with session_scope(factory) as s:
        repository.update_job(s, job.id, phase="queries", total=budget, current=0)
    recorder = _Recorder(table, factory, job.id, budget)
    strategy = create_strategy(method)
    hooks: dict[str, Any] = _nao_hooks(job, recorder) if method == "nao" else {}
    strategy_cfg = _strategy_config(method, cfg["strategy_config"])
    try:
        oracle = strategy(recorder, budget, seed, strategy_cfg, **hooks)
    except _Stopped:
        logger.info("job=%d cancelled after %d queries", job.id, recorder.queries)
        return JobStatus.CANCELLED, None
    recorder.flush()
    if recorder.best is None:
        raise RuntimeError("the search queried no architecture")
    signal, arch = recorder.best
    space = table.space
    with db()() as s:
        row = repository.find_architecture(s, job.id, space.canonical_hash(arch))
        best_id = row.id if row else None
    result = {
        "method": method,
        "table": cfg["table"],
        "queries": oracle.used,
        "signal": cfg["signal"],
        "report": cfg["report"],
        "best": {
            "architecture_id": best_id,
            "arch": space.to_str(arch),
            "signal": signal,
            "report": table.metric(arch, cfg["report"]),
        },
        "optimum": {"signal": table.best(cfg["signal"]), "report": table.best(cfg["report"])},
    }
    if cfg.get("warm_start"):
        result["warm_start"] = cfg["warm_start"]
    if method == "nao":  # what changes the controller's numbers (it runs on the CPU)
        import torch

        from nao_core.utils.provenance import numerics

        result["numerics"] = {**numerics(torch.device("cpu"), strategy_cfg), "seed": seed}
    return JobStatus.SUCCEEDED, result


def _nao_hooks(job: Job, recorder: _Recorder) -> dict[str, Any]:
    """What ``run_nao`` is given besides the table: the recorder hears its rounds, each
    round's controller is kept (``controllers/round-NNN.pt`` in the job's run folder, then a
    ``controller`` checkpoint), and a warm start's controller (and pool) is where it starts."""
    from nao_core.controller.bundle import controller_path, save_bundle

    folder = run_dir(get_settings(), job.id, "search")

    def keep(round: int, bundle: Any) -> None:
        path = save_bundle(bundle, controller_path(folder, round))
        with session_scope(db()) as s:
            record_controller(s, job.id, round, path)

    start, start_pool = warm_start(job)
    hooks: dict[str, Any] = {"observer": recorder, "on_controller": keep}
    if start is not None:
        hooks.update(start=start, start_pool=start_pool)
    return hooks


@celery_app.task(name=TASK, base=JobTask, bind=True)
def run_tabular_search(self: Task, job_id: int) -> str:
    return run_job(job_id, _search)
