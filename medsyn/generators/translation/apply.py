"""``medsyn translate``: translate image files with a trained translation checkpoint.

    from medsyn.generators.translation.apply import translate_files
    written = translate_files("runs/cyclegan-x/last.pt", ["a.png", "scans/"], "out/")

Inputs are read as ``medsyn sr`` reads them (:func:`medsyn.generators.sr.apply`'s rules, here
with the same helpers of the data layer): a folder stands for the image files directly in it,
every input is decoded and checked before anything is written, existing files are replaced only
with ``overwrite``. ``from_images`` (pix2pix trained with ``--condition``): the files are
target-like images and the model's input is built from them first, as in training.
``OUT/translate.json`` records the checkpoint and every input -> output pair.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from medsyn.errors import ConfigError, DataError
from medsyn.generators.image_files import expand_inputs, output_names, read_model_image

log = logging.getLogger(__name__)
MANIFEST = "translate.json"


def translate_files(checkpoint: str | os.PathLike, inputs: Sequence[str | os.PathLike],
                    out: str | os.PathLike, *, device: str = "auto", direction: str = "forward",
                    from_images: bool = False, overwrite: bool = False) -> list[Path]:
    """Translate image files; returns the written paths (``OUT/<name>.png``, input order)."""
    import torch
    from PIL import Image

    from medsyn.device import resolve_device
    from medsyn.generators.checkpoint import read_checkpoint
    from medsyn.generators.interface import Task, kinds_of_task, task_of_kind
    from medsyn.generators.translation.checkpoint import load_translation_checkpoint
    from medsyn.utils import atomic_write, file_digest, progress, write_json

    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a folder.")
    files = expand_inputs(inputs)
    names = output_names(files, "translate")
    targets = [out / n for n in names] + [out / MANIFEST]
    existing = [str(t) for t in targets if t.exists()]
    if existing and not overwrite:
        raise ConfigError(f"{len(existing)} output file(s) exist already ({', '.join(existing[:3])}"
                          f"{', ...' if len(existing) > 3 else ''}); nothing was written. Use "
                          "another --out, or --overwrite.")
    payload = read_checkpoint(checkpoint)
    if task_of_kind(payload["kind"]) is not Task.TRANSLATION:
        raise ConfigError(f"{checkpoint} is a {payload['kind']} checkpoint, not a translation "
                          f"model ({', '.join(kinds_of_task(Task.TRANSLATION))}).")
    model = load_translation_checkpoint(payload, resolve_device(device), Path(checkpoint))
    del payload
    if from_images and not model.paired:
        raise ConfigError("--from-images applies to pix2pix models trained with --condition.")
    read_channels = model.channels if from_images else \
        (model.input_channels if direction == "forward" else model.channels)
    images = [torch.from_numpy(read_model_image(p, read_channels)) for p in files]
    prepared = []
    for path, image in zip(files, images, strict=True):
        try:
            x = model.make_condition(image[None])[0] if from_images else image
            model._check(x, model.input_channels if direction == "forward"
                         else model.channels)
        except ValueError as exc:
            raise DataError(f"{path}: {exc}") from None
        prepared.append(x)
    out.mkdir(parents=True, exist_ok=True)
    written, entries = [], []
    for path, name, x in progress(list(zip(files, names, prepared, strict=True)),
                                  desc=model.kind, unit="img"):
        y = model.translate(x, direction=direction).numpy()
        picture = Image.fromarray(y[0] if y.shape[0] == 1 else y.transpose(1, 2, 0),
                                  "L" if y.shape[0] == 1 else "RGB")
        target = out / name
        with atomic_write(target) as f:
            picture.save(f, format="PNG")
        written.append(target)
        entries.append({"input": str(path), "output": target.name, "size": list(y.shape[1:])})
    write_json(out / MANIFEST, {
        "checkpoint": {"path": str(checkpoint), "sha256": file_digest(checkpoint),
                       "kind": model.kind, "epoch": model.epoch, "step": model.step,
                       "condition": model.condition, "source": model.source,
                       "target": model.target},
        "direction": direction, "from_images": from_images, "device": str(model.device),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "images": entries})
    return written
