"""A checkpoint written to a full volume: a clear error and no partial file."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import pytest

from nao_core.engine import checkpoint
from nao_core.errors import NaoCoreError, StorageFull


def _half_written(error: BaseException) -> Any:
    def save(_payload: Any, f: Any) -> None:
        f.write(b"x" * 64)  # some bytes reach the temporary file first
        raise error

    return save


def test_enospc_names_the_volume_and_leaves_the_old_file(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "state.pt"
    checkpoint.save_checkpoint(path, {"epoch": 1})
    monkeypatch.setattr(checkpoint.torch, "save", _half_written(OSError(errno.ENOSPC, "full")))
    with pytest.raises(StorageFull, match="no space left on the storage volume") as info:
        checkpoint.save_checkpoint(path, {"epoch": 2})
    assert isinstance(info.value, NaoCoreError)
    assert info.value.errno == errno.ENOSPC
    assert [p.name for p in tmp_path.iterdir()] == ["state.pt"]  # no temporary left behind
    monkeypatch.undo()
    assert checkpoint.load_checkpoint(path)["epoch"] == 1


def test_torch_unexpected_pos_on_a_full_volume_is_storage_full(tmp_path, monkeypatch) -> None:
    error = RuntimeError("[enforce fail at inline_container.cc:672] unexpected pos 64 vs 0")
    monkeypatch.setattr(checkpoint.torch, "save", _half_written(error))
    usage = checkpoint.shutil.disk_usage(tmp_path)
    monkeypatch.setattr(checkpoint.shutil, "disk_usage", lambda _p: usage._replace(free=4096))
    with pytest.raises(StorageFull, match="no space left on the storage volume"):
        checkpoint.save_checkpoint(tmp_path / "model.pt", {"epoch": 1})
    assert list(tmp_path.iterdir()) == []


def test_a_torch_error_with_space_left_is_not_storage_full(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(checkpoint.torch, "save", _half_written(RuntimeError("other")))
    usage = checkpoint.shutil.disk_usage(tmp_path)
    monkeypatch.setattr(checkpoint.shutil, "disk_usage", lambda _p: usage._replace(free=2**40))
    with pytest.raises(RuntimeError, match="other") as info:
        checkpoint.save_checkpoint(tmp_path / "model.pt", {"epoch": 1})
    assert not isinstance(info.value, StorageFull)
    assert list(tmp_path.iterdir()) == []
