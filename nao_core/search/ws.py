"""NAO-WS: the weight-sharing search loop shared by every space and supernet evaluator.

Follows the PyTorch V1 recipe (nao-spec §4.1):

    pool = 600 random archs; supernet trained 150 epochs, one pool arch sampled uniformly
    per batch; at epochs 30, 60, ..., 150 every pool arch is scored and the pool sorted;
    after every evaluation point but the last the controller is fitted on (pool, scores)
    and ``improve`` proposes up to 300 new archs from the top 100, which replace the worst;
    finally the top 5 are re-ranked by short stand-alone training.

Space-specific work (training the supernet, scoring, reranking) goes through a
``SupernetEvaluator`` (``nao_core.evaluator.supernet``); this module only knows archs,
scores, the pool and the controller.

Decisions on the spec's open questions (§9):

1. Recipe: PT V1 (11-cell supernet with strided reduction cells, batch 64, cosine
   0.025 -> 0.001, no aux head, 600-arch pool, 300 new per round replacing the bottom), not
   the TF original; the paper's 3.53 % came from TF, NAONet-B's 2.93 % from V1.
2. Drop path skips identity branches (TF/NASNet), in the supernet and the stand-alone nets.
3. Aux head after cell 2N + 1 (PT); no ReLU before the global pool (PT).
5. Scoring: every BN of the supernet uses batch statistics and leaves the running statistics
   alone; every architecture is scored on the *same* ``score_batches`` fixed valid batches of
   500 (the first images of the seeded valid split; 4 in ``search/paper``), instead of one
   random batch per arch; ties are broken by a seeded random key (``tie_break``), not by age.
6. The controller is created once and warm-started across rounds; Adam is re-created each
   round (``controller.reset_optimizer``), as in V1.
8. Five evaluation points (every ``eval_every`` epochs, the last epoch always one) and four
   controller rounds.

Further choices: the seed pool has no duplicates, and proposals are de-duplicated by
canonical form against every arch the pool ever held (spec §8 item 5); the number of new
archs per round is capped at pool size - 1 so the best arch always survives; the learning
rate steps after each epoch (spec §8 item 22); the final ranking is by rerank accuracy on the
whole valid split, each candidate's training seeded by its rank only.

What the controller learned: every proposal carries its step size and the controller's
prediction for it, and from the second evaluation point on, every pool entry gets the fitted
controller's prediction just before the supernet scores it (``PoolEntry.predicted``), so each
round gives a predicted-vs-measured pair for the whole pool.

Resumability: ``state_dict()`` holds the epoch, round, stage, pool (arch, score, score source,
round, parent, step size, prediction), controller (+ Adam when kept), supernet, optimizer,
scheduler and every RNG (torch global and CUDA, numpy, data and controller generators).
``run_search`` saves it atomically to ``<run_dir>/state.pt`` at every epoch end and after
every rerank candidate, and a run started on a folder holding one resumes it, reproducing the
uninterrupted run exactly on a CPU. ``Callback.should_stop()`` is asked after every epoch and
before every rerank candidate; stopping returns a result with status ``"cancelled"``.

Files in the run folder: ``config.json``, ``state.pt``, ``pool_round<r>.json`` after each
evaluation point, ``controllers/round-NNN.pt`` (the controller fitted at evaluation point r,
``controller.bundle``, announced through ``Callback.on_controller``) and ``result.json``
(final pool, top archs, provenance, warm start) at the end.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nao_core.config import RnnSearchConfig, SearchConfig, to_dict
from nao_core.controller import Controller, improve
from nao_core.controller.bundle import (
    ControllerBundle,
    best_first,
    check_warm_start,
    controller_path,
    warm_start_controllers,
    warm_start_record,
)
from nao_core.data import ImageDataset
from nao_core.data.corpus import Corpus, load_corpus
from nao_core.engine.callbacks import Callback, NullCallback, Phase, announce_controller
from nao_core.engine.checkpoint import (
    load_checkpoint,
    numpy_rng_state,
    rng_state,
    save_checkpoint,
    set_numpy_rng_state,
    set_rng_state,
    write_json,
)
from nao_core.engine.data import load_image_dataset
from nao_core.errors import Cancelled, InvalidConfig
from nao_core.evaluator.supernet import SupernetEvaluator, create_supernet_evaluator
from nao_core.search.pool import ArchPool, PoolEntry
from nao_core.search.pool_fit import fit_on_pool, keep_controller
from nao_core.search_space.base import Arch
from nao_core.utils.determinism import deterministic_mode
from nao_core.utils.device import resolve_device
from nao_core.utils.provenance import provenance

logger = logging.getLogger(__name__)

STATE_FILE, RESULT_FILE, CONFIG_FILE = "state.pt", "result.json", "config.json"
DEFAULT_TOP = 5  # archs reported as "top" when the rerank is switched off
_MAX_SAMPLE_TRIES = 100_000
_PREDICT_CHUNK = 1024  # archs per controller forward when predicting the pool


@dataclass(frozen=True)
class SearchResult:
    """Outcome of a search; ``status`` is ``"completed"`` or ``"cancelled"``."""

    status: str
    run_dir: str
    epoch: int
    rounds: int
    pool: list[dict[str, Any]] = field(default_factory=list)
    top: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


class WeightSharingSearch:
    """The NAO-WS loop over one ``SupernetEvaluator``; see the module docstring."""

    def __init__(
        self,
        cfg: SearchConfig | RnnSearchConfig,
        evaluator: SupernetEvaluator,
        run_dir: str | Path,
        device: torch.device,
        callback: Callback | None = None,
        *,
        start: ControllerBundle | None = None,
        start_pool: bool = False,
    ) -> None:
        self.cfg, self.evaluator, self.device = cfg, evaluator, device
        self.space = evaluator.space
        self.run_dir = Path(run_dir)
        self.callback = callback or NullCallback()
        self.rng = np.random.default_rng(cfg.seed)
        self.pool = ArchPool(self.space)
        self.controller = Controller(self.space, cfg.controller)
        self.controller_generator = torch.Generator().manual_seed(cfg.seed)
        self.controller_optimizer: torch.optim.Optimizer | None = None
        self.epoch, self.round, self.stage = 0, 0, "supernet"
        self.reranked: list[tuple[int, float]] = []  # (pool entry id, rerank score)
        self.seconds, self._began = 0.0, time.perf_counter()
        self.warm_start: dict[str, Any] | None = None
        if start is not None:  # a finished search's controller, and maybe its pool
            check_warm_start(start, self.space, cfg.controller)
            warm_start_controllers(start, [self.controller])
            self.warm_start = warm_start_record(start, start_pool)
        self.seed_pool(best_first(start) if start is not None and start_pool else ())

    # --- the loop ----------------------------------------------------------------------------
    def run(self) -> SearchResult:
        self._began = time.perf_counter()
        try:
            if self.stage == "supernet":
                self.callback.on_phase(Phase.SUPERNET, self.cfg.optim.epochs)
                self.evaluator.train(
                    start_epoch=self.epoch,
                    sample=self._sample,
                    callback=self.callback,
                    epoch_end=self._epoch_end,
                )
                self.stage = "rerank"
            if self.stage == "rerank":
                self._rerank()
                self.stage = "done"
                self._save()
        except Cancelled as stop:
            logger.info("search cancelled epoch=%d where=%s", stop.epoch, stop.where or "epoch")
            return self._result("cancelled")
        result = self._result("completed")
        write_json(
            self.run_dir / RESULT_FILE,
            {
                **asdict(result),
                "config": to_dict(self.cfg),
                "provenance": provenance(
                    self.device,
                    self.cfg.seed,
                    self.cfg,
                    getattr(self.evaluator, "precision", self.cfg.precision),
                ),
                "warm_start": self.warm_start,
            },
        )
        return result

    def _epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        self.epoch = epoch
        epochs = self.cfg.optim.epochs
        if epoch % self.cfg.eval_every == 0 or epoch == epochs:
            self._score_pool()
            if epoch < epochs:
                self._propose()
                self.callback.on_phase(Phase.SUPERNET, epochs)
        self._save()  # after the round, so a resume never repeats or skips one

    def _sample(self) -> Arch:
        entries = self.pool.entries
        return entries[int(self.rng.integers(len(entries)))].arch

    def seed_pool(self, first: Sequence[Arch] = ()) -> None:
        """The round-0 pool: ``first`` (a warm start's pool, best first) up to ``pool_size``,
        then random architectures."""
        new: list[PoolEntry] = []
        for arch in first[: self.cfg.pool_size]:
            entry = self.pool.make_entry(arch, round=0)
            if entry is not None:
                new.append(entry)
        for _ in range(_MAX_SAMPLE_TRIES):
            if len(new) == self.cfg.pool_size:
                break
            entry = self.pool.make_entry(self.space.sample(self.rng), round=0)
            if entry is not None:
                new.append(entry)
        if len(new) < 2:
            raise InvalidConfig(f"pool_size: the space yielded only {len(new)} distinct archs")
        self.pool.extend(new)

    def _score_pool(self) -> None:
        fitted = self.round > 0  # a controller round follows every evaluation point but the last
        self.round += 1
        self.callback.on_phase(Phase.SCORE, len(self.pool))
        if fitted:
            self._predict_pool()
        scores = self.evaluator.score(self.pool.archs())
        self.pool.set_scores(scores, "supernet", self.round)
        self.pool.sort(self.cfg.tie_break, self.cfg.seed)
        write_json(self.run_dir / f"pool_round{self.round}.json", self.pool.to_json())
        self.callback.on_pool_scored(self.round, list(self.pool.entries))
        logger.info(
            "round=%d epoch=%d best=%.4f worst=%.4f",
            self.round,
            self.epoch,
            max(scores),
            min(scores),
        )

    def _predict_pool(self) -> None:
        """Record the controller's prediction for every pool entry before the supernet scores
        them, so each evaluation point yields a predicted-vs-measured pair per entry.

        The last round's proposals keep the prediction they were proposed with (the same
        controller made it). Eval mode and no grad: no dropout, no generator is drawn from,
        so the search's random streams, and with them its proposals and scores, stay as they
        were without this step.
        """
        todo = [
            e for e in self.pool.entries if not (e.round == self.round - 1 and e.parent is not None)
        ]
        if not todo:
            return
        tokens = torch.tensor([self.space.encode(e.arch) for e in todo], dtype=torch.long)
        self.controller.eval()
        with torch.no_grad():
            preds = [self.controller.predict(chunk) for chunk in tokens.split(_PREDICT_CHUNK)]
        for entry, value in zip(todo, torch.cat(preds).tolist(), strict=True):
            entry.predicted = float(value)

    def _propose(self) -> None:
        ccfg = self.cfg.controller
        self.callback.on_phase(Phase.CONTROLLER, ccfg.epochs)
        entries = self.pool.entries
        report, self.controller_optimizer = fit_on_pool(
            self.controller,
            self.pool,
            rng=self.rng,
            generator=self.controller_generator,
            optimizer=self.controller_optimizer,
        )
        self._keep_controller()
        seeds = self.pool.top(ccfg.top_seeds)
        n_new = min(ccfg.new_archs, len(entries) - 1)
        proposals = improve(
            self.controller, self.space, [e.arch for e in seeds], n_new, self.pool.seen
        )
        new = [
            entry
            for p in proposals
            if (
                entry := self.pool.make_entry(
                    p.arch,
                    self.round,
                    seeds[p.parent].id,
                    step_size=p.step_size,
                    predicted=p.predicted,
                )
            )
            is not None
        ]
        self.pool.replace_worst(new)
        self.callback.on_proposals(self.round, new)
        logger.info(
            "round=%d controller pairwise=%.3f hamming=%.2f new=%d",
            self.round,
            report.pairwise_accuracy,
            report.hamming_distance,
            len(new),
        )

    def _keep_controller(self) -> None:
        """Write the controller just fitted (``controllers/round-NNN.pt``) and announce it."""
        meta = {
            "method": "nao-ws",
            "dataset": self.cfg.data.dataset,
            "seed": self.cfg.seed,
            "epoch": self.epoch,
            "score_source": "supernet",
            "warm_start": self.warm_start,
        }
        path = controller_path(self.run_dir, self.round)
        path = keep_controller(self.controller, self.pool, self.round, path, meta)
        announce_controller(self.callback, self.round, path)

    def _rerank(self) -> None:
        k = min(self.cfg.rerank.top_k, len(self.pool))
        if k == 0:
            return
        self.callback.on_phase(Phase.RERANK, k)
        candidates = self.pool.top(k)  # sorted at the last evaluation point
        for rank in range(len(self.reranked), k):
            if self.callback.should_stop():
                raise Cancelled(self.epoch, f"rerank {rank}/{k}")
            score = self.evaluator.rerank(candidates[rank].arch, rank)
            self.reranked.append((candidates[rank].id, score))
            logger.info("rerank=%d/%d id=%d score=%.4f", rank + 1, k, candidates[rank].id, score)
            self._save()

    # --- results -----------------------------------------------------------------------------
    def top(self) -> list[dict[str, Any]]:
        """The reranked archs, best first, or the pool's first ones without a rerank."""
        if not self.reranked:
            return self.pool.to_json()[:DEFAULT_TOP]
        rows = []
        for entry_id, score in self.reranked:
            row = self.pool.by_id(entry_id).to_dict(self.space)
            rows.append({**row, "supernet_score": row["score"], "score": score})
            rows[-1]["score_source"] = "rerank"
        return sorted(rows, key=lambda r: -r["score"])

    def _elapsed(self) -> float:
        return self.seconds + time.perf_counter() - self._began

    def _result(self, status: str) -> SearchResult:
        return SearchResult(
            status,
            str(self.run_dir),
            self.epoch,
            self.round,
            self.pool.to_json(),
            self.top(),
            self._elapsed(),
        )

    # --- state -------------------------------------------------------------------------------
    def _save(self) -> None:
        save_checkpoint(self.run_dir / STATE_FILE, self.state_dict())

    def state_dict(self) -> dict[str, Any]:
        keep_adam = (
            self.controller_optimizer is not None and not self.cfg.controller.reset_optimizer
        )
        return {
            "kind": "search-state",
            "config": to_dict(self.cfg),
            "space": self.space.name,
            "epoch": self.epoch,
            "round": self.round,
            "stage": self.stage,
            "pool": self.pool.state_dict(),
            "reranked": [list(r) for r in self.reranked],
            "controller": self.controller.state_dict(),
            "controller_optimizer": self.controller_optimizer.state_dict() if keep_adam else None,
            "controller_generator": self.controller_generator.get_state(),
            "numpy_rng": numpy_rng_state(self.rng),
            "rng": rng_state(self.device),
            "evaluator": self.evaluator.state_dict(),
            "seconds": self._elapsed(),
            "warm_start": self.warm_start,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a ``state_dict``; the global RNG last, after every module exists."""
        self.epoch, self.round, self.stage = (
            int(state["epoch"]),
            int(state["round"]),
            state["stage"],
        )
        self.pool.load_state_dict(state["pool"])
        self.reranked = [(int(i), float(s)) for i, s in state["reranked"]]
        self.controller.load_state_dict(state["controller"])
        if state["controller_optimizer"] is not None:
            ccfg = self.cfg.controller
            self.controller_optimizer = torch.optim.Adam(
                self.controller.parameters(), lr=ccfg.lr, weight_decay=ccfg.weight_decay, fused=True
            )  # as fit_controller builds it
            self.controller_optimizer.load_state_dict(state["controller_optimizer"])
        self.controller_generator.set_state(state["controller_generator"])
        set_numpy_rng_state(self.rng, state["numpy_rng"])
        self.evaluator.load_state_dict(state["evaluator"])
        self.seconds = float(state["seconds"])
        self.warm_start = state.get("warm_start")  # absent from states written before it
        set_rng_state(state["rng"], self.device)


def _load_search_data(
    cfg: SearchConfig | RnnSearchConfig, data_dir: str | Path | None
) -> ImageDataset | Corpus:
    """The images of a "cnn" search or the corpus of an "rnn" search."""
    if isinstance(cfg, RnnSearchConfig):
        d = cfg.data
        return load_corpus(d.dataset, data_dir, train_limit=d.train_limit, eval_limit=d.eval_limit)
    if cfg.space == "rnn":
        raise InvalidConfig("space: an 'rnn' search needs an RNN search config (search-rnn/...)")
    return load_image_dataset(
        cfg.data.dataset,
        data_dir,
        train_portion=cfg.data.train_portion,
        split_seed=cfg.data.split_seed,
        train_limit=cfg.data.train_limit,
    )


def run_search(
    cfg: SearchConfig | RnnSearchConfig,
    *,
    run_dir: str | Path,
    data_dir: str | Path | None = None,
    device: str | torch.device = "auto",
    callback: Callback | None = None,
    start: ControllerBundle | None = None,
    start_pool: bool = False,
) -> SearchResult:
    """Run (or resume, or return the finished result of) a NAO-WS search in ``run_dir``.

    ``start`` warm-starts the controller from a finished search's (same space and controller
    shape); with ``start_pool`` that search's pool, best first, fills the initial pool before
    random architectures do. A resumed run keeps what its state recorded.

    Raises:
        InvalidConfig: If ``run_dir`` holds a search with another config.
        MissingData: If the dataset files are not found.
        TrainingDiverged: If the supernet's loss became NaN or infinite.
        SpaceMismatch, IncompatibleController: If ``start`` does not fit this search.
    """
    run, dev = Path(run_dir), resolve_device(device)
    ident = json.loads(json.dumps({"config": to_dict(cfg)}))
    if (run / CONFIG_FILE).is_file() and json.loads((run / CONFIG_FILE).read_text()) != ident:
        raise InvalidConfig(f"{run} holds a search with another config; use a new run folder")
    if (run / RESULT_FILE).is_file():
        done = json.loads((run / RESULT_FILE).read_text())
        return SearchResult(**{k: done[k] for k in SearchResult.__dataclass_fields__})
    write_json(run / CONFIG_FILE, ident)
    dataset = _load_search_data(cfg, data_dir)
    devices = [dev.index or 0] if dev.type == "cuda" else []
    with deterministic_mode(cfg.deterministic), torch.random.fork_rng(devices=devices):
        torch.manual_seed(cfg.seed)  # module init and dropout draw from the global generator
        evaluator = create_supernet_evaluator(cfg, dataset, dev)
        search = WeightSharingSearch(
            cfg, evaluator, run, dev, callback, start=start, start_pool=start_pool
        )
        if (run / STATE_FILE).is_file():
            search.load_state_dict(load_checkpoint(run / STATE_FILE, map_location=dev))
            logger.info("resume run=%s epoch=%d stage=%s", run, search.epoch, search.stage)
        return search.run()
