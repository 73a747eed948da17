"""Edge maps of images: Canny (scikit-image), the sketches that edge-conditioned generators
(MEGAN, pix2pix's ``--condition edges``) take as input. One builder, two conventions:

    edges = canny_edges(images_uint8)                      # MEGAN: uint8 [N, 1, H, W], 0 / 255
    edges = canny_edges(images_uint8, translation_canny(sigma=2.0))     # pix2pix

A pure, deterministic function of the pixels and of the explicit parameters below, so the same
images always give the same edge maps (they can be computed offline, before training, and
recomputed at sampling time). The parameters that differ between the conventions:

- MEGAN (:data:`DEFAULT_CANNY`): sigma 1 px; gray = the ``mean`` of the channels; ``quantile``
  thresholds, 0.80 / 0.90 of each image's gradient magnitude; one output channel.
- translation (:func:`translation_canny`, pix2pix ``--condition edges``): sigma 2 px
  (``--canny-sigma``); gray = ``luminance`` 0.299 R + 0.587 G + 0.114 B; ``absolute``
  thresholds 0.1 / 0.2 (scikit-image's defaults for float images in [0, 1]); the caller
  repeats the map to the images' channels.

Quantile thresholds keep the same fraction of candidate pixels in a dark and a bright
radiograph, so the edge density does not follow the exposure; absolute ones are what
scikit-image does by default, which pix2pix's edge pairs were built with. Grayscale images are
the same under both gray conversions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medsyn.errors import DataError

GRAY_CONVERSIONS = {"mean": "mean of channels",
                    "luminance": "luminance 0.299 R + 0.587 G + 0.114 B"}
THRESHOLD_KINDS = ("quantile", "absolute")
LUMINANCE_WEIGHTS = np.array([0.299, 0.587, 0.114])


@dataclass(frozen=True)
class CannyParams:
    """The parameters of :func:`canny_edges` (stored with every edge map built from them)."""

    sigma: float = 1.0            # Gaussian smoothing before the gradient, in pixels
    low: float = 0.80             # hysteresis: weak edges (a quantile, or an absolute value)
    high: float = 0.90            # strong edges
    thresholds: str = "quantile"  # quantile: of each image's gradient magnitude; absolute:
                                  # on the gradient of the image scaled to [0, 1]
    gray: str = "mean"            # how colour images become one channel (GRAY_CONVERSIONS)

    def __post_init__(self):
        if self.thresholds not in THRESHOLD_KINDS:
            raise DataError(f"Canny thresholds must be one of {', '.join(THRESHOLD_KINDS)}, "
                            f"got {self.thresholds!r}.")
        if self.gray not in GRAY_CONVERSIONS:
            raise DataError(f"Canny gray conversion must be one of "
                            f"{', '.join(GRAY_CONVERSIONS)}, got {self.gray!r}.")

    @classmethod
    def from_dict(cls, values: dict) -> CannyParams:
        """The parameters :meth:`as_dict` recorded (in a checkpoint, for instance)."""
        gray = next((k for k, v in GRAY_CONVERSIONS.items() if v == values.get("gray")), "mean")
        if values.get("use_quantiles", True):
            return cls(float(values["sigma"]), float(values["low_quantile"]),
                       float(values["high_quantile"]), "quantile", gray)
        return cls(float(values["sigma"]), float(values["low_threshold"]),
                   float(values["high_threshold"]), "absolute", gray)

    def as_dict(self) -> dict:
        # MEGAN's checkpoints store this dict (arch["edges"]): its keys stay as they were
        word = "quantile" if self.thresholds == "quantile" else "threshold"
        return {"method": "skimage.feature.canny", "sigma": self.sigma,
                f"low_{word}": self.low, f"high_{word}": self.high,
                "use_quantiles": self.thresholds == "quantile",
                "gray": GRAY_CONVERSIONS[self.gray]}


DEFAULT_CANNY = CannyParams()


def translation_canny(sigma: float = 2.0) -> CannyParams:
    """pix2pix's edge convention (``--condition edges``): luminance, scikit-image's default
    absolute thresholds, ``sigma`` px."""
    return CannyParams(sigma=float(sigma), low=0.1, high=0.2, thresholds="absolute",
                       gray="luminance")


def _gray(arr: np.ndarray, gray: str) -> np.ndarray:
    """float64 [N, H, W] in [0, 1] from uint8 [N, C, H, W]."""
    if gray == "mean" or arr.shape[1] == 1:
        return arr.astype(np.float64).mean(axis=1) / 255.0
    if arr.shape[1] != 3:
        raise DataError(f"the luminance of images with {arr.shape[1]} channels is not defined "
                        "(1 or 3 channels).")
    # one image at a time, as the maps of pix2pix's pairs were first computed (same rounding)
    return np.stack([image.astype(np.float64).transpose(1, 2, 0) @ LUMINANCE_WEIGHTS
                     for image in arr]) / 255.0


def canny_edges(images, params: CannyParams = DEFAULT_CANNY) -> np.ndarray:
    """Canny edge maps of uint8 ``images`` [N, C, H, W] (NumPy or torch): uint8 [N, 1, H, W]
    holding 255 on edges and 0 elsewhere."""
    from skimage.feature import canny

    arr = images.detach().cpu().numpy() if hasattr(images, "detach") else np.asarray(images)
    if arr.dtype != np.uint8 or arr.ndim != 4:
        raise DataError(f"edge maps need uint8 images [N, C, H, W], got {arr.dtype} "
                        f"{tuple(arr.shape)}.")
    if params.thresholds == "quantile" and not 0 <= params.low <= params.high <= 1:
        raise DataError(f"Canny quantiles must satisfy 0 <= low <= high <= 1, got "
                        f"{params.low} and {params.high}.")
    if params.thresholds == "absolute" and not 0 <= params.low <= params.high:
        raise DataError(f"Canny thresholds must satisfy 0 <= low <= high, got {params.low} "
                        f"and {params.high}.")
    if min(arr.shape[2:]) < 3:
        raise DataError(f"images of {arr.shape[2]}x{arr.shape[3]} px are too small for edge "
                        "maps (at least 3 px a side).")
    out = np.zeros((arr.shape[0], 1, *arr.shape[2:]), dtype=np.uint8)
    for i, image in enumerate(_gray(arr, params.gray)):
        out[i, 0] = canny(image, sigma=params.sigma, low_threshold=params.low,
                          high_threshold=params.high,
                          use_quantiles=params.thresholds == "quantile") * 255
    return out
