"""The on-disk cache of networks trained on real data (TRTR classifiers, SSL encoders).

A network is stored as ``<cache_dir>/<kind>/<key[:40]>.pt`` (its state_dict) beside a JSON
file holding the full key, the sha256 of the weights (:func:`state_digest`) and whatever the
trainer records. Loading checks both: an entry whose key differs, whose file is unreadable or
whose weights do not hash to the recorded digest is discarded (with a warning; an empty file,
or one holding code, which ``weights_only=True`` refuses to unpickle, alike) and the network
is trained again. Writing is atomic; a read-only or full disk only costs time.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections.abc import Callable
from pathlib import Path

import torch

from medsyn.settings import cache_dir
from medsyn.utils import atomic_write, write_json

log = logging.getLogger(__name__)


def state_digest(model: torch.nn.Module) -> str:
    """sha256 of the parameters and buffers (names, dtypes, shapes and values)."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def cache_key(payload: dict) -> str:
    """sha256 of a JSON-ready description of everything that determines the weights."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def entry_paths(kind: str, key: str) -> tuple[Path, Path]:
    folder = cache_dir() / kind
    return folder / f"{key[:40]}.pt", folder / f"{key[:40]}.json"


def load_network(kind: str, key: str, build: Callable[[], torch.nn.Module]
                 ) -> tuple[torch.nn.Module, dict] | None:
    """``(model, meta)`` of the cached entry, the weights loaded into ``build()`` and verified
    against their recorded sha256; ``None`` when there is no valid entry."""
    weights_path, meta_path = entry_paths(kind, key)
    if not (weights_path.exists() and meta_path.exists()):
        return None
    try:
        meta = json.loads(meta_path.read_text())
        if not isinstance(meta, dict) or meta.get("key") != key:
            log.warning("ignoring inconsistent %s cache entry %s", kind, weights_path)
            return None
        state = torch.load(weights_path, map_location="cpu", weights_only=True)
        model = build()
        model.load_state_dict(state)
        if state_digest(model) != meta["weights_sha256"]:
            raise ValueError("weights do not match their recorded sha256")
        return model, meta
    except Exception as exc:  # noqa: BLE001 - an entry that fails to load in any way is damaged
        # empty (EOFError: "Aborted." at the CLI), truncated, holding code (refused by
        # weights_only=True), or of other weights: a cache entry is only worth its time saved
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        log.warning("discarding damaged %s cache entry %s (%s%s); training it again", kind,
                    weights_path, type(exc).__name__, f": {reason}" if reason else "")
        for p in (meta_path, weights_path):
            try:
                p.unlink()
            except OSError:
                pass
        return None


def store_network(kind: str, key: str, model: torch.nn.Module, meta: dict) -> None:
    """Write the weights and ``meta`` (plus the key and the weights' sha256)."""
    weights_path, meta_path = entry_paths(kind, key)
    try:
        buf = io.BytesIO()
        torch.save({n: t.detach().cpu() for n, t in model.state_dict().items()}, buf)
        with atomic_write(weights_path) as f:
            f.write(buf.getvalue())
        write_json(meta_path, {"key": key, "weights_sha256": state_digest(model), **meta})
    except OSError as exc:  # a read-only or full disk only costs time
        log.warning("could not write %s cache %s: %s", kind, weights_path, exc)
