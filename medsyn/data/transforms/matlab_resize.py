"""MATLAB-compatible bicubic resizing, shared by SR training data and SR metrics.

:func:`imresize` is MATLAB's ``imresize(img, scale, 'bicubic')``: Keys' cubic kernel with
a = -0.5, kernel widened by 1/scale when downscaling (antialiasing), half-pixel centres,
symmetric boundary extension, output size ``ceil(scale * size)``, height resized before
width. uint8 input gives uint8 output rounded and saturated after each of the two 1-D passes,
as MATLAB's ``imresizemex`` does; float input gives unrounded float64 output. How it was
verified against MATLAB and BasicSR: docs/super_resolution.md.

It lives in the data stage because both the SR training pairs (generators) and the SR
metrics (evaluators) need the same degradation, and data flows one way.
"""

from __future__ import annotations

import math

import numpy as np
from threadpoolctl import threadpool_limits

from medsyn.errors import MedsynError

BICUBIC_KERNEL_WIDTH = 4.0


class ImageInputError(MedsynError, ValueError):
    """An image given to an SR metric or to :func:`imresize` has the wrong type or shape."""


def _round_half_away(x: np.ndarray) -> np.ndarray:
    """MATLAB's cast to uint8: saturate to 0..255, round half away from zero."""
    return np.floor(np.clip(x, 0.0, 255.0) + 0.5)


def _cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's and PIL's bicubic)."""
    ax = np.abs(x)
    ax2 = ax * ax
    ax3 = ax2 * ax
    return ((1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
            + (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2)))


def resize_matrix(in_length: int, out_length: int, scale: float,
                  antialiasing: bool = True) -> np.ndarray:
    """The ``[out_length, in_length]`` float64 matrix of MATLAB's bicubic 1-D resize.

    Row k holds the weights of MATLAB's ``contributions`` for output pixel k, normalised to
    sum to 1 before the symmetric boundary extension folds out-of-range taps back inside.
    """
    if scale < 1 and antialiasing:
        kernel_width = BICUBIC_KERNEL_WIDTH / scale

        def kernel(x):
            return scale * _cubic(scale * x)
    else:
        kernel_width = BICUBIC_KERNEL_WIDTH
        kernel = _cubic
    x = np.arange(1, out_length + 1, dtype=np.float64)  # MATLAB's 1-based output coordinates
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(u - kernel_width / 2.0)
    taps = int(math.ceil(kernel_width)) + 2
    indices = left[:, None] + np.arange(taps, dtype=np.float64)[None, :]
    weights = kernel(u[:, None] - indices)
    weights = weights / weights.sum(axis=1, keepdims=True)
    # Symmetric extension with the edge pixel repeated: aux = [1..n, n..1] in MATLAB.
    aux = np.concatenate([np.arange(in_length), np.arange(in_length)[::-1]])
    source = aux[np.mod(indices.astype(np.int64) - 1, 2 * in_length)]
    matrix = np.zeros((out_length, in_length), dtype=np.float64)
    rows = np.repeat(np.arange(out_length), taps)
    np.add.at(matrix, (rows, source.ravel()), weights.ravel())
    return matrix


def _check_scale(scale) -> float:
    if isinstance(scale, bool) or not isinstance(scale, (int, float, np.integer, np.floating)):
        raise ImageInputError(f"scale must be a positive number, got {scale!r}.")
    scale = float(scale)
    if not math.isfinite(scale) or scale <= 0:
        raise ImageInputError(f"scale must be a positive finite number, got {scale!r}.")
    return scale


def output_size(in_size: int, scale: float) -> int:
    """MATLAB's output length for a scale factor: ``ceil(scale * in_size)``."""
    return int(math.ceil(scale * in_size))


def _resize_planes(planes: np.ndarray, scale: float, antialiasing: bool,
                   chunk: int = 64) -> np.ndarray:
    """Resize ``[..., H, W]`` (uint8 or float) along the last two axes."""
    h, w = planes.shape[-2:]
    out_h, out_w = output_size(h, scale), output_size(w, scale)
    weights_h = resize_matrix(h, out_h, scale, antialiasing)
    weights_w_t = resize_matrix(w, out_w, scale, antialiasing).T.copy()
    is_uint8 = planes.dtype == np.uint8
    lead = planes.shape[:-2]
    flat = planes.reshape(-1, h, w)
    out = np.empty((flat.shape[0], out_h, out_w), dtype=np.uint8 if is_uint8 else np.float64)
    # Many small products: one BLAS thread each is fastest, and multi-threaded BLAS on a busy
    # machine slowed this 100x in measurements (0.4 s -> 40 s for 603 images of 256 px).
    with threadpool_limits(limits=1, user_api="blas"):
        _resize_chunks(flat, out, weights_h, weights_w_t, is_uint8, chunk)
    return out.reshape(*lead, out_h, out_w)


def _resize_chunks(flat, out, weights_h, weights_w_t, is_uint8, chunk):
    for start in range(0, flat.shape[0], chunk):
        block = flat[start:start + chunk].astype(np.float64)
        # Height first, as MATLAB does for equal scale factors; uint8 is rounded between passes.
        block = np.matmul(weights_h, block)
        if is_uint8:
            block = _round_half_away(block)
        block = np.matmul(block, weights_w_t)
        if is_uint8:
            block = _round_half_away(block)
        out[start:start + chunk] = block


def imresize(img: np.ndarray, scale: float, antialiasing: bool = True) -> np.ndarray:
    """MATLAB ``imresize(img, scale, 'bicubic')`` of an HxW or HxWxC image.

    uint8 in -> uint8 out (rounded and saturated after each 1-D pass, as MATLAB); float in ->
    float64 out, unrounded. Output size ``ceil(scale * H) x ceil(scale * W)``.
    """
    if not isinstance(img, np.ndarray):
        raise ImageInputError(f"img must be a numpy array, got {type(img).__name__}.")
    if img.dtype != np.uint8 and not np.issubdtype(img.dtype, np.floating):
        raise ImageInputError(f"img must be uint8 or float, got dtype {img.dtype}.")
    if img.ndim not in (2, 3) or img.shape[0] == 0 or img.shape[1] == 0:
        raise ImageInputError(f"img must be HxW or HxWxC, got shape {img.shape}.")
    scale = _check_scale(scale)
    if img.ndim == 2:
        return _resize_planes(img, scale, antialiasing)
    planes = np.moveaxis(img, 2, 0)
    return np.ascontiguousarray(np.moveaxis(_resize_planes(planes, scale, antialiasing), 0, 2))


def imresize_batch(images, scale: float, antialiasing: bool = True):
    """:func:`imresize` of a batch ``[N, C, H, W]`` (torch or numpy, uint8 or float).

    Returns the same kind of array (torch.uint8 for a uint8 tensor). Vectorised: the 1-D
    resizes are matrix products over the whole batch.
    """
    scale = _check_scale(scale)
    is_torch = type(images).__module__.startswith("torch")
    array = images.detach().cpu().numpy() if is_torch else images
    if not isinstance(array, np.ndarray) or array.ndim != 4:
        raise ImageInputError(
            f"images must be a [N, C, H, W] array or tensor, got "
            f"{getattr(array, 'shape', type(array).__name__)}.")
    if array.dtype != np.uint8 and not np.issubdtype(array.dtype, np.floating):
        raise ImageInputError(f"images must be uint8 or float, got dtype {array.dtype}.")
    out = _resize_planes(array, scale, antialiasing)
    if is_torch:
        import torch

        return torch.from_numpy(out)
    return out


def modcrop(img: np.ndarray, scale: int) -> np.ndarray:
    """Crop the bottom/right so that H and W are multiples of ``scale`` (MATLAB ``modcrop``)."""
    h, w = img.shape[:2]
    return img[: h - h % scale, : w - w % scale]
