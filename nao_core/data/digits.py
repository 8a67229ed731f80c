"""The "digits" dataset: scikit-learn's ``load_digits()`` (UCI optical digits, 1,797 8×8 images).

The images ship inside the scikit-learn package, so a machine without downloads can still run a
real search end to end. Pixels (0..16) are rescaled to uint8 0..255 and kept as one channel,
(N, 1, 8, 8). A fixed held-out test set (297 images, always the same) stands in for an
official test set; the remaining 1,500 images are split into train/valid by the same seeded
permutation as CIFAR (spec §4.1 "Data"), 1,200/300 by default. Augmentation is a random crop
with 1-pixel padding and no flip, since digits are not mirror-symmetric.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from nao_core.data.base import ImageDataset, Split, split_train_valid

# Per-pixel statistics of all 1,797 images after the 0..255 rescale, in [0, 1] units.
DIGITS_MEAN = (0.3053,)
DIGITS_STD = (0.3759,)
DIGITS_TEST_SIZE = 297
CROP_PADDING = 1
_TEST_SEED = 0  # the test set must not move when a search changes its split seed


def read_digits() -> Split:
    """All 1,797 digits as uint8 (N, 1, 8, 8) images (0..16 scaled to 0..255) and labels."""
    from sklearn.datasets import load_digits  # sklearn is slow to import; only load it here

    bunch = load_digits()
    pixels = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)  # (N, 8, 8)
    x = torch.from_numpy(pixels).unsqueeze(1)  # (N, 1, 8, 8)
    return Split(x, torch.from_numpy(bunch.target.astype(np.int64)))


def build_digits(
    data_dir: str | Path | None = None, *, train_portion: float = 0.8, seed: int = 0
) -> ImageDataset:
    """Digits with a fixed 297-image test set and a seeded train/valid split of the rest.

    Args:
        data_dir: Ignored (the data ships with scikit-learn); accepted so every dataset builder
            has the same signature.
        train_portion: Fraction of the 1,500 non-test images kept for training.
        seed: Seed of the train/valid permutation.
    """
    full = read_digits()
    perm = torch.randperm(len(full), generator=torch.Generator().manual_seed(_TEST_SEED))
    rest, test = full.subset(perm[:-DIGITS_TEST_SIZE]), full.subset(perm[-DIGITS_TEST_SIZE:])
    train, valid = split_train_valid(rest, train_portion, seed)
    return ImageDataset(
        "digits", train, valid, test, 10, DIGITS_MEAN, DIGITS_STD, CROP_PADDING, flip=False
    )
