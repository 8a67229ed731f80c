"""Batched image augmentation: random crop with zero padding, horizontal flip, normalise, cutout.

Every op works on a whole (B, C, H, W) batch with tensor ops on the batch's device; there are no
per-image Python loops (the design note of spec §9, after cifar10-airbench). The recipe is
NAO_V1's (spec §4.1 "Data", §6.1): crop with zero padding in pixel space and flip on uint8,
then normalise, then cutout (a square zeroed *after* normalisation, centre uniform over the
image, clipped at the borders).

All randomness is drawn from an explicit ``torch.Generator`` on the generator's own device and
then moved to the batch's device, so a CPU generator gives the same augmentation on CPU and
CUDA batches, and a CUDA generator avoids the host round trip.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def random_crop(x: Tensor, padding: int, generator: torch.Generator) -> Tensor:
    """Crop each image at a random offset from the image padded with ``padding`` zeros per side.

    Args:
        x: Images, (B, C, H, W), any dtype (uint8 before normalisation: the padding is black).
        padding: Zero pixels added on every side; 0 returns ``x`` unchanged.
        generator: Source of the offsets.

    Returns:
        Images of the same shape and dtype.
    """
    if padding == 0:
        return x
    B, C, H, W = x.shape
    padded = F.pad(x, (padding, padding, padding, padding))  # (B, C, H+2p, W+2p)
    dy = _randint(2 * padding + 1, B, generator, x.device)
    dx = _randint(2 * padding + 1, B, generator, x.device)
    rows = dy[:, None] + torch.arange(H, device=x.device)  # (B, H)
    cols = dx[:, None] + torch.arange(W, device=x.device)  # (B, W)
    # Two gathers: pick each image's H rows, then its W columns.
    out = padded.gather(2, rows[:, None, :, None].expand(B, C, H, W + 2 * padding))
    return out.gather(3, cols[:, None, None, :].expand(B, C, H, W))  # (B, C, H, W)


def random_flip(x: Tensor, generator: torch.Generator, p: float = 0.5) -> Tensor:
    """Mirror each image left-right with probability ``p``.

    Args:
        x: Images, (B, C, H, W).
        generator: Source of the coin flips.
        p: Probability of flipping an image.
    """
    flip = _rand(x.shape[0], generator, x.device) < p  # (B,)
    return torch.where(flip[:, None, None, None], x.flip(3), x)


def normalize(x: Tensor, mean: Tensor, std: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """Map uint8 pixels to ``(x / 255 - mean) / std``.

    Args:
        x: uint8 images, (B, C, H, W).
        mean: Per-channel mean in [0, 1] units, (1, C, 1, 1) on the batch's device.
        std: Per-channel standard deviation, (1, C, 1, 1).
        dtype: Output dtype; the arithmetic is done in float32 first so half precision only
            rounds the result.
    """
    out = (x.to(torch.float32) / 255.0 - mean) / std
    return out.to(dtype)


def cutout(x: Tensor, size: int, generator: torch.Generator) -> Tensor:
    """Zero one square per image, as NAO_V1's ``Cutout`` (spec §6.1).

    The centre (cy, cx) is uniform over the pixels; rows ``[cy - size//2, cy + size//2)`` and the
    same columns are zeroed, clipped at the borders, so squares near an edge are smaller.

    Args:
        x: Normalised images, (B, C, H, W).
        size: Side of the square; 0 returns ``x`` unchanged.
        generator: Source of the centres.
    """
    if size == 0:
        return x
    B, _, H, W = x.shape
    cy = _randint(H, B, generator, x.device)[:, None]  # (B, 1)
    cx = _randint(W, B, generator, x.device)[:, None]
    rows = torch.arange(H, device=x.device)[None, :]  # (1, H)
    cols = torch.arange(W, device=x.device)[None, :]
    in_rows = (rows >= cy - size // 2) & (rows < cy + size // 2)  # (B, H)
    in_cols = (cols >= cx - size // 2) & (cols < cx + size // 2)  # (B, W)
    square = in_rows[:, :, None] & in_cols[:, None, :]  # (B, H, W)
    return x.masked_fill(square[:, None], 0.0)


def _randint(high: int, n: int, generator: torch.Generator, device: torch.device) -> Tensor:
    out = torch.randint(high, (n,), generator=generator, device=generator.device)
    return out.to(device)


def _rand(n: int, generator: torch.Generator, device: torch.device) -> Tensor:
    return torch.rand(n, generator=generator, device=generator.device).to(device)
