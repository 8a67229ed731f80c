"""Final training of one architecture and evaluation of a trained checkpoint (nao-spec §6.1).

``run_train`` trains a stand-alone ``CnnNetwork`` with NAO_V1's CIFAR recipe (SGD momentum
0.9, cosine to 0, weight decay 3e-4, grad clip 5, aux head weight 0.4, drop path, dropout
before the classifier, cutout 16 in the paper preset) through the engine's one loop, and
writes into its output folder:

* ``train_state.pt`` — after every epoch (atomic): model, optimizer, scheduler and RNG
  states; running ``run_train`` again on the folder resumes from it;
* ``model.pt`` — the final model checkpoint (``kind="model"``): config, space, arch string,
  constructor arguments, metrics, provenance and weights, enough for ``evaluate_checkpoint``;
* ``result.json`` — accuracy on ``data.eval_split``, parameters, FLOPs (multiply-adds).

Decision: the reported accuracy is the last epoch's. NAO_V1 kept the best test accuracy over
epochs, which selects on the test set; that figure is reported next to it, labelled as the
authors' convention (``best_accuracy`` and ``best_epoch`` in the result, ``best_eval_acc``
and ``best_eval_epoch`` in every epoch's metrics), so results compare with the paper's.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from nao_core.config import NetworkConfig, RnnTrainConfig, TrainConfig, from_dict, to_dict
from nao_core.data import ImageData, ImageDataset
from nao_core.engine import ClassificationTask, ImageDataModule, evaluate, fit, graphed_steps
from nao_core.engine.callbacks import Callback, NullCallback, Phase
from nao_core.engine.checkpoint import (
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
    write_json,
)
from nao_core.engine.data import load_image_dataset
from nao_core.engine.optim import build_sgd
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
from nao_core.models import CnnNetwork, count_flops, count_parameters
from nao_core.search_space import create_search_space
from nao_core.search_space.base import Arch
from nao_core.utils.determinism import deterministic_mode
from nao_core.utils.device import (
    resolve_device,
    resolve_precision,
    to_channels_last,
    use_channels_last,
)
from nao_core.utils.provenance import provenance

logger = logging.getLogger(__name__)


def model_args(net: NetworkConfig, dataset: ImageDataset) -> dict[str, Any]:
    """``CnnNetwork`` keyword arguments for ``net`` on ``dataset``'s image shape."""
    return {
        "layers": net.layers,
        "channels": net.channels,
        "num_classes": dataset.num_classes,
        "in_channels": dataset.in_channels,
        "image_size": dataset.image_size,
        "keep_prob": net.keep_prob,
        "drop_path_keep_prob": net.drop_path_keep_prob,
        "use_aux_head": net.use_aux_head,
    }


def build_network(
    arch: Arch,
    space: str,
    args: dict[str, Any],
    device: torch.device,
    channels_last: bool | None = None,
) -> CnnNetwork:
    """A ``CnnNetwork`` on ``device``; channels_last by default (see ``use_channels_last``)."""
    model = CnnNetwork(arch, space, **args, device=device)
    if use_channels_last(device) if channels_last is None else channels_last:
        to_channels_last(model)
    return model


def image_data(
    dataset: ImageDataset, device: torch.device, cutout: int = 0, channels_last: bool | None = None
) -> ImageData:
    """The dataset on ``device``; channels_last batches by default (``use_channels_last``)."""
    cl = use_channels_last(device) if channels_last is None else channels_last
    return ImageData(dataset, device, channels_last=cl, cutout=cutout)


class _FinalTraining:
    """Model, optimizer, schedule and generators of one final-training run, resumable."""

    def __init__(
        self, arch: Arch, space: str, cfg: TrainConfig, dataset: ImageDataset, dev: torch.device
    ) -> None:
        self.cfg, self.dev = cfg, dev
        self.args = model_args(cfg.model, dataset)
        self.model = build_network(arch, space, self.args, dev)
        self.optimizer, self.scheduler = build_sgd(self.model.parameters(), cfg.optim)
        self.generator = torch.Generator(dev).manual_seed(cfg.seed)
        self.epoch, self.seconds, self._began = 0, 0.0, time.perf_counter()
        self.best: tuple[float, int] | None = None  # (best eval accuracy, its epoch)

    def note_best(self, epoch: int, metrics: dict[str, float]) -> None:
        """Track the best evaluated accuracy (the authors' reported figure) and add it to
        ``metrics``, so each epoch's record and the final metrics carry it."""
        acc = metrics.get("eval_acc")
        if acc is not None and (self.best is None or acc > self.best[0]):
            self.best = (float(acc), epoch)
        if self.best is not None:
            metrics["best_eval_acc"], metrics["best_eval_epoch"] = self.best

    def elapsed(self) -> float:
        return self.seconds + time.perf_counter() - self._began

    def fit(self, module: ImageDataModule, save: Path, callback: Callback) -> dict[str, float]:
        """Train the remaining epochs, saving the state to ``save`` after each; the final
        metrics include ``eval_*`` on the module's eval split when there is one."""

        def epoch_end(epoch: int, metrics: dict[str, float]) -> None:
            self.epoch = epoch
            self.note_best(epoch, metrics)  # before the callback sees the metrics
            save_checkpoint(save, self.state_dict())

        self._began = time.perf_counter()
        callback.on_phase(Phase.TRAIN, self.cfg.optim.epochs)
        task = ClassificationTask(self.cfg.optim.aux_weight)
        precision = resolve_precision(self.cfg.precision, self.dev)
        graphs = graphed_steps(
            self.model,
            task,
            self.optimizer,
            enabled=self.cfg.cuda_graphs,
            grad_clip=self.cfg.optim.grad_clip,
            precision=precision,
        )
        metrics = fit(
            self.model,
            task,
            module,
            self.optimizer,
            self.scheduler,
            epochs=self.cfg.optim.epochs,
            start_epoch=self.epoch,
            generator=self.generator,
            grad_clip=self.cfg.optim.grad_clip,
            precision=precision,
            eval_every=self.cfg.eval_every,
            callback=callback,
            epoch_end=epoch_end,
            graphs=graphs,
        )
        batches = module.eval_batches()
        if "eval_acc" not in metrics and batches is not None:  # resumed after the last epoch
            results = evaluate(self.model, task, batches, precision=precision)
            metrics |= {f"eval_{k}": v for k, v in results.items()}
            self.note_best(self.epoch, metrics)
        return metrics

    def state_dict(self) -> dict[str, Any]:
        return {
            "kind": "train-state",
            "epoch": self.epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "generator": self.generator.get_state(),
            "rng": rng_state(self.dev),
            "seconds": self.elapsed(),
            "best": None if self.best is None else list(self.best),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.generator.set_state(state["generator"])
        self.epoch, self.seconds = int(state["epoch"]), float(state["seconds"])
        best = state.get("best")  # absent from states written before it
        self.best = None if best is None else (float(best[0]), int(best[1]))
        set_rng_state(state["rng"], self.dev)  # last: nothing may draw after it


def run_train(
    arch: Arch | str,
    space: str,
    cfg: TrainConfig | RnnTrainConfig,
    *,
    out_dir: str | Path,
    data_dir: str | Path | None = None,
    device: str | torch.device = "auto",
    callback: Callback | None = None,
) -> TrainResult:
    """Train ``arch`` of ``space`` from scratch; resume if ``out_dir`` holds a run.

    ``space="rnn"`` trains a language model with an ``RnnTrainConfig`` (``train_rnn``).

    Raises:
        InvalidConfig: If ``out_dir`` holds a run of another config or architecture.
        TrainingDiverged: If the loss became NaN or infinite.
    """
    if space == "rnn":  # language models: nao_core.train_rnn (nao-spec §6.4)
        from nao_core.train_rnn import run_train_rnn

        return run_train_rnn(
            arch, cfg, out_dir=out_dir, data_dir=data_dir, device=device, callback=callback
        )
    if not isinstance(cfg, TrainConfig):
        raise InvalidConfig(f"space: {space!r} needs a CNN train config (train/...)")
    out, dev = Path(out_dir), resolve_device(device)
    search_space = create_search_space(space)
    arch = search_space.parse(arch) if isinstance(arch, str) else arch
    ident = {"config": to_dict(cfg), "space": space, "arch": search_space.to_str(arch)}
    check_same_run(out / "config.json", ident)
    if (out / RESULT_FILE).is_file() and (out / MODEL_FILE).is_file():
        return TrainResult(**read_json(out / RESULT_FILE))  # idempotent re-run
    write_json(out / "config.json", ident)
    dataset = load_image_dataset(
        cfg.data.dataset,
        data_dir,
        train_portion=cfg.data.train_portion,
        split_seed=cfg.data.split_seed,
        train_limit=cfg.data.train_limit,
    )
    module = ImageDataModule(
        image_data(dataset, dev, cfg.data.cutout),
        cfg.data.batch_size,
        cfg.data.eval_batch_size,
        eval_split=cfg.data.eval_split,
    )
    with deterministic_mode(cfg.deterministic), forked_rng(dev):
        torch.manual_seed(cfg.seed)  # module init draws from the global generator
        run = _FinalTraining(arch, space, cfg, dataset, dev)
        if (out / STATE_FILE).is_file():
            run.load_state_dict(load_checkpoint(out / STATE_FILE, map_location=dev))
            logger.info("resume out=%s epoch=%d", out, run.epoch)
        try:
            metrics = run.fit(module, out / STATE_FILE, callback or NullCallback())
        except Cancelled as stop:
            return TrainResult("cancelled", str(out), stop.epoch, seconds=run.elapsed())
    with deterministic_mode(cfg.deterministic):  # as trained, for the provenance
        return _finish(out, run, ident, metrics, dataset)


def _finish(
    out: Path,
    run: _FinalTraining,
    ident: dict[str, Any],
    metrics: dict[str, float],
    dataset: ImageDataset,
) -> TrainResult:
    """Write ``model.pt`` and ``result.json``; the result they describe."""
    model, cfg, dev, seconds = run.model, run.cfg, run.dev, run.elapsed()
    shape = (dataset.in_channels, dataset.image_size, dataset.image_size)
    params, flops = count_parameters(model), count_flops(model, shape)
    prov = provenance(dev, cfg.seed, cfg, resolve_precision(cfg.precision, dev))
    save_checkpoint(
        out / MODEL_FILE,
        {
            "kind": "model",
            **ident,
            "dataset": dataset.name,
            "model_args": run.args,
            # what a user of the model feeds it (nao export's model card)
            "input": {"shape": list(shape), "mean": list(dataset.mean), "std": list(dataset.std)},
            "metrics": metrics,
            "provenance": prov,
            "model": model.state_dict(),
        },
    )
    result = TrainResult(
        status="completed",
        out_dir=str(out),
        epoch=cfg.optim.epochs,
        accuracy=metrics.get("eval_acc"),
        loss=metrics.get("eval_loss"),
        params=params,
        flops=flops,
        checkpoint=str(out / MODEL_FILE),
        seconds=seconds,
        best_accuracy=None if run.best is None else run.best[0],
        best_epoch=None if run.best is None else run.best[1],
    )
    write_json(out / RESULT_FILE, asdict(result))
    write_json(out / "provenance.json", {**prov, "seconds": seconds, "metrics": metrics})
    logger.info(
        "trained acc=%s (last epoch) best=%s at epoch %s (the authors' convention) params=%d "
        "flops=%d s=%.1f",
        result.accuracy, result.best_accuracy, result.best_epoch, params, flops, seconds,
    )  # fmt: skip
    return result


def load_model(
    checkpoint: dict[str, Any] | str | Path, device: str | torch.device = "cpu"
) -> tuple[CnnNetwork, dict[str, Any]]:
    """Rebuild the model of a ``kind="model"`` checkpoint; returns it (eval mode) and the
    checkpoint dict."""
    dev = resolve_device(device)
    ckpt = checkpoint if isinstance(checkpoint, dict) else load_checkpoint(checkpoint, dev)
    if ckpt.get("kind") != "model":
        raise InvalidConfig(f"not a model checkpoint (kind={ckpt.get('kind')!r})")
    if ckpt["space"] == "rnn":
        from nao_core.train_rnn import load_rnn_model

        return load_rnn_model(ckpt, dev)  # type: ignore[return-value]
    arch = create_search_space(ckpt["space"]).parse(ckpt["arch"])
    model = build_network(arch, ckpt["space"], ckpt["model_args"], dev)
    model.load_state_dict(ckpt["model"])
    return model.eval(), ckpt


def evaluate_checkpoint(
    path: str | Path,
    *,
    data_dir: str | Path | None = None,
    device: str | torch.device = "auto",
    split: str | None = None,
) -> dict[str, Any]:
    """Accuracy, loss, parameters and FLOPs of a saved model on its dataset; for a language
    model ("rnn"), valid and test perplexity (``split`` is ignored).

    Args:
        path: A ``model.pt`` written by ``run_train``.
        data_dir: Folder of the dataset files (not needed for ``digits``).
        split: ``"test"``, ``"valid"`` or ``"train"``; default: the split training reported.
    """
    dev = resolve_device(device)
    ckpt = load_checkpoint(path, dev)
    if ckpt.get("kind") == "model" and ckpt.get("space") == "rnn":
        from nao_core.train_rnn import evaluate_rnn_checkpoint

        return evaluate_rnn_checkpoint(ckpt, path, data_dir=data_dir, device=dev)
    model, ckpt = load_model(ckpt, dev)
    cfg = from_dict(TrainConfig, ckpt["config"])
    dataset = load_image_dataset(
        cfg.data.dataset,
        data_dir,
        train_portion=cfg.data.train_portion,
        split_seed=cfg.data.split_seed,
    )
    split = split or cfg.data.eval_split
    data = image_data(dataset, dev)
    batches = data.eval_batches(split, cfg.data.eval_batch_size)
    precision = resolve_precision(cfg.precision, dev)
    metrics = evaluate(model, ClassificationTask(), batches, precision=precision)
    shape = (dataset.in_channels, dataset.image_size, dataset.image_size)
    return {
        "checkpoint": str(path),
        "space": ckpt["space"],
        "arch": ckpt["arch"],
        "dataset": dataset.name,
        "split": split,
        "images": data.size(split),
        "accuracy": metrics["acc"],
        "loss": metrics["loss"],
        "params": count_parameters(model),
        "flops": count_flops(model, shape),
    }
