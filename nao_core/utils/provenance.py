"""Run provenance recorded with every result: code version, device, library versions, time."""

from __future__ import annotations

import platform
import subprocess
import time
from pathlib import Path
from typing import Any

import torch

from nao_core.utils.device import device_name

_REPO = Path(__file__).resolve().parents[2]


def git_sha() -> str | None:
    """The checked-out commit of this source tree, or None outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=_REPO, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def provenance(device: torch.device, seed: int) -> dict[str, Any]:
    """What produced a result (airbench stores code with metrics; we store its version)."""
    return {
        "git_sha": git_sha(),
        "seed": seed,
        "device": device_name(device),
        "torch": str(torch.__version__),  # TorchVersion would not load with weights_only
        "python": platform.python_version(),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
