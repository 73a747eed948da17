"""Downloading datasets that have a public URL (MedMNIST from Zenodo, MNIST from Keras)."""

from __future__ import annotations

import hashlib
import http.client
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

NETWORK_ERRORS = (urllib.error.URLError, http.client.HTTPException, TimeoutError, OSError)


def _reason(exc: BaseException) -> str:
    """An exception as a short reason: URLError's wrapped reason ("HTTP Error 404: ..." for
    HTTP errors), else its text or type."""
    reason = (exc.reason if isinstance(exc, urllib.error.URLError)
              and not isinstance(exc, urllib.error.HTTPError) else None)
    return str(reason or exc) or type(exc).__name__


def _blocks(response, url: str, dest: Path):
    """The response body in 1 MiB blocks; a connection that breaks off is a DataError."""
    while True:
        try:
            block = response.read(1 << 20)
        except NETWORK_ERRORS as exc:
            raise DataError(f"the download of {url} broke off ({_reason(exc)}); "
                            f"nothing was saved to {dest}. Try again.") from None
        if not block:
            return
        yield block


def download(url: str, dest: Path, algorithm: str, expected: str, timeout: float = 60) -> Path:
    """Download ``url`` to ``dest`` atomically, verifying its checksum before the rename.

    On any failure nothing is left behind: no partial file, no folder created for it, and a
    file already at ``dest`` is untouched.
    """
    dest = Path(dest)
    new_folders = [p for p in (dest.parent, *dest.parent.parents) if not p.exists()]
    try:
        response = urllib.request.urlopen(url, timeout=timeout)
    except NETWORK_ERRORS as exc:
        raise DataError(
            f"could not download {url} ({_reason(exc)}). Check the internet "
            f"connection and try again; without internet access here, download that URL on "
            f"another machine and copy the file to {dest}."
        ) from None
    h = hashlib.new(algorithm)
    try:
        with response:
            total = int(response.headers.get("Content-Length") or 0) or None
            try:
                with atomic_write(dest) as f, progress(total=total, unit="B", unit_scale=True,
                                                       desc=dest.name) as bar:
                    for block in _blocks(response, url, dest):
                        f.write(block)
                        h.update(block)
                        bar.update(len(block))
                    if h.hexdigest() != expected:
                        raise DataError(
                            f"the download of {url} has {algorithm} {h.hexdigest()}, expected "
                            f"{expected}: refused, nothing was saved to {dest}. Try again, or "
                            "download it by hand and check its checksum."
                        )
            except OSError as exc:
                raise DataError(f"cannot write {dest} ({exc}). Choose a writable data folder "
                                "with --data-root (or MEDSYN_DATA_ROOT).") from None
    except BaseException:
        for folder in new_folders:                       # deepest first; only if still empty
            try:
                folder.rmdir()
            except OSError:
                pass
        raise
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
