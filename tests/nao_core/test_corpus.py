"""PTB and WikiText-2 read from the shared data with their known counts (issue #5)."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
import torch

from nao_core.data.corpus import EOS, batchify, read_corpus
from nao_core.errors import InvalidConfig, MissingData

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


@pytest.mark.parametrize(
    ("name", "counts", "vocab"),
    [
        ("ptb", (929_589, 73_760, 82_430), 10_000),
        ("wikitext-2", (2_088_628, 217_646, 245_569), 33_278),
    ],
)
def test_known_counts(name: str, counts: tuple[int, int, int], vocab: int) -> None:
    if not (DATA / name).is_dir():
        pytest.skip(f"{DATA / name} not found")
    corpus = read_corpus(DATA / name, name)
    assert (corpus.train.numel(), corpus.valid.numel(), corpus.test.numel()) == counts
    assert corpus.vocab_size == vocab
    assert EOS in corpus.vocab
    assert int(corpus.train.max()) == vocab - 1


def test_plain_text_oov_and_batchify(tmp_path: Path) -> None:
    (tmp_path / "train.txt").write_text(" a b <unk>\n b c\n")
    (tmp_path / "valid.txt.gz").write_bytes(gzip.compress(b" a z\n"))
    (tmp_path / "test.txt").write_text(" c\n")
    corpus = read_corpus(tmp_path)
    assert corpus.vocab == ("a", "b", "<unk>", EOS, "c")
    assert corpus.valid.tolist() == [0, 2, 3]  # z -> <unk>
    grid = batchify(torch.arange(10), 3)
    assert grid.tolist() == [[0, 3, 6], [1, 4, 7], [2, 5, 8]]
    with pytest.raises(InvalidConfig, match="exceeds"):
        batchify(torch.arange(2), 3)


def test_missing_split_and_unknown_word(tmp_path: Path) -> None:
    with pytest.raises(MissingData, match=r"train\.txt .*not found in"):
        read_corpus(tmp_path)
    (tmp_path / "train.txt").write_text(" a\n")
    (tmp_path / "valid.txt").write_text(" q\n")
    (tmp_path / "test.txt").write_text(" a\n")
    with pytest.raises(InvalidConfig, match="'q' is not in the training vocabulary"):
        read_corpus(tmp_path)
