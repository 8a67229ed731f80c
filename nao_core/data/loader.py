"""``ImageData``: a whole image dataset kept on one device as uint8, batched without DataLoaders.

The three splits are moved to the target device once. Training batches are gathered by a
shuffled index and augmented with the batched ops of ``augment.py`` (crop, flip, normalise,
cutout; spec §4.1 "Data", §6.1); evaluation batches are only normalised, in a fixed order.
``fixed_batches`` materialises a list of normalised validation batches once, so that the
supernet scores every architecture in the pool on the same images (spec §4.1 "Pool
evaluation" draws a new random batch per architecture, which adds noise to the ranking; spec
§9 recommends removing the per-architecture iterators).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from nao_core.data import augment
from nao_core.data.base import ImageDataset
from nao_core.errors import InvalidConfig

Batch = tuple[Tensor, Tensor]  # images (B, C, H, W) float, labels (B,) int64


class ImageData:
    """A dataset held on ``device`` with batched, generator-driven augmentation.

    Args:
        dataset: The splits and statistics to serve.
        device: Where the uint8 images live and batches are made (``"cpu"``, ``"cuda:0"``...).
        dtype: Floating dtype of the image batches.
        channels_last: Return batches in ``torch.channels_last`` memory format.
        cutout: Side of the cutout square on training batches, in pixels of a 32×32 image (the
            unit of the CIFAR recipes) and scaled to the dataset's image size, so a recipe's 16
            masks a quarter of an 8×8 digit as of a CIFAR image; 0 disables it (NAO search).
        crop_padding: Padding of the training random crop; ``None`` takes the dataset's.
        flip: Random horizontal flips on training batches; ``None`` takes the dataset's.

    Raises:
        InvalidConfig: If ``dtype`` is not floating point or a size is negative.
    """

    def __init__(
        self,
        dataset: ImageDataset,
        device: str | torch.device = "cpu",
        *,
        dtype: torch.dtype = torch.float32,
        channels_last: bool = False,
        cutout: int = 0,
        crop_padding: int | None = None,
        flip: bool | None = None,
    ) -> None:
        if not dtype.is_floating_point:
            raise InvalidConfig(f"batch dtype must be floating point, got {dtype}")
        if cutout < 0 or (crop_padding is not None and crop_padding < 0):
            raise InvalidConfig(
                f"cutout and crop_padding must be >= 0, got {cutout}, {crop_padding}"
            )
        self.dataset = dataset
        self.device = torch.device(device)
        self.dtype = dtype
        self.channels_last = channels_last
        side = int(dataset.split("train").x.shape[-1])
        self.cutout = round(cutout * side / 32) if cutout else 0
        self.crop_padding = dataset.crop_padding if crop_padding is None else crop_padding
        self.flip = dataset.flip if flip is None else flip
        self._splits: dict[str, tuple[Tensor, Tensor]] = {}
        for name in ("train", "valid", "test"):
            split = dataset.split(name)
            self._splits[name] = (split.x.to(self.device), split.y.to(self.device))
        # Statistics stay float32: normalisation is computed before the cast to ``dtype``.
        self._mean = torch.tensor(dataset.mean, device=self.device).view(
            1, -1, 1, 1
        )  # (1, C, 1, 1)
        self._std = torch.tensor(dataset.std, device=self.device).view(1, -1, 1, 1)

    def size(self, split: str) -> int:
        """Number of images in ``split``."""
        return int(self._split(split)[1].shape[0])

    def num_batches(self, split: str, batch_size: int, drop_last: bool = False) -> int:
        """How many batches one pass over ``split`` yields."""
        n = self.size(split)
        return n // batch_size if drop_last else -(-n // batch_size)

    def augment(self, x: Tensor, generator: torch.Generator) -> Tensor:
        """Training transform of a uint8 batch: crop, flip, normalise, cutout, then format."""
        x = augment.random_crop(x, self.crop_padding, generator)
        if self.flip:
            x = augment.random_flip(x, generator)
        x = augment.cutout(self._normalize(x), self.cutout, generator)
        return self._format(x)

    def prepare(self, x: Tensor) -> Tensor:
        """Evaluation transform of a uint8 batch: normalise and format only."""
        return self._format(self._normalize(x))

    def train_batches(
        self,
        batch_size: int,
        generator: torch.Generator,
        *,
        split: str = "train",
        drop_last: bool = False,
    ) -> Iterator[Batch]:
        """One shuffled, augmented epoch over ``split``.

        Args:
            batch_size: Images per batch; the last one is smaller unless ``drop_last``.
            generator: Source of the shuffle and the augmentation; the same seed gives the same
                batches.
            split: Split to train on (``"train"``, or ``"valid"`` for a quick check).
            drop_last: Skip the final incomplete batch.

        Yields:
            Augmented images (B, C, H, W) of ``dtype`` and int64 labels (B,).
        """
        _check_batch_size(batch_size)
        x, y = self._split(split)
        perm = torch.randperm(len(y), generator=generator, device=generator.device)
        perm = perm.to(self.device)
        stop = self.num_batches(split, batch_size, drop_last) * batch_size
        for start in range(0, stop, batch_size):
            idx = perm[start : start + batch_size]
            yield self.augment(x[idx], generator), y[idx]

    def eval_batches(self, split: str = "valid", batch_size: int = 500) -> Iterator[Batch]:
        """Every image of ``split`` in stored order, normalised only (deterministic).

        Yields:
            Normalised images (B, C, H, W) of ``dtype`` and int64 labels (B,).
        """
        _check_batch_size(batch_size)
        x, y = self._split(split)
        for start in range(0, len(y), batch_size):
            yield self.prepare(x[start : start + batch_size]), y[start : start + batch_size]

    def fixed_batches(
        self,
        split: str = "valid",
        batch_size: int = 500,
        num_batches: int | None = None,
        generator: torch.Generator | None = None,
    ) -> list[Batch]:
        """A fixed list of normalised batches, made once, for scoring many architectures alike.

        Args:
            split: Split to draw from.
            batch_size: Images per batch.
            num_batches: How many batches; ``None`` (or more than the split holds) covers the
                whole split, the last batch possibly smaller.
            generator: When given, the images are a random sample without replacement drawn
                from it; otherwise the first images in stored order.

        Returns:
            Normalised (images, labels) pairs on ``device``; reuse the list, do not re-call.
        """
        _check_batch_size(batch_size)
        x, y = self._split(split)
        n = len(y) if num_batches is None else min(len(y), num_batches * batch_size)
        if generator is None:
            idx = torch.arange(n, device=self.device)
        else:
            perm = torch.randperm(len(y), generator=generator, device=generator.device)
            idx = perm[:n].to(self.device)
        chunks = idx.split(batch_size)
        return [(self.prepare(x[i]), y[i]) for i in chunks]

    def _split(self, name: str) -> tuple[Tensor, Tensor]:
        if name not in self._splits:
            raise InvalidConfig(f"unknown split {name!r}; known: {', '.join(self._splits)}")
        return self._splits[name]

    def _normalize(self, x: Tensor) -> Tensor:
        return augment.normalize(x, self._mean, self._std, torch.float32)

    def _format(self, x: Tensor) -> Tensor:
        # Cast last: cutout and normalisation stay in float32 whatever the batch dtype.
        x = x.to(self.dtype)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x


def _check_batch_size(batch_size: int) -> None:
    if batch_size < 1:
        raise InvalidConfig(f"batch_size must be >= 1, got {batch_size}")
