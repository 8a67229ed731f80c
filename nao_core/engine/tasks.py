"""Tasks: what a model's outputs mean — the training loss and the metrics of a batch.

The loop in ``loop.py`` is the same for every model; a ``Task`` turns the model's outputs
and the batch into a loss and into per-batch sums (which ``MetricSums`` accumulates on the
device), and turns the epoch's sums into reported metrics.

``ClassificationTask`` is the CIFAR recipe (nao-spec §4.1, §6.1): cross-entropy on the main
logits plus ``aux_weight`` (0.4) times cross-entropy on the auxiliary head's logits when the
model returns them (training mode with an aux head); top-1 accuracy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import torch.nn.functional as F
from torch import Tensor

from nao_core.engine.metrics import correct_count

Batch = tuple[Tensor, Tensor]


class Task(Protocol):
    def loss(self, outputs: Any, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        """The loss to minimise and the batch's metric sums (0-dim tensors)."""
        ...

    def eval_sums(self, outputs: Any, batch: Batch) -> dict[str, Tensor]:
        """The batch's metric sums in evaluation."""
        ...

    def summarize(self, sums: Mapping[str, float]) -> dict[str, float]:
        """Epoch metrics from the summed values (``count`` = number of samples)."""
        ...


@dataclass(frozen=True)
class ClassificationTask:
    """Cross-entropy + ``aux_weight`` x aux cross-entropy; metrics ``loss`` and ``acc``.

    Outputs are ``(logits, aux_logits | None)``, as ``CnnNetwork`` and ``CnnSupernet`` return.
    The reported training ``loss`` is the full objective (aux term included); in evaluation
    there is no aux output and it is the plain cross-entropy.
    """

    aux_weight: float = 0.4

    def loss(self, outputs: Any, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        logits, aux = outputs
        y = batch[1]
        # Losses in fp32 whatever autocast produced: bf16 log-softmax loses the small terms.
        loss = F.cross_entropy(logits.float(), y)
        if aux is not None and self.aux_weight > 0:
            loss = loss + self.aux_weight * F.cross_entropy(aux.float(), y)
        return loss, {"loss": loss.detach() * y.shape[0], "correct": correct_count(logits, y)}

    def eval_sums(self, outputs: Any, batch: Batch) -> dict[str, Tensor]:
        logits = outputs[0] if isinstance(outputs, tuple) else outputs
        y = batch[1]
        loss = F.cross_entropy(logits.float(), y, reduction="sum")
        return {"loss": loss, "correct": correct_count(logits, y)}

    def summarize(self, sums: Mapping[str, float]) -> dict[str, float]:
        n = max(sums.get("count", 0.0), 1.0)
        return {"loss": sums.get("loss", 0.0) / n, "acc": sums.get("correct", 0.0) / n}
