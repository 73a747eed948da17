"""Downloading datasets that have a public URL (MedMNIST from Zenodo, MNIST from Keras)."""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path

from medsyn.data.npz import (
    MEDMNIST_SIZES,
    MNIST_SHA256,
    MNIST_URL,
    medmnist_filename,
    medmnist_url_md5,
)
from medsyn.data.registry import CXR3_HOWTO, _spec
from medsyn.errors import DataError
from medsyn.settings import writable_data_root
from medsyn.utils import atomic_write, progress


def download(url: str, dest: Path, algorithm: str, expected: str, timeout: float = 60) -> Path:
    """Download ``url`` to ``dest`` atomically, verifying its checksum before the rename."""
    h = hashlib.new(algorithm)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with atomic_write(dest) as f, progress(total=total, unit="B", unit_scale=True,
                                                   desc=dest.name) as bar:
                while block := response.read(1 << 20):
                    f.write(block)
                    h.update(block)
                    bar.update(len(block))
                if h.hexdigest() != expected:
                    raise DataError(
                        f"download of {url} has {algorithm} {h.hexdigest()}, expected {expected}; "
                        "the file was not saved. Try again, or download it by hand."
                    )
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise DataError(
            f"could not download {url} ({exc}). Without internet access, copy the file by hand "
            f"to {dest}."
        ) from None
    return dest


def fetch_dataset(name: str, root: str | os.PathLike | None = None, size: int = 28,
                  force: bool = False) -> Path:
    """Download a dataset into the data root (explicit ``root``, else ``MEDSYN_DATA_ROOT``,
    else the per-user cache). Returns the file's path. Existing files are kept unless
    ``force``."""
    spec = _spec(name)
    target_root = writable_data_root(root)
    if spec.kind == "image-folder":
        raise DataError(f"{name} cannot be downloaded automatically. {CXR3_HOWTO}")
    if spec.kind == "mnist":
        dest = target_root / "mnist" / "mnist.npz"
        if dest.exists() and not force:
            return dest
        return download(MNIST_URL, dest, "sha256", MNIST_SHA256)
    if size not in MEDMNIST_SIZES:
        raise DataError(f"MedMNIST size must be one of {list(MEDMNIST_SIZES)}, got {size}.")
    url, md5 = medmnist_url_md5(name, size)
    dest = target_root / "medmnist" / medmnist_filename(name, size)
    if dest.exists() and not force:
        return dest
    return download(url, dest, "md5", md5)
