"""Resizing of uint8 image batches.

The filter is bicubic (a = -0.75, PyTorch's kernel; PIL and MATLAB use -0.5) with
antialiasing when downscaling, i.e.
``torch.nn.functional.interpolate(mode="bicubic", antialias=True)``, which is close to, but
not identical with, PIL's ``Image.resize(..., Image.BICUBIC)``. Results are clamped to
[0, 255] and rounded to the nearest integer.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

RESIZE_FILTER = "bicubic, antialiased (torch.nn.functional.interpolate, antialias=True)"


def resize_uint8(images: torch.Tensor | np.ndarray, size: int | tuple[int, int],
                 chunk: int = 256) -> torch.Tensor:
    """Resize a uint8 batch ``[N, C, H, W]`` to ``size`` (int = square), returning uint8."""
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(images)
    if isinstance(size, int):
        size = (size, size)
    n, c, h, w = images.shape
    if (h, w) == tuple(size):
        return images.clone()
    out = torch.empty((n, c, *size), dtype=torch.uint8)
    for start in range(0, n, chunk):
        batch = images[start:start + chunk].float()
        resized = F.interpolate(batch, size=size, mode="bicubic", antialias=True,
                                align_corners=False)
        out[start:start + chunk] = resized.round_().clamp_(0, 255).to(torch.uint8)
    return out
