"""The one training loop: ``train_epoch`` (steps), ``evaluate`` and ``fit`` (epochs).

Used for supernet training (NAO-WS, nao-spec §4.1), the rerank and final training
(§4.1 "Final selection", §6.1), and later RNN language models; what differs lives in the
``Task`` (loss, metrics), the data module, and ``forward`` — how one batch goes through the
model (the supernet samples an architecture per batch, nao-spec §4.1 "Child training").

A step: forward under autocast (bf16 on CUDA) -> task loss in fp32 -> backward -> global
grad-norm clip -> optimizer step. Drop path follows the training progress (t + 1) / T of the
global step t out of T = epochs x batches (NAO_V1, nao-spec §4.1). Metrics are summed on the
device and read once per epoch; the loss is checked for NaN/inf every ``check_every`` steps
and at the end of the epoch, raising ``TrainingDiverged`` before a broken model can score
anything. The learning-rate scheduler steps once per epoch, after it (the modern order;
NAO_V1 stepped before each epoch, nao-spec §8 item 22). On CUDA the same step can be
replayed from a CUDA graph per architecture (``nao_core.engine.graphs``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from nao_core.engine.callbacks import Callback, NullCallback
from nao_core.engine.data import DataModule
from nao_core.engine.graphs import GraphedSteps, StepCall
from nao_core.engine.metrics import MetricSums
from nao_core.engine.tasks import Task
from nao_core.errors import Cancelled, TrainingDiverged
from nao_core.utils.device import Resolved, autocast

# (model, images, progress[, variant]) -> outputs; the variant (the supernet's sampled
# architecture) is passed when ``train_epoch`` is given ``draw``. Progress is a float, or a
# 0-dim device tensor inside a CUDA graph.
Forward = Callable[..., Any]
EpochEnd = Callable[[int, dict[str, float]], None]
CHECK_EVERY = 100  # steps between divergence checks (a host sync each)


def default_forward(model: nn.Module, x: Tensor, progress: float) -> Any:
    return model(x, progress=progress)


def eval_forward(model: nn.Module, x: Tensor, progress: float) -> Any:
    return model(x)


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _check_finite(sums: MetricSums, step: int) -> None:
    loss_sum = sums.peek("loss")
    if not math.isfinite(loss_sum):
        raise TrainingDiverged(step, loss_sum)


def train_epoch(
    model: nn.Module,
    task: Task,
    batches: Iterable[tuple[Tensor, Tensor]],
    optimizer: torch.optim.Optimizer,
    *,
    step: int,
    total_steps: int,
    grad_clip: float,
    precision: Resolved = "fp32",
    forward: Forward = default_forward,
    check_every: int = CHECK_EVERY,
    draw: Callable[[], Hashable] | None = None,
    graphs: GraphedSteps | None = None,
) -> tuple[dict[str, float], int]:
    """One pass over ``batches``.

    Args:
        step: Global step of the first batch (drop-path progress is (step + 1) / total_steps).
        total_steps: Steps of the whole training run.
        grad_clip: Max global gradient norm; 0 disables clipping.
        draw: Called once per step for the variant ``forward`` gets (the supernet's
            architecture); None for a fixed network.
        graphs: Run each step through these CUDA graphs (one per variant) instead of eagerly;
            built for this model, optimizer, task, clip and precision.

    Returns:
        The task's epoch metrics and the global step after the last batch.

    Raises:
        TrainingDiverged: If the loss became NaN or infinite.
    """
    device = _device_of(model)
    params = [p for group in optimizer.param_groups for p in group["params"]]
    sums = MetricSums()
    model.train()
    for x, y in batches:
        progress = (step + 1) / max(total_steps, 1)
        variant = draw() if draw is not None else None
        call = _bind(forward, model, draw is not None, variant)
        if graphs is not None:
            stats = graphs.step(variant, call, x, y, progress)
        else:
            with autocast(device, precision):
                outputs = call(x, progress)
            loss, stats = task.loss(outputs, (x, y))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if grad_clip > 0:
                nn.utils.clip_grad_norm_(params, grad_clip)
            optimizer.step()
        sums.add(stats, y.shape[0])
        step += 1
        if step % check_every == 0:
            _check_finite(sums, step)
    _check_finite(sums, step)
    return task.summarize(sums.read()), step


def _bind(forward: Forward, model: nn.Module, with_variant: bool, variant: Any) -> StepCall:
    if with_variant:
        return lambda x, progress: forward(model, x, progress, variant)
    return lambda x, progress: forward(model, x, progress)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    task: Task,
    batches: Iterable[tuple[Tensor, Tensor]],
    *,
    precision: Resolved = "fp32",
    forward: Forward = eval_forward,
) -> dict[str, float]:
    """The task's metrics over ``batches`` with the model in eval mode."""
    device = _device_of(model)
    sums = MetricSums()
    model.eval()
    for x, y in batches:
        with autocast(device, precision):
            outputs = forward(model, x, 1.0)
        sums.add(task.eval_sums(outputs, (x, y)), y.shape[0])
    return task.summarize(sums.read())


def fit(
    model: nn.Module,
    task: Task,
    data: DataModule,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None,
    *,
    epochs: int,
    generator: torch.Generator,
    grad_clip: float,
    start_epoch: int = 0,
    precision: Resolved = "fp32",
    forward: Forward = default_forward,
    eval_every: int = 1,
    callback: Callback | None = None,
    epoch_end: EpochEnd | None = None,
    draw: Callable[[], Hashable] | None = None,
    graphs: GraphedSteps | None = None,
) -> dict[str, float]:
    """Train from ``start_epoch`` (epochs already done) to ``epochs``.

    After each epoch: step the scheduler, evaluate on ``data.eval_batches()`` every
    ``eval_every`` epochs and after the last, call ``epoch_end(epoch, metrics)`` (the caller
    checkpoints there), ``callback.on_epoch_end``, then ask ``callback.should_stop()``.

    Returns:
        The metrics of the last epoch run (``train_*``, ``lr``, ``eval_*`` when evaluated).

    Raises:
        Cancelled: If the callback asked to stop (after ``epoch_end`` saved the state).
        TrainingDiverged: If the loss became NaN or infinite.
    """
    callback = callback or NullCallback()
    per_epoch = data.num_train_batches()
    metrics: dict[str, float] = {}
    for epoch in range(start_epoch, epochs):
        lr = optimizer.param_groups[0]["lr"]
        train, _ = train_epoch(
            model,
            task,
            data.train_batches(generator),
            optimizer,
            step=epoch * per_epoch,
            total_steps=epochs * per_epoch,
            grad_clip=grad_clip,
            precision=precision,
            forward=forward,
            draw=draw,
            graphs=graphs,
        )
        if scheduler is not None:
            scheduler.step()
        metrics = {**_prefixed("train", train), "lr": lr}
        done = epoch + 1
        eval_batches = data.eval_batches()
        if eval_batches is not None and (done % eval_every == 0 or done == epochs):
            metrics |= _prefixed("eval", evaluate(model, task, eval_batches, precision=precision))
        if epoch_end is not None:
            epoch_end(done, metrics)
        callback.on_epoch_end(done, metrics)
        if callback.should_stop():
            raise Cancelled(done)
    return metrics


def _prefixed(prefix: str, values: Mapping[str, float]) -> dict[str, float]:
    return {f"{prefix}_{k}": v for k, v in values.items() if k != "count"}
