"""``medsyn sr``: upscale image files with a trained SR checkpoint.

    from medsyn.generators.sr.apply import upscale_files
    written = upscale_files("runs/srgan-cxr3-x4/last.pt", ["a.png", "scans/"], "out/")

Each input (PNG, JPEG, BMP, TIFF, WebP, DICOM; a folder stands for the image files directly
inside it, other files there are named in a warning) is decoded as the data layer decodes images
(:func:`medsyn.data.formats.intensity.decode_image`: RGB files whose channels are identical
count as grayscale, 12/16-bit grayscale goes through the bit-depth rule of
:mod:`medsyn.data.formats.intensity` for that file, DICOM through its window, alpha is dropped),
upscaled by the checkpoint's generator and written as ``OUT/<name>.png`` (lossless). A grayscale
image given to an RGB model is repeated to three channels (as the data layer does in mixed
folders); a colour image given to a grayscale model is an error, since converting it would
change what the model sees. Every input is read and checked before anything is written; existing
files are never replaced without ``overwrite``. ``OUT/sr.json`` records the checkpoint (path,
sha256, kind, scale, epoch) and every input -> output pair.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from medsyn.errors import ConfigError
from medsyn.generators.image_files import expand_inputs, output_names, read_model_image

log = logging.getLogger(__name__)
MANIFEST = "sr.json"


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
    names = output_names(files, "upscale")
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
    images = [read_model_image(p, model.channels) for p in files]
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
