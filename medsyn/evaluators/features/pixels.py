"""Pixel space: downsampled grayscale pixels, no weights (a smoke-test baseline)."""

from __future__ import annotations

import torch

from medsyn.device import resolve_device
from medsyn.errors import ConfigError
from medsyn.evaluators.features.base import FeatureExtractor


class PixelExtractor(FeatureExtractor):
    """Downsampled pixels: grayscale (channel mean), area-resized to ``size`` x ``size``, / 255.

    No weights, no download, milliseconds per batch. It is NOT a perceptual feature space: its
    distances follow brightness and layout, not anatomy. Use it for smoke tests, quick checks
    of the pipeline, and as a contrast to learned features; report Inception (or an in-domain
    network) for results.
    """

    def __init__(self, size: int = 16, device=None, **_):
        if not isinstance(size, int) or size < 2:
            raise ConfigError(f"pixel extractor size must be an integer >= 2, got {size!r}.")
        self.size = size
        self.name = f"pixels{size}"
        self.feature_dim = size * size
        self.device = resolve_device(device)
        self.conventions = {"input": "uint8 [N, C, H, W]; channels averaged",
                            "resize": f"area (adaptive average pooling) to {size}x{size}",
                            "normalisation": "x / 255"}

    @torch.no_grad()
    def extract(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        x = images.to(self.device).float().mean(1, keepdim=True) / 255.0
        x = torch.nn.functional.adaptive_avg_pool2d(x, self.size)
        return {"features": x.flatten(1).cpu()}
