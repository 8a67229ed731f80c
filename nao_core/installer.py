"""``nao data install``: put a catalog dataset where the readers look for it.

Online it downloads the official archive and checks its md5 with ``torchvision.datasets.utils``;
offline (``source``) it takes the official archive, a repacked one, or a folder that already
holds the files. The files are gathered into a staging folder inside the data directory, parsed
there with the real readers (``read_cifar10``, ``read_cifar100``, ``read_corpus``, the tabular
evaluator), and only then moved into place, one ``os.replace`` per file, so a failed install
leaves what was there before. Installing again replaces the files with the same ones.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import shutil
import tarfile
import tempfile
import urllib.error
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from torchvision.datasets.utils import (
    calculate_md5,
    check_integrity,
    download_url,
    extract_archive,
)

from nao_core.catalog import (
    Entry,
    Kind,
    get_entry,
    install_command,
    shipped_table,
    status,
    table_path,
)
from nao_core.errors import MissingData, NaoCoreError

logger = logging.getLogger(__name__)

Say = Callable[[str], None]


class BadArchive(NaoCoreError, ValueError):
    """A file given to ``nao data install --from`` cannot be unpacked or lacks the dataset."""


class DownloadFailed(NaoCoreError, OSError):
    """The official archive could not be downloaded (offline machine, dead link, bad md5)."""


@dataclass(frozen=True)
class Installed:
    name: str
    path: Path  # the folder (or file) the readers use
    size: int  # bytes on disk


def install(
    name: str,
    data_dir: str | Path,
    source: str | Path | None = None,
    say: Say = logger.info,
) -> Installed:
    """Install catalog entry ``name`` under ``data_dir`` and check that its reader parses it.

    Args:
        name: A catalog name (``nao_core.catalog.list_names()``).
        data_dir: The data directory; created when absent.
        source: An archive or a folder to install from; ``None`` downloads the official
            archive, unless the dataset is already installed.
        say: Receives one line per step worth telling (a differing checksum, a download).

    Raises:
        UnknownName: If ``name`` is not in the catalog.
        BadArchive: If ``source`` cannot be unpacked.
        MissingData: If ``source`` lacks a file of the dataset, or a file does not parse.
        DownloadFailed: If the download fails.
    """
    entry, root = get_entry(name), Path(data_dir).expanduser()
    if not entry.files or entry.kind is Kind.TABLE:
        return _install_shipped(entry, root, None if source is None else Path(source), say)
    root.mkdir(parents=True, exist_ok=True)
    if source is None:
        if status(name, root).installed:
            say(f"{name}: already installed in {root}")
            _parse(entry, root)
            return _checked(entry, root)
        archive: Path = _download(entry, root, say)
    else:
        archive = Path(source).expanduser()
    with tempfile.TemporaryDirectory(prefix=f".install-{name}-", dir=root) as tmp:
        if archive.is_dir():
            found = _gather(entry, archive)
        elif archive.is_file():
            unpacked = _extract(archive, Path(tmp) / "unpacked")
            if source is not None:  # a download was checked by download_url
                _compare_checksum(entry, archive, say)
            found = _gather(entry, unpacked)
        else:
            raise MissingData(f"{archive} does not exist")
        staged = Path(tmp) / "staged"
        for file, path in found.items():
            dest = staged / entry.folder / _target(file, path)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, dest)
        _parse(entry, staged)
        _move_into_place(entry, staged, root)
    if source is None:  # the download: the extracted files are what the readers use
        archive.unlink()
        with contextlib.suppress(OSError):
            archive.parent.rmdir()
    return _checked(entry, root)


def _checked(entry: Entry, root: Path) -> Installed:
    st = status(entry.name, root)
    if not st.installed or st.path is None:
        raise MissingData(f"{entry.name}: after installing, {', '.join(st.missing)} is missing")
    return Installed(entry.name, st.path, st.size)


def _download(entry: Entry, root: Path, say: Say) -> Path:
    assert entry.archive is not None, entry.name  # every downloadable entry names its archive
    folder = root / "downloads"
    say(f"{entry.name}: downloading {entry.url}")
    try:
        download_url(entry.url, folder, filename=entry.archive, md5=entry.md5)
    except (urllib.error.URLError, OSError, RuntimeError) as exc:
        with contextlib.suppress(OSError):
            folder.rmdir()  # only when empty: a partial download stays for the next try
        raise DownloadFailed(
            f"could not download {entry.url} ({_one_line(exc)}); fetch "
            f"{entry.archive} yourself and run `{install_command(entry.name, root)} --from FILE`"
        ) from exc
    return folder / entry.archive


def _one_line(exc: BaseException) -> str:
    first = next(iter(str(exc).splitlines()), "")
    return f"{type(exc).__name__}: {first.rstrip(':')}"


def _compare_checksum(entry: Entry, archive: Path, say: Say) -> None:
    if entry.md5 is not None and not check_integrity(archive, entry.md5):
        say(
            f"{entry.name}: {archive.name} has md5 {calculate_md5(archive)}, not the official "
            f"{entry.md5} of {entry.archive} (a repacked archive?); installing it if complete"
        )


def _check_members(archive: Path) -> None:
    """Refuse members that would land outside the extraction folder (absolute, ``..``, links)."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            names = z.namelist()
    else:
        with tarfile.open(archive) as t:
            members = t.getmembers()
        if any(m.issym() or m.islnk() for m in members):
            raise BadArchive(f"{archive} holds links; unpack it yourself and pass the folder")
        names = [m.name for m in members]
    for n in names:
        p = PurePosixPath(n)
        if p.is_absolute() or ".." in p.parts:
            raise BadArchive(f"{archive}: member {n!r} would be written outside the data folder")


def _extract(archive: Path, to: Path) -> Path:
    try:
        _check_members(archive)
        extract_archive(archive, to)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, RuntimeError) as exc:
        raise BadArchive(
            f"cannot unpack {archive} ({_one_line(exc)}); expected a .tar.gz, "
            ".tgz or .zip archive, or a folder holding the files"
        ) from exc
    return to


def _gather(entry: Entry, folder: Path) -> dict[str, Path]:
    """Each file of ``entry`` under ``folder``: in its ``entry.folder`` subfolder first (a data
    directory holds ptb/ and wikitext-2/, both with train.txt), by its best name, shallowest."""
    roots = [folder / entry.folder, folder] if (folder / entry.folder).is_dir() else [folder]
    found, missing = {}, []
    for file in entry.files:
        hit = next(
            (
                p
                for r in roots
                for n in entry.names_of(file)
                for p in sorted(r.rglob(n), key=lambda p: (len(p.parts), p))
                if p.is_file()
            ),
            None,
        )
        if hit is None:
            missing.append(" or ".join(entry.names_of(file)))
        else:
            found[file] = hit
    if missing:
        raise MissingData(f"{entry.name}: {folder} lacks {'; '.join(missing)}")
    return found


def _target(file: str, path: Path) -> str:
    """``train.txt`` stays gzipped as ``train.txt.gz`` when the source is (corpus.py reads both)."""
    with path.open("rb") as f:
        return f"{file}.gz" if f.read(2) == b"\x1f\x8b" and not file.endswith(".gz") else file


def _parse(entry: Entry, root: Path) -> None:
    """Read the files with the real reader; any failure is a ``MissingData`` naming them."""
    from nao_core.data.cifar import read_cifar10, read_cifar100
    from nao_core.data.corpus import find_corpus_dir, read_corpus

    try:
        if entry.kind is Kind.CORPUS:  # found where the search and training will look
            read_corpus(find_corpus_dir(entry.name, root), entry.name)
        else:
            {"cifar10": read_cifar10, "cifar100": read_cifar100}[entry.name](root)
    except (NaoCoreError, UnicodeDecodeError, OSError) as exc:
        raise MissingData(f"{entry.name}: the files do not parse ({_one_line(exc)})") from exc


def _move_into_place(entry: Entry, staged: Path, root: Path) -> None:
    dest = root / entry.folder
    dest.mkdir(parents=True, exist_ok=True)
    for path in sorted((staged / entry.folder).iterdir()):
        other = path.name[:-3] if path.name.endswith(".gz") else f"{path.name}.gz"
        (dest / other).unlink(missing_ok=True)  # train.txt would shadow a new train.txt.gz
        path.replace(dest / path.name)


def _install_shipped(entry: Entry, root: Path, source: Path | None, say: Say) -> Installed:
    """digits and the tables ship with the installed packages; ``--from`` installs a table."""
    if entry.kind is not Kind.TABLE:
        if source is not None:
            raise MissingData(f"{entry.name} ships with scikit-learn; --from does not apply")
        from nao_core.data.digits import read_digits

        read_digits()
        st = status(entry.name, root)
        assert st.path is not None, "read_digits() found it"
        say(f"{entry.name}: ships with scikit-learn ({st.path}); nothing to download")
        return Installed(entry.name, st.path, st.size)
    if source is None:
        path = table_path(entry.name, root)
        say(f"{entry.name}: ships with nao ({path}); nothing to download")
        _parse_table(path)
        return Installed(entry.name, path, path.stat().st_size)
    path = _gather(entry, source)[entry.files[0]] if source.is_dir() else source
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != entry.sha256:
        say(f"{entry.name}: {path.name} differs from the shipped table (sha256 {digest})")
    _parse_table(path)
    dest = root / entry.folder / shipped_table(entry.name).name
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, dest)
    return Installed(entry.name, dest, dest.stat().st_size)


def _parse_table(path: Path) -> None:
    from nao_core.evaluator.tabular import TabularEvaluator
    from nao_core.search_space import create_search_space

    TabularEvaluator(path, create_search_space("nb201"), "c10_valid_acc_200ep")
