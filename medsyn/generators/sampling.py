"""``medsyn sample``: generated images as PNG files, one folder per class, plus a CSV of labels.

    DIR/<class name>/000000.png ...      (DIR/unconditional/ for a DCGAN)
    DIR/labels.csv                       file,label,class_name (file relative to DIR)
    DIR/sampling.json                    checkpoint, its sha256, epoch, step, n, seed, dataset
"""

from __future__ import annotations

import csv
import io
import os
import re
from pathlib import Path

from PIL import Image

from medsyn.errors import ConfigError
from medsyn.utils import atomic_write, file_digest, progress, write_json

UNCONDITIONAL_FOLDER = "unconditional"


def class_folder_name(name: str) -> str:
    """A folder name for a class: path separators and control characters replaced by '_'."""
    safe = re.sub(r"[\\/\x00-\x1f:*?\"<>|]+", "_", name).strip(" .")
    return safe or "_"


def write_samples(checkpoint, n: int, out: str | os.PathLike, *, seed: int = 0,
                  device: str = "auto", batch_size: int = 256) -> Path:
    """Sample ``n`` images from ``checkpoint`` (a path or a loaded checkpoint) into ``out``.

    Classes are balanced (class i gets n // K, the first n % K one more). ``out`` must be new or
    empty: nothing is overwritten. Returns the path of ``labels.csv``, written last (its presence
    means the folder is complete).
    """
    from medsyn.generators.checkpoint import load_checkpoint

    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"--n must be a positive number of images, got {n!r}.")
    out = Path(out).expanduser()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"output folder {out} exists and is not empty; nothing was written. "
                          "Choose a new or empty folder.")
    ckpt_path = None
    if isinstance(checkpoint, (str, os.PathLike)):
        ckpt_path = Path(checkpoint)
        checkpoint = load_checkpoint(ckpt_path, device=device)
    elif getattr(checkpoint, "path", None) is not None:
        ckpt_path = Path(checkpoint.path)
    folders = ([class_folder_name(c) for c in checkpoint.class_names]
               if checkpoint.conditional else [UNCONDITIONAL_FOLDER])
    if len(set(folders)) != len(folders):
        folders = [f"{i}_{f}" for i, f in enumerate(folders)]
    labels = checkpoint.sample_labels(n) if checkpoint.conditional else None
    rows = []
    counters = [0] * len(folders)
    bar = progress(total=n, desc="sampling", unit="img")
    try:
        for start in range(0, n, batch_size):
            count = min(batch_size, n - start)
            batch_labels = None if labels is None else labels[start:start + count]
            # one seed per batch keeps the result independent of how far a run got
            images = checkpoint.sample(count, labels=batch_labels, seed=seed * 1_000_003 + start)
            arr = images.permute(0, 2, 3, 1).numpy()
            for i in range(count):
                label = -1 if batch_labels is None else int(batch_labels[i])
                folder = folders[max(label, 0)]
                idx = counters[max(label, 0)]
                counters[max(label, 0)] += 1
                rel = f"{folder}/{idx:06d}.png"
                (out / folder).mkdir(parents=True, exist_ok=True)
                img = arr[i, :, :, 0] if arr.shape[3] == 1 else arr[i]
                Image.fromarray(img).save(out / rel)
                rows.append((rel, label, "" if label < 0 else checkpoint.class_names[label]))
            bar.update(count)
    finally:
        bar.close()
    write_json(out / "sampling.json", {
        "checkpoint": str(ckpt_path) if ckpt_path else None,
        "checkpoint_sha256": file_digest(ckpt_path) if ckpt_path else None,
        "kind": checkpoint.kind, "epoch": checkpoint.metadata.get("epoch"),
        "step": checkpoint.metadata.get("step"), "n": n, "seed": seed,
        "class_names": list(checkpoint.class_names), "conditional": checkpoint.conditional,
        "image_size": checkpoint.image_size, "channels": checkpoint.channels,
        "dataset": {k: checkpoint.metadata.get("dataset", {}).get(k)
                    for k in ("name", "split", "fingerprint")},
    })
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["file", "label", "class_name"])
    writer.writerows(rows)
    with atomic_write(out / "labels.csv", "w") as f:
        f.write(buf.getvalue())
    return out / "labels.csv"
