"""Edge maps of images: Canny (scikit-image), the sketches that edge-conditioned generators
(MEGAN, image translation) take as input.

    edges = canny_edges(images_uint8)        # uint8 [N, 1, H, W], 0 or 255

A pure, deterministic function of the pixels and of the explicit parameters below, so the same
images always give the same edge maps (they can be computed offline, before training, and
recomputed at sampling time). Colour images are turned to gray by the mean of their channels.

The thresholds are quantiles of each image's gradient magnitude (``use_quantiles=True`` of
:func:`skimage.feature.canny`): the same fraction of candidate pixels is kept in a dark and a
bright radiograph, so the edge density does not follow the exposure.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medsyn.errors import DataError


@dataclass(frozen=True)
class CannyParams:
    """The parameters of :func:`canny_edges` (stored with every edge map built from them)."""

    sigma: float = 1.0            # Gaussian smoothing before the gradient, in pixels
    low_quantile: float = 0.80    # hysteresis: weak edges, as a quantile of gradient magnitude
    high_quantile: float = 0.90   # strong edges

    @classmethod
    def from_dict(cls, values: dict) -> CannyParams:
        """The parameters :meth:`as_dict` recorded (in a checkpoint, for instance)."""
        return cls(float(values["sigma"]), float(values["low_quantile"]),
                   float(values["high_quantile"]))

    def as_dict(self) -> dict:
        return {"method": "skimage.feature.canny", "sigma": self.sigma,
                "low_quantile": self.low_quantile, "high_quantile": self.high_quantile,
                "use_quantiles": True, "gray": "mean of channels"}


DEFAULT_CANNY = CannyParams()


def canny_edges(images, params: CannyParams = DEFAULT_CANNY) -> np.ndarray:
    """Canny edge maps of uint8 ``images`` [N, C, H, W] (NumPy or torch): uint8 [N, 1, H, W]
    holding 255 on edges and 0 elsewhere."""
    from skimage.feature import canny

    arr = images.detach().cpu().numpy() if hasattr(images, "detach") else np.asarray(images)
    if arr.dtype != np.uint8 or arr.ndim != 4:
        raise DataError(f"edge maps need uint8 images [N, C, H, W], got {arr.dtype} "
                        f"{tuple(arr.shape)}.")
    if not 0 <= params.low_quantile <= params.high_quantile <= 1:
        raise DataError(f"Canny quantiles must satisfy 0 <= low <= high <= 1, got "
                        f"{params.low_quantile} and {params.high_quantile}.")
    if min(arr.shape[2:]) < 3:
        raise DataError(f"images of {arr.shape[2]}x{arr.shape[3]} px are too small for edge "
                        "maps (at least 3 px a side).")
    gray = arr.astype(np.float64).mean(axis=1) / 255.0
    out = np.zeros((arr.shape[0], 1, *arr.shape[2:]), dtype=np.uint8)
    for i, image in enumerate(gray):
        out[i, 0] = canny(image, sigma=params.sigma, low_threshold=params.low_quantile,
                          high_threshold=params.high_quantile, use_quantiles=True) * 255
    return out
