"""CIFAR-10 and CIFAR-100 read from the official python-batch layout (Krizhevsky 2009).

``<data_dir>/cifar-10-batches-py/{data_batch_1..5, test_batch}`` and
``<data_dir>/cifar-100-python/{train, test}`` are pickled dicts whose ``b"data"`` is a uint8
(N, 3072) array: each row is the red, then green, then blue 32×32 plane in row-major order.
Labels are ``b"labels"`` (CIFAR-10) or ``b"fine_labels"`` (CIFAR-100). The builders return an
``ImageDataset`` with the NAO search split (spec §4.1 "Data": 90/10 of the official training set
by a seeded permutation) and the official test set, and the normalisation constants of the
reference code (spec §4.1; the same for final training, spec §6.1).
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nao_core.data.base import ImageDataset, Split, split_train_valid
from nao_core.errors import MissingData

CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)
CIFAR100_STD = (0.2673, 0.2564, 0.2762)
CROP_PADDING = 4

_CIFAR10_DIR = "cifar-10-batches-py"
_CIFAR10_TARBALL = "cifar-10-python.tar.gz"
_CIFAR10_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
_CIFAR100_DIR = "cifar-100-python"
_CIFAR100_TARBALL = "cifar-100-python.tar.gz"

# The official files hold only a dict of bytes, lists and numpy arrays. Unpickling anything
# else could run code, and data_dir may come from a job config, so only these globals load.
_SAFE_GLOBALS = {
    ("_codecs", "encode"),  # bytes pickled by Python 3 at protocol <= 2
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),  # the official (Python 2, numpy 1) files
    ("numpy._core.multiarray", "_reconstruct"),  # files re-pickled with numpy 2
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),  # pickle protocol 5
    ("numpy._core.numeric", "_frombuffer"),
}


class _BatchUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _SAFE_GLOBALS:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR batch")
        return super().find_class(module, name)


def read_cifar10(data_dir: str | Path) -> tuple[Split, Split]:
    """Read the official CIFAR-10 training (50,000) and test (10,000) sets.

    Args:
        data_dir: Folder that contains ``cifar-10-batches-py/``.

    Returns:
        The training set (``data_batch_1`` to ``data_batch_5`` in order) and ``test_batch``.

    Raises:
        MissingData: If a batch file is absent or is not an official batch.
    """
    folder = Path(data_dir) / _CIFAR10_DIR
    parts = [_read_batch(folder, name, b"labels", _CIFAR10_TARBALL) for name in _CIFAR10_TRAIN]
    train = Split(torch.cat([p.x for p in parts]), torch.cat([p.y for p in parts]))
    return train, _read_batch(folder, "test_batch", b"labels", _CIFAR10_TARBALL)


def read_cifar100(data_dir: str | Path) -> tuple[Split, Split]:
    """Read the official CIFAR-100 training (50,000) and test (10,000) sets with fine labels.

    Args:
        data_dir: Folder that contains ``cifar-100-python/``.

    Returns:
        The ``train`` and ``test`` sets.

    Raises:
        MissingData: If a file is absent or is not an official batch.
    """
    folder = Path(data_dir) / _CIFAR100_DIR
    train = _read_batch(folder, "train", b"fine_labels", _CIFAR100_TARBALL)
    return train, _read_batch(folder, "test", b"fine_labels", _CIFAR100_TARBALL)


def build_cifar10(
    data_dir: str | Path, *, train_portion: float = 0.9, seed: int = 0
) -> ImageDataset:
    """CIFAR-10 with the seeded train/valid split of spec §4.1 and the official test set.

    Args:
        data_dir: Folder that contains ``cifar-10-batches-py/``.
        train_portion: Fraction of the official training set kept for training.
        seed: Seed of the train/valid permutation.
    """
    full, test = read_cifar10(data_dir)
    train, valid = split_train_valid(full, train_portion, seed)
    return ImageDataset(
        "cifar10", train, valid, test, 10, CIFAR10_MEAN, CIFAR10_STD, CROP_PADDING, flip=True
    )


def build_cifar100(
    data_dir: str | Path, *, train_portion: float = 0.9, seed: int = 0
) -> ImageDataset:
    """CIFAR-100 (fine labels) split like CIFAR-10; see ``build_cifar10``."""
    full, test = read_cifar100(data_dir)
    train, valid = split_train_valid(full, train_portion, seed)
    return ImageDataset(
        "cifar100", train, valid, test, 100, CIFAR100_MEAN, CIFAR100_STD, CROP_PADDING, flip=True
    )


_DATASET = {_CIFAR10_TARBALL: "cifar10", _CIFAR100_TARBALL: "cifar100"}


def _read_batch(folder: Path, name: str, label_key: bytes, tarball: str) -> Split:
    path = folder / name
    if not path.is_file():
        raise MissingData(
            f"CIFAR file {name!r} not found in {folder}: run `nao data install "
            f"{_DATASET[tarball]} --data-dir {folder.parent}` (offline: add --from with {tarball} "
            f"from {CIFAR_URL})."
        )
    try:
        with path.open("rb") as f:
            # The official files were pickled by Python 2: keep their str keys as bytes.
            batch = _BatchUnpickler(f, encoding="bytes").load()
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[label_key], dtype=np.int64)
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError) as e:
        raise MissingData(
            f"{path} is not an official CIFAR python batch ({type(e).__name__}: {e}); "
            f"re-extract {tarball} from {CIFAR_URL} into {folder.parent}"
        ) from e
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or labels.shape != (data.shape[0],):
        raise MissingData(
            f"{path} is not an official CIFAR python batch: data {data.shape}, "
            f"labels {labels.shape}; re-extract {tarball} from {CIFAR_URL} into {folder.parent}"
        )
    # Each row is the R, G, B planes one after the other, each 32×32 row-major: that is NCHW.
    x = torch.from_numpy(np.ascontiguousarray(data.reshape(-1, 3, 32, 32)))  # (N, 3, 32, 32)
    return Split(x, torch.from_numpy(labels))
