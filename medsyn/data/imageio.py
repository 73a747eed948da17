"""Decoding image files into uint8 arrays, with errors that name the file."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from medsyn.errors import DataError
from medsyn.utils import progress

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
# operating-system droppings that are not data and not worth an error
IGNORED_FILES = {"thumbs.db", "desktop.ini"}


def is_ignored(path: Path) -> bool:
    return path.name.startswith(".") or path.name.lower() in IGNORED_FILES


def decode_image(path: str | os.PathLike) -> np.ndarray:
    """Read one image file as uint8: ``[H, W]`` for grayscale, ``[H, W, 3]`` for colour.

    RGB files whose three channels are identical (X-rays are often stored that way) are
    returned as grayscale; 16-bit grayscale keeps its 8 most significant bits; alpha is dropped.
    """
    path = Path(path)
    try:
        with Image.open(path) as img:
            img.load()
            mode = img.mode
            if mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(img)
                arr = (arr.astype(np.uint32) >> 8).astype(np.uint8) if arr.max() > 255 else \
                    arr.astype(np.uint8)
                return arr
            if mode in ("1", "L", "LA", "F"):
                return np.asarray(img.convert("L"), dtype=np.uint8)
            arr = np.asarray(img.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(
            f"{path}: cannot be read as an image: the file is truncated, corrupt or not an "
            f"image ({exc}). Remove or replace this file."
        ) from None
    if (arr[..., 0] == arr[..., 1]).all() and (arr[..., 1] == arr[..., 2]).all():
        return np.ascontiguousarray(arr[..., 0])
    return arr


def decode_many(paths: list[Path], desc: str = "decoding images") -> list[np.ndarray]:
    """Decode files in parallel threads (PIL releases the GIL while decoding)."""
    workers = min(8, (os.cpu_count() or 1) * 2)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(progress(pool.map(decode_image, paths), total=len(paths), desc=desc,
                             unit="img"))


def stack_images(arrays: list[np.ndarray], paths: list[Path], image_size: int | None):
    """Stack decoded images into ``[N, C, H, W]`` uint8, resizing when ``image_size`` is set.

    Grayscale images are replicated to three channels only when some image is in colour.
    Without ``image_size`` every image must have the same height and width.
    """
    import torch

    from medsyn.data.resize import resize_uint8

    colour = any(a.ndim == 3 for a in arrays)
    sizes = {}
    for arr, path in zip(arrays, paths, strict=True):
        sizes.setdefault(arr.shape[:2], path)
    if image_size is None and len(sizes) > 1:
        examples = ", ".join(f"{p} is {h}x{w}" for (h, w), p in list(sizes.items())[:3])
        raise DataError(
            f"images have different sizes ({examples}; {len(sizes)} sizes in all). "
            "Pass an image size (image_size=... in Python, --image-size on the command line) "
            "to resize them all to one square size."
        )

    def to_chw(arr):
        if arr.ndim == 2:
            arr = arr[None]
            if colour:
                arr = np.repeat(arr, 3, axis=0)
            return arr
        return arr.transpose(2, 0, 1)

    channels = 3 if colour else 1
    if image_size is None:
        (h, w), = sizes
        out = np.empty((len(arrays), channels, h, w), dtype=np.uint8)
        for i, arr in enumerate(arrays):
            out[i] = to_chw(arr)
        return out
    out = np.empty((len(arrays), channels, image_size, image_size), dtype=np.uint8)
    by_size: dict[tuple, list[int]] = {}
    for i, arr in enumerate(arrays):
        by_size.setdefault(arr.shape[:2], []).append(i)
    for idx in by_size.values():
        batch = np.stack([to_chw(arrays[i]) for i in idx])
        out[idx] = resize_uint8(torch.from_numpy(batch), image_size).numpy()
    return out
