"""Per-image metrics of translation, with the conventions of the super-resolution metrics
(:mod:`medsyn.evaluators.sr.metrics`): images compared on luminance (Y of MATLAB's
``rgb2ycbcr`` for RGB, rounded to uint8; grayscale as is), PSNR with peak 255, SSIM of Wang et
al. with the 11x11 Gaussian window, no border crop (a translated image has no border the model
could not see). MAE is the mean absolute difference of the same planes on the 0..255 scale,
the SynthRAD habit in the native intensity range. Each summary is the mean of per-image values
with a percentile bootstrap interval over images (:func:`~medsyn.evaluators.sr.bootstrap_mean_ci`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from medsyn.evaluators.sr.metrics import bootstrap_mean_ci, psnr, rgb_to_y, ssim

PAIRED_METRICS = ("mae_y", "psnr_y", "ssim_y")
CROP_BORDER = 0


def plane_name(channels: int) -> str:
    return ("Y of MATLAB rgb2ycbcr (BT.601), rounded to uint8" if channels == 3
            else "grayscale as is")


def convention(channels: int) -> dict:
    return {"plane": plane_name(channels), "crop_border": CROP_BORDER,
            "mae": "mean |a - b| on the plane, 0..255 scale, float64",
            "psnr": "peak 255, float64, mean of per-image values",
            "ssim": "Wang et al. 2004: 11x11 Gaussian sigma 1.5, K1 0.01, K2 0.03, L 255, valid "
                    "region (as the SR metrics), mean of per-image values",
            "interval": "percentile bootstrap over images, 95 %"}


def _hwc(image_chw: np.ndarray) -> np.ndarray:
    return image_chw[0] if image_chw.shape[0] == 1 else np.ascontiguousarray(
        image_chw.transpose(1, 2, 0))


def mae_y(img: np.ndarray, ref: np.ndarray) -> float:
    """Mean absolute difference on luminance of two uint8 HxW or HxWx3 images (0..255)."""
    if img.shape != ref.shape:
        raise ValueError(f"img and ref must have the same shape, got {img.shape} and "
                         f"{ref.shape}")
    if img.ndim == 3:
        a, b = rgb_to_y(img), rgb_to_y(ref)
    else:
        a, b = img.astype(np.float64), ref.astype(np.float64)
    return float(np.mean(np.abs(a - b)))


def paired_table(outputs: torch.Tensor, references: torch.Tensor,
                 ids: Sequence | None = None, names: Sequence[str] = PAIRED_METRICS):
    """Per-image ``mae_y`` / ``psnr_y`` / ``ssim_y`` of uint8 ``outputs`` against
    ``references`` (both ``[N, C, H, W]``, same shape): a pandas DataFrame with an ``image``
    column."""
    import pandas as pd

    a, b = outputs.numpy(), references.numpy()
    if a.shape != b.shape:
        raise ValueError(f"outputs {a.shape} and references {b.shape} differ in shape")
    rows = []
    for i in range(a.shape[0]):
        out, ref = _hwc(a[i]), _hwc(b[i])
        row = {"image": ids[i] if ids is not None else i}
        if "mae_y" in names:
            row["mae_y"] = mae_y(out, ref)
        if "psnr_y" in names:
            row["psnr_y"] = psnr(out, ref, CROP_BORDER, True)
        if "ssim_y" in names:
            row["ssim_y"] = ssim(out, ref, CROP_BORDER, True)
        rows.append(row)
    return pd.DataFrame(rows, columns=["image", *names])


def mean_entry(values, *, plane: str, n_boot: int, seed: int, **extra) -> dict:
    """A results.json entry for the mean of per-image ``values`` (``unavailable`` when a value
    is infinite: identical images have an infinite PSNR)."""
    values = np.asarray(values, dtype=np.float64)
    n = int(values.size)
    entry = {"value": None, "ci95": None, "n": n, "n_real": n, "n_fake": n, "extractor": plane,
             **extra}
    n_inf = int(np.isinf(values).sum())
    if n == 0:
        entry["unavailable"] = "no images"
    elif n_inf:
        entry["unavailable"] = (f"{n_inf} of {n} images are identical to their reference "
                                "(PSNR infinite), so the mean is infinite")
    else:
        entry["value"] = float(values.mean())
        entry["ci95"] = bootstrap_mean_ci(values, n_boot=n_boot, seed=seed)
    return entry


def feature_distances(features_a: np.ndarray, features_b: np.ndarray, seed: int = 0
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean distance between row-aligned features (each input and its own output), and
    the same for unrelated pairs (each input and the output of another input, a random
    derangement drawn from ``seed``): content is preserved when the first are clearly smaller."""
    paired = np.linalg.norm(features_a - features_b, axis=1)
    n = features_a.shape[0]
    if n < 2:
        return paired, np.full(n, np.nan)
    rng = np.random.default_rng(seed)
    shift = rng.integers(1, n, size=n)          # never 0: no image is paired with itself
    other = (np.arange(n) + shift) % n
    return paired, np.linalg.norm(features_a - features_b[other], axis=1)
