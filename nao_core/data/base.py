"""The dataset object every image dataset builds, and the seeded train/valid split.

An ``ImageDataset`` holds three ``Split``s of uint8 NCHW images with int64 labels, plus what a
model and the batched augmentation need (classes, channels, size, mean/std, crop padding, flip).
The split follows the NAO search recipe (spec §4.1 "Data"): the official training set is cut by
a seeded permutation into ``train_portion`` train and the rest valid (0.9 → 45k/5k on CIFAR-10).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from nao_core.errors import InvalidConfig


@dataclass(frozen=True)
class Split:
    """Images and labels of one split.

    Attributes:
        x: uint8 images, (N, C, H, W).
        y: int64 labels, (N,).
    """

    x: Tensor
    y: Tensor

    def __post_init__(self) -> None:
        if self.x.dtype != torch.uint8 or self.x.dim() != 4:
            raise InvalidConfig(
                f"images must be uint8 (N, C, H, W), got {self.x.dtype} {_shape(self.x)}"
            )
        if self.y.dtype != torch.int64 or self.y.shape != (self.x.shape[0],):
            raise InvalidConfig(
                f"labels must be int64 ({self.x.shape[0]},), got {self.y.dtype} {_shape(self.y)}"
            )

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def subset(self, index: Tensor) -> Split:
        """The images at ``index`` (a 1-D index tensor), in that order."""
        return Split(self.x[index], self.y[index])


@dataclass(frozen=True)
class ImageDataset:
    """A classification dataset with train/valid/test splits held as uint8 tensors (on CPU).

    Attributes:
        name: Registry name, e.g. ``"cifar10"``.
        train: Images the supernet / final model trains on.
        valid: Held-out part of the official training set (empty when ``train_portion`` is 1).
        test: The official test set (a fixed held-out set for datasets without one).
        num_classes: Number of labels.
        mean: Per-channel mean of the pixels in [0, 1] units, used for normalisation.
        std: Per-channel standard deviation in [0, 1] units.
        crop_padding: Zero padding of the random crop (4 on CIFAR, spec §4.1).
        flip: Whether random horizontal flips are a valid augmentation for this data.
    """

    name: str
    train: Split
    valid: Split
    test: Split
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop_padding: int
    flip: bool

    def __post_init__(self) -> None:
        shapes = {tuple(s.x.shape[1:]) for s in (self.train, self.valid, self.test)}
        if len(shapes) != 1:
            raise InvalidConfig(f"{self.name}: splits have different image shapes {sorted(shapes)}")
        if len(self.mean) != self.in_channels or len(self.std) != self.in_channels:
            raise InvalidConfig(f"{self.name}: mean/std need {self.in_channels} values")
        if min(self.std) <= 0:
            raise InvalidConfig(f"{self.name}: std must be positive, got {self.std}")
        if self.crop_padding < 0:
            raise InvalidConfig(f"{self.name}: crop_padding must be >= 0, got {self.crop_padding}")

    @property
    def in_channels(self) -> int:
        return int(self.train.x.shape[1])

    @property
    def image_size(self) -> int:
        """Height of the (square) images."""
        return int(self.train.x.shape[2])

    def split(self, name: str) -> Split:
        """The split called ``"train"``, ``"valid"`` or ``"test"``."""
        if name not in ("train", "valid", "test"):
            raise InvalidConfig(f"unknown split {name!r}; known: train, valid, test")
        split: Split = getattr(self, name)
        return split


def split_train_valid(full: Split, train_portion: float, seed: int) -> tuple[Split, Split]:
    """Cut a training set into train and valid parts by a seeded random permutation.

    As in NAO_V1 ``build_cifar10`` (spec §4.1), the first ``floor(train_portion * N)`` indices of
    the permutation are train and the rest valid; both parts keep permutation order. The
    permutation comes from its own ``torch.Generator`` so the split never depends on, or
    disturbs, the randomness of training.

    Args:
        full: The official training set.
        train_portion: Fraction kept for training, in (0, 1]; 1 gives an empty valid split.
        seed: Seed of the permutation.

    Returns:
        The train and valid splits.

    Raises:
        InvalidConfig: If ``train_portion`` is out of range or leaves no training images.
    """
    if not 0.0 < train_portion <= 1.0:
        raise InvalidConfig(f"train_portion must be in (0, 1], got {train_portion}")
    n_train = math.floor(train_portion * len(full))
    if n_train == 0:
        raise InvalidConfig(f"train_portion={train_portion} leaves no training images")
    perm = torch.randperm(len(full), generator=torch.Generator().manual_seed(seed))
    return full.subset(perm[:n_train]), full.subset(perm[n_train:])


def _shape(t: Tensor) -> tuple[int, ...]:
    return tuple(t.shape)
