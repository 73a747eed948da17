"""Wavelet space: log energies of a multi-level 2-D wavelet packet transform (PyWavelets),
for a Fréchet Wavelet Distance in the spirit of Veeramacheneni et al. (ICLR 2025).

No weights and no training: the features depend only on the pixels. Every packet of every
level 1..L of an orthonormal Haar packet tree (``mode="periodization"``) contributes the log
of its mean squared coefficient, so the vector describes how the image's energy spreads over
scales and orientations (4 + 16 + ... + 4**L values).

How this differs from the FWD reference code (``pytorchfwd``: Haar, level 4, images in
[0, 1], the Fréchet distance of every level-4 packet's raw coefficients, averaged over the
packets): medsyn keeps one energy per packet (translation-invariant, so it does not see where
in the image a frequency band lives), includes every level rather than the deepest only, and
computes one Fréchet distance over the joint vector (so it also sees how bands co-vary). The
depth is capped by the image size (see :func:`packet_levels`): 2 levels at 28 px, 4 at 64 px.
"""

from __future__ import annotations

import numpy as np
import torch

from medsyn.device import resolve_device
from medsyn.errors import ConfigError
from medsyn.evaluators.features.base import FeatureExtractor

WAVELET = "haar"
MAX_LEVEL = 4
LOG_EPS = 1e-10
# the pywt names of the four sub-bands, in the order packet paths are spelled
BANDS = ("a", "h", "v", "d")


def packet_levels(size: int, max_level: int = MAX_LEVEL) -> int:
    """Deepest level L <= ``max_level`` at which ``size`` stays divisible by 2**L (exact Haar
    periodization, so energies obey Parseval) with packets of at least 2 x 2 coefficients."""
    level = 0
    while level < max_level and size % (2 ** (level + 1)) == 0 and size // 2 ** (level + 1) >= 2:
        level += 1
    return level


def packet_paths(levels: int) -> list[str]:
    """Packet names in feature order: level 1 (``a, h, v, d``), then level 2 (``aa, ah, ...``),
    ... as PyWavelets' ``WaveletPacket2D`` names its nodes in natural order."""
    out, current = [], [""]
    for _ in range(levels):
        current = [p + b for p in current for b in BANDS]
        out += current
    return out


def packet_energies(gray: np.ndarray, levels: int, wavelet: str = WAVELET) -> np.ndarray:
    """Mean squared coefficient of every packet of levels 1..``levels``, ``[N, P]`` float64.

    ``gray``: float ``[N, H, W]``. Each level splits every packet of the previous level with one
    batched ``pywt.dwt2`` call over the image axis.
    """
    import pywt

    energies, current = [], [gray]
    for _ in range(levels):
        nxt = []
        for node in current:
            a, (h, v, d) = pywt.dwt2(node, wavelet, mode="periodization", axes=(-2, -1))
            nxt += [a, h, v, d]
        energies += [np.mean(np.square(c), axis=(-2, -1)) for c in nxt]
        current = nxt
    return np.stack(energies, axis=1)


class WaveletExtractor(FeatureExtractor):
    """``log(energy + 1e-10)`` of every Haar packet of levels 1..L, images as grayscale / 255."""

    def __init__(self, image_size: int | None = None, max_level: int = MAX_LEVEL,
                 device=None, **_):
        if not isinstance(max_level, int) or max_level < 1:
            raise ConfigError(f"wavelet max_level must be an integer >= 1, got {max_level!r}.")
        self.max_level = max_level
        self.device = resolve_device(device)
        self.name = "wavelet-packets"
        self.levels = None
        if image_size is not None:
            self._set_size(int(image_size))
        self.logits_unavailable = "the wavelet space has no classifier head"

    def _set_size(self, size: int):
        levels = packet_levels(size, self.max_level)
        if levels < 1:
            raise ConfigError(f"the wavelet space needs images whose side is even and at least "
                              f"4 px; got {size} px. Resize them (--image-size).")
        self.size, self.levels = size, levels
        self.feature_dim = sum(4 ** level for level in range(1, levels + 1))
        self.conventions = {
            "input": "uint8 [N, C, H, W]; channels averaged, / 255 (pixels in [0, 1])",
            "transform": f"2-D wavelet packet tree, pywt {WAVELET}, mode periodization, "
                         f"levels 1..{levels} (deepest level with side divisible by 2**L, "
                         f"at most {self.max_level}) at {size} px",
            "features": f"log(mean squared coefficient + {LOG_EPS}) of each of the "
                        f"{self.feature_dim} packets, level 1 first, pywt natural order",
            "distance": "one Frechet distance over the joint vector (FWD-style; "
                        "pytorchfwd averages per-packet distances of raw coefficients)",
        }

    def prepare(self, images: torch.Tensor) -> None:
        h, w = images.shape[2:]
        if h != w:
            raise ConfigError(f"the wavelet space expects square images, got {h}x{w}.")
        if self.levels is None:
            self._set_size(int(h))
        elif h != self.size:
            raise ConfigError(f"the wavelet extractor was set up for {self.size} px images, "
                              f"got {h} px; use one image size per evaluation.")

    def cache_identity(self) -> dict:
        if self.levels is None:
            raise ConfigError("the wavelet extractor learns its depth from the images; call "
                              "prepare(images) before asking for its identity.")
        return super().cache_identity()

    def extract(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        self.prepare(images)
        gray = images.cpu().double().mean(1).numpy() / 255.0
        energies = packet_energies(gray, self.levels)
        return {"features": torch.from_numpy(np.log(energies + LOG_EPS)).float()}

    def describe(self) -> dict:
        return {**super().describe(), "levels": self.levels}
