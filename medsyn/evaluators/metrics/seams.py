"""Seam statistics of images generated in tiles (MEGAN, docs/highres.md): is the intensity
gradient larger across tile borders than inside tiles?

For a grid of ``patch x patch`` tiles, the squared differences of horizontally and vertically
adjacent pixels (gray = mean of channels, [0, 255] units) are split into *border* pairs (the
two pixels lie in different tiles: columns/rows ``k * patch - 1`` and ``k * patch``) and
*interior* pairs (all others). ``border_energy`` and ``interior_energy`` are their means;
``ratio = border / interior``. An image with no tile structure has a ratio near 1 (the border
columns are ordinary columns); visible seams raise it. Compare the synthetic images' ratio
with the real images' on the same grid (:func:`seam_comparison`).
"""

from __future__ import annotations

import numpy as np


def seam_statistics(images, patch: int) -> dict:
    """``{"border_energy", "interior_energy", "ratio", "n"}`` of uint8 images [N, C, H, W]."""
    arr = images.numpy() if hasattr(images, "numpy") else np.asarray(images)
    if arr.ndim != 4:
        raise ValueError("images must be [N, C, H, W]")
    h, w = arr.shape[2:]
    if patch < 2 or h % patch or w % patch:
        raise ValueError(f"patch size {patch} must be at least 2 and divide the image size "
                         f"{h}x{w}")
    gray = arr.astype(np.float64).mean(axis=1)
    dx = np.diff(gray, axis=2) ** 2          # pair (j, j + 1) along a row
    dy = np.diff(gray, axis=1) ** 2
    across_x = (np.arange(w - 1) + 1) % patch == 0
    across_y = (np.arange(h - 1) + 1) % patch == 0
    border = np.concatenate([dx[:, :, across_x].ravel(), dy[:, across_y, :].ravel()])
    interior = np.concatenate([dx[:, :, ~across_x].ravel(), dy[:, ~across_y, :].ravel()])
    b = float(border.mean()) if border.size else float("nan")
    i = float(interior.mean()) if interior.size else float("nan")
    return {"border_energy": b, "interior_energy": i,
            "ratio": b / i if i > 0 else float("inf"), "n": int(arr.shape[0])}


def seam_comparison(fake, real, patch: int) -> dict:
    """Seam statistics of synthetic and real images on the same grid, and the excess of the
    synthetic ratio over the real one (``ratio_excess`` = fake ratio / real ratio)."""
    f, r = seam_statistics(fake, patch), seam_statistics(real, patch)
    return {"patch": patch, "fake": f, "real": r,
            "ratio_excess": f["ratio"] / r["ratio"] if r["ratio"] > 0 else float("inf")}
