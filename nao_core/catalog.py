"""Every dataset and table nao reads: where its files go, where to get them, whether they are here.

Torch-free and cheap (stat calls only, no file is opened), so the API can call ``require`` when
a job is posted and refuse it at once when its data is missing. The layout under the data
directory (``default_data_dir()``) is the one the readers expect:

    cifar-10-batches-py/{data_batch_1..5,test_batch}   cifar-10-python.tar.gz (Krizhevsky 2009)
    cifar-100-python/{train,test}                      cifar-100-python.tar.gz
    ptb/{train,valid,test}.txt[.gz]                    simple-examples.tgz (Mikolov 2010)
    wikitext-2/{train,valid,test}.txt[.gz]             wikitext-2-v1.zip (Merity et al. 2016)
    nas-bench-201/nb201_accuracy_table.csv.gz          optional: a copy ships in nao_core/tables/

``digits`` ships with scikit-learn. ``nao data install NAME`` (``nao_core.installer``)
fills the layout from the official archive.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from nao_core.errors import MissingData, UnknownName

_TABLES_DIR = Path(__file__).resolve().parent / "tables"


class Kind(StrEnum):
    IMAGES = "image dataset"
    CORPUS = "corpus"
    TABLE = "table"


@dataclass(frozen=True)
class Entry:
    """One dataset or table and its official source.

    ``files`` are relative to ``folder`` under the data directory; a corpus split may also be
    gzipped (``train.txt.gz``). ``aliases`` give, per file, the names it has inside the
    official archive (e.g. ``ptb.train.txt``) or in a folder a user already has.
    """

    name: str
    kind: Kind
    title: str
    folder: str
    files: tuple[str, ...]
    url: str
    archive: str | None = None  # file name of the official archive
    md5: str | None = None  # of the official archive (as torchvision / torchtext know it)
    sha256: str | None = None  # of the shipped table
    aliases: tuple[tuple[str, ...], ...] = ()

    def names_of(self, file: str) -> tuple[str, ...]:
        """The names ``file`` may have in an archive or a folder, best first."""
        extra = dict(zip(self.files, self.aliases, strict=False)).get(file, ())
        gz = (f"{file}.gz",) if self.kind is Kind.CORPUS else ()
        return (*extra, file, *gz)


def _corpus(name: str, title: str, folder: str, url: str, md5: str, official: str) -> Entry:
    """A corpus entry; ``official`` names a split in the archive, e.g. ``ptb.{}.txt``."""
    splits = ("train", "valid", "test")
    return Entry(
        name,
        Kind.CORPUS,
        title,
        folder,
        tuple(f"{s}.txt" for s in splits),
        url,
        url.rsplit("/", 1)[1],
        md5,
        aliases=tuple((official.format(s),) for s in splits),
    )


_ENTRIES = (
    Entry(
        "cifar10",
        Kind.IMAGES,
        "CIFAR-10, python batches",
        "cifar-10-batches-py",
        (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"),
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        "cifar-10-python.tar.gz",
        "c58f30108f718f92721af3b95e74349a",
    ),
    Entry(
        "cifar100",
        Kind.IMAGES,
        "CIFAR-100, python batches",
        "cifar-100-python",
        ("train", "test"),
        "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        "cifar-100-python.tar.gz",
        "eb9058c3a382ffc7106e4002c42a8d85",
    ),
    _corpus(
        "ptb",
        "Penn Treebank, Mikolov's split",
        "ptb",
        "http://www.fit.vutbr.cz/~imikolov/rnnlm/simple-examples.tgz",
        "30177ea32e27c525793142b6bf2c8e2d",
        "ptb.{}.txt",
    ),
    _corpus(
        "wikitext2",
        "WikiText-2 v1, tokenized",
        "wikitext-2",
        "https://s3.amazonaws.com/research.metamind.io/wikitext/wikitext-2-v1.zip",
        "542ccefacc6c27f945fb54453812b3cd",
        "wiki.{}.tokens",
    ),
    Entry(
        "digits",
        Kind.IMAGES,
        "UCI optical digits, 8x8 (ships with scikit-learn)",
        "",
        (),
        "https://archive.ics.uci.edu/dataset/80",
    ),
    Entry(
        "nb201",
        Kind.TABLE,
        "NAS-Bench-201 accuracies of all 15,625 cells (ships with nao)",
        "nas-bench-201",
        ("nb201_accuracy_table.csv.gz",),
        "https://github.com/D-X-Y/NAS-Bench-201",
        sha256="58f3b81ec0f5d20968e1d4a662b977465d5345d7c4bfb01a24237ea122a7d2d6",
    ),
)
CATALOG: dict[str, Entry] = {e.name: e for e in _ENTRIES}


@dataclass(frozen=True)
class Status:
    """Where an entry was found under a data directory, or what is missing there."""

    entry: Entry
    data_dir: Path
    installed: bool
    path: Path | None  # the folder (or file) the readers will use; None when missing
    size: int  # bytes on disk of the files found
    missing: tuple[str, ...]  # files not found, relative to the data directory


class DataNotInstalled(MissingData):
    """A dataset or table a job needs is not installed; the message says how to install it."""

    def __init__(self, status: Status) -> None:
        self.name, self.data_dir = status.entry.name, status.data_dir
        self.command = install_command(self.name, self.data_dir)
        entry = status.entry
        if entry.files and len(status.missing) == len(entry.files):
            what = f"no {status.missing[0].rsplit('/', 1)[0]}/"  # nothing of it: name the folder
        else:
            what = "missing " + ", ".join(status.missing)
        super().__init__(
            f"dataset {self.name!r} is not installed in {self.data_dir} ({what}): run "
            f"`{self.command}`, or offline `{self.command} --from PATH` with "
            f"{entry.archive or 'its files'} or a folder holding its files"
        )


def default_data_dir() -> Path:
    """``$NAO_DATA_DIR``, else ``$NAO_HOME/data`` (``NAO_HOME`` defaults to ``~/.nao``).

    The same variables as the API settings (``NAO_DATA_DIR``, ``NAO_HOME``); read here because
    nao_core must not import ``api`` and the CLI has no settings object of its own.
    """
    if os.environ.get("NAO_DATA_DIR"):
        return Path(os.environ["NAO_DATA_DIR"]).expanduser()
    return Path(os.environ.get("NAO_HOME") or "~/.nao").expanduser() / "data"


def list_names() -> list[str]:
    return list(CATALOG)


def get_entry(name: str) -> Entry:
    """The catalog entry ``name``.

    Raises:
        UnknownName: If there is none.
    """
    if name not in CATALOG:
        raise UnknownName("dataset", name, list_names())
    return CATALOG[name]


def install_command(name: str, data_dir: str | Path | None = None) -> str:
    """The shell command that installs ``name`` into ``data_dir``."""
    where = "" if data_dir is None else f" --data-dir {data_dir}"
    return f"nao data install {name}{where}"


def _resolve(data_dir: str | Path | None) -> Path:
    return default_data_dir() if data_dir is None else Path(data_dir).expanduser()


def _locate(folder: Path, entry: Entry, file: str) -> Path | None:
    names = (file, f"{file}.gz") if entry.kind is Kind.CORPUS else (file,)
    return next((folder / n for n in names if (folder / n).is_file()), None)


def _sklearn_digits() -> Path | None:
    spec = importlib.util.find_spec("sklearn")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"
    return path / "digits.csv.gz" if (path / "digits.csv.gz").is_file() else None


def status(name: str, data_dir: str | Path | None = None) -> Status:
    """Whether ``name`` is installed under ``data_dir`` (default: ``default_data_dir()``).

    A corpus is looked for in ``<data_dir>/<folder>`` and then in ``data_dir`` itself, as
    ``nao_core.data.corpus.find_corpus_dir`` does; the table falls back to the shipped copy.

    Raises:
        UnknownName: If ``name`` is not in the catalog.
    """
    entry, root = get_entry(name), _resolve(data_dir)
    if entry.kind is Kind.TABLE:
        path = table_path(name, root)
        return Status(entry, root, True, path, path.stat().st_size, ())
    if not entry.files:  # digits: inside scikit-learn
        path = _sklearn_digits()
        size = path.stat().st_size if path else 0
        return Status(entry, root, path is not None, path, size, () if path else ("scikit-learn",))
    folders = [root / entry.folder] + ([root] if entry.kind is Kind.CORPUS else [])
    # The readers take the first folder that holds the first file (train.txt for a corpus).
    folder = next((f for f in folders if _locate(f, entry, entry.files[0])), folders[0])
    hits = {file: _locate(folder, entry, file) for file in entry.files}
    missing = tuple(str((folder / f).relative_to(root)) for f, p in hits.items() if p is None)
    size = sum(p.stat().st_size for p in hits.values() if p is not None)
    return Status(entry, root, not missing, None if missing else folder, size, missing)


def entries(data_dir: str | Path | None = None) -> list[Status]:
    """The status of every catalog entry under ``data_dir``, in catalog order."""
    return [status(name, data_dir) for name in CATALOG]


def require(name: str, data_dir: str | Path | None = None) -> Path:
    """The folder (or file) of ``name`` under ``data_dir``; raise when it is not installed.

    Raises:
        UnknownName: If ``name`` is not in the catalog.
        DataNotInstalled: If a file is missing; the message names the dataset, the directory
            and the ``nao data install`` command.
    """
    st = status(name, data_dir)
    if not st.installed or st.path is None:
        raise DataNotInstalled(st)
    return st.path


def shipped_table(name: str) -> Path:
    """The copy of table ``name`` inside the package."""
    entry = get_entry(name)
    if entry.kind is not Kind.TABLE:
        raise UnknownName("table", name, [e.name for e in _ENTRIES if e.kind is Kind.TABLE])
    return _TABLES_DIR / entry.files[0]


def table_path(name: str, data_dir: str | Path | None = None) -> Path:
    """``<data_dir>/nas-bench-201/<file>`` when it exists, else the copy shipped with nao.

    ``data_dir=None`` means ``default_data_dir()``.

    Raises:
        UnknownName: If ``name`` is not a table of the catalog.
    """
    shipped = shipped_table(name)
    local = _resolve(data_dir) / CATALOG[name].folder / shipped.name
    return local if local.is_file() else shipped


__all__ = [
    "CATALOG",
    "DataNotInstalled",
    "Entry",
    "Kind",
    "Status",
    "default_data_dir",
    "entries",
    "get_entry",
    "install_command",
    "list_names",
    "require",
    "shipped_table",
    "status",
    "table_path",
]
