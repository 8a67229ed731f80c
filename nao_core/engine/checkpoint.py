"""Atomic, self-describing checkpoints and JSON results.

A checkpoint is a plain dict saved with ``torch.save`` and read back with
``weights_only=True`` (tensors, numbers, strings, lists and dicts only: loading a file can
never run code). A *model* checkpoint (``kind="model"``) carries everything needed to rebuild
and evaluate the model with nothing else (nanoGPT's ``model_args``): the resolved config
dict, the space name, the arch string, the model constructor arguments, metrics, provenance
and the state dict. Search and training *state* checkpoints add optimizer, scheduler and RNG
states so a killed run resumes exactly.

Writes go to a temporary file in the same folder, are fsync'ed, then ``os.replace``d over the
target, so a crash leaves either the old or the new file, never half of one. A write that
fails for want of space (``ENOSPC``, or torch's ``unexpected pos`` when its writer's writes
fail) removes its temporary file and raises ``StorageFull`` naming the volume.
"""

from __future__ import annotations

import errno
import json
import os
import pickle
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from nao_core.errors import MissingData, StorageFull

FORMAT = "nao-checkpoint/1"
NEARLY_FULL = 16 * 2**20  # bytes: less free than this after a failed write means "full"


def _out_of_space(exc: BaseException, folder: Path, written: int) -> bool:
    """True when ``exc`` comes from a full volume: ENOSPC, or a torch writer error (torch
    reports a failed write as ``unexpected pos N vs M``) while the volume is nearly full."""
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    if not isinstance(exc, RuntimeError):
        return False
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return False
    return free < max(NEARLY_FULL, written)


def _atomic_write(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        full = _out_of_space(exc, path.parent, _size(tmp))  # before the unlink frees space
        Path(tmp).unlink(missing_ok=True)
        if full:
            raise StorageFull(
                f"no space left on the storage volume ({_free(path.parent)} free) "
                f"writing {path}: {exc}"
            ) from exc
        raise


def _free(folder: Path) -> str:
    try:
        return f"{shutil.disk_usage(folder).free / 2**20:.1f} MiB"
    except OSError:
        return "? MiB"


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` (plus the format tag) to ``path`` atomically."""
    _atomic_write(Path(path), lambda f: torch.save({"format": FORMAT, **payload}, f))


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by ``save_checkpoint``.

    Raises:
        MissingData: If the file is absent or is not one of our checkpoints.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingData(f"checkpoint {path} not found")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, OSError, EOFError, ValueError) as e:
        raise MissingData(f"{path} is not a readable checkpoint: {e}") from e
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise MissingData(f"{path} is not a {FORMAT} checkpoint")
    return payload


def write_json(path: str | Path, data: Any) -> None:
    """Write ``data`` as indented JSON atomically."""
    text = json.dumps(data, indent=2, sort_keys=False) + "\n"
    _atomic_write(Path(path), lambda f: f.write(text.encode()))


def rng_state(device: torch.device) -> dict[str, Any]:
    """torch's global CPU (and ``device``'s CUDA) generator states: dropout and drop path
    draw from them, so an exact resume must restore them."""
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def numpy_rng_state(rng: np.random.Generator) -> dict[str, Any]:
    return dict(rng.bit_generator.state)


def set_numpy_rng_state(rng: np.random.Generator, state: dict[str, Any]) -> None:
    rng.bit_generator.state = state
