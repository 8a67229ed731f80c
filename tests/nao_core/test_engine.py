"""The training engine: task loss, metric sums, the loop, divergence, callbacks, checkpoints."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from nao_core.engine import (
    ClassificationTask,
    MetricSums,
    NullCallback,
    evaluate,
    fit,
    load_checkpoint,
    save_checkpoint,
    train_epoch,
)
from nao_core.engine.checkpoint import write_json
from nao_core.errors import Cancelled, MissingData, TrainingDiverged

pytestmark = pytest.mark.usefixtures("one_thread")


class Linear(nn.Module):
    """A model with the CNN output convention: (logits, aux or None)."""

    def __init__(self, aux: bool = False) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.aux = nn.Linear(4, 3) if aux else None

    def forward(self, x: torch.Tensor, progress: float = 1.0):
        aux = self.aux(x) if self.aux is not None and self.training else None
        return self.fc(x), aux


class ToyData:
    """A linearly separable 3-class problem served through the DataModule protocol."""

    def __init__(self, n: int = 96, batch_size: int = 32, poison: bool = False) -> None:
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 4, generator=g)
        self.y = self.x[:, :3].argmax(dim=1)
        if poison:
            self.x[5] = float("nan")
        self.batch_size = batch_size

    def train_batches(self, generator: torch.Generator):
        perm = torch.randperm(len(self.y), generator=generator)
        for i in range(0, len(perm), self.batch_size):
            idx = perm[i : i + self.batch_size]
            yield self.x[idx], self.y[idx]

    def num_train_batches(self) -> int:
        return -(-len(self.y) // self.batch_size)

    def eval_batches(self):
        return iter([(self.x, self.y)])


def test_classification_loss_adds_aux_with_weight() -> None:
    logits, aux = torch.randn(8, 3), torch.randn(8, 3)
    y = torch.randint(0, 3, (8,))
    task = ClassificationTask(aux_weight=0.4)
    loss, sums = task.loss((logits, aux), (torch.zeros(8), y))
    ce = nn.functional.cross_entropy
    assert torch.allclose(loss, ce(logits, y) + 0.4 * ce(aux, y))
    assert int(sums["correct"]) == int((logits.argmax(1) == y).sum())
    plain, _ = task.loss((logits, None), (torch.zeros(8), y))
    assert torch.allclose(plain, ce(logits, y))


def test_metric_sums_read_once() -> None:
    sums = MetricSums()
    sums.add({"loss": torch.tensor(2.0), "correct": torch.tensor(3)}, n=4)
    sums.add({"loss": torch.tensor(1.0), "correct": torch.tensor(1)}, n=4)
    assert sums.read() == {"loss": 3.0, "correct": 4.0, "count": 8.0}
    summary = ClassificationTask().summarize(sums.read())
    assert summary == {"loss": 3.0 / 8, "acc": 0.5}


def test_fit_learns_and_reports_cosine_lr() -> None:
    torch.manual_seed(0)
    model, data = Linear(aux=True), ToyData()
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=5, eta_min=0.0)
    seen: list[tuple[int, dict]] = []
    metrics = fit(
        model, ClassificationTask(), data, opt, sched, epochs=5, grad_clip=5.0,
        generator=torch.Generator().manual_seed(0), epoch_end=lambda e, m: seen.append((e, m)),
    )  # fmt: skip
    assert [e for e, _ in seen] == [1, 2, 3, 4, 5]
    lrs = [m["lr"] for _, m in seen]
    assert lrs[0] == 0.5  # the first epoch runs at lr_max; the schedule steps after it
    assert lrs == sorted(lrs, reverse=True)
    assert metrics["eval_acc"] > 0.8
    assert set(metrics) >= {"train_loss", "train_acc", "eval_loss", "eval_acc", "lr"}


def test_nan_loss_raises_training_diverged() -> None:
    model, data = Linear(), ToyData(poison=True)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(TrainingDiverged) as info:
        train_epoch(
            model, ClassificationTask(), data.train_batches(torch.Generator().manual_seed(0)),
            opt, step=0, total_steps=3, grad_clip=5.0,
        )  # fmt: skip
    assert math.isnan(info.value.loss)
    assert info.value.step == 3


def test_should_stop_cancels_after_epoch_end_saved() -> None:
    class StopNow(NullCallback):
        def __init__(self) -> None:
            self.epochs: list[int] = []

        def on_epoch_end(self, epoch, metrics) -> None:
            self.epochs.append(epoch)

        def should_stop(self) -> bool:
            return True

    saved: list[int] = []
    cb = StopNow()
    model = Linear()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(Cancelled) as info:
        fit(
            model, ClassificationTask(), ToyData(), opt, None, epochs=3, grad_clip=0.0,
            generator=torch.Generator().manual_seed(0), callback=cb,
            epoch_end=lambda e, m: saved.append(e),
        )  # fmt: skip
    assert info.value.epoch == 1
    assert saved == cb.epochs == [1]


def test_evaluate_is_deterministic_in_eval_mode() -> None:
    model, data = Linear(aux=True), ToyData()
    a = evaluate(model, ClassificationTask(), data.eval_batches())
    b = evaluate(model, ClassificationTask(), data.eval_batches())
    assert a == b
    assert not model.training


def test_checkpoint_is_atomic_and_weights_only(tmp_path: Path) -> None:
    model = Linear()
    path = tmp_path / "sub" / "ckpt.pt"
    save_checkpoint(path, {"kind": "model", "model": model.state_dict(), "metrics": {"a": 1.0}})
    save_checkpoint(path, {"kind": "model", "model": model.state_dict(), "metrics": {"a": 2.0}})
    assert [p.name for p in path.parent.iterdir()] == ["ckpt.pt"]  # no temporary left behind
    ckpt = load_checkpoint(path)
    assert ckpt["metrics"] == {"a": 2.0}
    assert torch.equal(ckpt["model"]["fc.weight"], model.fc.weight)
    write_json(tmp_path / "r.json", {"x": [1, 2]})
    assert (tmp_path / "r.json").read_text().startswith("{")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(MissingData):
        load_checkpoint(tmp_path / "junk.pt")
    with pytest.raises(MissingData):
        load_checkpoint(tmp_path / "absent.pt")
