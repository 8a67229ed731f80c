"""Training steps replayed from CUDA graphs: one graph per architecture.

At the paper's sizes (batch 64, 20 channels) a supernet step on a GPU is a few thousand tiny
kernels, and eager PyTorch spends far longer launching them than the GPU spends running them
(measured on an H200: about 4,600 kernels and 100 ms of launch work per step against 16 ms of
GPU time). A CUDA graph records a whole step — forward, backward, gradient clipping and the SGD
update — once, and replays it with a single launch. The supernet runs a different architecture
every step, so ``GraphedSteps`` keeps one graph per architecture (the ``variant``; ``None`` for
a fixed network), captured the first time that architecture is trained and replayed whenever it
comes back. A pool architecture comes back about 35 times per 30-epoch round of a paper search.

What changes inside a graph, and why it is still the same step:

* Inputs live in static buffers: the batch is copied in, the learning rate and the training
  progress (the drop-path schedule) are 0-dim device tensors filled before each replay.
* The optimizer update is written out with ``torch._foreach_*`` ops — SGD with momentum and
  weight decay exactly as ``torch.optim.SGD`` does it (dampening 0, no Nesterov), its momentum
  buffers kept in the optimizer's own state so checkpoints and resumption are unchanged — because
  ``torch.optim.SGD`` takes its learning rate as a host number, which a graph would freeze.
  Parameters an architecture does not use get no gradient and are not updated, as in eager mode.
* Momentum buffers are created (zero) for every parameter before the first capture: a buffer
  allocated inside a capture would live in the graph's private memory. SGD's first step sets
  the buffer to the gradient, which a zero buffer times momentum plus the gradient equals.
* Drop path draws its masks from the device generator inside the graph (PyTorch advances the
  generator's offset on every replay), with the keep probability as a tensor; the masks differ
  from an eager run's, their distribution does not.
* All graphs share one memory pool. Nothing a graph writes is read after another graph runs
  except its 0-dim statistics, which stay referenced and so are never reused.

The first step runs eagerly on a side stream (cuBLAS and cuDNN initialise there, not inside a
capture), as does any batch whose shape differs from the static buffers (a short last batch).
After ``load_state_dict`` on the model's optimizer the captured buffer addresses are stale:
build a new ``GraphedSteps``.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

import torch
from torch import Tensor, nn

from nao_core.engine.tasks import Task
from nao_core.utils.device import Resolved, autocast

logger = logging.getLogger(__name__)

StepCall = Callable[[Tensor, Tensor], Any]  # (images, progress tensor) -> model outputs


def graphs_supported(optimizer: torch.optim.Optimizer) -> str | None:
    """Why ``optimizer`` cannot be replayed in a graph, or None when it can."""
    if not isinstance(optimizer, torch.optim.SGD):
        return f"the optimizer is {type(optimizer).__name__}, not SGD"
    if len(optimizer.param_groups) != 1:
        return "the optimizer has several parameter groups"
    group = optimizer.param_groups[0]
    if group["nesterov"] or group["dampening"] != 0 or group.get("maximize", False):
        return "SGD with Nesterov, dampening or maximize"
    return None


class GraphedSteps:
    """Training steps of ``model`` on CUDA, one captured graph per variant, LRU-bounded.

    Args:
        max_graphs: graphs kept; the least recently used is dropped beyond it (then captured
            again if its variant returns). A capture that runs out of device memory halves it.
    """

    def __init__(
        self,
        model: nn.Module,
        task: Task,
        optimizer: torch.optim.SGD,
        *,
        grad_clip: float,
        precision: Resolved,
        max_graphs: int = 1024,
    ) -> None:
        reason = graphs_supported(optimizer)
        if reason is not None:
            raise ValueError(f"CUDA graphs need plain SGD: {reason}")
        self.model, self.task, self.optimizer = model, task, optimizer
        self.grad_clip, self.precision, self.max_graphs = grad_clip, precision, max_graphs
        self.params = list(optimizer.param_groups[0]["params"])
        self.device = self.params[0].device
        self.lr = torch.zeros((), device=self.device)
        self.progress = torch.zeros((), device=self.device)
        self._lr_value: float | None = None
        self.x: Tensor | None = None
        self.y: Tensor | None = None
        self.pool = torch.cuda.graph_pool_handle() if self.device.type == "cuda" else None
        self.graphs: OrderedDict[Hashable, tuple[torch.cuda.CUDAGraph, dict[str, Tensor]]] = (
            OrderedDict()
        )
        self.uncapturable: set[Hashable] = set()
        self.captures = 0
        self._warm = False
        self._side: torch.cuda.Stream | None = None  # for the eager steps (first, short)
        for p in self.params:
            state = optimizer.state[p]
            if state.get("momentum_buffer") is None:
                state["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)

    # -- the step, as plain tensor ops (runs eagerly too: that is how it is tested on a CPU) --
    def functional_step(self, call: StepCall, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        """Forward, backward, clip and SGD update, from cleared gradients.

        Clearing here, not per step, keeps a replayed step free of it: a replay never sets
        the parameters' ``.grad`` (they stay None after a capture)."""
        self._zero_grad()
        with autocast(self.device, self.precision, cache=False):
            outputs = call(x, self.progress)
        loss, stats = self.task.loss(outputs, (x, y))
        loss.backward()
        params = [p for p in self.params if p.grad is not None]
        if self.grad_clip > 0:
            nn.utils.clip_grad_norm_(params, self.grad_clip)
        with torch.no_grad():
            self._sgd_update(params)
        return {k: v.detach() for k, v in stats.items()}

    def _sgd_update(self, params: list[nn.Parameter]) -> None:
        """torch.optim.SGD's update (no dampening, no Nesterov) with a tensor learning rate."""
        group = self.optimizer.param_groups[0]
        grads = [p.grad for p in params]
        if group["weight_decay"] != 0:
            grads = torch._foreach_add(grads, params, alpha=group["weight_decay"])
        if group["momentum"] != 0:
            bufs = [self.optimizer.state[p]["momentum_buffer"] for p in params]
            torch._foreach_mul_(bufs, group["momentum"])
            torch._foreach_add_(bufs, grads)
            grads = bufs
        torch._foreach_add_(params, torch._foreach_mul(grads, self.lr.neg()))

    def _set_inputs(self, progress: float) -> None:
        lr = float(self.optimizer.param_groups[0]["lr"])
        if lr != self._lr_value:
            self.lr.fill_(lr)
            self._lr_value = lr
        self.progress.fill_(progress)

    def _zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def step(
        self, variant: Hashable, call: StepCall, x: Tensor, y: Tensor, progress: float
    ) -> dict[str, Tensor]:
        """One training step of ``variant`` on the batch (x, y); returns the task's batch stats.

        The stats of a replayed graph are its static outputs: read or copy them before the
        same variant's next step.
        """
        self._set_inputs(progress)
        if self.device.type != "cuda":
            return self.functional_step(call, x, y)
        if self.x is None:
            self.x, self.y = torch.empty_like(x), torch.empty_like(y)
        assert self.y is not None
        if x.shape != self.x.shape or y.shape != self.y.shape or not self._warm:
            return self._eager_on_side_stream(call, x, y)
        self.x.copy_(x)
        self.y.copy_(y)
        entry = self.graphs.get(variant)
        if entry is None:
            if variant in self.uncapturable:
                return self.functional_step(call, self.x, self.y)
            entry = self._capture(variant, call)
            if entry is None:
                return self.functional_step(call, self.x, self.y)
        else:
            self.graphs.move_to_end(variant)
        graph, stats = entry
        graph.replay()
        return stats

    def _eager_on_side_stream(self, call: StepCall, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        if self._side is None:
            self._side = torch.cuda.Stream(self.device)
        side = self._side
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            stats = self.functional_step(call, x, y)
        torch.cuda.current_stream(self.device).wait_stream(side)
        self._warm = True
        return stats

    def _capture(
        self, variant: Hashable, call: StepCall
    ) -> tuple[torch.cuda.CUDAGraph, dict[str, Tensor]] | None:
        assert self.x is not None
        assert self.y is not None
        self._evict_to(self.max_graphs - 1)  # make room first: a capture takes memory
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph, pool=self.pool):
                stats = self.functional_step(call, self.x, self.y)
        except torch.cuda.OutOfMemoryError:
            # The cache outgrew the device: keep half of it, train this step eagerly, and
            # capture again when the variant returns.
            self.max_graphs = max(1, len(self.graphs) // 2)
            self._evict_to(self.max_graphs)
            logger.warning("cuda_graphs=out_of_memory cache_now=%d", self.max_graphs)
            self._after_failed_capture()
            return None
        except RuntimeError as exc:  # an op that cannot be captured: train it eagerly
            logger.warning("cuda_graphs=capture_failed variant=%s error=%s", variant, exc)
            self.uncapturable.add(variant)
            self._after_failed_capture()
            return None
        self._zero_grad()  # the graph keeps writing them; nothing outside reads them
        self.captures += 1
        self.graphs[variant] = (graph, stats)
        return graph, stats

    def _evict_to(self, size: int) -> None:
        while self.graphs and len(self.graphs) > max(size, 0):
            self.graphs.popitem(last=False)  # least recently used first

    def _after_failed_capture(self) -> None:
        self._zero_grad()
        torch.cuda.synchronize(self.device)
        torch.cuda.empty_cache()


def graphed_steps(
    model: nn.Module,
    task: Task,
    optimizer: torch.optim.Optimizer,
    *,
    enabled: bool,
    grad_clip: float,
    precision: Resolved,
    max_graphs: int = 1024,
) -> GraphedSteps | None:
    """``GraphedSteps`` when ``enabled`` and the model is on CUDA, else None (eager steps)."""
    device = next(model.parameters()).device
    if not enabled or device.type != "cuda":
        return None
    reason = graphs_supported(optimizer)
    if reason is not None:
        logger.warning("cuda_graphs=off reason=%r", reason)
        return None
    assert isinstance(optimizer, torch.optim.SGD)
    return GraphedSteps(
        model, task, optimizer, grad_clip=grad_clip, precision=precision, max_graphs=max_graphs
    )
