"""``medsyn sample``: generated images as PNG files, one folder per class, plus a CSV of labels.

    DIR/<class name>/000000.png ...      (DIR/unconditional/ for a DCGAN)
    DIR/labels.csv                       file,label,class_name (file relative to DIR)
    DIR/sampling.json                    checkpoint, its sha256, epoch, step, n, seed, dataset
    DIR/.medsyn-manifest.json            medsyn's manifest (medsyn.outputs): written with
                                         "complete": false before the first image and listing
                                         every file after the last, so a folder of a killed
                                         run is refused as data (evaluate --fake, training)
"""

from __future__ import annotations

import csv
import io
import os
import re
from pathlib import Path

from PIL import Image

from medsyn.errors import ConfigError
from medsyn.generators.interface import Task
from medsyn.outputs import incomplete_output, write_manifest
from medsyn.utils import (
    DISK_FULL_ERRNOS,
    DiskFullError,
    file_digest,
    format_bytes,
    free_bytes,
    progress,
    write_json,
)

UNCONDITIONAL_FOLDER = "unconditional"
SAMPLE_COMMAND = "medsyn sample"
# a bound that no disk reaches (10**15 PNGs of 28 px take about 70 PB) and every counter holds
MAX_IMAGES = 10**15


def class_folder_name(name: str) -> str:
    """A folder name for a class: path separators and control characters replaced by '_'."""
    safe = re.sub(r"[\\/\x00-\x1f:*?\"<>|]+", "_", name).strip(" .")
    return safe or "_"


def balanced_label_slice(n: int, num_classes: int, start: int, stop: int):
    """``balanced_labels(n, num_classes)[start:stop]`` without building all ``n`` labels."""
    import torch

    counts = torch.tensor([n // num_classes + (1 if i < n % num_classes else 0)
                           for i in range(num_classes)])
    bounds = torch.cumsum(counts, 0)
    return torch.searchsorted(bounds, torch.arange(start, stop), right=True)


def available_memory() -> int | None:
    """Bytes of memory this process can still take (``MemAvailable``), if the OS says."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


# An estimate, not a measurement: the activations of one generator batch (widest stages near
# the image, 2-8x the output's channels at 1/4-1 of its area) stay within a few dozen float32
# copies of the output; 64 leaves a margin.
ACTIVATION_FACTOR = 64


def _check_batch_memory(checkpoint, batch_size: int) -> None:
    per_image = checkpoint.channels * checkpoint.image_size ** 2 * 4 * ACTIVATION_FACTOR
    needed = per_image * batch_size
    free = available_memory()
    if free is not None and needed > free:
        fits = max(1, free // per_image)
        raise ConfigError(
            f"--batch-size {batch_size} would need about {format_bytes(needed)} of memory to "
            f"generate {checkpoint.image_size} px images, {format_bytes(free)} is available; "
            f"use --batch-size {min(fits, 256)} or less (the number of images, --n, does not "
            "matter: they are written to disk batch by batch).")


def _check_disk(out: Path, n: int, bytes_per_image: float, batch_size: int) -> int:
    needed = int(n * bytes_per_image * 1.1) + 64 * n       # PNGs + labels.csv rows
    free = free_bytes(out)
    if free is not None and needed > free:
        raise ConfigError(
            f"--n {n} images would need about {format_bytes(needed)} in {out} (measured on the "
            f"first {batch_size} images), but only {format_bytes(free)} is free there; nothing "
            "was written. Lower --n or choose a folder on a larger disk.")
    return needed


def write_samples(checkpoint, n: int, out: str | os.PathLike, *, seed: int = 0,
                  device: str = "auto", batch_size: int = 256) -> Path:
    """Sample ``n`` images from ``checkpoint`` (a path or a loaded checkpoint) into ``out``.

    Classes are balanced (class i gets n // K, the first n % K one more). ``out`` must be new or
    empty: nothing is overwritten. Returns the path of ``labels.csv``. The folder's manifest
    says it is incomplete until the last file is written (a killed run's folder is refused as
    data). Images go to disk batch by batch, so memory does not grow
    with ``n``; the memory of one batch and the disk space of all ``n`` images (measured on the
    first batch) are checked before anything is written.
    """
    from medsyn.generators.checkpoint import load_checkpoint

    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"--n must be a positive number of images, got {n!r}.")
    if n > MAX_IMAGES:
        raise ConfigError(f"--n {n} is more images than any disk holds (at most {MAX_IMAGES:.0e}"
                          " are sampled); nothing was written. Lower --n.")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"--batch-size must be a positive integer, got {batch_size!r}.")
    out = Path(out).expanduser()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        if out.is_dir() and incomplete_output(out) is not None:
            raise ConfigError(f"output folder {out} holds the images of an interrupted `medsyn "
                              "sample` (incomplete, possibly truncated); nothing was written. "
                              "Delete that folder or choose a new one.")
        raise ConfigError(f"output folder {out} exists and is not empty; nothing was written. "
                          "Choose a new or empty folder.")
    ckpt_path = None
    if isinstance(checkpoint, (str, os.PathLike)):
        ckpt_path = Path(checkpoint)
        checkpoint = load_checkpoint(ckpt_path, device=device)
    elif getattr(checkpoint, "path", None) is not None:
        ckpt_path = Path(checkpoint.path)
    if not checkpoint.task.samples_from_noise:
        raise ConfigError(
            f"{ckpt_path or 'the checkpoint'} is a {checkpoint.kind} checkpoint "
            f"({checkpoint.task.value}): it maps given images instead of drawing new ones from "
            "noise, so there is nothing to sample; nothing was written."
            + (" Upscale images with 'medsyn sr' instead."
               if checkpoint.task is Task.SUPER_RESOLUTION else ""))
    conditional = checkpoint.task is Task.CONDITIONAL
    folders = ([class_folder_name(c) for c in checkpoint.class_names]
               if conditional else [UNCONDITIONAL_FOLDER])
    if len(set(folders)) != len(folders):
        folders = [f"{i}_{f}" for i, f in enumerate(folders)]
    _check_batch_memory(checkpoint, min(batch_size, n))
    num_classes = len(checkpoint.class_names)
    counters = [0] * len(folders)
    out.mkdir(parents=True, exist_ok=True)
    write_manifest(out, SAMPLE_COMMAND, complete=False)     # until the last file is written
    rows_tmp = out / f".labels.csv.{os.getpid()}.rows.tmp"
    needed = None
    bar = progress(total=n, desc="sampling", unit="img")
    try:
        with open(rows_tmp, "w", newline="") as rows_file:
            writer = csv.writer(rows_file, lineterminator="\n")
            writer.writerow(["file", "label", "class_name"])
            for start in range(0, n, batch_size):
                count = min(batch_size, n - start)
                batch_labels = (balanced_label_slice(n, num_classes, start, start + count)
                                if conditional else None)
                # one seed per batch keeps the result independent of how far a run got
                images = checkpoint.sample(count, labels=batch_labels,
                                           seed=seed * 1_000_003 + start)
                arr = images.permute(0, 2, 3, 1).numpy()
                encoded = []
                for i in range(count):
                    buf = io.BytesIO()
                    img = arr[i, :, :, 0] if arr.shape[3] == 1 else arr[i]
                    Image.fromarray(img).save(buf, format="PNG")
                    encoded.append(buf.getvalue())
                if needed is None:
                    needed = _check_disk(out, n, sum(map(len, encoded)) / count, count)
                for i, data in enumerate(encoded):
                    label = -1 if batch_labels is None else int(batch_labels[i])
                    folder = folders[max(label, 0)]
                    idx = counters[max(label, 0)]
                    counters[max(label, 0)] += 1
                    rel = f"{folder}/{idx:06d}.png"
                    (out / folder).mkdir(parents=True, exist_ok=True)
                    (out / rel).write_bytes(data)
                    writer.writerow((rel, label,
                                     "" if label < 0 else checkpoint.class_names[label]))
                bar.update(count)
            rows_file.flush()
            os.fsync(rows_file.fileno())
        write_json(out / "sampling.json", {
            "checkpoint": str(ckpt_path) if ckpt_path else None,
            "checkpoint_sha256": file_digest(ckpt_path) if ckpt_path else None,
            "kind": checkpoint.kind, "epoch": checkpoint.metadata.get("epoch"),
            "step": checkpoint.metadata.get("step"), "n": n, "seed": seed,
            "class_names": list(checkpoint.class_names), "conditional": conditional,
            "image_size": checkpoint.image_size, "channels": checkpoint.channels,
            "dataset": {k: checkpoint.metadata.get("dataset", {}).get(k)
                        for k in ("name", "split", "fingerprint")},
        })
        os.replace(rows_tmp, out / "labels.csv")
        write_manifest(out, SAMPLE_COMMAND)
    except BaseException as exc:
        try:      # no process of this id is writing any more: the folder is an interrupted one
            write_manifest(out, SAMPLE_COMMAND, complete=False, extra={"pid": None})
        except OSError:
            pass
        if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS and \
                not isinstance(exc, DiskFullError):
            raise DiskFullError(Path(exc.filename or out / "labels.csv"), needed, None) \
                from exc
        raise
    finally:
        bar.close()
        rows_tmp.unlink(missing_ok=True)
    return out / "labels.csv"
