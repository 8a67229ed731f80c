"""NAO without weight sharing (nao-spec §5): every candidate is trained on its own.

The authors ran it by hand (``NAO/README.md``): train ~1000 architectures for a short budget
(25 epochs, N=3, F=32 for the CNN), score each by its best validation accuracy over the
epochs, fit the EPD on all of them, move the top 100 with eta = 10, 20, 30 to get ~300 new
ones, train those, repeat 2-3 times. Here that loop is split into pure steps over a run
folder, so one process (``run_nao_search``) or many workers (the service's) can drive it:

    search = NaoSearch.open(cfg, run_dir)
    for c in search.plan_round():          # the round's untrained candidates
        r = evaluate_candidate(cfg, c.arch, search.candidate_dir(c.id))   # anywhere, any order
        search.record(c.id, r.score)
    search.finish_round()                  # controller: fit (warm start) + improve; or done
    search.save()

Decisions:

1. The pool accumulates (every trained candidate stays in it); the controller is fitted on
   all of them, created once and warm-started across rounds (nao-spec §2.1), Adam re-created.
2. Proposals are de-duplicated by canonical form against every arch the search ever held,
   so no candidate is trained twice; a round may bring fewer than ``new_archs`` new ones, and
   none ends the search early.
3. Score = the best validation accuracy over the candidate's epochs (``generate_data.py``:
   ``np.min(all_err)``), read from ``scores.json`` that the candidate writes each epoch, so
   a resumed candidate keeps the maxima of its earlier epochs. Language models report
   perplexity; their score is its negative (higher is better everywhere).
4. ``finish_round`` is keyed by the round number and the state is written atomically at the
   end, so a repeated or interrupted call re-does the same step and reaches the same state.
5. What the controller learned: each proposal keeps its step size and the prediction the
   controller made when it proposed it (``PoolEntry.step_size``, ``predicted``; None for the
   random initial pool). The pool accumulates, so a round's evaluation point r + 1 (as NAO-WS
   numbers them) is the candidates of round r: ``round_points(r)`` pairs each one's
   prediction with its trained score. State files written before these fields load with None.

Files in the run folder: ``config.json``, ``state.pt`` (pool, round, controller, RNGs),
``candidates/<id>/`` (a ``run_train`` folder plus ``scores.json`` and ``candidate.json``),
``pool_round<r>.json`` after each round, ``controllers/round-NNN.pt`` (the controller fitted
when round r - 1 closed, ``controller.bundle``), ``result.json`` (pool, top, provenance, warm
start) at the end.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nao_core.config import NaoSearchConfig, to_dict
from nao_core.controller import Controller, improve
from nao_core.controller.bundle import (
    ControllerBundle,
    best_first,
    check_warm_start,
    controller_path,
    list_controllers,
    warm_start_controllers,
    warm_start_record,
)
from nao_core.engine.callbacks import Callback, NullCallback, announce_controller
from nao_core.engine.checkpoint import (
    load_checkpoint,
    numpy_rng_state,
    save_checkpoint,
    set_numpy_rng_state,
    write_json,
)
from nao_core.errors import InvalidConfig, NaoCoreError, TrainingDiverged
from nao_core.search.pool import ArchPool, PoolEntry
from nao_core.search.pool_fit import fit_on_pool, keep_controller
from nao_core.search_space import create_search_space
from nao_core.train import run_train
from nao_core.utils.provenance import provenance

logger = logging.getLogger(__name__)

STATE_FILE, RESULT_FILE, CONFIG_FILE = "state.pt", "result.json", "config.json"
SCORES_FILE, CANDIDATE_FILE = "scores.json", "candidate.json"
CANDIDATES_PHASE = "candidates"  # on_phase name; total = candidates of the round
SOURCE = "trained"
_MAX_SAMPLE_TRIES = 100_000


class RoundNotScored(NaoCoreError):
    """``finish_round`` was called before every candidate of the round had a score."""


@dataclass(frozen=True)
class Candidate:
    """One architecture to train: its pool id (stable within the search) and string form."""

    id: int
    arch: str
    round: int
    parent: int | None = None


@dataclass(frozen=True)
class CandidateResult:
    """Outcome of ``evaluate_candidate``; ``status`` is ``"completed"`` or ``"cancelled"``."""

    status: str
    score: float | None
    epoch: int
    seconds: float
    params: int | None = None
    diverged: bool = False  # the loss became NaN/inf: scored its best epoch, else the floor


@dataclass(frozen=True)
class NaoSearchResult:
    """Outcome of a search; ``status`` is ``"completed"`` or ``"cancelled"``."""

    status: str
    run_dir: str
    rounds: int
    candidates: int
    pool: list[dict[str, Any]] = field(default_factory=list)
    top: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


# --- one candidate -------------------------------------------------------------------------------


# Score of a candidate that diverged before any validation: below every real model (images:
# no correct answer; language models: perplexity 1e6, worse than uniform over any vocabulary).
FLOOR_ACCURACY, FLOOR_LM = 0.0, -math.log(1e6)


def _score(metrics: Mapping[str, float]) -> float | None:
    """Higher is better: accuracy, or for language models minus the mean validation NLL
    (-log perplexity), the score NAO-WS and the trained architectures use too."""
    if "eval_acc" in metrics:
        return float(metrics["eval_acc"])
    if "eval_loss" in metrics and "eval_ppl" in metrics:
        return -float(metrics["eval_loss"])
    if "eval_ppl" in metrics:
        return -math.log(float(metrics["eval_ppl"]))
    return None


class _BestScore(NullCallback):
    """Forwards to ``inner`` and keeps the best epoch score in ``path`` (written each epoch)."""

    def __init__(self, path: Path, inner: Callback) -> None:
        self.path, self.inner = path, inner
        self.scores: dict[str, float] = (
            json.loads(path.read_text()) if path.is_file() else {}
        )  # epoch -> score

    def best(self) -> float | None:
        return max(self.scores.values()) if self.scores else None

    def on_phase(self, name: str, total: int) -> None:
        self.inner.on_phase(name, total)

    def on_epoch_end(self, epoch: int, metrics: Mapping[str, float]) -> None:
        score = _score(metrics)
        if score is not None:
            self.scores[str(epoch)] = score
            write_json(self.path, self.scores)
        self.inner.on_epoch_end(epoch, metrics)

    def should_stop(self) -> bool:
        return self.inner.should_stop()


def evaluate_candidate(
    cfg: NaoSearchConfig,
    arch: str,
    out_dir: str | Path,
    *,
    data_dir: str | Path | None = None,
    device: str | torch.device = "auto",
    callback: Callback | None = None,
) -> CandidateResult:
    """Train ``arch`` with the search's candidate budget in ``out_dir``; its validation score.

    Idempotent and resumable: a finished candidate returns its recorded result without
    training; an interrupted one resumes from its last epoch (``run_train``).
    """
    out = Path(out_dir)
    if (out / CANDIDATE_FILE).is_file():
        done = json.loads((out / CANDIDATE_FILE).read_text())
        return CandidateResult(**done)
    best = _BestScore(out / SCORES_FILE, callback or NullCallback())
    try:
        trained = run_train(
            arch,
            cfg.space,
            cfg.candidate,
            out_dir=out,
            data_dir=data_dir,
            device=device,
            callback=best,
        )
    except TrainingDiverged as exc:
        # One unstable architecture must not fail the search: it ranks last (or at its best
        # epoch before the NaN), and the controller learns from that.
        score = best.best()
        if score is None:
            score = FLOOR_LM if cfg.space == "rnn" else FLOOR_ACCURACY
        logger.warning("candidate in %s diverged (%s); score %.4f", out, exc, score)
        result = CandidateResult("completed", float(score), len(best.scores), 0.0, diverged=True)
        write_json(out / CANDIDATE_FILE, asdict(result))
        return result
    if trained.status != "completed":
        return CandidateResult("cancelled", None, trained.epoch, trained.seconds)
    final = trained.accuracy
    score = best.best()
    if score is None or (final is not None and final > score):
        score = final
    if score is None:
        raise InvalidConfig(f"candidate in {out} reported no validation score")
    result = CandidateResult(
        "completed", float(score), trained.epoch, trained.seconds, trained.params
    )
    write_json(out / CANDIDATE_FILE, asdict(result))
    return result


def candidate_dir(run_dir: str | Path, candidate_id: int) -> Path:
    """The training folder of one candidate inside a search's run folder."""
    return Path(run_dir) / "candidates" / f"{candidate_id:06d}"


# --- the search state ----------------------------------------------------------------------------


class NaoSearch:
    """Pool, round and controller of one search in ``run_dir``; see the module docstring."""

    def __init__(
        self,
        cfg: NaoSearchConfig,
        run_dir: str | Path,
        *,
        start: ControllerBundle | None = None,
        start_pool: bool = False,
    ) -> None:
        self.cfg, self.run_dir = cfg, Path(run_dir)
        self.space = create_search_space(cfg.space)
        self.pool = ArchPool(self.space)
        self.rng = np.random.default_rng(cfg.seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)  # controller init draws from the global generator
            self.controller = Controller(self.space, cfg.controller)
        self.controller_generator = torch.Generator().manual_seed(cfg.seed)
        self.round, self.stage = 0, "train"
        self.reports: list[dict[str, Any]] = []  # controller fit per round
        self.warm_start: dict[str, Any] | None = None
        self._start_pool: list[Any] = []
        if start is not None:  # a finished search's controller, and maybe its pool
            check_warm_start(start, self.space, cfg.controller)
            warm_start_controllers(start, [self.controller])
            self.warm_start = warm_start_record(start, start_pool)
            self._start_pool = best_first(start) if start_pool else []

    @classmethod
    def open(
        cls,
        cfg: NaoSearchConfig,
        run_dir: str | Path,
        *,
        start: ControllerBundle | None = None,
        start_pool: bool = False,
    ) -> NaoSearch:
        """The search in ``run_dir``: resumed from its state, or created with a random pool.

        ``start`` warm-starts the controller from a finished search's (same space and
        controller shape); with ``start_pool`` that search's pool, best first, makes up the
        initial pool before random architectures do (they are trained again: a candidate's
        score depends on this search's training budget and data). A resumed search keeps
        what its state recorded.

        Raises:
            InvalidConfig: If ``run_dir`` holds a search with another config.
        """
        run = Path(run_dir)
        ident = json.loads(json.dumps({"method": "nao", "config": to_dict(cfg)}))
        if (run / CONFIG_FILE).is_file() and json.loads((run / CONFIG_FILE).read_text()) != ident:
            raise InvalidConfig(f"{run} holds a search with another config; use a new run folder")
        search = cls(cfg, run, start=start, start_pool=start_pool)
        if (run / STATE_FILE).is_file():
            search.load_state_dict(load_checkpoint(run / STATE_FILE))
        else:
            write_json(run / CONFIG_FILE, ident)
            search.seed_pool()
            search.save()
        return search

    @property
    def done(self) -> bool:
        return self.stage == "done"

    def candidate_dir(self, candidate_id: int) -> Path:
        return candidate_dir(self.run_dir, candidate_id)

    def controller_path(self, round: int) -> Path:
        """Where round ``round``'s controller is kept: the one fitted when round ``round - 1``
        closed, which proposed round ``round``'s candidates (``controllers/round-NNN.pt``)."""
        return controller_path(self.run_dir, round)

    def latest_controller(self) -> tuple[int, Path] | None:
        """(round, path) of the last controller kept, or None before the first."""
        found = list_controllers(self.run_dir)
        return found[-1] if found else None

    def plan_round(self) -> list[Candidate]:
        """The candidates of the current round still without a score (none when done)."""
        if self.done:
            return []
        return [self._candidate(e) for e in self.round_entries() if e.score is None]

    def round_entries(self, round: int | None = None) -> list[PoolEntry]:
        """The candidates of ``round`` (default: the current one), in pool order."""
        round = self.round if round is None else round
        return [e for e in self.pool.entries if e.round == round]

    def round_points(self, round: int) -> list[dict[str, Any]]:
        """Evaluation point ``round + 1``: per candidate of ``round``, its pool id, the
        controller's prediction when it proposed it (None for random ones) and its score."""
        return [
            {"pool_id": e.id, "predicted": e.predicted, "measured": e.score}
            for e in sorted(self.round_entries(round), key=lambda e: e.id)
        ]

    def record(self, candidate_id: int, score: float) -> None:
        """Store a candidate's score; recording the same candidate again overwrites it."""
        entry = self.pool.by_id(candidate_id)
        entry.score, entry.score_source, entry.scored_round = float(score), SOURCE, entry.round

    def finish_round(self, round: int | None = None, *, stop: bool = False) -> list[Candidate]:
        """Close the current round: fit the controller and propose the next round's
        candidates, or end the search. Returns the next round's plan.

        ``round``, when given, must be the current round; a call for a round already finished
        returns the current plan unchanged (a repeated controller step is a no-op). ``stop``
        ends the search after this round (a GPU-hour limit reached).

        Raises:
            RoundNotScored: If a candidate of the round has no score.
        """
        if self.done or (round is not None and round != self.round):
            return self.plan_round()
        missing = [e.id for e in self.round_entries() if e.score is None]
        if missing:
            raise RoundNotScored(f"round {self.round}: candidates {missing} have no score")
        self.pool.sort(self.cfg.tie_break, self.cfg.seed)
        write_json(self.run_dir / f"pool_round{self.round}.json", self.pool.to_json())
        budget = self._budget_left()
        new: list[PoolEntry] = []
        if self.round < self.cfg.rounds and budget != 0 and not stop:
            with torch.random.fork_rng(devices=[]):
                # dropout draws from the global generator: the same step in any process
                torch.manual_seed(self.cfg.seed + 1000 * (self.round + 1))
                new = self._propose(budget)
        if new:
            self.pool.extend(new)
            self.round += 1
        else:
            self.stage = "done"
            write_json(self.run_dir / RESULT_FILE, self._result_json())
        logger.info(
            "round=%d done=%s new=%d pool=%d", self.round, self.done, len(new), len(self.pool)
        )
        return self.plan_round()

    def _budget_left(self) -> int | None:
        if self.cfg.max_candidates == 0:
            return None
        return max(self.cfg.max_candidates - len(self.pool), 0)

    def seed_pool(self) -> None:
        """Draw the random initial pool (capped by ``max_candidates``)."""
        n = self.cfg.initial_pool
        if self.cfg.max_candidates:
            n = min(n, self.cfg.max_candidates)
        new: list[PoolEntry] = []
        for arch in self._start_pool[:n]:  # a warm start's pool, best first
            entry = self.pool.make_entry(arch, round=0)
            if entry is not None:
                new.append(entry)
        for _ in range(_MAX_SAMPLE_TRIES):
            if len(new) == n:
                break
            entry = self.pool.make_entry(self.space.sample(self.rng), round=0)
            if entry is not None:
                new.append(entry)
        if len(new) < 2:
            raise InvalidConfig(f"initial_pool: the space yielded only {len(new)} distinct archs")
        self.pool.extend(new)

    def _propose(self, budget: int | None) -> list[PoolEntry]:
        ccfg = self.cfg.controller
        # every entry is scored (a round is finished only then)
        report, _ = fit_on_pool(
            self.controller, self.pool, rng=self.rng, generator=self.controller_generator
        )
        self._keep_controller(self.round + 1)
        seeds = self.pool.top(ccfg.top_seeds)
        n_new = ccfg.new_archs if budget is None else min(ccfg.new_archs, budget)
        proposals = improve(
            self.controller,
            self.space,
            [e.arch for e in seeds],
            n_new,
            self.pool.seen,
            step_sizes=self.cfg.step_sizes,
        )
        new = [
            entry
            for p in proposals
            if (
                entry := self.pool.make_entry(
                    p.arch,
                    self.round + 1,
                    seeds[p.parent].id,
                    step_size=p.step_size,
                    predicted=p.predicted,
                )
            )
            is not None
        ]
        self.reports.append(
            {
                "round": self.round,
                "pairwise_accuracy": report.pairwise_accuracy,
                "hamming_distance": report.hamming_distance,
                "new": len(new),
                "seconds": report.seconds,
            }
        )
        logger.info(
            "round=%d controller pairwise=%.3f hamming=%.2f new=%d",
            self.round,
            report.pairwise_accuracy,
            report.hamming_distance,
            len(new),
        )
        return new

    def _keep_controller(self, round: int) -> None:
        """Write the controller just fitted, the one that proposes round ``round``."""
        meta = {
            "method": "nao",
            "dataset": self.cfg.candidate.data.dataset,
            "seed": self.cfg.seed,
            "score_source": SOURCE,
            "warm_start": self.warm_start,
        }
        keep_controller(self.controller, self.pool, round, self.controller_path(round), meta)

    def _candidate(self, e: PoolEntry) -> Candidate:
        return Candidate(e.id, self.space.to_str(e.arch), e.round, e.parent)

    # --- results -----------------------------------------------------------------------------
    def result(self, status: str = "completed", seconds: float = 0.0) -> NaoSearchResult:
        scored = [e for e in self.pool.entries if e.score is not None]
        scored.sort(key=lambda e: -float(e.score))  # type: ignore[arg-type]
        rows = [e.to_dict(self.space) for e in scored]
        return NaoSearchResult(
            status,
            str(self.run_dir),
            self.round + 1 if self.done else self.round,
            len(scored),
            self.pool.to_json(),
            rows[: self.cfg.top_k],
            seconds,
        )

    def _result_json(self) -> dict[str, Any]:
        return {
            **asdict(self.result()),
            "controller": self.reports,
            "config": to_dict(self.cfg),
            "provenance": provenance(torch.device("cpu"), self.cfg.seed, self.cfg),
            "warm_start": self.warm_start,
        }

    # --- state -------------------------------------------------------------------------------
    def save(self) -> None:
        save_checkpoint(self.run_dir / STATE_FILE, self.state_dict())

    def state_dict(self) -> dict[str, Any]:
        return {
            "kind": "nao-search-state",
            "config": to_dict(self.cfg),
            "space": self.space.name,
            "round": self.round,
            "stage": self.stage,
            "pool": self.pool.state_dict(),
            "reports": self.reports,
            "controller": self.controller.state_dict(),
            "controller_generator": self.controller_generator.get_state(),
            "numpy_rng": numpy_rng_state(self.rng),
            "warm_start": self.warm_start,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.round, self.stage = int(state["round"]), state["stage"]
        self.pool.load_state_dict(state["pool"])
        self.reports = list(state["reports"])
        self.controller.load_state_dict(state["controller"])
        self.controller_generator.set_state(state["controller_generator"])
        set_numpy_rng_state(self.rng, state["numpy_rng"])
        self.warm_start = state.get("warm_start")  # absent from states written before it


def run_nao_search(
    cfg: NaoSearchConfig,
    *,
    run_dir: str | Path,
    data_dir: str | Path | None = None,
    device: str | torch.device = "auto",
    callback: Callback | None = None,
    start: ControllerBundle | None = None,
    start_pool: bool = False,
) -> NaoSearchResult:
    """Run (or resume, or return the finished result of) a search in one process: the
    candidates of each round one after another, then the controller step (each kept
    controller announced through ``callback.on_controller``). ``start``, ``start_pool``: a
    warm start, as ``NaoSearch.open`` takes it.

    Raises:
        InvalidConfig: If ``run_dir`` holds a search with another config.
        MissingData: If the dataset files are not found.
        TrainingDiverged: If a candidate's loss became NaN or infinite.
    """
    began, callback = time.perf_counter(), callback or NullCallback()
    search = NaoSearch.open(cfg, run_dir, start=start, start_pool=start_pool)
    while not search.done:
        plan = search.plan_round()
        callback.on_phase(CANDIDATES_PHASE, len(plan))
        for c in plan:
            if callback.should_stop():
                return search.result("cancelled", time.perf_counter() - began)
            out = evaluate_candidate(
                cfg,
                c.arch,
                search.candidate_dir(c.id),
                data_dir=data_dir,
                device=device,
                callback=callback,
            )
            if out.status != "completed" or out.score is None:
                return search.result("cancelled", time.perf_counter() - began)
            search.record(c.id, out.score)
            search.save()
            logger.info("round=%d candidate=%d score=%.4f", c.round, c.id, out.score)
        closed = search.round
        search.finish_round(closed)
        search.save()
        kept = search.controller_path(closed + 1)
        if kept.is_file():  # the controller fitted on the closed round (none when it ended)
            announce_controller(callback, closed + 1, kept)
        callback.on_pool_scored(closed + 1, list(search.pool.entries))
    return search.result("completed", time.perf_counter() - began)


def read_result(run_dir: str | Path) -> NaoSearchResult | None:
    """The finished result in ``run_dir``, or None."""
    path = Path(run_dir) / RESULT_FILE
    if not path.is_file():
        return None
    done = json.loads(path.read_text())
    return NaoSearchResult(**{k: done[k] for k in NaoSearchResult.__dataclass_fields__})


def summarize(candidates: Sequence[CandidateResult]) -> dict[str, float]:
    """Candidates, GPU seconds and candidates per hour of training time."""
    seconds = sum(c.seconds for c in candidates)
    return {
        "candidates": len(candidates),
        "seconds": seconds,
        "per_hour": 3600.0 * len(candidates) / seconds if seconds > 0 else 0.0,
    }
