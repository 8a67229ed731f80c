"""Device, precision and memory-format choices, made in one place (nao-spec §9 "Modernize").

On CUDA the stand-alone CNNs run under bf16 autocast (fp32 weights, optimizer and loss); on a
CPU they run in fp32. Both store activations and conv weights ``channels_last``: cuDNN and
oneDNN both pick faster kernels for it (measured with ``nao bench supernet`` on an AVX-512 CPU:
supernet training 3x, stand-alone nets 2.7x; on that CPU bf16 sped up inference but slowed
training relative to fp32 channels_last). ``"auto"`` picks that; ``"fp32"``/``"bf16"``
force one. The weight-sharing search overrides both on CUDA (``nao_core.evaluator.supernet``:
its tiny steps are bound by kernel launches there, and casts and layout changes add kernels).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Literal

import torch

from nao_core.errors import InvalidConfig

Resolved = Literal["fp32", "bf16"]


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"``/None -> the first CUDA device when there is one, else the CPU."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_precision(
    precision: str, device: torch.device, cuda_auto: Resolved = "bf16"
) -> Resolved:
    """``"auto"`` -> ``cuda_auto`` (bf16 unless the caller measured better) on CUDA, fp32
    elsewhere."""
    if precision == "auto":
        return cuda_auto if device.type == "cuda" else "fp32"
    if precision not in ("fp32", "bf16"):
        raise InvalidConfig(f"precision: must be auto, fp32 or bf16, got {precision!r}")
    return "bf16" if precision == "bf16" else "fp32"


def use_channels_last(device: torch.device) -> bool:
    """NHWC pays off for cuDNN and oneDNN convolutions; other backends keep NCHW."""
    return device.type in ("cuda", "cpu")


@contextlib.contextmanager
def autocast(device: torch.device, precision: Resolved, cache: bool = True) -> Iterator[None]:
    """bf16 autocast on ``device`` when ``precision`` is bf16, else nothing.

    ``cache=False`` for CUDA-graph capture: cached bf16 weight copies must not outlive it.
    """
    with torch.autocast(
        device.type, dtype=torch.bfloat16, enabled=precision == "bf16", cache_enabled=cache
    ):
        yield


def device_name(device: torch.device) -> str:
    """A human-readable name of the device, for provenance records."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({torch.get_num_threads()} threads)"


def to_channels_last(module: torch.nn.Module) -> torch.nn.Module:
    """Store the 4-D (conv) parameters of ``module`` channels_last, in place.

    ``Module.to(memory_format=...)`` refuses the supernet's 5-D weight banks
    (inputs, C_out, C_in, k, k); those stay as they are: indexing a bank gives a 4-D weight per
    forward, and cuDNN follows the channels_last activations.
    """
    for param in module.parameters():
        if param.dim() == 4:
            param.data = param.data.contiguous(memory_format=torch.channels_last)
    return module
