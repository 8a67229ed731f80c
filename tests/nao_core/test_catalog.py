"""The data catalog and ``nao data list|install`` (torch-free catalog, offline installs).

Archives are built in tmp_path from the shared data in the official layouts (CIFAR python
batches in a .tar.gz, PTB as simple-examples.tgz, WikiText-2 as wikitext-2-v1.zip), installed
with ``--from`` through the real CLI entry, and read back with the real readers. No test
touches the network: the online path gets a ``download_url`` that copies a local file.
"""

from __future__ import annotations

import gzip
import hashlib
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from test_data import write_batch

from nao_core import catalog
from nao_core.catalog import DataNotInstalled, require, status, table_path
from nao_core.cli import build_parser, main
from nao_core.errors import MissingData, NaoCoreError, UnknownName

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
CIFAR_NPZ = DATA / "cifar10" / "cifar10_test_first1000.npz"
SPLITS = ("train", "valid", "test")
TOKENS = {"ptb": (929_589, 73_760, 82_430), "wikitext2": (2_088_628, 217_646, 245_569)}


def nao(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    rc = main(argv)
    out = capsys.readouterr()
    return rc, out.out, out.err


def listed(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    """``nao data list`` as {name: status}."""
    rc, out, _ = nao(["data", "list", "--data-dir", str(data_dir)], capsys)
    assert rc == 0
    assert out.splitlines()[0] == f"data directory: {data_dir}"
    states = ("installed", "missing")
    return {
        line.split()[0]: next(w for w in line.split() if w in states)
        for line in out.splitlines()[2:]
    }


def install(
    capsys: pytest.CaptureFixture[str], name: str, data_dir: Path, *extra: str
) -> tuple[int, str, str]:
    return nao(["data", "install", name, "--data-dir", str(data_dir), *extra], capsys)


def install_archive(
    capsys: pytest.CaptureFixture[str], name: str, data_dir: Path, archive: Path
) -> str:
    """``nao data install NAME --from ARCHIVE``, listed missing before and installed after."""
    assert listed(data_dir, capsys)[name] == "missing"
    rc, out, err = install(capsys, name, data_dir, "--from", str(archive))
    assert rc == 0, err
    assert listed(data_dir, capsys)[name] == "installed"
    return out


def shared(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"shared data not found at {path}")
    return path


# --- archives in the official layouts ------------------------------------------------------


def cifar_archive(root: Path, name: str) -> Path:
    """A cifar-10-python.tar.gz / cifar-100-python.tar.gz of 300 real images (50 a batch)."""
    with np.load(shared(CIFAR_NPZ)) as z:
        x, y = z["x"][:300], z["y"][:300]
    entry = catalog.get_entry(name)
    label_key = b"labels" if name == "cifar10" else b"fine_labels"
    folder = root / "src" / entry.folder
    n = len(entry.files)
    parts = zip(np.array_split(x, n), np.array_split(y, n), strict=True)
    for file, (px, py) in zip(entry.files, parts, strict=True):
        write_batch(folder / file, px, py, label_key)
    (folder / "readme.html").write_text("<p>not a batch</p>")
    out = root / str(entry.archive)
    with tarfile.open(out, "w:gz") as tar:
        tar.add(folder, arcname=entry.folder)
    return out


def corpus_archive(root: Path, name: str) -> Path:
    """simple-examples.tgz (./simple-examples/data/ptb.*.txt) or wikitext-2-v1.zip
    (wikitext-2/wiki.*.tokens) holding the shared corpus as plain text."""
    entry = catalog.get_entry(name)
    texts = {
        official[0]: gzip.decompress((shared(DATA / entry.folder) / f"{s}.txt.gz").read_bytes())
        for s, official in zip(SPLITS, entry.aliases, strict=True)
    }
    out = root / str(entry.archive)
    if name == "wikitext2":
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
            for member, text in texts.items():
                z.writestr(f"wikitext-2/{member}", text)
        return out
    src = root / "src" / "simple-examples" / "data"
    src.mkdir(parents=True)
    for member, text in texts.items():
        (src / member).write_bytes(text)
    (src / "ptb.char.train.txt").write_text("a b\n")  # the archive holds more than we need
    with tarfile.open(out, "w:gz", compresslevel=1) as tar:
        tar.add(src.parent, arcname="./simple-examples")
    return out


# --- the catalog -----------------------------------------------------------------------------


def test_catalog_and_cli_list_do_not_import_torch(tmp_path: Path) -> None:
    code = (
        "import sys; import nao_core.catalog; assert 'torch' not in sys.modules; "
        "from nao_core.cli import main; main(['data', 'list', '--data-dir', sys.argv[1]]); "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert "cifar10" in out.stdout


def test_default_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("NAO_DATA_DIR", raising=False)
    monkeypatch.delenv("NAO_HOME", raising=False)
    assert catalog.default_data_dir() == Path.home() / ".nao" / "data"
    monkeypatch.setenv("NAO_HOME", str(tmp_path / "home"))
    assert catalog.default_data_dir() == tmp_path / "home" / "data"
    monkeypatch.setenv("NAO_DATA_DIR", str(tmp_path / "d"))
    assert catalog.default_data_dir() == tmp_path / "d"
    assert status("cifar10").data_dir == tmp_path / "d"


def test_every_entry_has_a_kind_files_and_a_source(tmp_path: Path) -> None:
    rows = {st.entry.name: st for st in catalog.entries(tmp_path)}
    assert list(rows) == ["cifar10", "cifar100", "ptb", "wikitext2", "digits", "nb201"]
    for name in ("cifar10", "cifar100", "ptb", "wikitext2"):
        e = rows[name].entry
        assert e.url.endswith(str(e.archive))
        assert len(str(e.md5)) == 32
        assert not rows[name].installed
        assert rows[name].size == 0
    assert rows["digits"].installed  # scikit-learn is a dependency
    assert rows["nb201"].installed  # shipped
    assert rows["ptb"].missing == ("ptb/train.txt", "ptb/valid.txt", "ptb/test.txt")


def test_missing_dataset_error_names_dataset_dir_and_command(tmp_path: Path) -> None:
    with pytest.raises(DataNotInstalled) as info:
        require("cifar10", tmp_path)
    assert isinstance(info.value, MissingData)
    assert isinstance(info.value, NaoCoreError)
    msg = str(info.value)
    assert msg.startswith(f"dataset 'cifar10' is not installed in {tmp_path} ")
    assert "no cifar-10-batches-py/" in msg
    assert f"`nao data install cifar10 --data-dir {tmp_path}`" in msg
    assert f"`nao data install cifar10 --data-dir {tmp_path} --from PATH`" in msg
    assert "cifar-10-python.tar.gz" in msg
    assert info.value.command == f"nao data install cifar10 --data-dir {tmp_path}"
    (tmp_path / "ptb").mkdir()
    (tmp_path / "ptb" / "train.txt").write_text(" a\n")
    with pytest.raises(DataNotInstalled, match=r"missing ptb/valid\.txt, ptb/test\.txt"):
        require("ptb", tmp_path)
    with pytest.raises(UnknownName, match="unknown dataset 'imagenet'"):
        require("imagenet", tmp_path)


def test_corpus_in_the_data_dir_itself_counts_as_the_reader_finds_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for s in SPLITS:
        (tmp_path / f"{s}.txt.gz").write_bytes(gzip.compress(b" a\n"))
    assert require("ptb", tmp_path) == tmp_path
    assert status("ptb", tmp_path).size > 0
    rc, out, err = install(capsys, "ptb", tmp_path)
    assert rc == 0, err
    assert f"ptb: installed at {tmp_path} " in out


def test_table_path_prefers_the_data_dir_then_the_shipped_copy(tmp_path: Path) -> None:
    shipped = catalog.shipped_table("nb201")
    assert shipped.parent.name == "tables"
    sha = hashlib.sha256(shipped.read_bytes()).hexdigest()
    assert sha == catalog.get_entry("nb201").sha256
    assert table_path("nb201", tmp_path) == shipped
    local = tmp_path / "nas-bench-201" / "nb201_accuracy_table.csv.gz"
    local.parent.mkdir()
    shutil.copyfile(shipped, local)
    assert table_path("nb201", tmp_path) == local
    assert require("nb201", tmp_path) == local
    with pytest.raises(UnknownName, match="unknown table 'cifar10'"):
        table_path("cifar10", tmp_path)


def test_bench_nb201_defaults_to_the_catalog_table(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NAO_DATA_DIR", str(tmp_path))  # nothing there: the shipped copy
    assert build_parser().parse_args(["bench", "nb201"]).table is None
    argv = ["bench", "nb201", "--methods", "random", "--queries", "5", "--seeds", "1"]
    rc, out, err = nao([*argv, "--workers", "1"], capsys)
    assert rc == 0, err
    assert "optimum of c10_test_acc_200ep in the table: 94.37" in out


# --- nao data install ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_install_images_from_a_repacked_archive(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from nao_core.data import create_dataset

    data_dir = tmp_path / "data"
    out = install_archive(capsys, name, data_dir, cifar_archive(tmp_path, name))
    notes = [line for line in out.splitlines() if "md5" in line]
    assert len(notes) == 1  # a repacked archive: said once, installed anyway
    assert f"not the official {catalog.get_entry(name).md5}" in notes[0]
    assert f"{name}: installed at {data_dir / catalog.get_entry(name).folder}" in out
    assert sorted(p.name for p in (data_dir / catalog.get_entry(name).folder).iterdir()) == sorted(
        catalog.get_entry(name).files
    )
    assert not list(data_dir.glob(".install-*"))  # the staging folder is gone
    ds = create_dataset(name, data_dir)
    assert len(ds.train) + len(ds.valid) + len(ds.test) == 300
    assert tuple(ds.train.x.shape[1:]) == (3, 32, 32)
    rc, out, _ = install(capsys, name, data_dir)
    assert rc == 0  # twice is harmless: no download, the files parse
    assert f"{name}: already installed in {data_dir}" in out


@pytest.mark.parametrize("name", ["ptb", "wikitext2"])
def test_install_corpus_from_the_official_archive_then_from_gz_files(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from nao_core.data.corpus import load_corpus

    data_dir = tmp_path / "data"
    folder = data_dir / catalog.get_entry(name).folder
    out = install_archive(capsys, name, data_dir, corpus_archive(tmp_path, name))
    assert "md5" in out  # built here, so not the official bytes
    assert sorted(p.name for p in folder.iterdir()) == ["test.txt", "train.txt", "valid.txt"]
    corpus = load_corpus(name, data_dir)
    assert (corpus.train.numel(), corpus.valid.numel(), corpus.test.numel()) == TOKENS[name]
    # The shared .txt.gz folder installs too, and the plain files do not shadow the new ones.
    rc, out, err = install(capsys, name, data_dir, "--from", str(DATA / folder.name))
    assert rc == 0, err
    assert "md5" not in out  # a folder has no archive checksum
    assert sorted(p.name for p in folder.iterdir()) == [f"{s}.txt.gz" for s in sorted(SPLITS)]
    corpus = load_corpus(name, data_dir)
    assert (corpus.train.numel(), corpus.valid.numel(), corpus.test.numel()) == TOKENS[name]


def test_online_install_downloads_with_torchvision_and_checks_md5(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from nao_core import installer

    archive = cifar_archive(tmp_path, "cifar10")
    calls = []

    def fake_download(url: str, root: Path, filename: str, md5: str) -> None:
        calls.append((url, filename, md5))
        Path(root).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(archive, Path(root) / filename)

    monkeypatch.setattr(installer, "download_url", fake_download)
    data_dir = tmp_path / "data"
    rc, out, err = install(capsys, "cifar10", data_dir)
    assert rc == 0, err
    entry = catalog.get_entry("cifar10")
    assert calls == [(entry.url, entry.archive, entry.md5)]
    assert "md5" not in out  # download_url verified it
    assert require("cifar10", data_dir) == data_dir / "cifar-10-batches-py"
    assert not (data_dir / "downloads").exists()  # the archive is removed once extracted


def test_install_nb201_and_digits_ship_with_the_packages(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, out, _ = install(capsys, "nb201", tmp_path)
    assert rc == 0
    assert "ships with nao" in out
    assert not list(tmp_path.iterdir())
    table = shared(DATA / "nas-bench-201")
    rc, out, err = install(capsys, "nb201", tmp_path, "--from", str(table))
    assert rc == 0, err
    assert table_path("nb201", tmp_path).parent == tmp_path / "nas-bench-201"
    assert "differs" not in out
    rc, out, _ = install(capsys, "digits", tmp_path)
    assert rc == 0
    assert "ships with scikit-learn" in out


def test_install_errors_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    not_archive = tmp_path / "notes.tar.gz"
    not_archive.write_bytes(gzip.compress(b"hello\n"))
    partial = tmp_path / "partial.tar.gz"
    (tmp_path / "cifar-10-batches-py").mkdir()
    (tmp_path / "cifar-10-batches-py" / "data_batch_1").write_bytes(b"x")
    with tarfile.open(partial, "w:gz") as tar:
        tar.add(tmp_path / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    broken = tmp_path / "broken"
    for s in SPLITS:
        (broken / "ptb").mkdir(parents=True, exist_ok=True)
        (broken / "ptb" / f"{s}.txt").write_bytes(b"\xff\xfe not utf-8\n")
    cases = {
        ("imagenet",): "unknown dataset 'imagenet'; known: cifar10, cifar100, ptb",
        ("cifar10", "--from", str(not_archive)): f"cannot unpack {not_archive} (ReadError",
        ("cifar10", "--from", str(partial)): "lacks data_batch_2; data_batch_3",
        ("cifar10", "--from", str(tmp_path / "nowhere.tgz")): "nowhere.tgz does not exist",
        ("ptb", "--from", str(broken)): "ptb: the files do not parse (UnicodeDecodeError",
        ("digits", "--from", str(broken)): "digits ships with scikit-learn; --from does not apply",
    }
    for args, expected in cases.items():
        rc, _, err = install(capsys, args[0], tmp_path / "data", *args[1:])
        assert rc == 2, args
        assert err.count("\n") == 1, err
        assert err.startswith("nao: error: ")
        assert expected in err, err
    assert not (tmp_path / "data" / "cifar-10-batches-py").exists()  # nothing half-installed
    assert not list((tmp_path / "data").glob(".install-*"))


def test_search_refuses_a_missing_dataset_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["search", "--dataset", "cifar10", "--data-dir", str(tmp_path)]
    rc, _, err = nao([*argv, "--out", str(tmp_path / "run")], capsys)
    assert rc == 2
    assert f"`nao data install cifar10 --data-dir {tmp_path}`" in err
    assert not (tmp_path / "run").exists()
