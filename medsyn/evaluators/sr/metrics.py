"""Super-resolution metrics with the convention of the published SR tables.

Numbers in SR papers are comparable only when every detail of the convention is the same, so
each one is explicit here:

- **Luminance.** RGB images are compared on the Y channel of MATLAB's ``rgb2ycbcr`` (ITU-R
  BT.601, studio swing): ``Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255`` with R, G, B in
  0..255, rounded to uint8 half away from zero as MATLAB does for uint8 input (``round_y=True``).
  ``round_y=False`` keeps Y as unrounded float64, the habit of BasicSR and of MATLAB scripts that
  call ``rgb2ycbcr(im2double(img))``. A grayscale image is used as it is (no RGB round trip).
- **Border.** ``crop_border`` pixels are removed on every side before anything is measured (SR
  papers crop ``scale`` pixels).
- **PSNR.** ``10 log10(255^2 / MSE)`` in float64 over all remaining pixels (and channels when
  ``y_channel=False``); ``inf`` for identical images.
- **SSIM.** Wang et al. (2004) / ``ssim_index.m``: 11x11 Gaussian window with sigma 1.5,
  K1 = 0.01, K2 = 0.03, L = 255, population (not sample) covariances, mean of the SSIM map over
  the "valid" region (window entirely inside the image). Computed with scikit-image's
  ``structural_similarity`` and those arguments (its defaults, a 7x7 uniform window with sample
  covariances, give other numbers). Colour images with ``y_channel=False``: mean over channels.
- **Resizing.** :func:`imresize` is MATLAB's ``imresize(img, scale, 'bicubic')``: Keys' cubic
  kernel with a = -0.5, kernel widened by 1/scale when downscaling (antialiasing), half-pixel
  centres, symmetric boundary extension, output size ``ceil(scale * size)``, height resized
  before width. uint8 input gives uint8 output rounded and saturated after each of the two
  1-D passes, as MATLAB's ``imresizemex`` does; float input gives unrounded float64 output.

See docs/super_resolution.md for how each convention was verified.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from medsyn.data.transforms.matlab_resize import (  # noqa: F401 (public names of this module)
    BICUBIC_KERNEL_WIDTH,
    ImageInputError,
    _check_scale,
    _round_half_away,
    imresize,
    imresize_batch,
    modcrop,
    output_size,
    resize_matrix,
)

# MATLAB rgb2ycbcr, Y row of the BT.601 studio-swing matrix (inputs in [0, 1], output in 0..255).
Y_COEFFICIENTS = (65.481, 128.553, 24.966)
Y_OFFSET = 16.0

PSNR_PEAK = 255.0
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03
SSIM_DATA_RANGE = 255.0

# ------------------------------------------------------------------------------ validation


def _check_image(img, name: str) -> np.ndarray:
    if not isinstance(img, np.ndarray):
        hint = ""
        if type(img).__module__.startswith("torch"):
            hint = (" For a torch tensor [C, H, W] use img.permute(1, 2, 0).numpy() "
                    "(or img[0].numpy() for one channel).")
        raise ImageInputError(f"{name} must be a numpy array, got {type(img).__name__}.{hint}")
    if img.dtype != np.uint8:
        raise ImageInputError(
            f"{name} must be uint8 (0..255), got dtype {img.dtype}. SR metrics are defined on "
            "8-bit images; convert with np.clip(np.round(x), 0, 255).astype(np.uint8) "
            "(x in 0..255) first.")
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 3)):
        raise ImageInputError(
            f"{name} must be HxW (grayscale) or HxWx3 (RGB), got shape {img.shape}. "
            "Channels go last; a [C, H, W] array needs .transpose(1, 2, 0).")
    if img.shape[0] == 0 or img.shape[1] == 0:
        raise ImageInputError(f"{name} is empty (shape {img.shape}).")
    return img


def _check_crop_border(crop_border, shape, min_size: int, what: str) -> int:
    if isinstance(crop_border, bool) or not isinstance(crop_border, (int, np.integer)):
        raise ImageInputError(f"crop_border must be an int >= 0, got {crop_border!r}.")
    crop_border = int(crop_border)
    if crop_border < 0:
        raise ImageInputError(f"crop_border must be >= 0, got {crop_border}.")
    h, w = shape[:2]
    left_h, left_w = h - 2 * crop_border, w - 2 * crop_border
    if left_h < min_size or left_w < min_size:
        raise ImageInputError(
            f"crop_border={crop_border} leaves {max(left_h, 0)}x{max(left_w, 0)} pixels of a "
            f"{h}x{w} image; {what} needs at least {min_size}x{min_size}. Use a smaller "
            "crop_border or larger images.")
    return crop_border


def rgb_to_y(img: np.ndarray, round_y: bool = True) -> np.ndarray:
    """Y of MATLAB ``rgb2ycbcr`` for a uint8 HxWx3 RGB image, as float64 in 16..235.

    ``round_y=True`` rounds to integers as MATLAB does for uint8 input; ``False`` keeps the
    exact float value.
    """
    img = _check_image(img, "img")
    if img.ndim != 3:
        raise ImageInputError(f"rgb_to_y needs an HxWx3 RGB image, got shape {img.shape}.")
    rgb = img.astype(np.float64)
    # MATLAB's order of operations (imlincomb with T = (1/255) * origT, then the offset):
    # 194 of the 2^24 RGB triples sit exactly on a .5 tie, where the order decides the rounding.
    t_r, t_g, t_b = (1.0 / 255.0 * c for c in Y_COEFFICIENTS)
    y = t_r * rgb[..., 0] + t_g * rgb[..., 1] + t_b * rgb[..., 2] + Y_OFFSET
    return _round_half_away(y) if round_y else y


def _metric_planes(img, ref, crop_border, y_channel, round_y, min_size, what):
    img = _check_image(img, "img")
    ref = _check_image(ref, "ref")
    if img.shape != ref.shape:
        raise ImageInputError(
            f"img and ref must have the same shape, got {img.shape} and {ref.shape}. For SR, "
            "crop the reference to a multiple of the scale (modcrop) before upscaling.")
    c = _check_crop_border(crop_border, img.shape, min_size, what)
    if c:
        img = img[c:-c, c:-c]
        ref = ref[c:-c, c:-c]
    if img.ndim == 3 and y_channel:
        return rgb_to_y(img, round_y), rgb_to_y(ref, round_y)
    return img.astype(np.float64), ref.astype(np.float64)


# ------------------------------------------------------------------------------ metrics


def psnr(img: np.ndarray, ref: np.ndarray, crop_border: int = 0, y_channel: bool = True, *,
         round_y: bool = True) -> float:
    """PSNR in dB (peak 255) of ``img`` against ``ref``, both uint8 HxW or HxWx3 RGB.

    ``y_channel``: compare RGB images on MATLAB's Y (rounded unless ``round_y=False``);
    grayscale images are used as they are. ``crop_border`` pixels are removed on every side.
    Returns ``inf`` when the compared pixels are identical.
    """
    a, b = _metric_planes(img, ref, crop_border, y_channel, round_y, 1, "PSNR")
    mse = float(np.mean((a - b) ** 2))
    if mse == 0.0:
        return math.inf
    return float(10.0 * np.log10(PSNR_PEAK ** 2 / mse))


def ssim(img: np.ndarray, ref: np.ndarray, crop_border: int = 0, y_channel: bool = True, *,
         round_y: bool = True) -> float:
    """SSIM (Wang et al. 2004) of ``img`` against ``ref``, both uint8 HxW or HxWx3 RGB.

    11x11 Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03, L = 255, mean over the valid
    region; RGB on MATLAB's Y when ``y_channel`` (else the mean of per-channel SSIMs).
    """
    from skimage.metrics import structural_similarity

    a, b = _metric_planes(img, ref, crop_border, y_channel, round_y, SSIM_WINDOW,
                          f"SSIM's {SSIM_WINDOW}x{SSIM_WINDOW} window")
    return float(structural_similarity(
        a, b, win_size=SSIM_WINDOW, gaussian_weights=True, sigma=SSIM_SIGMA,
        use_sample_covariance=False, data_range=SSIM_DATA_RANGE, K1=SSIM_K1, K2=SSIM_K2,
        channel_axis=2 if a.ndim == 3 else None))


# ------------------------------------------------------------------------------ evaluation


def convention(scale: int, crop_border: int, channels: int, round_y: bool = True) -> dict:
    """JSON-ready description of the convention an SR evaluation used."""
    if channels == 3:
        plane = ("Y of MATLAB rgb2ycbcr (BT.601), rounded to uint8" if round_y
                 else "Y of MATLAB rgb2ycbcr (BT.601), unrounded float")
    else:
        plane = "grayscale as is"
    return {
        "scale": int(scale),
        "crop_border": int(crop_border),
        "plane": plane,
        "round_y": bool(round_y),
        "degradation": "MATLAB imresize bicubic (a=-0.5, antialiased), uint8 per pass",
        "bicubic_baseline": "MATLAB imresize bicubic upscaling of the LR image",
        "psnr": "peak 255, float64, mean of per-image values",
        "ssim": (f"Wang et al. 2004: {SSIM_WINDOW}x{SSIM_WINDOW} Gaussian sigma {SSIM_SIGMA}, "
                 f"K1 {SSIM_K1}, K2 {SSIM_K2}, L 255, valid region, mean of per-image values"),
    }


def bootstrap_mean_ci(values: Sequence[float] | np.ndarray, n_boot: int = 1000,
                      seed: int = 0, level: float = 0.95) -> list[float] | None:
    """Percentile bootstrap interval of the mean (resampling images); None when n < 2."""
    values = np.asarray(values, dtype=np.float64)
    if values.size < 2 or n_boot < 1:
        return None
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot, dtype=np.float64)
    for start in range(0, n_boot, 256):  # bounded memory for large N
        stop = min(start + 256, n_boot)
        idx = rng.integers(0, values.size, size=(stop - start, values.size))
        means[start:stop] = values[idx].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return [float(lo), float(hi)]


def _entry(values: np.ndarray, n_boot: int, seed: int, plane: str, conv: dict) -> dict:
    n = int(values.size)
    entry = {"value": None, "ci95": None, "n": n, "n_real": n, "n_fake": n,
             "extractor": plane, "scale": conv["scale"], "crop_border": conv["crop_border"]}
    n_inf = int(np.isinf(values).sum())
    if n == 0:
        entry["unavailable"] = "no images"
    elif n_inf:
        entry["unavailable"] = (f"{n_inf} of {n} images are identical to their reference "
                                "(PSNR infinite), so the mean PSNR is infinite")
    else:
        entry["value"] = float(values.mean())
        entry["ci95"] = bootstrap_mean_ci(values, n_boot=n_boot, seed=seed)
    return entry


def _to_numpy_batch(images, name: str) -> np.ndarray:
    if type(images).__module__.startswith("torch"):
        images = images.detach().cpu().numpy()
    if not isinstance(images, np.ndarray):
        raise ImageInputError(f"{name} must be a [N, C, H, W] uint8 tensor or array, got "
                              f"{type(images).__name__}.")
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ImageInputError(
            f"{name} must be uint8 [N, C, H, W] with C = 1 or 3, got {images.dtype} "
            f"{tuple(images.shape)}.")
    return images


def _hwc(image_chw: np.ndarray) -> np.ndarray:
    return image_chw[0] if image_chw.shape[0] == 1 else np.ascontiguousarray(
        image_chw.transpose(1, 2, 0))


def bicubic_upscaler(scale: int) -> Callable:
    """An ``upscale_fn`` for :func:`evaluate_sr` that is MATLAB bicubic interpolation."""
    def upscale(lr):
        return imresize_batch(lr, scale)
    upscale.__name__ = f"bicubic_x{scale}"
    return upscale


def evaluate_sr(upscale_fn: Callable, hr_images, scale: int, crop_border: int | None = None,
                n_boot: int = 1000, seed: int = 0, batch_size: int = 32, round_y: bool = True,
                ids: Sequence | None = None, show_progress: bool = True) -> dict:
    """PSNR/SSIM on Y of ``upscale_fn`` and of the bicubic baseline against ``hr_images``.

    ``hr_images``: uint8 ``[N, C, H, W]`` (torch or numpy), H and W multiples of ``scale``.
    Each HR image is downscaled with :func:`imresize` (1/scale); ``upscale_fn`` receives LR
    batches (uint8 torch tensors ``[n, C, H/scale, W/scale]``) and must return uint8
    ``[n, C, H, W]`` (torch or numpy). ``crop_border`` defaults to ``scale``.

    Returns ``{"metrics": {"psnr_y", "ssim_y", "psnr_y_bicubic", "ssim_y_bicubic"},
    "per_image": DataFrame, "convention": dict}``; metric entries follow the results.json
    entry format (value = mean over images, ci95 = percentile bootstrap over images).
    """
    import pandas as pd
    import torch

    from medsyn.utils import progress

    if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or scale < 1:
        raise ImageInputError(f"scale must be an int >= 1, got {scale!r}.")
    scale = int(scale)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ImageInputError(f"batch_size must be an int >= 1, got {batch_size!r}.")
    hr = _to_numpy_batch(hr_images, "hr_images")
    n, channels, h, w = hr.shape
    if n == 0:
        raise ImageInputError("hr_images is empty.")
    if h % scale or w % scale:
        raise ImageInputError(
            f"HR images are {h}x{w}, not multiples of scale {scale}. Crop them first "
            "(medsyn.evaluators.sr.modcrop or make_sr_pairs with an hr_size divisible by the "
            "scale).")
    crop_border = scale if crop_border is None else crop_border
    _check_crop_border(crop_border, (h, w), SSIM_WINDOW, f"SSIM's {SSIM_WINDOW}-pixel window")
    if ids is not None and len(ids) != n:
        raise ImageInputError(f"ids has {len(ids)} entries for {n} images.")

    conv = convention(scale, crop_border, channels, round_y)
    fn_name = getattr(upscale_fn, "__name__", "upscale_fn")
    rows = []
    bar = progress(total=n, desc=f"SR x{scale} PSNR/SSIM", unit="img",
                   disable=None if show_progress else True)
    for start in range(0, n, batch_size):
        hr_block = hr[start:start + batch_size]
        lr_block = imresize_batch(hr_block, 1.0 / scale)
        bicubic_block = imresize_batch(lr_block, scale)
        with torch.no_grad():
            sr_block = upscale_fn(torch.from_numpy(lr_block))
        sr_block = _to_numpy_batch(sr_block, f"the output of {fn_name}")
        if sr_block.shape != hr_block.shape:
            raise ImageInputError(
                f"upscale_fn returned {tuple(sr_block.shape)} for LR {tuple(lr_block.shape)}; "
                f"expected {tuple(hr_block.shape)} (HR size = LR size x {scale}).")
        for k in range(hr_block.shape[0]):
            ref = _hwc(hr_block[k])
            out = _hwc(sr_block[k])
            bic = _hwc(bicubic_block[k])
            rows.append({
                "image": ids[start + k] if ids is not None else start + k,
                "psnr_y": psnr(out, ref, crop_border, True, round_y=round_y),
                "ssim_y": ssim(out, ref, crop_border, True, round_y=round_y),
                "psnr_y_bicubic": psnr(bic, ref, crop_border, True, round_y=round_y),
                "ssim_y_bicubic": ssim(bic, ref, crop_border, True, round_y=round_y),
            })
        bar.update(hr_block.shape[0])
    bar.close()

    table = pd.DataFrame(rows, columns=["image", "psnr_y", "ssim_y", "psnr_y_bicubic",
                                        "ssim_y_bicubic"])
    plane = conv["plane"]
    metrics = {name: _entry(table[name].to_numpy(), n_boot, seed, plane, conv)
               for name in ("psnr_y", "ssim_y", "psnr_y_bicubic", "ssim_y_bicubic")}
    return {"metrics": metrics, "per_image": table, "convention": conv}


def write_per_image_csv(table, path) -> None:
    """Write the per-image table of :func:`evaluate_sr` atomically."""
    from medsyn.utils import atomic_write

    with atomic_write(path, "w") as f:
        table.to_csv(f, index=False, float_format="%.6f")
