"""Image-folder datasets: ``<root>/<split>/<class>/*`` or ``<root>/<class>/*``.

Without split folders the files of each class are split deterministically (sorted paths,
seed 0, stratified by class) into 70 % train, 10 % val and 20 % test.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from medsyn.data.cache import array_cache_key, load_cached_arrays, store_cached_arrays
from medsyn.data.dataset import ImageDataset, fingerprint_arrays
from medsyn.data.imageio import IMAGE_EXTENSIONS, decode_many, is_ignored, stack_images
from medsyn.data.manifest import apply_manifest
from medsyn.data.resize import RESIZE_FILTER
from medsyn.errors import DataError
from medsyn.utils import file_digest

SPLIT_NAMES = ("train", "val", "test")
AUTO_SPLIT_FRACTIONS = {"train": 0.7, "val": 0.1, "test": 0.2}
AUTO_SPLIT_SEED = 0


def _subfolders(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not is_ignored(p))


def _class_files(class_dir: Path) -> list[Path]:
    files = []
    for p in sorted(class_dir.iterdir()):
        if is_ignored(p) or p.is_dir():
            continue
        if p.suffix.lower() not in IMAGE_EXTENSIONS:
            raise DataError(
                f"{p}: not an image file (extension {p.suffix or 'none'!r}). A class folder may "
                f"hold only images ({', '.join(IMAGE_EXTENSIONS)}); move this file elsewhere."
            )
        files.append(p)
    if not files:
        raise DataError(
            f"class folder {class_dir} contains no images. Add images or remove the empty folder."
        )
    return files


def has_split_layout(root: Path) -> bool:
    return any((root / s).is_dir() for s in SPLIT_NAMES)


def available_splits(root: Path) -> list[str]:
    if has_split_layout(root):
        return [s for s in SPLIT_NAMES if (root / s).is_dir()]
    return list(SPLIT_NAMES)


def list_folder_split(root: Path, split: str) -> tuple[list[Path], list[int], list[str]]:
    """Files, labels and class names of one split, without decoding anything."""
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist or is not a folder.")
    if has_split_layout(root):
        splits = available_splits(root)
        if split not in splits:
            raise DataError(
                f"image folder {root} has no split {split!r}; its splits are {splits}."
            )
        class_names = sorted({c.name for s in splits for c in _subfolders(root / s)})
        if not class_names:
            raise DataError(f"{root / split} has no class sub-folders (<split>/<class>/*.png).")
        files, labels = [], []
        for label, name in enumerate(class_names):
            class_dir = root / split / name
            if not class_dir.is_dir():
                continue
            found = _class_files(class_dir)
            files += found
            labels += [label] * len(found)
        if not files:
            with_images = [s for s in splits if s != split and _subfolders(root / s)]
            raise DataError(
                f"no class folders / no images in {root / split}: the split folder is empty "
                f"(expected {root / split}/<class>/<image>, classes {class_names} as in the "
                f"other splits). Put the {split} images there, or choose another split"
                + (f" ({', '.join(with_images)})." if with_images else ".")
            )
        return files, labels, class_names

    if split not in SPLIT_NAMES:
        raise DataError(f"unknown split {split!r} for {root}; use one of {list(SPLIT_NAMES)}.")
    class_dirs = _subfolders(root)
    if not class_dirs:
        raise DataError(
            f"image folder {root} has no class sub-folders. Expected <root>/<class>/<image> or "
            "<root>/<split>/<class>/<image>."
        )
    class_names = [c.name for c in class_dirs]
    files, labels = [], []
    for label, class_dir in enumerate(class_dirs):
        found = _class_files(class_dir)
        chosen = _auto_split_indices(len(found), split, seed=AUTO_SPLIT_SEED + label)
        files += [found[i] for i in chosen]
        labels += [label] * len(chosen)
    if not files:
        raise DataError(
            f"image folder {root} has too few images for an automatic {split} split (the "
            f"70/10/20 split per class gives {split} no images). Add images, or lay the folder "
            f"out as {root}/<split>/<class>/<image> to choose the splits yourself."
        )
    return files, labels, class_names


def _auto_split_indices(n: int, split: str, seed: int) -> list[int]:
    """Indices of one split when a class's ``n`` sorted files are divided 70/10/20."""
    order = np.random.default_rng(seed).permutation(n)
    n_test = int(round(n * AUTO_SPLIT_FRACTIONS["test"]))
    n_val = int(round(n * AUTO_SPLIT_FRACTIONS["val"]))
    if n >= 3:
        n_test, n_val = max(n_test, 1), max(n_val, 1)
    bounds = {"test": (0, n_test), "val": (n_test, n_test + n_val), "train": (n_test + n_val, n)}
    lo, hi = bounds[split]
    return sorted(order[lo:hi].tolist())


def load_image_folder(root: Path, split: str, image_size: int | None, name: str,
                      use_cache: bool = True) -> ImageDataset:
    root = Path(root)
    files, labels, class_names = list_folder_split(root, split)
    files, labels, patients = apply_manifest(root, split, files, labels, class_names,
                                             has_split_layout(root), list_folder_split)
    digests = [file_digest(p) for p in files]
    relpaths = [str(p.relative_to(root)) for p in files]
    files_digest = hashlib.sha256(
        "\n".join(f"{r}\t{d}" for r, d in zip(relpaths, digests, strict=True)).encode()
    ).hexdigest()
    source = {
        "kind": "image-folder",
        "root": str(root.resolve()),
        "split_layout": "folders" if has_split_layout(root) else
        f"automatic stratified 70/10/20, seed {AUTO_SPLIT_SEED}",
        "n_files": len(files),
        "files_sha256": files_digest,
        "checksum_rule": "sha256 over sorted lines '<relative path>\\t<sha256 of file>'",
    }
    if patients is not None:
        source["manifest"] = patients.info
    if image_size is not None:
        source["resized_to"] = image_size
        source["resize_filter"] = RESIZE_FILTER

    key = array_cache_key(kind="image-folder", files=files_digest, split=split,
                          image_size=image_size, class_names=class_names)
    cached = load_cached_arrays(key) if use_cache else None
    if cached is not None:
        images, label_arr, meta = cached
        fingerprint = meta.get("fingerprint")
    else:
        arrays = decode_many(files, desc=f"{name}/{split}")
        images = stack_images(arrays, files, image_size)
        label_arr = np.asarray(labels, dtype=np.int64)
        fingerprint = fingerprint_arrays(images, label_arr)
        if use_cache:
            store_cached_arrays(key, images, label_arr, {"fingerprint": fingerprint})
    return ImageDataset(
        name=name,
        split=split,
        images=torch.from_numpy(images),
        labels=torch.from_numpy(label_arr.astype(np.int64, copy=False)),
        class_names=class_names,
        source=source,
        _fingerprint=fingerprint,
        patient_ids=None if patients is None else patients.ids,
    )
