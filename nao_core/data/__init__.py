"""Image classification data: readers, the seeded splits, and a device-resident batcher.

``create_dataset(name, data_dir)`` builds a registered ``ImageDataset`` (uint8 splits on CPU,
spec §4.1 "Data"); ``ImageData(dataset, device)`` keeps it on a device and yields augmented
batches (spec §4.1, §6.1). Registered names: ``cifar10``, ``cifar100`` (official python batches
under ``data_dir``) and ``digits`` (ships with scikit-learn, needs no download).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from nao_core.data.augment import cutout, normalize, random_crop, random_flip
from nao_core.data.base import ImageDataset, Split, split_train_valid
from nao_core.data.cifar import build_cifar10, build_cifar100, read_cifar10, read_cifar100
from nao_core.data.digits import build_digits, read_digits
from nao_core.data.loader import Batch, ImageData
from nao_core.errors import InvalidConfig, UnknownName

_DATASETS: dict[str, Callable[..., ImageDataset]] = {
    "cifar10": build_cifar10,
    "cifar100": build_cifar100,
    "digits": build_digits,
}
_NEEDS_DIR = {"cifar10", "cifar100"}


def list_datasets() -> list[str]:
    return sorted(_DATASETS)


def create_dataset(
    name: str,
    data_dir: str | Path | None = None,
    *,
    train_portion: float | None = None,
    seed: int = 0,
) -> ImageDataset:
    """Build the dataset registered under ``name``.

    Args:
        name: One of ``list_datasets()``.
        data_dir: Folder holding the extracted official archives (unused by ``digits``).
        train_portion: Fraction of the training images kept for training, the rest being the
            valid split; ``None`` keeps the dataset's default (0.9 for CIFAR, spec §4.1; 0.8
            of the 1,500 non-test digits).
        seed: Seed of the train/valid permutation.

    Raises:
        UnknownName: If ``name`` is not registered.
        InvalidConfig: If a CIFAR dataset gets no ``data_dir`` or ``train_portion`` is invalid.
        MissingData: If a file of the dataset is absent.
    """
    if name not in _DATASETS:
        raise UnknownName("dataset", name, list_datasets())
    if name in _NEEDS_DIR and data_dir is None:
        raise InvalidConfig(f"dataset {name!r} needs data_dir, the folder of its official files")
    build = _DATASETS[name]
    if train_portion is None:  # each builder knows its own default
        return build(data_dir, seed=seed)
    return build(data_dir, train_portion=train_portion, seed=seed)


__all__ = [
    "Batch",
    "ImageData",
    "ImageDataset",
    "Split",
    "build_cifar10",
    "build_cifar100",
    "build_digits",
    "create_dataset",
    "cutout",
    "list_datasets",
    "normalize",
    "random_crop",
    "random_flip",
    "read_cifar10",
    "read_cifar100",
    "read_digits",
    "split_train_valid",
]
