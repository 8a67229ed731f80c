"""Run provenance recorded with every result: code version, device, library versions, time,
and every setting that changes a run's numbers (``numerics``).

Two runs with the same config and seed give the same bits when their ``numerics`` records
agree (same device kind and model, library versions, precision, thread count of the
host-side kernels, deterministic flags); the controller's part is host-independent by
construction (``controller.replicas`` replicas of one intra-op thread each).
"""

from __future__ import annotations

import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

import torch

from nao_core.utils.device import device_name

_REPO = Path(__file__).resolve().parents[2]

# The data never goes through a torch DataLoader: images and token streams are batched as
# tensors on the device (``nao_core.data``), so there are no loader workers whose number
# could change the order or augmentation of a batch.
DATA_LOADER_WORKERS = 0


def git_sha() -> str | None:
    """The checked-out commit of this source tree, or None outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=_REPO, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def numerics(device: torch.device, cfg: Any = None, precision: str | None = None) -> dict[str, Any]:
    """Everything besides the config and the seed that changes a run's numbers.

    ``cfg`` (any run config) adds its ``deterministic`` setting and its controller's
    replicas and precision where it has them; ``precision`` is the resolved one (fp32/bf16)
    the run computed in.
    """
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = platform.processor() or platform.machine()
    out: dict[str, Any] = {
        "device_kind": device.type,
        "device_name": name,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch": str(torch.__version__),
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "precision": precision if precision is not None else getattr(cfg, "precision", None),
        "torch_threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "data_loader_workers": DATA_LOADER_WORKERS,
        "deterministic": getattr(cfg, "deterministic", None),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "cudnn_deterministic": torch.backends.cudnn.deterministic,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "cublas_workspace_config": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
        "tf32_cudnn": torch.backends.cudnn.allow_tf32,
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
    }
    controller = getattr(cfg, "controller", None)
    if controller is not None:
        out["controller_replicas"] = controller.replicas  # 0 = one per thread (per host)
        out["controller_intra_op_threads"] = 1
        out["controller_precision"] = controller.precision
    return out


def provenance(
    device: torch.device, seed: int, cfg: Any = None, precision: str | None = None
) -> dict[str, Any]:
    """What produced a result (airbench stores code with metrics; we store its version)."""
    return {
        "git_sha": git_sha(),
        "seed": seed,
        "device": device_name(device),
        "torch": str(torch.__version__),  # TorchVersion would not load with weights_only
        "python": platform.python_version(),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "numerics": {**numerics(device, cfg, precision), "seed": seed},
    }
