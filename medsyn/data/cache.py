"""On-disk cache of decoded (and resized) arrays.

Decoding thousands of PNGs on every run is slow, so the decoded uint8 arrays are stored as an
uncompressed ``.npy`` pair under ``<MEDSYN_CACHE_DIR>/arrays/``. The key is a digest of the
source files' checksums, the split and the requested size, so any change to the data on disk
yields a new key and stale entries are never read.

An entry's ``meta.json`` records the fingerprint of its pixels and labels
(:func:`medsyn.data.dataset.fingerprint_arrays`), and every load recomputes it: a damaged entry
(a flipped bit on disk changes a pixel while the recorded fingerprint still names the original
ones) is discarded with a warning and the arrays are decoded again.
"""

from __future__ import annotations

import hashlib
import json
import logging

import numpy as np

from medsyn.data.dataset import fingerprint_arrays
from medsyn.settings import cache_dir
from medsyn.utils import atomic_write

log = logging.getLogger(__name__)

CACHE_VERSION = 1


def array_cache_key(**parts) -> str:
    payload = json.dumps({"cache_version": CACHE_VERSION, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def _paths(key: str):
    folder = cache_dir() / "arrays"
    return folder / f"{key}.images.npy", folder / f"{key}.meta.json", folder / f"{key}.labels.npy"


def load_cached_arrays(key: str):
    """Return ``(images, labels, meta)`` or ``None`` when the entry is absent or unreadable."""
    images_path, meta_path, labels_path = _paths(key)
    if not (images_path.exists() and meta_path.exists() and labels_path.exists()):
        return None
    try:
        meta = json.loads(meta_path.read_text())
        images = np.load(images_path, allow_pickle=False)
        labels = np.load(labels_path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable array cache entry %s: %s", key, exc)
        return None
    if images.shape[0] != labels.shape[0] or list(images.shape) != meta.get("shape"):
        log.warning("ignoring inconsistent array cache entry %s", key)
        return None
    recorded = meta.get("fingerprint")
    if recorded is None or images.dtype != np.uint8 or \
            fingerprint_arrays(images, labels) != recorded:
        log.warning("discarding damaged array cache entry %s (its pixels or labels no longer "
                    "match the fingerprint recorded with them); decoding the images again",
                    images_path)
        for p in (meta_path, images_path, labels_path):     # meta first: it marks the entry
            try:
                p.unlink()
            except OSError:
                pass
        return None
    return images, labels, meta


def store_cached_arrays(key: str, images: np.ndarray, labels: np.ndarray, meta: dict) -> None:
    """Write a cache entry; failure to write (read-only disk, full disk) only costs speed."""
    images_path, meta_path, labels_path = _paths(key)
    try:
        with atomic_write(images_path) as f:
            np.save(f, np.ascontiguousarray(images), allow_pickle=False)
        with atomic_write(labels_path) as f:
            np.save(f, np.ascontiguousarray(labels), allow_pickle=False)
        # meta last: its presence marks a complete entry
        with atomic_write(meta_path, "w") as f:
            json.dump({**meta, "shape": list(images.shape)}, f)
    except OSError as exc:
        log.warning("could not write array cache %s: %s", images_path.parent, exc)


def load_cached_json(kind: str, key: str):
    """A small cached JSON document (e.g. a dataset's intensity statistics), or None."""
    path = cache_dir() / "arrays" / f"{key}.{kind}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def store_cached_json(kind: str, key: str, value) -> None:
    path = cache_dir() / "arrays" / f"{key}.{kind}.json"
    try:
        with atomic_write(path, "w") as f:
            json.dump(value, f)
    except OSError as exc:
        log.warning("could not write cache %s: %s", path, exc)
