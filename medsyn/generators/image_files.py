"""Images given to a trained model: the files of ``medsyn sr`` and ``medsyn translate`` (which
files, the names they are written under, each decoded as the data layer decodes images), and
the uint8 arrays every family's checkpoint method (``upscale``, ``translate``) checks alike.

    files = expand_inputs(["a.png", "scans/"])          # a folder: the images directly in it
    names = output_names(files, "upscale")              # OUT/<stem>.png, collisions refused
    image = read_model_image(files[0], channels=1)      # uint8 [C, H, W]
    batch, single = check_model_images(image, 1, model="srgan", error=SRInputError)
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from medsyn.errors import ConfigError, DataError, MedsynError

log = logging.getLogger(__name__)


def expand_inputs(inputs: Sequence[str | os.PathLike]) -> list[Path]:
    """Files as given; a folder stands for the image files directly inside it (sorted; the other
    files there are named in a warning)."""
    from medsyn.data.formats.imageio import READABLE_EXTENSIONS, is_ignored, unsupported_reason

    if not inputs:
        raise ConfigError("no input images given.")
    files: list[Path] = []
    for item in inputs:
        path = Path(item).expanduser()
        if path.is_dir():
            candidates = sorted(p for p in path.iterdir() if p.is_file() and not is_ignored(p))
            found = [p for p in candidates if unsupported_reason(p) is None]
            other = [p.name for p in candidates if p not in found]
            if other:
                log.warning("%s: %d file(s) not read (not images): %s", path, len(other),
                            ", ".join(other[:5]) + (" ..." if len(other) > 5 else ""))
            if not found:
                raise DataError(f"{path} is a folder without image files "
                                f"({', '.join(READABLE_EXTENSIONS)}).")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise DataError(f"{path}: no such file or folder.")
    return files


def output_names(files: Sequence[Path], verb: str) -> list[str]:
    """``<stem>.png`` for each file; two different files that would share a name are refused
    (``verb`` says what the command does to them, for the message)."""
    names = [f"{p.stem}.png" for p in files]
    seen: dict[str, Path] = {}
    for name, path in zip(names, files, strict=True):
        if name in seen and seen[name].resolve() != path.resolve():
            raise ConfigError(f"{seen[name]} and {path} would both be written as {name}; "
                              f"{verb} them into different --out folders, or rename one.")
        seen[name] = path
    return names


def read_model_image(path: Path, channels: int) -> np.ndarray:
    """One image as uint8 ``[C, H, W]`` with the model's ``channels``: grayscale is repeated to
    RGB (as the data layer does in mixed folders); a colour image for a grayscale model is an
    error, since converting it would change what the model sees."""
    from medsyn.data.formats.intensity import decode_image

    arr = decode_image(path)          # [H, W] grayscale or [H, W, 3] colour
    if arr.ndim == 2:
        arr = arr[None]
        if channels == 3:
            arr = np.repeat(arr, 3, axis=0)
        return np.array(arr)          # a writable copy (PIL's arrays are read-only)
    if channels == 1:
        raise DataError(
            f"{path} is a colour image (its R, G and B differ) but the model was trained on "
            "grayscale images; convert it to grayscale first if that is what you mean (e.g. "
            "PIL: Image.open(f).convert('L').save(g)).")
    return np.array(arr.transpose(2, 0, 1), order="C")


_CHANNEL_WORDS = {1: "grayscale (1 channel)", 3: "RGB (3 channels)"}


def check_model_images(images, channels: int, *, model: str, noun: str = "images",
                       error: type[MedsynError] = MedsynError) -> tuple[torch.Tensor, bool]:
    """uint8 images given to a trained model as ``[N, C, H, W]``, and whether one ``[C, H, W]``
    image was given (``single``). A numpy array becomes a tensor (no copy when contiguous).

    The wrong type, dtype, number of dimensions or channels, or an empty image raise ``error``
    (each family's own input error); the messages call the images ``noun`` ("LR images") and
    the model by its kind (``model``), and say what the model takes."""
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(np.ascontiguousarray(images))
    if not isinstance(images, torch.Tensor):
        raise error(f"{noun} must be a uint8 torch tensor [N, C, H, W], got "
                    f"{type(images).__name__}.")
    if images.dtype != torch.uint8:
        raise error(f"{noun} must be uint8 (0..255), got {images.dtype}.")
    single = images.ndim == 3
    if single:
        images = images.unsqueeze(0)
    if images.ndim != 4:
        raise error(f"{noun} must be [N, C, H, W] (or one [C, H, W]), got shape "
                    f"{tuple(images.shape)}.")
    if images.shape[1] != channels:
        takes = _CHANNEL_WORDS.get(channels, f"{channels}-channel")
        raise error(f"{noun} have {images.shape[1]} channel(s) but this {model} model takes "
                    f"{takes} images (channels first: [N, C, H, W]).")
    if images.shape[2] < 1 or images.shape[3] < 1:
        raise error(f"{noun} are empty ({tuple(images.shape)}).")
    return images, single
