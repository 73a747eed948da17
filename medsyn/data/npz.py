"""MedMNIST and Keras-MNIST ``.npz`` datasets.

MedMNIST URLs, MD5 checksums, class names and splits come from the installed ``medmnist``
package's metadata (``medmnist.info.INFO``), not from copies kept here.
"""

from __future__ import annotations

import importlib.util
import zipfile
import zlib
from functools import cache, lru_cache
from pathlib import Path

import numpy as np
import torch

from medsyn.data.cache import array_cache_key, load_cached_arrays, store_cached_arrays
from medsyn.data.dataset import ImageDataset, fingerprint_arrays
from medsyn.data.transforms.resize import RESIZE_FILTER, resize_uint8
from medsyn.errors import DataError
from medsyn.utils import file_digest

MEDMNIST_SIZES = (28, 64, 128, 224)
MEDMNIST_SPLITS = ("train", "val", "test")     # fallback when the metadata lists none

MNIST_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
# sha256 of the file Keras downloads (keras.datasets.mnist.load_data's file_hash)
MNIST_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
MNIST_SPLITS = ("train", "test")


@cache
def medmnist_splits(flag: str) -> tuple[str, ...]:
    """The splits of a MedMNIST set, from its metadata's ``n_samples`` (train, val, test)."""
    n = medmnist_info().get(flag, {}).get("n_samples") or {}
    return tuple(n) or MEDMNIST_SPLITS


@lru_cache(maxsize=1)
def medmnist_info() -> dict:
    """``medmnist.info.INFO`` without importing the whole medmnist package (slow: torch, etc.);
    read once per process (``medsyn data list`` asks for it once per dataset)."""
    spec = importlib.util.find_spec("medmnist")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the 'medmnist' package is not installed; run pip install medmnist.")
    info_path = Path(next(iter(spec.submodule_search_locations))) / "info.py"
    info_spec = importlib.util.spec_from_file_location("_medsyn_medmnist_info", info_path)
    module = importlib.util.module_from_spec(info_spec)
    info_spec.loader.exec_module(module)
    return module.INFO


def medmnist_2d_names() -> list[str]:
    return [k for k in medmnist_info() if not k.endswith("3d")]


def medmnist_filename(flag: str, size: int) -> str:
    return f"{flag}.npz" if size == 28 else f"{flag}_{size}.npz"


def medmnist_url_md5(flag: str, size: int) -> tuple[str, str]:
    info = medmnist_info()[flag]
    suffix = "" if size == 28 else f"_{size}"
    return info[f"url{suffix}"], info[f"MD5{suffix}"]


def medmnist_candidates(root: Path, flag: str) -> dict[int, list[Path]]:
    """Where each size of a MedMNIST file may lie below one data root."""
    return {s: [root / "medmnist" / medmnist_filename(flag, s), root / medmnist_filename(flag, s)]
            for s in MEDMNIST_SIZES}


def _checked_source(path: Path, expected_md5: str | None, expected_sha256: str | None = None,
                    origin: str = "") -> dict:
    entry = {"path": str(path.resolve()), "sha256": file_digest(path, "sha256")}
    if expected_md5 is not None:
        md5 = file_digest(path, "md5")
        entry.update(md5=md5, expected_md5=expected_md5,
                     checksum_matches_official=md5 == expected_md5)
    elif expected_sha256 is not None:
        entry.update(expected_sha256=expected_sha256,
                     checksum_matches_official=entry["sha256"] == expected_sha256)
    if not entry.get("checksum_matches_official", True):
        entry["note"] = (f"checksum differs from the official {origin} release: the file was "
                         "loaded anyway; results may not be comparable with published ones.")
    return entry


def _load_npz_arrays(path: Path, image_key: str, label_key: str, n_classes: int, dataset: str,
                     fetch_command: str | None = None):
    fetch_command = fetch_command or f"medsyn data fetch {dataset} --force"
    try:
        with np.load(path, allow_pickle=False) as npz:
            if image_key not in npz.files or label_key not in npz.files:
                raise DataError(
                    f"{path}: expected arrays {image_key!r} and {label_key!r}, found {npz.files}. "
                    f"Is this really the {dataset} file?"
                )
            images = npz[image_key]
            labels = npz[label_key]
    # a truncated or damaged zip: BadZipFile (no central directory, bad CRC), zlib.error
    # (damaged compressed member), EOFError / ValueError (cut inside an array or its header)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise DataError(
            f"{path}: the {dataset} npz file is truncated, corrupt or unreadable "
            f"({exc or type(exc).__name__}). Download it again with '{fetch_command}' "
            "(replaces it), or copy the complete file there."
        ) from None
    if images.dtype != np.uint8:
        raise DataError(f"{path}: {image_key} has dtype {images.dtype}, expected uint8.")
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise DataError(
            f"{path}: {label_key} has shape {labels.shape}; medsyn supports single-label "
            "classification datasets only (multi-label sets such as ChestMNIST are not supported)."
        )
    if labels.shape[0] != images.shape[0]:
        raise DataError(f"{path}: {images.shape[0]} images but {labels.shape[0]} labels in "
                        f"{image_key}/{label_key}.")
    labels = labels.astype(np.int64)
    bad = (labels < 0) | (labels >= n_classes)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{path}: {label_key} holds labels out of range: {int(bad.sum())} values outside "
            f"0..{n_classes - 1} (first at index {i}: {int(labels[i])}). The file is corrupt or "
            f"not the {dataset} file."
        )
    if images.ndim == 3:
        images = images[:, None]
    elif images.ndim == 4 and images.shape[-1] in (1, 3):
        images = images.transpose(0, 3, 1, 2)
    else:
        raise DataError(f"{path}: {image_key} has shape {images.shape}, expected [N, H, W] or "
                        "[N, H, W, C].")
    return np.ascontiguousarray(images), labels


def _finish(name, split, images, labels, class_names, source, image_size, source_key):
    """Resize if asked (through the array cache) and wrap as an ImageDataset."""
    fingerprint = None
    if image_size is not None and images.shape[-1] != image_size:
        source = {**source, "resized_from": list(images.shape[-2:]), "resized_to": image_size,
                  "resize_filter": RESIZE_FILTER}
        key = array_cache_key(kind="npz", source=source_key, split=split, image_size=image_size)
        cached = load_cached_arrays(key)
        if cached is not None:
            images, labels, meta = cached
            fingerprint = meta.get("fingerprint")
        else:
            images = resize_uint8(torch.from_numpy(images), image_size).numpy()
            fingerprint = fingerprint_arrays(images, labels)
            store_cached_arrays(key, images, labels, {"fingerprint": fingerprint})
    return ImageDataset(name=name, split=split, images=torch.from_numpy(images),
                        labels=torch.from_numpy(labels), class_names=class_names,
                        source=source, _fingerprint=fingerprint)


def load_medmnist(flag: str, path: Path, file_size: int, split: str, image_size: int | None
                  ) -> ImageDataset:
    info = medmnist_info()[flag]
    splits = medmnist_splits(flag)
    if split not in splits:
        raise DataError(f"{flag} has no split {split!r}; its splits are {list(splits)}.")
    class_names = [info["label"][str(i)] for i in range(len(info["label"]))]
    _, md5 = medmnist_url_md5(flag, file_size)
    entry = _checked_source(path, md5, origin="MedMNIST")
    fetch = f"medsyn data fetch {flag}" + ("" if file_size == 28 else f" --size {file_size}")
    images, labels = _load_npz_arrays(path, f"{split}_images", f"{split}_labels",
                                      len(class_names), flag, fetch_command=f"{fetch} --force")
    source = {"kind": "medmnist-npz", "files": [entry], "medmnist_file_size": file_size}
    return _finish(flag, split, images, labels, class_names, source, image_size, entry["sha256"])


def load_mnist(path: Path, split: str, image_size: int | None) -> ImageDataset:
    if split not in MNIST_SPLITS:
        raise DataError(
            f"mnist has no split {split!r}; its splits are {list(MNIST_SPLITS)} "
            "(the Keras file has no validation split)."
        )
    entry = _checked_source(path, None, MNIST_SHA256, origin="Keras MNIST")
    images, labels = _load_npz_arrays(path, f"x_{split}", f"y_{split}", 10, "mnist")
    source = {"kind": "keras-mnist-npz", "files": [entry]}
    return _finish("mnist", split, images, labels, [str(d) for d in range(10)], source,
                   image_size, entry["sha256"])
