"""Word-level language-model corpora: Penn Treebank and WikiText-2 (issue #5, nao-spec §4.4, §6.4).

A corpus directory holds ``train.txt``, ``valid.txt`` and ``test.txt`` (each may be gzipped as
``*.txt.gz``), one sentence or paragraph per line, tokens separated by whitespace — the layout
of Mikolov's PTB split and of WikiText-2's ``wiki.*.tokens`` renamed. Every line gets an
``<eos>`` token, as the AWD-LSTM data code the NAO RNN scripts build on does. The vocabulary is
taken from the training split in order of first appearance; a validation or test word outside it
maps to ``<unk>`` when the vocabulary has one and is an error otherwise (PTB and WikiText-2 have
no such words).
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import torch

from nao_core.errors import InvalidConfig, MissingData

EOS = "<eos>"
UNK = "<unk>"
SPLITS = ("train", "valid", "test")


@dataclass(frozen=True)
class Corpus:
    name: str
    vocab: tuple[str, ...]  # id -> word
    train: torch.Tensor  # (N,) int64 token ids
    valid: torch.Tensor
    test: torch.Tensor

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)


def _split_path(data_dir: Path, split: str) -> Path:
    for name in (f"{split}.txt", f"{split}.txt.gz"):
        if (data_dir / name).is_file():
            return data_dir / name
    raise MissingData(
        f"{split}.txt (or {split}.txt.gz) not found in {data_dir}: put the corpus's {split} split "
        "there as plain text, one line per sentence, whitespace-separated tokens"
    )


def _read_lines(path: Path) -> list[str]:
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    return raw.decode("utf-8").splitlines()


def _tokens(lines: list[str]) -> list[str]:
    out: list[str] = []
    for line in lines:
        out.extend(line.split())
        out.append(EOS)
    return out


def read_corpus(data_dir: str | Path, name: str = "corpus") -> Corpus:
    """Read the three splits of a corpus directory into id tensors (on the CPU)."""
    data_dir = Path(data_dir)
    words = {s: _tokens(_read_lines(_split_path(data_dir, s))) for s in SPLITS}
    index: dict[str, int] = {}
    for w in words["train"]:
        if w not in index:
            index[w] = len(index)
    unk = index.get(UNK)

    def ids(split: str) -> torch.Tensor:
        out = []
        for w in words[split]:
            i = index.get(w, unk)
            if i is None:
                raise InvalidConfig(
                    f"{data_dir}/{split}: word {w!r} is not in the training vocabulary"
                )
            out.append(i)
        return torch.tensor(out, dtype=torch.long)

    return Corpus(name, tuple(index), ids("train"), ids("valid"), ids("test"))


def batchify(
    ids: torch.Tensor, batch_size: int, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """(N,) -> (N // batch_size, batch_size): ``batch_size`` contiguous streams, one per column.

    The tail that does not fill a row is dropped, as in the AWD-LSTM data code.
    """
    if batch_size <= 0:
        raise InvalidConfig("batch_size: must be > 0")
    rows = ids.numel() // batch_size
    if rows == 0:
        raise InvalidConfig(
            f"batch_size: {batch_size} exceeds the {ids.numel()} tokens of the split"
        )
    return ids[: rows * batch_size].view(batch_size, rows).t().contiguous().to(device)
