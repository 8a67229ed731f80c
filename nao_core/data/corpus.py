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

import functools
import gzip
import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch

from nao_core.config import CORPUS_DIRS
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


# --- corpora by dataset name (issue #5: RNN search and final training) --------------------------

CORPUS_SOURCES = {
    "ptb": "Mikolov's PTB split (simple-examples.tgz, data/ptb.{train,valid,test}.txt, "
    "http://www.fit.vutbr.cz/~imikolov/rnnlm/simple-examples.tgz)",
    "wikitext2": "WikiText-2 v1 (wikitext-2-v1.zip, wiki.{train,valid,test}.tokens, "
    "https://s3.amazonaws.com/research.metamind.io/wikitext/wikitext-2-v1.zip)",
}


def find_corpus_dir(dataset: str, data_dir: str | Path | None) -> Path:
    """The folder of ``dataset``'s splits: ``<data_dir>/<ptb|wikitext-2>`` or ``data_dir``.

    Raises:
        MissingData: If neither holds ``train.txt(.gz)``; the message names the file, the
            folders looked in and where to get the corpus.
    """
    if dataset not in CORPUS_DIRS:
        raise InvalidConfig(f"data.dataset: {dataset!r} is not a corpus; known: ptb, wikitext2")
    source = CORPUS_SOURCES[dataset]
    if data_dir is None:
        raise MissingData(
            f"dataset {dataset!r} needs data_dir, a folder holding train.txt, valid.txt and "
            f"test.txt (or .txt.gz), or a folder with a {CORPUS_DIRS[dataset]}/ subfolder "
            f"holding them; get {source} and rename the splits"
        )
    root = Path(data_dir)
    candidates = [root / CORPUS_DIRS[dataset], root]
    for folder in candidates:
        if any((folder / f"train.txt{ext}").is_file() for ext in ("", ".gz")):
            return folder
    looked = " and ".join(str(c) for c in candidates)
    raise MissingData(
        f"train.txt (or train.txt.gz) of {dataset!r} not found in {looked}: get {source} "
        "and save its splits as train.txt, valid.txt and test.txt (gzip allowed)"
    )


@functools.lru_cache(maxsize=2)
def _read_cached(folder: Path, name: str, stamp: tuple[float, ...]) -> Corpus:
    return read_corpus(folder, name)


def load_corpus(
    dataset: str, data_dir: str | Path | None, *, train_limit: int = 0, eval_limit: int = 0
) -> Corpus:
    """Read ``dataset`` (``ptb`` or ``wikitext2``), keeping the first ``train_limit`` training
    and ``eval_limit`` valid/test tokens when > 0. The vocabulary is always the whole training
    split's, so a limited run's model fits the full corpus too.

    Raises:
        MissingData: If the corpus files are not found.
    """
    folder = find_corpus_dir(dataset, data_dir).resolve()
    stamp = tuple(
        p.stat().st_mtime for p in sorted(folder.glob("*.txt*")) if p.name.startswith(SPLITS)
    )
    corpus = _read_cached(folder, dataset, stamp)

    def cut(ids: torch.Tensor, limit: int) -> torch.Tensor:
        return ids[:limit] if 0 < limit < ids.numel() else ids

    return Corpus(
        corpus.name,
        corpus.vocab,
        cut(corpus.train, train_limit),
        cut(corpus.valid, eval_limit),
        cut(corpus.test, eval_limit),
    )


def vocab_hash(vocab: tuple[str, ...]) -> str:
    """A short fingerprint of a vocabulary (id order included), stored in LM checkpoints."""
    return hashlib.sha256("\n".join(vocab).encode("utf-8")).hexdigest()[:16]
