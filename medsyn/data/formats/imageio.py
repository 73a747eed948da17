"""Decoding image files (PNG/JPEG/TIFF/..., DICOM) into arrays, with errors that name the file.

Decoding happens in two steps so that a dataset gets one intensity rule, not one per image:
:func:`decode_raw` keeps a high-bit-depth grayscale file's values as they are (uint16), and
:mod:`medsyn.data.formats.intensity` chooses the rule for the whole set and converts to uint8. DICOM
files are windowed per file as the standard prescribes (:mod:`medsyn.data.formats.dicom`).
"""

from __future__ import annotations

import os
import struct
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from medsyn.data.formats.dicom import DICOM_EXTENSIONS, looks_like_dicom, read_dicom
from medsyn.errors import DataError
from medsyn.utils import progress

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
READABLE_EXTENSIONS = IMAGE_EXTENSIONS + DICOM_EXTENSIONS
NOT_AN_IMAGE = "not an image file"
# operating-system droppings that are not data and not worth a warning
IGNORED_FILES = {"thumbs.db", "desktop.ini"}
# formats people put next to their images that medsyn does not read, and what to do instead
UNSUPPORTED_FORMATS = {
    ".nii": "NIfTI volumes are not supported; export 2-D slices as PNG (16-bit is fine) or DICOM",
    ".nii.gz": "NIfTI volumes are not supported; export 2-D slices as PNG (16-bit is fine) or "
               "DICOM",
    ".mha": "MetaImage volumes are not supported; export 2-D slices as PNG or DICOM",
    ".mhd": "MetaImage volumes are not supported; export 2-D slices as PNG or DICOM",
    ".nrrd": "NRRD volumes are not supported; export 2-D slices as PNG or DICOM",
    ".npy": "numpy arrays in a folder are not read; pass an .npz file as --fake instead",
}


def is_ignored(path: Path) -> bool:
    return path.name.startswith(".") or path.name.lower() in IGNORED_FILES


def unsupported_reason(path: Path) -> str | None:
    """Why a file cannot be a dataset image (None: medsyn will try to read it)."""
    name = path.name.lower()
    for ext, reason in UNSUPPORTED_FORMATS.items():
        if name.endswith(ext):
            return reason
    if path.suffix.lower() in READABLE_EXTENSIONS or looks_like_dicom(path):
        return None
    return (f"{NOT_AN_IMAGE} (extension {path.suffix or 'none'!r}; medsyn reads "
            f"{', '.join(READABLE_EXTENSIONS)} and DICOM files without extension)")


@dataclass
class RawImage:
    """One decoded file before the dataset's intensity rule.

    ``pixels``: uint8 ``[H, W]`` / ``[H, W, 3]``, or uint16 ``[H, W]`` for a grayscale file
    stored with more than 8 bits (``container_bits`` > 8) whose values are kept as stored.
    ``significant_bits``: what the file declares about those values (PNG ``sBIT``), if anything.
    ``window``: for DICOM, the VOI transform applied (its pixels are already uint8).
    """

    pixels: np.ndarray
    container_bits: int
    significant_bits: int | None = None
    window: str | None = None
    format: str = ""

    @property
    def high_depth(self) -> bool:
        return self.window is None and self.container_bits > 8


def png_significant_bits(path: Path) -> int | None:
    """The grayscale ``sBIT`` value of a PNG (the number of meaningful bits), or None."""
    try:
        with open(path, "rb") as f:
            if f.read(8) != b"\x89PNG\r\n\x1a\n":
                return None
            while True:
                head = f.read(8)
                if len(head) < 8:
                    return None
                length, kind = struct.unpack(">I4s", head)
                if kind == b"sBIT":
                    return int(f.read(length)[0]) if length >= 1 else None
                if kind in (b"IDAT", b"IEND"):
                    return None
                f.seek(length + 4, os.SEEK_CUR)
    except OSError:
        return None


def decode_raw(path: str | os.PathLike, dicom_window: str | None = None) -> RawImage:
    """Read one file. RGB files whose channels are identical (X-rays are often stored that way)
    come back as grayscale; alpha is dropped; 16-bit grayscale keeps its values (uint16).
    ``dicom_window``: the window rule of DICOM files
    (:data:`medsyn.data.formats.dicom.DICOM_WINDOWS`, None: the file's own)."""
    path = Path(path)
    if path.suffix.lower() not in IMAGE_EXTENSIONS and looks_like_dicom(path):
        dcm = read_dicom(path, dicom_window)
        return RawImage(_gray_if_equal(dcm.pixels), dcm.bits_stored, dcm.bits_stored,
                        dcm.window, "DICOM")
    try:
        with Image.open(path) as img:
            img.load()
            mode, fmt = img.mode, img.format or path.suffix.lstrip(".").upper()
            if mode.startswith("I"):
                arr = np.asarray(img)
                if arr.size and (int(arr.min()) < 0 or int(arr.max()) > 65535):
                    raise DataError(
                        f"{path}: 32-bit integer image with values {int(arr.min())}.."
                        f"{int(arr.max())}; medsyn reads up to 16 bits. Save it as a 16-bit "
                        "PNG or TIFF (values 0..65535).")
                sbit = png_significant_bits(path) if fmt == "PNG" else None
                return RawImage(arr.astype(np.uint16), 16, sbit, None, fmt)
            if mode == "F":
                raise DataError(
                    f"{path}: floating-point image; medsyn reads integer images. Save it as a "
                    "16-bit PNG/TIFF with a stated bit depth, or as 8-bit.")
            if mode in ("1", "L", "LA"):
                return RawImage(np.asarray(img.convert("L"), dtype=np.uint8), 8, None, None, fmt)
            arr = np.asarray(img.convert("RGB"), dtype=np.uint8)
    except Image.DecompressionBombError as exc:
        raise DataError(
            f"{path}: declares more pixels than PIL decodes without risk of exhausting memory "
            f"(a decompression bomb: {exc}); not read. Downscale the image if it is real."
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(
            f"{path}: cannot be read as an image: the file is truncated, corrupt or not an "
            f"image ({exc})."
        ) from None
    return RawImage(_gray_if_equal(arr), 8, None, None, fmt)


def _gray_if_equal(arr: np.ndarray) -> np.ndarray:
    """``[H, W]`` for an RGB image whose three channels are identical, else ``arr``."""
    if arr.ndim == 3 and (arr[..., 0] == arr[..., 1]).all() and \
            (arr[..., 1] == arr[..., 2]).all():
        return np.ascontiguousarray(arr[..., 0])
    return arr


def decode_many(paths: list[Path], desc: str = "decoding images",
                dicom_window: str | None = None
                ) -> tuple[list[RawImage | None], list[tuple[Path, str]]]:
    """Decode files in parallel threads (PIL releases the GIL while decoding).

    Returns one entry per path (None where the file could not be read) and the unreadable
    files with the reason, for the caller to report.
    """
    def attempt(path):
        try:
            return decode_raw(path, dicom_window), None
        except DataError as exc:
            message = str(exc)
            return None, message.removeprefix(f"{path}: ")

    workers = min(8, (os.cpu_count() or 1) * 2)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(progress(pool.map(attempt, paths), total=len(paths), desc=desc,
                                unit="img"))
    failed = [(p, err) for p, (_, err) in zip(paths, results, strict=True) if err is not None]
    return [raw for raw, _ in results], failed


def stack_images(arrays: list[np.ndarray], paths: list[Path], image_size: int | None):
    """Stack decoded uint8 images into ``[N, C, H, W]``, resizing when ``image_size`` is set.

    Grayscale images are replicated to three channels only when some image is in colour.
    Without ``image_size`` every image must have the same height and width.
    """
    import torch

    from medsyn.data.transforms.resize import resize_uint8

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
