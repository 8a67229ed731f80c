"""Data modules: where the loop gets its batches.

The loop needs only ``train_batches(generator)``, ``num_train_batches()`` and
``eval_batches()``; ``ImageDataModule`` serves them from a device-resident ``ImageData``
(nao-spec §9: no DataLoader workers). An RNN language-model module will serve BPTT windows
through the same three methods.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import torch
from torch import Tensor

from nao_core.data import ImageData, ImageDataset, create_dataset
from nao_core.data.base import Split

Batch = tuple[Tensor, Tensor]


class DataModule(Protocol):
    def train_batches(self, generator: torch.Generator) -> Iterator[Batch]:
        """One shuffled, augmented epoch."""
        ...

    def num_train_batches(self) -> int:
        """Batches per training epoch (sets the drop-path schedule's total steps)."""
        ...

    def eval_batches(self) -> Iterator[Batch] | None:
        """The evaluation split, in a fixed order, or None when there is none."""
        ...


@dataclass
class ImageDataModule:
    """Batches of an ``ImageData``: training on ``train_split``, evaluation on ``eval_split``."""

    data: ImageData
    batch_size: int
    eval_batch_size: int = 500
    train_split: str = "train"
    eval_split: str | None = "valid"

    def train_batches(self, generator: torch.Generator) -> Iterator[Batch]:
        return self.data.train_batches(self.batch_size, generator, split=self.train_split)

    def num_train_batches(self) -> int:
        return self.data.num_batches(self.train_split, self.batch_size)

    def eval_batches(self) -> Iterator[Batch] | None:
        if self.eval_split is None or self.data.size(self.eval_split) == 0:
            return None
        return self.data.eval_batches(self.eval_split, self.eval_batch_size)


def load_image_dataset(
    name: str,
    data_dir: str | Path | None,
    *,
    train_portion: float,
    split_seed: int,
    train_limit: int = 0,
) -> ImageDataset:
    """``create_dataset`` plus an optional cap on the training images (the first
    ``train_limit`` of the seeded train split; 0 keeps them all) for quick runs."""
    dataset = create_dataset(name, data_dir, train_portion=train_portion, seed=split_seed)
    if 0 < train_limit < len(dataset.train):
        train = dataset.train
        dataset = replace(dataset, train=Split(train.x[:train_limit], train.y[:train_limit]))
    return dataset
