"""The one conversion between stage images and network values.

Images cross every stage boundary as ``torch.uint8 [N, C, H, W]``. Every network medsyn
trains or runs for features sees ``x / 127.5 - 1`` in [-1, 1], and its outputs come back as
``round((y + 1) * 127.5)`` clamped to 0..255. Generators, SR models, translation models and the
feature spaces trained on real data all use these two functions, so the convention cannot drift.
"""

from __future__ import annotations

import torch

# Recorded in checkpoints and provenance, so a reader knows how pixels became network inputs.
NORMALISATION = "x / 127.5 - 1 (uint8 0..255 -> [-1, 1]); back: round((y + 1) * 127.5)"


def to_model_range(images: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 0..255 -> float in [-1, 1] (``x / 127.5 - 1``), the networks' input convention."""
    return images.to(dtype).div_(127.5).sub_(1.0)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """float in [-1, 1] -> uint8 (``round((y + 1) * 127.5)`` clamped to 0..255)."""
    return ((x.float() + 1.0) * 127.5).round_().clamp_(0, 255).to(torch.uint8)
