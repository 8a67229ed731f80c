"""Final training of an RNN cell as a word-level language model (nao-spec §6.4).

``run_train_rnn`` (reached through ``nao_core.train.run_train(arch, "rnn", cfg, ...)``) trains
a stand-alone ``RnnNetwork`` with the DARTS/NAO recipe through the engine's one loop:

* random-length BPTT windows (base 35, or 17.5 w.p. 0.05, N(base, 5), 5 <= len <= 55), the
  lr scaled by seq_len / 35 per window, the hidden state carried between windows;
* plain SGD lr 20, weight decay 8e-7, grad clip 0.25, TAR β = 1e-3;
* **NT-ASGD**: after each evaluation of the valid stream (batch 10), switch to averaged SGD
  when more than ``nonmono`` = 5 evaluations are logged and the valid loss is above the
  minimum of all but the last ``nonmono`` of them (AWD-LSTM's trigger, checked before the
  current loss is appended); ``optim.asgd_after`` forces the switch after that epoch.

Averaging choice: torch's ``ASGD(t0=0, lambd=0)`` takes exactly SGD steps (its eta is lr)
and keeps the running mean of the parameters after every step since the switch. We keep the
SGD optimizer and hold that mean in a ``torch.optim.swa_utils.AveragedModel``, updated by an
optimizer step hook: the same trajectory and average, and the averaged copy is a plain
module to evaluate and save. Once switched, evaluation and checkpoints use the averaged
weights, as AWD-LSTM does.

Files in the output folder (as the CNN path): ``train_state.pt`` after every epoch (model,
averaged model, optimizer, valid-loss history, generators) so a re-run resumes;
``model.pt`` (``kind="model"``) holding the best-validation weights — config, arch, model
arguments, vocabulary size and hash, metrics — enough for ``evaluate_checkpoint`` with only
the corpus folder; ``result.json`` with valid and test perplexity (test batch 1) of those
weights (the authors' convention) and the last epoch's test perplexity (``last_perplexity``;
``last_epoch_*`` in the metrics).

Decisions: the model kept is the one with the best valid loss (AWD-LSTM saves on best
validation; selecting on valid is sound, unlike the CNN path's test split). A NaN loss
raises ``TrainingDiverged`` instead of AWD-LSTM's roll-back to the last checkpoint.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch.optim.swa_utils import AveragedModel

from nao_core.config import RnnTrainConfig, from_dict, to_dict
from nao_core.data.corpus import Corpus, batchify, load_corpus, vocab_hash
from nao_core.engine.callbacks import Callback, NullCallback, Phase
from nao_core.engine.checkpoint import (
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
    write_json,
)
from nao_core.engine.lm import CarryHidden, LanguageModelTask, LmDataModule, eval_windows
from nao_core.engine.loop import evaluate, fit
from nao_core.engine.optim import build_sgd_lm
from nao_core.engine.run_folder import (
    MODEL_FILE,
    RESULT_FILE,
    STATE_FILE,
    TrainResult,
    check_same_run,
    forked_rng,
    read_json,
)
from nao_core.errors import Cancelled, InvalidConfig
from nao_core.models import count_parameters
from nao_core.models.rnn import RnnDropouts, RnnNetwork, rnn_dropouts
from nao_core.search_space import create_search_space
from nao_core.search_space.rnn import RnnArch
from nao_core.utils.determinism import deterministic_mode
from nao_core.utils.device import resolve_device, resolve_precision
from nao_core.utils.provenance import provenance

logger = logging.getLogger(__name__)


def nt_asgd_trigger(losses: list[float], loss: float, nonmono: int) -> bool:
    """AWD-LSTM's non-monotone trigger: ``loss`` is worse than the best of ``losses`` (the
    logged valid losses, not yet including ``loss``) other than the last ``nonmono``."""
    return len(losses) > nonmono and loss > min(losses[: len(losses) - nonmono])


def lm_model_args(cfg: RnnTrainConfig, corpus: Corpus) -> dict[str, Any]:
    """``RnnNetwork`` keyword arguments (JSON-able), as stored in ``model.pt``."""
    return {
        "vocab_size": corpus.vocab_size,
        "nhid": cfg.model.nhid,
        "dropouts": asdict(rnn_dropouts(cfg.model)),
    }


def build_lm(arch: RnnArch, args: dict[str, Any], device: torch.device) -> RnnNetwork:
    return RnnNetwork(
        args["vocab_size"],
        arch,
        nhid=args["nhid"],
        dropouts=RnnDropouts(**args["dropouts"]),
        device=device,
    )


class _LmTraining:
    """Model, optimizer, NT-ASGD state and generators of one LM training run, resumable."""

    def __init__(
        self, arch: RnnArch, cfg: RnnTrainConfig, corpus: Corpus, dev: torch.device
    ) -> None:
        self.cfg, self.dev = cfg, dev
        self.args = lm_model_args(cfg, corpus)
        self.model = build_lm(arch, self.args, dev)
        self.optimizer = build_sgd_lm(self.model, cfg.optim.lr, cfg.optim.weight_decay)
        self.averaged: AveragedModel | None = None
        self.switched_at: int | None = None
        self.generator = torch.Generator().manual_seed(cfg.seed)  # CPU: window lengths
        self.task = LanguageModelTask(cfg.optim.tar_beta, cfg.optim.ar_alpha)
        self.precision = resolve_precision(cfg.precision, dev)
        self.losses: list[float] = []  # valid loss of every evaluation so far
        self.best_loss = math.inf
        self.epoch, self.seconds, self._began = 0, 0.0, time.perf_counter()

    def elapsed(self) -> float:
        return self.seconds + time.perf_counter() - self._began

    def eval_model(self) -> RnnNetwork:
        """The weights evaluated and saved: the running average once switched."""
        return self.model if self.averaged is None else self.averaged.module  # type: ignore[return-value]

    def switch_to_asgd(self, epoch: int) -> None:
        self.averaged = AveragedModel(self.model)
        self.optimizer.register_step_post_hook(self._average)
        self.switched_at = epoch
        logger.info("nt-asgd switch epoch=%d", epoch)

    def _average(self, *_: Any) -> None:
        assert self.averaged is not None  # the hook exists only after the switch
        self.averaged.update_parameters(self.model)

    def evaluate(self, windows: list[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, float]:
        return evaluate(
            self.eval_model(), self.task, windows, precision=self.precision, forward=CarryHidden()
        )

    def fit(
        self,
        train_grid: torch.Tensor,
        valid: list[tuple[torch.Tensor, torch.Tensor]],
        save_best: Any,
        save: Path,
        callback: Callback,
    ) -> None:
        """Train the remaining epochs; evaluate, save the best model, check the NT-ASGD
        trigger and save the state after each."""
        cfg, ocfg = self.cfg, self.cfg.optim

        def epoch_end(epoch: int, metrics: dict[str, float]) -> None:
            self.epoch = epoch
            if epoch % cfg.eval_every == 0 or epoch == ocfg.epochs:
                val = self.evaluate(valid)
                metrics |= {"eval_loss": val["loss"], "eval_ppl": val["ppl"]}
                if val["loss"] < self.best_loss:
                    self.best_loss = val["loss"]
                    save_best(self.eval_model(), metrics)
                nt = self.averaged is None and ocfg.asgd == "nt"
                if nt and nt_asgd_trigger(self.losses, val["loss"], ocfg.nonmono):
                    self.switch_to_asgd(epoch)
                self.losses.append(val["loss"])
            forced = ocfg.asgd == "nt" and 0 < ocfg.asgd_after <= epoch
            if self.averaged is None and forced:
                self.switch_to_asgd(epoch)
            metrics["averaged"] = float(self.averaged is not None)
            save_checkpoint(save, self.state_dict())

        self._began = time.perf_counter()
        callback.on_phase(Phase.TRAIN, ocfg.epochs)
        carry = CarryHidden()
        fit(
            self.model,
            self.task,
            LmDataModule(train_grid, cfg.data.bptt, self.optimizer, carry),
            self.optimizer,
            None,
            epochs=ocfg.epochs,
            start_epoch=self.epoch,
            generator=self.generator,
            grad_clip=ocfg.grad_clip,
            precision=self.precision,
            forward=carry,
            callback=callback,
            epoch_end=epoch_end,
        )

    def state_dict(self) -> dict[str, Any]:
        return {
            "kind": "train-state",
            "epoch": self.epoch,
            "model": self.model.state_dict(),
            "averaged": None if self.averaged is None else self.averaged.state_dict(),
            "switched_at": self.switched_at,
            "optimizer": self.optimizer.state_dict(),
            "losses": list(self.losses),
            "best_loss": self.best_loss,
            "generator": self.generator.get_state(),
            "rng": rng_state(self.dev),
            "seconds": self.elapsed(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if state["averaged"] is not None:
            self.switch_to_asgd(int(state["switched_at"]))
            assert self.averaged is not None
            self.averaged.load_state_dict(state["averaged"])
        self.losses = [float(v) for v in state["losses"]]
        self.best_loss = float(state["best_loss"])
        self.generator.set_state(state["generator"])
        self.epoch, self.seconds = int(state["epoch"]), float(state["seconds"])
        set_rng_state(state["rng"], self.dev)  # last: nothing may draw after it


def run_train_rnn(
    arch: RnnArch | str,
    cfg: RnnTrainConfig,
    *,
    out_dir: str | Path,
    data_dir: str | Path | None = None,
    device: str | torch.device = "auto",
    callback: Callback | None = None,
) -> TrainResult:
    """Train the RNN cell ``arch`` as an LM on ``cfg.data.dataset``; resume from ``out_dir``.

    Raises:
        InvalidConfig: If ``out_dir`` holds a run of another config or architecture.
        MissingData: If the corpus files are not found.
        TrainingDiverged: If the loss became NaN or infinite.
    """
    if not isinstance(cfg, RnnTrainConfig):
        raise InvalidConfig("space: the 'rnn' space needs an RNN train config (train-rnn/...)")
    out, dev = Path(out_dir), resolve_device(device)
    space = create_search_space("rnn")
    arch = space.parse(arch) if isinstance(arch, str) else arch
    ident = {"config": to_dict(cfg), "space": "rnn", "arch": space.to_str(arch)}
    check_same_run(out / "config.json", ident)
    if (out / RESULT_FILE).is_file() and (out / MODEL_FILE).is_file():
        return TrainResult(**read_json(out / RESULT_FILE))  # idempotent re-run
    write_json(out / "config.json", ident)
    d = cfg.data
    corpus = load_corpus(d.dataset, data_dir, train_limit=d.train_limit, eval_limit=d.eval_limit)
    train_grid = batchify(corpus.train, d.batch_size, dev)
    valid = eval_windows(batchify(corpus.valid, d.eval_batch_size, dev), d.bptt)
    extra = {"dataset": corpus.name, "vocab_size": corpus.vocab_size}
    extra["vocab_hash"] = vocab_hash(corpus.vocab)

    with deterministic_mode(cfg.deterministic), forked_rng(dev):
        torch.manual_seed(cfg.seed)  # module init and dropout draw from the global generator
        run = _LmTraining(arch, cfg, corpus, dev)

        def save_best(model: RnnNetwork, metrics: dict[str, float]) -> None:
            payload = {**ident, **extra, "model_args": run.args, "metrics": dict(metrics)}
            save_checkpoint(
                out / MODEL_FILE, {"kind": "model", **payload, "model": model.state_dict()}
            )

        if (out / STATE_FILE).is_file():
            run.load_state_dict(load_checkpoint(out / STATE_FILE, map_location=dev))
            logger.info("resume out=%s epoch=%d", out, run.epoch)
        try:
            run.fit(train_grid, valid, save_best, out / STATE_FILE, callback or NullCallback())
        except Cancelled as stop:
            return TrainResult("cancelled", str(out), stop.epoch, seconds=run.elapsed())
        if not (out / MODEL_FILE).is_file():  # no evaluation happened (0 epochs)
            save_best(run.eval_model(), {})
    with deterministic_mode(cfg.deterministic):  # as trained, for the provenance
        return _finish(out, run, corpus, dev)


def _finish(out: Path, run: _LmTraining, corpus: Corpus, dev: torch.device) -> TrainResult:
    """Evaluate the best model on valid and test, write ``model.pt`` and ``result.json``."""
    ckpt = load_checkpoint(out / MODEL_FILE, map_location=dev)
    model, _ = load_rnn_model(ckpt, dev)
    metrics = evaluate_lm(model, run.cfg, corpus, dev)
    # the last epoch's weights too (averaged once switched): the figure without selection
    last = evaluate_lm(run.eval_model().eval(), run.cfg, corpus, dev)
    metrics |= {f"last_epoch_{k}": v for k, v in last.items()}
    seconds, prov = run.elapsed(), provenance(dev, run.cfg.seed, run.cfg, run.precision)
    metrics_all = {**ckpt["metrics"], **metrics, "switched_at": run.switched_at}
    save_checkpoint(out / MODEL_FILE, {**ckpt, "metrics": metrics_all, "provenance": prov})
    result = TrainResult(
        status="completed",
        out_dir=str(out),
        epoch=run.cfg.optim.epochs,
        loss=metrics["test_loss"],
        params=count_parameters(model),
        checkpoint=str(out / MODEL_FILE),
        seconds=seconds,
        perplexity=metrics["test_ppl"],
        valid_perplexity=metrics["valid_ppl"],
        last_perplexity=metrics["last_epoch_test_ppl"],
    )
    write_json(out / RESULT_FILE, asdict(result))
    write_json(out / "provenance.json", {**prov, "seconds": seconds, "metrics": metrics_all})
    logger.info(
        "trained valid_ppl=%.2f test_ppl=%.2f (best valid epoch, the authors' convention) "
        "last-epoch test_ppl=%.2f s=%.1f",
        metrics["valid_ppl"],
        metrics["test_ppl"],
        metrics["last_epoch_test_ppl"],
        seconds,
    )
    return result


def evaluate_lm(
    model: RnnNetwork, cfg: RnnTrainConfig, corpus: Corpus, dev: torch.device
) -> dict[str, float]:
    """Valid (batch ``eval_batch_size``) and test (batch ``test_batch_size``) loss and ppl."""
    d, task = cfg.data, LanguageModelTask()
    precision = resolve_precision(cfg.precision, dev)
    out: dict[str, float] = {}
    for split, ids, batch in (
        ("valid", corpus.valid, d.eval_batch_size),
        ("test", corpus.test, d.test_batch_size),
    ):
        windows = eval_windows(batchify(ids, batch, dev), d.bptt)
        m = evaluate(model, task, windows, precision=precision, forward=CarryHidden())
        out |= {f"{split}_loss": m["loss"], f"{split}_ppl": m["ppl"]}
    return out


def load_rnn_model(ckpt: dict[str, Any], device: torch.device) -> tuple[RnnNetwork, dict[str, Any]]:
    """Rebuild the ``RnnNetwork`` of an "rnn" model checkpoint (eval mode)."""
    arch = create_search_space("rnn").parse(ckpt["arch"])
    model = build_lm(arch, ckpt["model_args"], device)  # type: ignore[arg-type]
    model.load_state_dict(ckpt["model"])
    return model.eval(), ckpt


def evaluate_rnn_checkpoint(
    ckpt: dict[str, Any],
    path: str | Path,
    *,
    data_dir: str | Path | None,
    device: torch.device,
) -> dict[str, Any]:
    """Valid and test perplexity of an "rnn" model checkpoint on its corpus.

    Raises:
        InvalidConfig: If the corpus's vocabulary is not the one the model was trained on.
    """
    model, _ = load_rnn_model(ckpt, device)
    cfg = from_dict(RnnTrainConfig, ckpt["config"])
    d = cfg.data
    corpus = load_corpus(d.dataset, data_dir, train_limit=d.train_limit, eval_limit=d.eval_limit)
    if (corpus.vocab_size, vocab_hash(corpus.vocab)) != (ckpt["vocab_size"], ckpt["vocab_hash"]):
        raise InvalidConfig(
            f"data_dir: the {d.dataset} vocabulary there ({corpus.vocab_size} words) is not the "
            f"one the model was trained on ({ckpt['vocab_size']} words, hash {ckpt['vocab_hash']})"
        )
    metrics = evaluate_lm(model, cfg, corpus, device)
    return {
        "checkpoint": str(path),
        "space": "rnn",
        "arch": ckpt["arch"],
        "dataset": corpus.name,
        "valid_tokens": int(corpus.valid.numel()),
        "test_tokens": int(corpus.test.numel()),
        **metrics,
        "params": count_parameters(model),
        "switched_at": ckpt["metrics"].get("switched_at"),
    }
