"""Running an extractor over image sets, and the on-disk cache of real-set features.

Real reference sets are evaluated again and again (every checkpoint of a run against the same
training split), so their features are stored under ``<cache_dir>/features/``. The key is a
digest of the dataset's fingerprint (exact pixels and labels), its name, split, image size and
channel count, and the extractor's identity (name, dimension, weights checksum, conventions):
any change to the data or the network gives a new key and a stale entry is never read.
Each entry's metadata records the sha256 of its data file: an entry that is damaged on disk
(a flipped bit, an empty or truncated file, a killed copy) is detected, discarded with a
warning and recomputed, so it never breaks later evaluations. Synthetic images are never cached.

Under ``torchrun`` each rank also stores the features of its own shard of a real set, before
the shards are gathered, under a key of that shard (its pixels, its batch boundaries and the
same extractor identity): a sharded extraction that dies after some ranks finished does not
redo their shards when started again with the same number of ranks. The gathered set is
stored under the single-process key as well, so a later run of any size finds it.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from dataclasses import dataclass

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from medsyn.device import extraction_threads
from medsyn.errors import DataError
from medsyn.evaluators.features.base import FeatureExtractor
from medsyn.evaluators.features.sharding import active_group
from medsyn.settings import cache_dir
from medsyn.utils import atomic_write, progress, remove_stale_temp_files, write_json

log = logging.getLogger(__name__)

FEATURE_CACHE_VERSION = 1


@dataclass
class Features:
    """Features (and classifier logits, when the extractor has them) of one image set."""

    features: np.ndarray                 # float32 [N, D]
    logits: np.ndarray | None = None     # float32 [N, K] or None
    from_cache: bool = False

    def __len__(self):
        return int(self.features.shape[0])

    def take(self, index) -> Features:
        idx = np.asarray(index)
        return Features(self.features[idx],
                        None if self.logits is None else self.logits[idx], self.from_cache)


def check_images(images: torch.Tensor, what: str) -> None:
    """Images crossing into evaluation must be ``uint8 [N, C, H, W]`` with C = 1 or 3."""
    if not isinstance(images, torch.Tensor):
        raise DataError(f"{what}: expected a torch.uint8 tensor [N, C, H, W], got "
                        f"{type(images).__name__}.")
    if images.dtype != torch.uint8:
        raise DataError(f"{what}: expected uint8 pixels, got {images.dtype}. Convert with "
                        "medsyn's convention round((y + 1) * 127.5) clamped to 0..255.")
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise DataError(f"{what}: expected shape [N, C, H, W] with C = 1 or 3, got "
                        f"{tuple(images.shape)}.")
    if images.shape[0] == 0:
        raise DataError(f"{what}: no images.")


def extract_features(extractor: FeatureExtractor, images: torch.Tensor, batch_size: int = 64,
                     desc: str = "features") -> Features:
    """Features of ``images`` (uint8 ``[N, C, H, W]``) in batches, with a progress bar.

    Inside :func:`~medsyn.evaluators.features.sharding.collective_extraction` under
    ``torchrun``, each rank extracts its shard of whole batches and every rank receives all the
    features in the original order (sharding.py).
    """
    check_images(images, desc)
    extractor.prepare(images[:1])
    return _extract(extractor, images, batch_size, desc, shard_cache_of=None)


def _extract(extractor: FeatureExtractor, images: torch.Tensor, batch_size: int, desc: str,
             shard_cache_of) -> Features:
    """:func:`extract_features`; with ``shard_cache_of`` (the real dataset ``images`` belong
    to) each rank of a sharded extraction reads its shard from, or writes it to, the cache."""
    group = active_group()
    from_cache = False
    if group is None:
        feats, logits = _extract_batches(extractor, images, batch_size, desc)
    else:
        start, stop = group.shard(len(images), batch_size)
        shard_desc = f"{desc} [rank {group.rank}/{group.world_size}]"
        if shard_cache_of is None:
            feats, logits = _extract_batches(extractor, images[start:stop], batch_size,
                                             shard_desc)
            here_cached = False
        else:
            feats, logits, here_cached = _cached_shard(shard_cache_of, extractor, start, stop,
                                                       batch_size, shard_desc)
        from_cache = shard_cache_of is not None and all(group.all_gather_objects(here_cached))
        feats = group.gather_rows(feats, extractor.feature_dim if feats is None
                                  else feats.shape[1], np.float32)
        logits = group.gather_rows(logits, None if logits is None else logits.shape[1],
                                   None if logits is None else logits.dtype)
    if not np.isfinite(feats).all():
        raise DataError(f"{desc}: the extractor {extractor.name} produced non-finite features; "
                        "its weights may be corrupt.")
    return Features(feats, logits, from_cache=from_cache)


def _cached_shard(dataset, extractor: FeatureExtractor, start: int, stop: int, batch_size: int,
                  desc: str) -> tuple[np.ndarray | None, np.ndarray | None, bool]:
    """This rank's shard ``[start, stop)`` of a real set: from its cache entry, or extracted
    and stored there at once (before the gather, which a failing rank would never reach).
    An idle rank (no rows) counts as cached."""
    if stop <= start:
        return None, None, True
    key = shard_cache_key(dataset, extractor, start, stop, batch_size)
    what = f"{dataset.name}/{dataset.split} rows {start}-{stop}"
    cached = _read_cache(key, stop - start, extractor.feature_dim, what)
    if cached is not None:
        return cached.features, cached.logits, True
    feats, logits = _extract_batches(extractor, dataset.images[start:stop], batch_size, desc)
    _write_cache(key, Features(feats, logits), {
        "key": key, "dataset": dataset.name, "split": dataset.split,
        "shard_of": dataset.fingerprint, "rows": [start, stop], "batch_size": batch_size,
        "n": stop - start, "extractor": extractor.cache_identity()})
    return feats, logits, False


def _extract_batches(extractor: FeatureExtractor, images: torch.Tensor, batch_size: int,
                     desc: str) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``(features float32 [N, D], logits [N, K] or None)``; ``(None, None)`` for no images."""
    if len(images) == 0:
        return None, None
    feats, logits = [], []
    pin = extractor.device.type == "cuda"
    with threadpool_limits(limits=extraction_threads()), \
            progress(total=len(images), desc=desc, unit="img") as bar:
        for start in range(0, len(images), batch_size):
            batch = images[start:start + batch_size]
            if pin:
                batch = batch.pin_memory()
            out = extractor.extract(batch)
            feats.append(out["features"])
            if "logits" in out:
                logits.append(out["logits"])
            bar.update(len(batch))
    features = torch.cat(feats).numpy().astype(np.float32, copy=False)
    return features, torch.cat(logits).numpy() if logits else None


def feature_cache_key(dataset, extractor: FeatureExtractor) -> str:
    payload = {
        "version": FEATURE_CACHE_VERSION,
        "dataset": {"name": dataset.name, "split": dataset.split,
                    "fingerprint": dataset.fingerprint, "n": len(dataset),
                    "image_size": list(dataset.image_size), "channels": dataset.channels},
        "extractor": extractor.cache_identity(),
        "logits": extractor.has_logits,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def shard_cache_key(dataset, extractor: FeatureExtractor, start: int, stop: int,
                    batch_size: int) -> str:
    """The key of one rank's shard ``[start, stop)`` of a real set: the shard's own pixels
    (not the whole set's fingerprint: the shard's features depend on nothing else), its rows
    and batch size (the batches its images went through together, so a hit gives the bits
    an extraction would), and the extractor fields of :func:`feature_cache_key`."""
    pixels = np.ascontiguousarray(dataset.images[start:stop].numpy())
    payload = {
        "version": FEATURE_CACHE_VERSION,
        "shard": {"name": dataset.name, "split": dataset.split,
                  "pixels_sha256": hashlib.sha256(pixels.tobytes()).hexdigest(),
                  "shape": list(pixels.shape), "rows": [start, stop],
                  "batch_size": batch_size},
        "extractor": extractor.cache_identity(),
        "logits": extractor.has_logits,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _cache_paths(key: str):
    folder = cache_dir() / "features"
    return folder / f"{key[:40]}.npz", folder / f"{key[:40]}.json"


def _read_cache_entry(data_path, meta_path, key: str, n: int, dim: int):
    """``(features, logits)`` of a valid cache entry; raises ``ValueError`` saying why not."""
    meta = json.loads(meta_path.read_text())
    if meta.get("key") != key:
        raise ValueError("its metadata belongs to another key")
    blob = data_path.read_bytes()
    recorded = meta.get("sha256")
    # entries written before checksums were recorded still have the zip's CRC-32 per array
    if recorded is not None and hashlib.sha256(blob).hexdigest() != recorded:
        raise ValueError(f"its sha256 does not match the recorded {str(recorded)[:12]}... "
                         f"({len(blob)} bytes on disk)")
    with np.load(io.BytesIO(blob), allow_pickle=False) as z:
        feats = z["features"]
        logits = z["logits"] if "logits" in z.files else None
    if feats.shape != (n, dim) or not np.isfinite(feats).all():
        raise ValueError(f"it holds features of shape {feats.shape}, expected {(n, dim)}")
    return feats, logits


def dataset_features(dataset, extractor: FeatureExtractor, batch_size: int = 64,
                     use_cache: bool = True) -> Features:
    """Features of a real dataset, read from the cache or extracted and stored there.

    A damaged cache entry is discarded with a warning and recomputed (never an error). Under
    ``torchrun`` (inside ``collective_extraction``) rank 0 alone reads and writes the cache;
    every rank receives the features.
    """
    check_images(dataset.images, f"{dataset.name}/{dataset.split}")
    extractor.prepare(dataset.images[:1])
    key = feature_cache_key(dataset, extractor)
    group = active_group()
    cached = _read_cache(key, len(dataset), extractor.feature_dim,
                         f"{dataset.name}/{dataset.split}") if use_cache and \
        (group is None or group.is_main) else None
    if group is not None and group.broadcast_object(cached is not None):
        return Features(group.broadcast_array(cached.features if cached else None),
                        group.broadcast_array(cached.logits if cached else None),
                        from_cache=True)
    if cached is not None:
        return cached
    out = _extract(extractor, dataset.images, batch_size,
                   f"{dataset.name}/{dataset.split} features",
                   shard_cache_of=dataset if use_cache else None)
    if use_cache and (group is None or group.is_main):
        _write_cache(key, out, {"key": key, "dataset": dataset.name, "split": dataset.split,
                                "fingerprint": dataset.fingerprint, "n": len(dataset),
                                "extractor": extractor.cache_identity()})
    return out


def _read_cache(key: str, n: int, dim: int, what: str) -> Features | None:
    data_path, meta_path = _cache_paths(key)
    remove_stale_temp_files(data_path.parent)
    if not (data_path.exists() and meta_path.exists()):
        return None
    try:
        feats, logits = _read_cache_entry(data_path, meta_path, key, n, dim)
        return Features(feats, logits, from_cache=True)
    except Exception as exc:  # noqa: BLE001 - any damage (BadZipFile, EOFError, ...) alike
        log.warning("discarding damaged feature cache entry %s (%s: %s); recomputing the "
                    "features of %s", data_path, type(exc).__name__, exc, what)
        for p in (data_path, meta_path):
            p.unlink(missing_ok=True)
    return None


def _write_cache(key: str, out: Features, meta: dict) -> None:
    """Store ``out`` under ``key``; ``meta`` (its "key" first) gains the data's sha256."""
    data_path, meta_path = _cache_paths(key)
    try:
        arrays = {"features": out.features}
        if out.logits is not None:
            arrays["logits"] = out.logits
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        blob = buf.getvalue()
        with atomic_write(data_path, expected_size=len(blob)) as f:
            f.write(blob)
        extractor_identity = meta.pop("extractor")
        write_json(meta_path, {**meta, "sha256": hashlib.sha256(blob).hexdigest(),
                               "extractor": extractor_identity})
    except OSError as exc:  # a read-only or full disk only costs speed
        log.warning("could not write feature cache %s: %s", data_path, exc)
