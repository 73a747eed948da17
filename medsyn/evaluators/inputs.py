"""Where the images to evaluate come from: a folder, an npz, or a generator checkpoint.

All of them end as uint8 ``[N, C, H, W]`` plus optional int64 labels indexing the reference
dataset's class names, validated here with errors that name the file and the fix.
"""

from __future__ import annotations

import glob
import importlib
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from medsyn.data.dataset import class_indices
from medsyn.data.subsets import split_counts, stratified_subset  # noqa: F401 (public names here)
from medsyn.data.transforms.resize import RESIZE_FILTER, resize_uint8
from medsyn.errors import CheckpointError, DataError
from medsyn.generators.interface import Task, task_of_kind

NPZ_IMAGE_KEYS = ("images", "x", "samples", "fake", "fakes", "arr_0")
NPZ_LABEL_KEYS = ("labels", "y", "arr_1")


@dataclass
class FakeSet:
    images: torch.Tensor                  # uint8 [N, C, H, W]
    labels: np.ndarray | None             # int64 [N] indexing class_names, or None
    source: dict = field(default_factory=dict)


def parse_real(spec: str, default_split: str = "train") -> tuple[str, str]:
    """``DATASET[:SPLIT]`` -> (dataset, split).

    A folder of images (``folder:PATH`` or a path to a folder) is returned as ``folder:PATH``
    and its default split is ``all``: every image it holds, whatever its layout; a split is
    used only when asked for (``PATH:test``).
    """
    from medsyn.data.folder import ALL_SPLIT, SPLIT_NAMES
    from medsyn.data.registry import FOLDER_PREFIX, folder_path

    body, split = spec, None
    if ":" in spec and spec.rsplit(":", 1)[1] in (*SPLIT_NAMES, ALL_SPLIT):
        body, split = spec.rsplit(":", 1)
    path = folder_path(body) if body else None
    if path is not None:
        name = body if body.startswith(FOLDER_PREFIX) else f"{FOLDER_PREFIX}{body}"
        return name, split or ALL_SPLIT
    if split is not None:
        return body, split
    if ":" in spec:
        name, split = spec.split(":", 1)
        if not name or not split:
            raise DataError(f"--real {spec!r}: expected DATASET or DATASET:SPLIT (e.g. cxr3:test).")
        return name, split
    return spec, default_split


# ---------------------------------------------------------------- arrays -> uint8 NCHW


def to_uint8_nchw(arr: np.ndarray, where: str) -> torch.Tensor:
    """Accept ``[N, H, W]``, ``[N, H, W, C]`` or ``[N, C, H, W]`` (C = 1 or 3), uint8 or float.

    Float arrays must be finite and in [0, 1] (scaled by 255) or [-1, 1] (medsyn's network
    range, mapped with round((y + 1) * 127.5)); anything else is refused rather than guessed.
    """
    if arr.ndim == 3:
        arr = arr[:, None]
    elif arr.ndim == 4:
        if arr.shape[1] in (1, 3) and arr.shape[-1] not in (1, 3):
            pass
        elif arr.shape[-1] in (1, 3):
            arr = arr.transpose(0, 3, 1, 2)
        else:
            raise DataError(f"{where}: images of shape {arr.shape} have neither 1 nor 3 channels "
                            "(expected [N, H, W], [N, H, W, C] or [N, C, H, W]).")
    else:
        raise DataError(f"{where}: expected an image array [N, H, W], [N, H, W, C] or "
                        f"[N, C, H, W], got shape {arr.shape}.")
    if arr.shape[0] == 0:
        raise DataError(f"{where}: holds no images.")
    if arr.dtype == np.uint8:
        out = arr
    elif arr.dtype.kind == "f":
        bad = ~np.isfinite(arr)
        if bad.any():
            per_image = bad.reshape(len(arr), -1).any(1)
            raise DataError(f"{where}: image {int(np.argmax(per_image))} ({int(per_image.sum())} "
                            "in all) contains NaN or infinite pixels; fix the generator output.")
        lo, hi = float(arr.min()), float(arr.max())
        if lo >= 0 and hi <= 1:
            out = np.rint(arr * 255.0)
        elif lo >= -1 and hi <= 1:
            out = np.rint((arr + 1.0) * 127.5)
        else:
            raise DataError(f"{where}: float pixels range over [{lo:.3g}, {hi:.3g}]; medsyn "
                            "accepts floats in [0, 1] or [-1, 1]. Save uint8 0..255 instead.")
        out = np.clip(out, 0, 255).astype(np.uint8)
    elif arr.dtype.kind in "iu":
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi > 255:
            raise DataError(f"{where}: integer pixels range over [{lo}, {hi}]; expected 0..255.")
        out = arr.astype(np.uint8)
    else:
        raise DataError(f"{where}: unsupported pixel dtype {arr.dtype}.")
    return torch.from_numpy(np.ascontiguousarray(out))


def load_npz(path: Path, class_names: list[str]) -> FakeSet:
    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot be read as an npz archive ({exc}).") from None
    def array(key):
        try:
            return z[key]
        except ValueError as exc:      # an object array: reading it would unpickle code
            if "allow_pickle" not in str(exc):
                raise DataError(f"{path}[{key!r}]: cannot be read ({exc}).") from None
            raise DataError(
                f"{path}[{key!r}]: holds Python objects (an object array), not pixel values; "
                "medsyn reads npz files with allow_pickle=False, so nothing in it was "
                "unpickled. Save the images as a uint8 array [N, H, W] or [N, H, W, C] "
                "(np.savez(path, images=array)).") from None
        except (OSError, EOFError, zipfile.BadZipFile) as exc:
            raise DataError(f"{path}[{key!r}]: cannot be read, the npz file is truncated or "
                            f"corrupt ({exc}).") from None

    with z:
        keys = list(z.files)
        ikey = next((k for k in NPZ_IMAGE_KEYS if k in keys), keys[0] if len(keys) == 1 else None)
        if ikey is None:
            raise DataError(f"{path}: no image array found; name it one of {NPZ_IMAGE_KEYS} "
                            f"(keys present: {keys}).")
        images = to_uint8_nchw(array(ikey), f"{path}[{ikey!r}]")
        lkey = next((k for k in NPZ_LABEL_KEYS if k in keys and k != ikey), None)
        labels = None
        if lkey is not None:
            labels = class_indices(array(lkey), class_names, f"{path}[{lkey!r}]")
            if len(labels) != len(images):
                raise DataError(f"{path}: {len(labels)} labels for {len(images)} images.")
    return FakeSet(images, labels, {"kind": "npz", "path": str(path), "images_key": ikey,
                                    "labels_key": lkey})


def load_folder(path: Path, class_names: list[str], image_size: int | None = None,
                bit_depth=None) -> FakeSet:
    """Every image of a folder (:mod:`medsyn.data.folder`: flat -> unlabelled; class or split
    folders -> labelled by the class folders' names, which must be the reference's classes)."""
    from medsyn.data.folder import ALL_SPLIT, UNLABELLED, load_image_folder

    ds = load_image_folder(path, ALL_SPLIT, image_size, name=f"folder:{path}", use_cache=False,
                           bit_depth=bit_depth)
    labelled = ds.class_names != [UNLABELLED]
    labels = None
    if labelled:
        unknown = [c for c in ds.class_names if c not in class_names]
        if unknown:
            raise DataError(f"{path}: sub-folder(s) {unknown} are not classes of the reference "
                            f"dataset; its classes are {class_names}. Rename the folders.")
        to_reference = np.array([class_names.index(c) for c in ds.class_names], dtype=np.int64)
        labels = to_reference[ds.labels.numpy()]
    source = {"kind": "folder", "path": str(path), "n_files": len(ds), "labelled": labelled,
              "layout": ds.source["layout"], "intensity": ds.source["intensity"]}
    for extra in ("skipped", "warnings"):
        if extra in ds.source:
            source[extra] = ds.source[extra]
    return FakeSet(ds.images, labels, source)


def load_fake(path: str | os.PathLike, class_names: list[str],
              image_size: int | None = None, bit_depth=None) -> FakeSet:
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(f"--fake {p}: no such file or folder.")
    if p.is_dir():
        return load_folder(p, class_names, image_size, bit_depth)
    if not p.is_file():          # a FIFO or device: reading it may never end
        raise DataError(f"--fake {p}: not a regular file (a FIFO, device or socket); give a "
                        "folder of images or an .npz file.")
    if p.suffix.lower() == ".npz":
        return load_npz(p, class_names)
    raise DataError(f"--fake {p}: expected a folder of images or an .npz file.")


def match_reference(fake: FakeSet, reference) -> FakeSet:
    """Bring fakes to the reference's channel count and size, or explain why not.

    RGB fakes whose channels are equal become grayscale; other colour/grayscale mismatches are
    errors. Fakes of another size are resized to the reference's (bicubic, antialiased), and
    ``source["resize"]`` records it.
    """
    images = fake.images
    c_ref = reference.channels
    if images.shape[1] != c_ref:
        if images.shape[1] == 3 and c_ref == 1:
            if not (torch.equal(images[:, 0], images[:, 1])
                    and torch.equal(images[:, 1], images[:, 2])):
                raise DataError(
                    f"the fake images are colour (RGB with differing channels) but the reference "
                    f"{reference.name} is grayscale; a grayscale generator should output one "
                    "channel (or R = G = B).")
            images = images[:, :1].contiguous()
        else:
            raise DataError(
                f"the fake images have {images.shape[1]} channel(s) but the reference "
                f"{reference.name} has {c_ref}: they are not comparable; evaluate against a "
                "reference with the same colour mode.")
    source = dict(fake.source)
    if tuple(images.shape[2:]) != tuple(reference.image_size):
        h, w = reference.image_size
        if h != w:
            raise DataError(f"the reference is {h}x{w} (not square) and the fakes are "
                            f"{images.shape[2]}x{images.shape[3]}; resize them to match first.")
        source["resize"] = {"from": list(images.shape[2:]), "to": [h, w],
                            "filter": RESIZE_FILTER}
        images = resize_uint8(images, h)
    return FakeSet(images, fake.labels, source)


def subsample(fake: FakeSet, n: int | None, seed: int) -> FakeSet:
    if n is None or n >= len(fake.images):
        return fake
    idx = np.sort(np.random.default_rng(seed).choice(len(fake.images), n, replace=False))
    return FakeSet(fake.images[torch.from_numpy(idx)],
                   None if fake.labels is None else fake.labels[idx],
                   {**fake.source, "subsampled": {"n": n, "of": len(fake.images), "seed": seed}})


# ---------------------------------------------------------------- checkpoints


def expand_checkpoints(pattern: str) -> list[Path]:
    """A path or a glob (``'runs/x/epoch*.pt'``), sorted; an error when nothing matches."""
    paths = sorted(Path(p) for p in glob.glob(os.path.expanduser(pattern)))
    if not paths and Path(pattern).exists():
        paths = [Path(pattern)]
    if not paths:
        raise CheckpointError(f"--checkpoint {pattern!r}: no such file (no checkpoint matches).")
    dirs = [p for p in paths if p.is_dir()]
    if dirs:
        raise CheckpointError(f"--checkpoint {dirs[0]} is a folder; name the .pt file(s), e.g. "
                              f"'{dirs[0]}/epoch*.pt' or {dirs[0]}/last.pt.")
    return paths


def load_generator(path: Path, device="cpu", allow_sr: bool = False):
    """``medsyn.generators.load_checkpoint`` (looked up at call time, so it can be replaced).

    A checkpoint that does not sample from noise (its task: super-resolution, translation) is
    an error unless ``allow_sr``.
    """
    try:
        generators = importlib.import_module("medsyn.generators")
        loader = generators.load_checkpoint
    except (ImportError, AttributeError):
        raise CheckpointError(
            "this medsyn has no generator support (medsyn.generators.load_checkpoint), so it "
            "cannot read checkpoints; evaluate saved images with --fake PATH --real DATASET."
        ) from None
    gen = loader(path, device=device)
    if not allow_sr:
        task = checkpoint_task(gen)
        if not task.samples_from_noise:
            raise CheckpointError(f"{path} is a {task.value} checkpoint ({gen.kind}); "
                                  "'medsyn evaluate --checkpoint' scores image generators.")
    return gen


def checkpoint_task(gen) -> Task:
    """The loaded checkpoint's task: ``gen.task``, else the task its kind was registered with
    (an object written against the contract before tasks were declared)."""
    task = getattr(gen, "task", None)
    task = Task(task) if task is not None else task_of_kind(getattr(gen, "kind", None))
    if task is None:
        raise CheckpointError(f"a checkpoint of kind {getattr(gen, 'kind', None)!r} declares no "
                              "task (medsyn.generators.interface.Task), so medsyn cannot tell "
                              "how to evaluate it; register its kind with task=....")
    return task


def check_checkpoint_dataset(gen, reference, path: Path, reference_is_training: bool) -> None:
    """The reference must be the data the generator was trained on (classes, size, channels;
    and for the training split itself, the exact pixels)."""
    meta = gen.metadata.get("dataset", {}) if isinstance(gen.metadata, dict) else {}
    if list(gen.class_names) != list(reference.class_names):
        raise CheckpointError(
            f"{path} generates classes {list(gen.class_names)} but {reference.name}/"
            f"{reference.split} has {list(reference.class_names)}; evaluate against the dataset "
            "the checkpoint was trained on.")
    if int(gen.channels) != reference.channels or \
            tuple(reference.image_size) != (int(gen.image_size), int(gen.image_size)):
        h, w = reference.image_size
        raise CheckpointError(
            f"{path} makes {gen.channels}-channel {gen.image_size}px images but {reference.name}/"
            f"{reference.split} was loaded as {reference.channels}-channel {h}x{w}.")
    expected = meta.get("fingerprint")
    if reference_is_training and expected and expected != reference.fingerprint:
        raise CheckpointError(
            f"{path} was trained on {meta.get('name')}/{meta.get('split')} with fingerprint "
            f"{expected[:16]}..., but the data found now has fingerprint "
            f"{reference.fingerprint[:16]}...: the images or labels changed since training. "
            "Point --data-root at the original data, or score saved samples with --fake/--real.")


def sample_generator(gen, labels: np.ndarray, seed: int, batch_size: int = 256) -> torch.Tensor:
    """Fakes for the given labels, in batches; batch ``b`` uses seed ``seed * 100003 + b``."""
    out = []
    lab = torch.as_tensor(labels, dtype=torch.long)
    from medsyn.utils import progress

    with progress(total=len(lab), desc="sampling", unit="img") as bar:
        for b, start in enumerate(range(0, len(lab), batch_size)):
            chunk = lab[start:start + batch_size]
            imgs = gen.sample(len(chunk), labels=chunk if gen.conditional else None,
                              seed=seed * 100003 + b)
            out.append(torch.as_tensor(imgs).cpu())
            bar.update(len(chunk))
    images = torch.cat(out)
    if images.dtype != torch.uint8 or images.shape[0] != len(lab):
        raise CheckpointError(f"the generator returned {images.dtype} {tuple(images.shape)}; "
                              f"expected uint8 [{len(lab)}, C, H, W].")
    return images
