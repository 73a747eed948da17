"""``medsyn sr``: upscale image files with a trained SR checkpoint.

    from medsyn.generators.sr.apply import upscale_files
    written = upscale_files("runs/srgan-cxr3-x4/last.pt", ["a.png", "scans/"], "out/")

Each input (PNG, JPEG, BMP, TIFF, WebP, DICOM; a folder stands for the image files directly
inside it, other files there are named in a warning) is decoded as the data layer decodes images
(:func:`medsyn.data.intensity.decode_image`: RGB files whose channels are identical count as
grayscale, 12/16-bit grayscale goes through the bit-depth rule of :mod:`medsyn.data.intensity`
for that file, DICOM through its window, alpha is dropped), upscaled by the checkpoint's
generator and written as ``OUT/<name>.png`` (lossless). A grayscale image given to an RGB model
is repeated to three channels (as the data layer does in mixed folders); a colour image given to
a grayscale model is an error, since converting it would change what the model sees. Every input
is read and checked before anything is written; existing files are never replaced without
``overwrite``. ``OUT/sr.json`` records the checkpoint (path, sha256, kind, scale, epoch) and
every input -> output pair.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medsyn.errors import ConfigError, DataError

log = logging.getLogger(__name__)
MANIFEST = "sr.json"


def expand_inputs(inputs: Sequence[str | os.PathLike]) -> list[Path]:
    """Files as given; a folder stands for the image files directly inside it (sorted)."""
    from medsyn.data.imageio import READABLE_EXTENSIONS, is_ignored, unsupported_reason

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


def _output_names(files: Sequence[Path]) -> list[str]:
    names = [f"{p.stem}.png" for p in files]
    seen: dict[str, Path] = {}
    for name, path in zip(names, files, strict=True):
        if name in seen and seen[name].resolve() != path.resolve():
            raise ConfigError(f"{seen[name]} and {path} would both be written as {name}; "
                              "upscale them into different --out folders, or rename one.")
        seen[name] = path
    return names


def read_lr_image(path: Path, channels: int) -> np.ndarray:
    """One image as uint8 ``[C, H, W]`` with the model's ``channels``."""
    from medsyn.data.intensity import decode_image

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


def upscale_files(checkpoint: str | os.PathLike, inputs: Sequence[str | os.PathLike],
                  out: str | os.PathLike, *, device: str = "auto",
                  overwrite: bool = False) -> list[Path]:
    """Upscale image files with an ``srresnet`` / ``srgan`` checkpoint; returns the written
    paths (``OUT/<name>.png``, in input order)."""
    import torch
    from PIL import Image

    from medsyn.device import resolve_device
    from medsyn.generators.checkpoint import read_checkpoint
    from medsyn.generators.interface import Task, kinds_of_task, task_of_kind
    from medsyn.generators.sr.checkpoint import load_sr_checkpoint
    from medsyn.utils import atomic_write, file_digest, progress, write_json

    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a folder.")
    files = expand_inputs(inputs)
    names = _output_names(files)
    targets = [out / n for n in names] + [out / MANIFEST]
    existing = [str(t) for t in targets if t.exists()]
    if existing and not overwrite:
        raise ConfigError(f"{len(existing)} output file(s) exist already ({', '.join(existing[:3])}"
                          f"{', ...' if len(existing) > 3 else ''}); nothing was written. Use "
                          "another --out, or --overwrite.")
    payload = read_checkpoint(checkpoint)
    if task_of_kind(payload["kind"]) is not Task.SUPER_RESOLUTION:
        sr_kinds = kinds_of_task(Task.SUPER_RESOLUTION)
        raise ConfigError(f"{checkpoint} is a {payload['kind']} checkpoint, not a "
                          f"super-resolution model ({', '.join(sr_kinds)}); 'medsyn sr' needs one "
                          "made by 'medsyn train srresnet' or 'medsyn train srgan'.")
    model = load_sr_checkpoint(payload, resolve_device(device), Path(checkpoint))
    del payload
    # decode (and check) everything first: a bad file among many must not leave half a folder
    images = [read_lr_image(p, model.channels) for p in files]
    out.mkdir(parents=True, exist_ok=True)
    written, entries = [], []
    mode = "L" if model.channels == 1 else "RGB"
    for path, name, lr in progress(list(zip(files, names, images, strict=True)),
                                   desc=f"SR x{model.scale}", unit="img"):
        sr = model.upscale(torch.from_numpy(lr)).numpy()
        picture = Image.fromarray(sr[0] if model.channels == 1 else sr.transpose(1, 2, 0), mode)
        target = out / name
        with atomic_write(target) as f:
            picture.save(f, format="PNG")
        written.append(target)
        entries.append({"input": str(path), "output": name, "lr_size": list(lr.shape[1:]),
                        "sr_size": list(sr.shape[1:])})
    write_json(out / MANIFEST, {
        "checkpoint": {"path": str(checkpoint), "sha256": file_digest(checkpoint),
                       "kind": model.kind, "scale": model.scale, "channels": model.channels,
                       "epoch": model.epoch, "step": model.step,
                       "content_loss": model.content_loss},
        "device": str(model.device),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "images": entries})
    return written
