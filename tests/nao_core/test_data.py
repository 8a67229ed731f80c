from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from nao_core.data import (
    ImageData,
    ImageDataset,
    Split,
    create_dataset,
    cutout,
    list_datasets,
    random_crop,
    random_flip,
    read_cifar10,
    read_cifar100,
    read_digits,
    split_train_valid,
)
from nao_core.errors import InvalidConfig, MissingData, UnknownName

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
CIFAR10_NPZ = SHARED_DATA / "cifar10"
NPZ_FILES = {
    "part1": "cifar10_train_balanced_part1.npz",
    "part2": "cifar10_train_balanced_part2.npz",
    "heldout": "cifar10_train_heldout_5k.npz",
    "test": "cifar10_test_first1000.npz",
}


def write_batch(path: Path, x_nhwc: np.ndarray, labels: np.ndarray, label_key: bytes) -> None:
    """Pickle a batch exactly as the official files are laid out (rows = R, G, B planes)."""
    data = x_nhwc.transpose(0, 3, 1, 2).reshape(len(x_nhwc), 3 * 32 * 32)  # (N, 3072)
    batch = {
        b"batch_label": path.name.encode(),
        label_key: [int(v) for v in labels],
        b"data": np.ascontiguousarray(data, dtype=np.uint8),
        b"filenames": [f"{i}.png".encode() for i in range(len(labels))],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        pickle.dump(batch, f, protocol=2)


@pytest.fixture(scope="module")
def cifar10_npz() -> dict[str, dict[str, np.ndarray]]:
    if not all((CIFAR10_NPZ / f).is_file() for f in NPZ_FILES.values()):
        pytest.skip(f"CIFAR-10 subset not found in {CIFAR10_NPZ}")
    out = {}
    for key, name in NPZ_FILES.items():
        with np.load(CIFAR10_NPZ / name) as z:
            out[key] = {"x": z["x"], "y": z["y"]}
    return out


@pytest.fixture(scope="module")
def cifar10_dir(tmp_path_factory, cifar10_npz) -> Path:
    """The real subset written as data_batch_1 (part1), _2 (part2), _3.._5 (held-out thirds)."""
    root = tmp_path_factory.mktemp("cifar")
    folder = root / "cifar-10-batches-py"
    held = cifar10_npz["heldout"]
    parts = [cifar10_npz["part1"], cifar10_npz["part2"]] + [
        {"x": x, "y": y}
        for x, y in zip(np.array_split(held["x"], 3), np.array_split(held["y"], 3), strict=True)
    ]
    for i, part in enumerate(parts, start=1):
        write_batch(folder / f"data_batch_{i}", part["x"], part["y"], b"labels")
    write_batch(
        folder / "test_batch", cifar10_npz["test"]["x"], cifar10_npz["test"]["y"], b"labels"
    )
    return root


@pytest.fixture(scope="module")
def digits() -> ImageDataset:
    return create_dataset("digits")


def make_dataset(n: int = 64, channels: int = 3, size: int = 32, seed: int = 0) -> ImageDataset:
    """Random uint8 images whose labels are their ids, with mean/std measured on them."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, channels, size, size), generator=g, dtype=torch.uint8)
    split = Split(x, torch.arange(n))
    f = x.double() / 255
    mean = tuple(f.mean(dim=(0, 2, 3)).tolist())
    std = tuple(f.std(dim=(0, 2, 3)).tolist())
    return ImageDataset("random", split, split, split, n, mean, std, crop_padding=4, flip=True)


def test_cifar10_official_layout_round_trip(cifar10_dir, cifar10_npz):
    train, test = read_cifar10(cifar10_dir)
    npz_train = [cifar10_npz[k] for k in ("part1", "part2", "heldout")]
    want_x = np.concatenate([p["x"] for p in npz_train]).transpose(0, 3, 1, 2)  # NHWC -> NCHW
    want_y = np.concatenate([p["y"] for p in npz_train])
    assert train.x.dtype == torch.uint8
    assert train.y.dtype == torch.int64
    assert tuple(train.x.shape) == (25_000, 3, 32, 32)
    assert np.array_equal(train.x.numpy(), want_x)
    assert np.array_equal(train.y.numpy(), want_y)
    assert np.array_equal(test.x.numpy(), cifar10_npz["test"]["x"].transpose(0, 3, 1, 2))
    assert np.array_equal(test.y.numpy(), cifar10_npz["test"]["y"])
    # Known facts of the official data_batch_1: image 0 is a frog with this first red row.
    assert int(train.y[0]) == 6
    assert train.x[0, 0, 0, :6].tolist() == [59, 43, 50, 68, 98, 119]
    assert test.y[:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]


def test_create_cifar10_splits_train_seeded(cifar10_dir):
    ds = create_dataset("cifar10", cifar10_dir, seed=0)
    assert (len(ds.train), len(ds.valid), len(ds.test)) == (22_500, 2_500, 1_000)
    assert (ds.num_classes, ds.in_channels, ds.image_size) == (10, 3, 32)
    assert ds.mean == (0.4914, 0.4822, 0.4465)
    assert ds.std == (0.2470, 0.2435, 0.2616)
    again = create_dataset("cifar10", cifar10_dir, seed=0)
    assert torch.equal(ds.valid.x, again.valid.x)
    other = create_dataset("cifar10", cifar10_dir, seed=1)
    assert not torch.equal(ds.valid.x, other.valid.x)


def test_cifar100_reads_fine_labels(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "cifar-100-python"
    for name, n in (("train", 20), ("test", 10)):
        x = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
        write_batch(folder / name, x, rng.integers(0, 100, n), b"fine_labels")
        with (folder / name).open("rb") as f:
            batch = pickle.load(f, encoding="bytes")
        batch[b"coarse_labels"] = [0] * n  # the official files carry both label sets
        with (folder / name).open("wb") as f:
            pickle.dump(batch, f, protocol=2)
    train, test = read_cifar100(tmp_path)
    assert (len(train), len(test)) == (20, 10)
    assert int(train.y.max()) > 19  # fine labels, not the coarse zeros
    ds = create_dataset("cifar100", tmp_path, train_portion=0.5)
    assert (len(ds.train), len(ds.valid), ds.num_classes) == (10, 10, 100)
    assert ds.mean == (0.5071, 0.4865, 0.4409)


@pytest.mark.parametrize(
    ("name", "missing", "tarball"),
    [
        ("cifar10", "data_batch_1", "cifar-10-python.tar.gz"),
        ("cifar100", "train", "cifar-100-python.tar.gz"),
    ],
)
def test_missing_file_names_file_dir_and_source(tmp_path, name, missing, tarball):
    with pytest.raises(MissingData) as err:
        create_dataset(name, tmp_path)
    msg = str(err.value)
    assert repr(missing) in msg
    assert str(tmp_path) in msg
    assert tarball in msg
    assert "https://www.cs.toronto.edu/~kriz/cifar.html" in msg


def test_missing_last_batch_is_named(tmp_path):
    x = np.zeros((2, 32, 32, 3), np.uint8)
    for i in range(1, 5):
        write_batch(tmp_path / "cifar-10-batches-py" / f"data_batch_{i}", x, np.zeros(2), b"labels")
    with pytest.raises(MissingData, match="'data_batch_5'"):
        read_cifar10(tmp_path)


def test_batch_with_foreign_pickle_globals_is_refused(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    (folder / "train").write_bytes(pickle.dumps({b"data": print}, protocol=2))
    with pytest.raises(MissingData, match="not an official CIFAR python batch"):
        read_cifar100(tmp_path)


def test_registry():
    assert list_datasets() == ["cifar10", "cifar100", "digits"]
    with pytest.raises(UnknownName, match="unknown dataset 'mnist'; known: cifar10, cifar100"):
        create_dataset("mnist")
    with pytest.raises(InvalidConfig, match="needs data_dir"):
        create_dataset("cifar10")


def test_split_train_valid_is_a_seeded_partition():
    full = Split(torch.zeros(100, 1, 2, 2, dtype=torch.uint8), torch.arange(100))
    train, valid = split_train_valid(full, 0.9, seed=0)
    assert (len(train), len(valid)) == (90, 10)
    assert sorted(torch.cat([train.y, valid.y]).tolist()) == list(range(100))
    assert torch.equal(split_train_valid(full, 0.9, seed=0)[1].y, valid.y)
    assert not torch.equal(split_train_valid(full, 0.9, seed=1)[1].y, valid.y)
    assert len(split_train_valid(full, 1.0, seed=0)[1]) == 0
    for bad in (0.0, 1.5, 0.001):
        with pytest.raises(InvalidConfig):
            split_train_valid(full, bad, seed=0)


def test_random_crop_shifts_each_image_within_padding():
    x = torch.randint(1, 256, (32, 3, 8, 8), generator=torch.Generator().manual_seed(0)).to(
        torch.uint8
    )
    out = random_crop(x, 2, torch.Generator().manual_seed(1))
    assert out.shape == x.shape
    assert out.dtype == torch.uint8
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    offsets = set()
    for i in range(len(x)):  # brute force: find the window each crop came from
        found = [
            (dy, dx)
            for dy in range(5)
            for dx in range(5)
            if torch.equal(out[i], padded[i, :, dy : dy + 8, dx : dx + 8])
        ]
        assert len(found) == 1
        offsets.add(found[0])
    assert len(offsets) > 5  # one call gives different images different offsets
    assert torch.equal(out, random_crop(x, 2, torch.Generator().manual_seed(1)))
    assert torch.equal(random_crop(x, 0, torch.Generator()), x)


def test_random_flip_mirrors_some_images():
    x = torch.randn(64, 3, 4, 4)
    out = random_flip(x, torch.Generator().manual_seed(0))
    flipped = [torch.equal(o, xi.flip(2)) for o, xi in zip(out, x, strict=True)]
    kept = [torch.equal(o, xi) for o, xi in zip(out, x, strict=True)]
    assert all(f != k for f, k in zip(flipped, kept, strict=True))
    assert 10 < sum(flipped) < 54
    assert torch.equal(out, random_flip(x, torch.Generator().manual_seed(0)))


def test_cutout_zeroes_one_clipped_square_per_image():
    x = torch.ones(200, 3, 16, 16)
    out = cutout(x, 8, torch.Generator().manual_seed(0))
    zero = out == 0  # (B, C, H, W)
    assert torch.equal(zero, zero[:, :1].expand_as(zero))  # same square in every channel
    for mask in zero[:, 0]:
        rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
        assert 1 <= len(rows) <= 8
        assert 1 <= len(cols) <= 8
        assert int(mask.sum()) == len(rows) * len(cols)  # a full rectangle
        assert rows.tolist() == list(range(rows[0], rows[0] + len(rows)))
    sizes = zero[:, 0].sum(dim=(1, 2))
    assert int(sizes.max()) == 64
    assert int(sizes.min()) < 64  # some squares are clipped at a border


def test_train_batches_shapes_dtypes_and_one_pass():
    ds = make_dataset(n=50)
    data = ImageData(ds, "cpu", dtype=torch.bfloat16, channels_last=True, cutout=16)
    batches = list(data.train_batches(16, torch.Generator().manual_seed(0)))
    assert [len(y) for _, y in batches] == [16, 16, 16, 2]
    assert data.num_batches("train", 16) == 4
    x, y = batches[0]
    assert tuple(x.shape) == (16, 3, 32, 32)
    assert x.dtype == torch.bfloat16
    assert y.dtype == torch.int64
    assert x.is_contiguous(memory_format=torch.channels_last)
    assert sorted(torch.cat([y for _, y in batches]).tolist()) == list(range(50))
    # Cutout runs after normalisation, so each image has an all-channel block of exact zeros.
    assert bool(((x == 0).all(dim=1).flatten(1).sum(1) >= 64).all())
    dropped = list(data.train_batches(16, torch.Generator().manual_seed(0), drop_last=True))
    assert [len(y) for _, y in dropped] == [16, 16, 16]


def test_cutout_is_scaled_to_the_image_size(digits):
    """The recipes' cutout is sized for 32x32 images: on 8x8 digits 16 becomes 4, which masks
    a quarter of the side, not the whole image (a training would see only zeros)."""
    assert ImageData(digits, cutout=16).cutout == 4
    assert ImageData(make_dataset(), cutout=16).cutout == 16
    assert ImageData(digits, cutout=0).cutout == 0
    x, _ = next(iter(ImageData(digits, cutout=16).train_batches(64, torch.Generator())))
    zeros = (x == 0).all(dim=1).flatten(1).sum(1)
    assert int(zeros.max()) <= 16  # at most a 4x4 square of an 8x8 image


def test_train_batches_reproducible_with_same_seed():
    data = ImageData(make_dataset(), cutout=8)

    def epoch(seed: int) -> list[torch.Tensor]:
        return [x for x, _ in data.train_batches(32, torch.Generator().manual_seed(seed))]

    assert all(torch.equal(a, b) for a, b in zip(epoch(3), epoch(3), strict=True))
    assert not torch.equal(epoch(3)[0], epoch(4)[0])


def test_eval_is_deterministic_normalised_and_fixed_batches_are_fixed():
    ds = make_dataset(n=70)
    data = ImageData(ds)
    first = list(data.eval_batches("valid", 32))
    second = list(data.eval_batches("valid", 32))
    assert [len(y) for _, y in first] == [32, 32, 6]
    assert all(torch.equal(a[0], b[0]) for a, b in zip(first, second, strict=True))
    x = torch.cat([b[0] for b in first])
    assert torch.cat([b[1] for b in first]).tolist() == list(range(70))  # stored order
    assert x.mean(dim=(0, 2, 3)).abs().max() < 1e-4
    assert (x.std(dim=(0, 2, 3)) - 1).abs().max() < 1e-3
    fixed = data.fixed_batches(
        "valid", 32, num_batches=2, generator=torch.Generator().manual_seed(5)
    )
    again = data.fixed_batches(
        "valid", 32, num_batches=2, generator=torch.Generator().manual_seed(5)
    )
    assert [len(y) for _, y in fixed] == [32, 32]
    assert len(set(torch.cat([y for _, y in fixed]).tolist())) == 64  # without replacement
    assert all(
        torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
        for a, b in zip(fixed, again, strict=True)
    )
    in_order = data.fixed_batches("valid", 32)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(in_order, first, strict=True))
    assert len(data.fixed_batches("valid", 500, num_batches=3)[0][1]) == 70  # clamped to the split


def test_image_data_rejects_bad_options():
    ds = make_dataset(n=4)
    with pytest.raises(InvalidConfig):
        ImageData(ds, dtype=torch.int64)
    with pytest.raises(InvalidConfig):
        ImageData(ds, cutout=-1)
    with pytest.raises(InvalidConfig, match="unknown split"):
        list(ImageData(ds).eval_batches("extra"))


def test_digits_splits(digits):
    assert (len(digits.train), len(digits.valid), len(digits.test)) == (1200, 300, 297)
    assert (digits.num_classes, digits.in_channels, digits.image_size) == (10, 1, 8)
    assert digits.train.x.dtype == torch.uint8
    assert int(digits.train.x.max()) == 255
    assert not digits.flip
    assert digits.crop_padding == 1
    # The three splits partition the 1,797 images: their union as a multiset is the full set.
    full = read_digits()
    splits = [digits.train, digits.valid, digits.test]
    rows = torch.cat([torch.cat([s.x.flatten(1), s.y[:, None]], 1) for s in splits])
    want = torch.cat([full.x.flatten(1), full.y[:, None]], 1)
    assert torch.equal(
        rows.unique(dim=0, return_counts=True)[1], want.unique(dim=0, return_counts=True)[1]
    )
    assert torch.equal(rows.unique(dim=0), want.unique(dim=0))
    assert set(digits.test.y.tolist()) == set(range(10))


def test_digits_test_set_fixed_across_seeds(digits):
    other = create_dataset("digits", seed=1, train_portion=0.5)
    assert torch.equal(other.test.x, digits.test.x)
    assert (len(other.train), len(other.valid)) == (750, 750)


def test_digits_statistics_and_augmentation(digits):
    data = ImageData(digits)
    assert not data.flip
    x = torch.cat([b[0] for b in data.eval_batches("train", 2000)]).double()
    raw = torch.cat([digits.train.x, digits.valid.x, digits.test.x]).double() / 255
    assert abs(raw.mean().item() - digits.mean[0]) < 1e-3
    assert abs(raw.std().item() - digits.std[0]) < 1e-3
    assert abs(x.mean().item()) < 0.05
    xb, yb = next(data.train_batches(64, torch.Generator().manual_seed(0)))
    assert tuple(xb.shape) == (64, 1, 8, 8)
    assert yb.dtype == torch.int64


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_batches_match_cpu_with_a_cpu_generator():
    ds = make_dataset(n=40)
    cpu = list(ImageData(ds, "cpu", cutout=8).train_batches(16, torch.Generator().manual_seed(0)))
    gpu_data = ImageData(ds, "cuda", cutout=8, channels_last=True, dtype=torch.float16)
    gpu = list(gpu_data.train_batches(16, torch.Generator().manual_seed(0)))
    assert gpu[0][0].device.type == "cuda"
    for (xc, yc), (xg, yg) in zip(cpu, gpu, strict=True):
        assert torch.equal(yc, yg.cpu())
        torch.testing.assert_close(xg.float().cpu(), xc, atol=1e-2, rtol=1e-2)
    cuda_gen = torch.Generator(device="cuda").manual_seed(0)
    assert len(list(gpu_data.train_batches(16, cuda_gen))) == 3
    assert gpu_data.fixed_batches("valid", 16, 2, cuda_gen)[0][0].device.type == "cuda"
