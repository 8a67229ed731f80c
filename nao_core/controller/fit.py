"""Training the controller on (architecture, score) pairs (nao-spec §2.1 "Loss", "Optimization").

Loss = lambda * MSE(f(emb), y) + (1 - lambda) * NLL(decoder | tokens), Adam with coupled L2,
global grad-norm clip, min-max normalised targets (best = 1), swap augmentation applied to
encoder input and decoder target alike. The whole data set stays in one tensor; batches are
index slices of a per-epoch permutation, so an epoch costs a few fused LSTM calls and no
Python work per sample.

The batch is split across ``controller.replicas`` model replicas (2 by default) that run
forward and backward concurrently, one thread each (``fit_replicas``): the controller's
matrices are too small (batch 100, hidden 96) for one kernel to keep two cores busy, and the
oneDNN LSTM, most of a step, runs its time steps in sequence. The replicas' gradients are
summed in a fixed order, so the update is the full batch's gradient and the run is
repeatable.

Reproducible across hosts: the numerics depend on the replica count, never on the host's
thread count. Every replica computes with one intra-op thread (a kernel's rounding changes
with its thread count: a fit with one replica differs bitwise between 1 and 2 threads), and
with fewer torch threads than replicas the slices run one after another on the same
replicas, generators and summation order, so 1 and 16 threads give the same bits.
"""

from __future__ import annotations

import copy
import functools
import logging
import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from nao_core.config import ControllerConfig
from nao_core.controller.model import Controller, single_thread
from nao_core.errors import TrainingDiverged

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FitReport:
    epochs: int
    steps: int
    loss: float
    mse: float
    nll: float
    pairwise_accuracy: float
    hamming_distance: float
    seconds: float


def normalize_scores(scores: np.ndarray, transform: str = "minmax") -> np.ndarray:
    """Targets in [0, 1], best = 1.

    ``minmax`` is the authors' (y - min) / (max - min); all-equal scores map to 0.5 instead of
    dividing by zero. ``rank`` maps scores to their mean rank / (n - 1): a few broken
    architectures (NAS-Bench-201's disconnected cells score 10 %) then cannot squash every good
    architecture into the top few hundredths of the range.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if transform == "rank":
        if len(scores) < 2:
            return np.full_like(scores, 0.5)
        order = np.argsort(scores, kind="stable")
        ranks = np.empty(len(scores))
        ranks[order] = np.arange(len(scores))
        for value in np.unique(scores):  # ties share their mean rank
            tie = scores == value
            ranks[tie] = ranks[tie].mean()
        return ranks / (len(scores) - 1)
    lo, hi = float(scores.min()), float(scores.max())
    if hi - lo < 1e-12:
        return np.full_like(scores, 0.5)
    return (scores - lo) / (hi - lo)


def pairwise_accuracy(pred: np.ndarray, target: np.ndarray) -> float:
    """Share of pairs i < j ordered alike by prediction and target (ties agree when both >=)."""
    pred, target = np.asarray(pred), np.asarray(target)
    n = len(pred)
    if n < 2:
        return 1.0
    i, j = np.triu_indices(n, k=1)
    agree = (pred[i] >= pred[j]) == (target[i] >= target[j])
    return float(agree.mean())


def pairwise_rank_loss(
    pred: torch.Tensor, target: torch.Tensor, scale: float = 10.0
) -> torch.Tensor:
    """Mean of log(1 + exp(-s (p_i - p_j))) over the batch's pairs with target_i > target_j."""
    diff = pred.unsqueeze(1) - pred.unsqueeze(0)  # (B, B): p_i - p_j
    better = (target.unsqueeze(1) > target.unsqueeze(0)).float()
    if better.sum() == 0:
        return pred.sum() * 0.0
    return (F.softplus(-scale * diff) * better).sum() / better.sum()


def use_bf16(precision: str) -> bool:
    """bf16 autocast for controller training: only when asked for and the CPU can run it.

    ``"auto"`` is fp32. On AMX CPUs bf16 gradients make the decoder converge more slowly: with
    the few hundred steps of a small round (a pool of 100 at batch 100 for 200 epochs) greedy
    reconstruction stays far off (Hamming ~17 of 40 tokens, fp32: 0), so the proposals are
    close to random; at the paper's 600 x 1000 epochs both fit alike. bf16 saves a third of
    an epoch's time, which is a rounding error next to the supernet, so quality wins.

    On CPUs without AVX-512 (AVX2-only machines) oneDNN has no bf16 LSTM at all; a request
    for bf16 there trains in fp32 with a warning instead of failing the search, since one
    search config may run on any worker of a mixed fleet.
    """
    return precision == "bf16" and cpu_bf16_lstm_supported()


@functools.cache
def cpu_bf16_lstm_supported() -> bool:
    """Whether a bf16-autocast LSTM runs forward and backward on this CPU (probed once; the
    warning is logged once too)."""
    lstm = torch.nn.LSTM(8, 8, batch_first=True)
    x = torch.zeros(2, 3, 8)
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out, _ = lstm(x)
        out.float().sum().backward()
    except RuntimeError:
        logger.warning("this CPU has no bf16 LSTM: controller.precision=bf16 trains in fp32")
        return False
    return True


def fit_controller(
    controller: Controller,
    tokens: torch.Tensor,
    scores: np.ndarray,
    *,
    generator: torch.Generator,
    epochs: int | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    normalized: bool = False,
) -> tuple[FitReport, torch.optim.Optimizer]:
    """Train ``controller`` in place on ``tokens`` (N, L) and raw ``scores`` (N,), higher better.

    With ``normalized`` the scores are already targets in [0, 1] (pseudo-labels next to
    normalised real ones, ``controller.semi``) and are used as they are.

    Returns the report and the optimizer, which the caller may pass back next round when
    ``cfg.reset_optimizer`` is off (the RNN recipe keeps Adam's state).
    """
    cfg = controller.cfg
    epochs = cfg.epochs if epochs is None else epochs
    if normalized:
        values = np.asarray(scores, dtype=np.float64)
        if values.size and not (values.min() >= 0.0 and values.max() <= 1.0):
            raise ValueError("normalized targets must lie in [0, 1]")
    else:
        values = normalize_scores(scores, cfg.target_transform)
    target = torch.as_tensor(values, dtype=torch.float32)
    tokens = tokens.long()
    n = tokens.shape[0]
    if optimizer is None or cfg.reset_optimizer:
        optimizer = torch.optim.Adam(
            controller.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True
        )
    params = [p for p in controller.parameters() if p.requires_grad]
    penalty = None
    if cfg.masked_training:
        penalty = torch.zeros(controller.mask.shape).masked_fill_(~controller.mask, float("-inf"))
    bf16 = use_bf16(cfg.precision)
    augment = cfg.swap_augment and controller.symmetries.numel() > 0
    replicas = fit_replicas(cfg, torch.get_num_threads())
    threads = torch.get_num_threads()
    controller.train()
    start = time.perf_counter()
    steps, loss_sum, mse_sum, nll_sum, seen = 0, 0.0, 0.0, 0.0, 0
    # one intra-op thread per replica, whatever the host (the module docstring says why)
    with single_thread(), _Replicas(controller, replicas, generator, threads) as team:
        for epoch in range(epochs):
            # one gather and one augmentation per epoch; batches are row views of them
            order = torch.randperm(n, generator=generator)
            epoch_x, epoch_y = tokens[order], target[order]
            if augment:
                epoch_x = controller.augment(epoch_x, generator)
            last_epoch = epoch == epochs - 1
            for lo in range(0, n, cfg.batch_size):
                x, y = epoch_x[lo : lo + cfg.batch_size], epoch_y[lo : lo + cfg.batch_size]
                for p in params:
                    p.grad = None
                loss, mse, nll = team.backward(x, y, penalty, bf16)
                clipped_step(optimizer, params, cfg.grad_clip)
                steps += 1
                if last_epoch:  # report the last epoch's mean, synchronising only there
                    b = len(x)
                    loss_sum += loss.item() * b
                    mse_sum += mse.item() * b
                    nll_sum += nll.item() * b
                    seen += b
    seconds = time.perf_counter() - start
    loss_mean = loss_sum / max(seen, 1)
    if not math.isfinite(loss_mean):
        raise TrainingDiverged(steps, loss_mean)
    pa, hd = evaluate_controller(controller, tokens, target.numpy())
    report = FitReport(
        epochs, steps, loss_mean, mse_sum / max(seen, 1), nll_sum / max(seen, 1), pa, hd, seconds
    )
    logger.info(
        "controller fit epochs=%d loss=%.4f mse=%.4f nll=%.4f pairwise=%.3f hamming=%.2f s=%.1f",
        epochs,
        report.loss,
        report.mse,
        report.nll,
        pa,
        hd,
        seconds,
    )
    return report, optimizer


def clipped_step(
    optimizer: torch.optim.Optimizer, params: list[torch.Tensor], max_norm: float
) -> None:
    """``clip_grad_norm_(params, max_norm)`` then ``optimizer.step()``, in fewer passes.

    For the fused Adam that ``fit_controller`` builds, once its state exists, the clip factor
    goes into the kernel as its gradient divisor (``grad_scale``) instead of a separate
    multiply over every gradient, and the Python bookkeeping of ``Adam.step`` (state lookup,
    grouping by device, hooks) is skipped: a controller step takes 10–18 ms, of which the generic
    path took ~1 ms on the main thread while the other threads wait. The update equals the
    generic one up to float rounding; anything else (another optimizer, the first step, a
    missing gradient) takes the generic path.
    """
    state = _fused_adam_state(optimizer, params)
    if state is None:
        torch.nn.utils.clip_grad_norm_(params, max_norm)
        optimizer.step()
        return
    group, exp_avgs, exp_avg_sqs, steps = state
    grads = [p.grad for p in params]
    total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
    # clip_grad_norm_ multiplies by min(1, max_norm / (total + 1e-6)); divide by its inverse
    divisor = ((total + 1e-6) / max_norm).clamp_(min=1.0)
    beta1, beta2 = group["betas"]
    torch._foreach_add_(steps, 1)
    torch._fused_adam_(
        params,
        grads,
        exp_avgs,
        exp_avg_sqs,
        [],
        steps,
        amsgrad=False,
        lr=group["lr"],
        beta1=beta1,
        beta2=beta2,
        weight_decay=group["weight_decay"],
        eps=group["eps"],
        maximize=False,
        grad_scale=divisor,
        found_inf=None,
    )


def _fused_adam_state(
    optimizer: torch.optim.Optimizer, params: list[torch.Tensor]
) -> tuple[dict, list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]] | None:
    """The state lists of a plain fused CPU Adam over exactly ``params``, or None."""
    if type(optimizer) is not torch.optim.Adam or len(optimizer.param_groups) != 1:
        return None
    group = optimizer.param_groups[0]
    plain = not (
        group["amsgrad"]
        or group["maximize"]
        or group["capturable"]
        or group["differentiable"]
        or group.get("decoupled_weight_decay", False)
    )
    if not (group["fused"] and plain and isinstance(group["lr"], float)):
        return None
    if len(group["params"]) != len(params) or any(
        a is not b for a, b in zip(group["params"], params, strict=True)
    ):
        return None
    states = [optimizer.state.get(p) for p in params]
    ready = all(
        s
        and isinstance(s.get("step"), torch.Tensor)
        and p.grad is not None
        and p.device.type == "cpu"
        for s, p in zip(states, params, strict=True)
    )
    if not ready:
        return None
    return (
        group,
        [s["exp_avg"] for s in states],
        [s["exp_avg_sq"] for s in states],
        [s["step"] for s in states],
    )


def fit_replicas(cfg: ControllerConfig, threads: int) -> int:
    """How many model replicas share each batch: ``cfg.replicas`` (2 by default, the same on
    every host), or with 0 (auto, not reproducible across hosts) one per CPU thread, no more
    than one per 25 rows of a batch (smaller slices waste the kernels); 1 where the loss does
    not split over rows (the pairwise ranking term)."""
    if cfg.rank_weight > 0:
        return 1
    if cfg.replicas:
        return min(cfg.replicas, cfg.batch_size)
    return max(1, min(threads, cfg.batch_size // 25))


def batch_loss(
    model: Controller,
    x: torch.Tensor,
    y: torch.Tensor,
    penalty: torch.Tensor | None,
    bf16: bool,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The controller loss on one batch: (loss, predictor term, decoder NLL)."""
    cfg = model.cfg
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        pred, logits = model(x, generator)
    logits = logits.float()
    if penalty is not None:
        logits = logits + penalty
    mse = F.mse_loss(pred, y)
    if cfg.rank_weight > 0:
        mse = mse + cfg.rank_weight * pairwise_rank_loss(pred, y)
    # classes on dim 1, (B, V, L): ATen's log-softmax over a 12-wide last dim is several
    # times slower than over a strided middle one; the same value
    nll = F.cross_entropy(logits.transpose(1, 2), x)
    return cfg.trade_off * mse + (1.0 - cfg.trade_off) * nll, mse, nll


class _Replicas:
    """Data parallelism over CPU threads for one fit.

    Replica 0 is the controller itself; the others are copies made at the start of the fit
    whose parameters share the controller's storage (each with its own ``.grad``), so the
    optimizer's in-place update reaches every replica at once. ``backward`` splits a batch
    into row slices, runs each slice's forward and backward on its own replica (the main
    thread takes slice 0), scales each slice's mean loss by its share of the rows and adds
    the copies' gradients into the controller's in replica order: the controller then holds
    the full batch's gradient, the same every run. Dropout masks come from one generator per
    replica, seeded from the fit's generator, for the same reason.

    At most ``threads`` slices run at once (the caller's torch thread count: a worker told to
    use one thread uses one), each thread with one intra-op thread; which thread runs a
    slice changes nothing in its arithmetic. With one replica this is the plain serial step.
    """

    def __init__(
        self, controller: Controller, n: int, generator: torch.Generator, threads: int
    ) -> None:
        self.models = [controller]
        self.generators: list[torch.Generator | None] = [None]
        self.pool: ThreadPoolExecutor | None = None
        if n > 1:
            seeds = torch.randint(2**62, (n,), generator=generator).tolist()
            self.generators = [torch.Generator().manual_seed(s) for s in seeds]
            self.models += [copy.deepcopy(controller) for _ in range(n - 1)]
            master = list(controller.parameters())
            for model in self.models[1:]:
                for p, shared in zip(model.parameters(), master, strict=True):
                    p.data = shared.data  # read-only during backward; Adam updates in place
            workers = min(n, max(1, threads)) - 1
            if workers:
                self.pool = ThreadPoolExecutor(
                    workers,
                    thread_name_prefix="controller-fit",
                    initializer=torch.set_num_threads,
                    initargs=(1,),
                )
        self.params = [[p for p in m.parameters() if p.requires_grad] for m in self.models]

    def __enter__(self) -> _Replicas:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True)

    def _slice_backward(
        self,
        k: int,
        x: torch.Tensor,
        y: torch.Tensor,
        penalty: torch.Tensor | None,
        bf16: bool,
        share: float,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        loss, mse, nll = batch_loss(self.models[k], x, y, penalty, bf16, self.generators[k])
        if share == 1.0:  # the serial step: the same ops as a plain training loop
            loss.backward()
            return loss.detach(), mse.detach(), nll.detach()
        (loss * share).backward()
        return loss.detach() * share, mse.detach() * share, nll.detach() * share

    def backward(
        self, x: torch.Tensor, y: torch.Tensor, penalty: torch.Tensor | None, bf16: bool
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if len(self.models) == 1:
            return self._slice_backward(0, x, y, penalty, bf16, 1.0)
        n = len(x)
        count = len(self.models)
        pairs = zip(x.tensor_split(count), y.tensor_split(count), strict=True)
        slices = [(xs, ys) for xs, ys in pairs if len(xs)]  # row views, no copies
        for params in self.params[1:]:
            for p in params:
                p.grad = None
        rest = [
            (self._slice_backward, k, xs, ys, penalty, bf16, len(xs) / n)
            for k, (xs, ys) in enumerate(slices[1:], start=1)
        ]
        futures = [self.pool.submit(*job) for job in rest] if self.pool is not None else []
        x0, y0 = slices[0]
        parts = [self._slice_backward(0, x0, y0, penalty, bf16, len(x0) / n)]
        if self.pool is None:  # one thread: the same slices, one after another
            parts += [fn(*args) for fn, *args in rest]
        parts += [f.result() for f in futures]
        master = self.params[0]
        for k in range(1, len(slices)):
            torch._foreach_add_([p.grad for p in master], [p.grad for p in self.params[k]])
        loss, mse, nll = (torch.stack(t).sum() for t in zip(*parts, strict=True))
        return loss, mse, nll


@torch.no_grad()
def evaluate_controller(
    controller: Controller, tokens: torch.Tensor, target: np.ndarray
) -> tuple[float, float]:
    """Pairwise accuracy of the predictor and mean Hamming distance of greedy reconstruction."""
    controller.eval()
    pred = controller.predict(tokens).numpy()
    recon = controller.reconstruct(tokens)
    hamming = float((recon != tokens).sum(dim=1).float().mean())
    return pairwise_accuracy(pred, target), hamming
