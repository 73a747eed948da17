"""Checkpoint files: format header, safe reading with clear errors, and the loader registry.

A medsyn checkpoint is a ``torch.save`` dict holding only tensors and plain containers (it loads
with ``torch.load(weights_only=True)``: reading one never runs code from the file). Its header:

    {"format": "medsyn-checkpoint", "format_version": 1, "medsyn_version": ..., "torch_version":
     ..., "kind": "acgan", "created": ISO-8601, ..., "payload_sha256": ...}

``payload_sha256`` (:func:`payload_digest`) is a sha256 over every other entry, tensors by
dtype, shape and bytes: a file changed after it was written (a flipped bit on disk, an edit) is
refused with a :class:`CheckpointError` instead of loading silently. Checkpoints written before
the digest existed load with a warning.

:func:`load_checkpoint` dispatches on ``kind`` through a registry. A kind maps to a loader
``loader(payload, device, path) -> object``, given either as a callable or lazily as a
``"module:function"`` string imported on first use (so SR models plug in without
``medsyn.generators`` importing them):

    register_kind("mykind", "mypackage.module:load_my_checkpoint", task=Task.CONDITIONAL)

The built-in kinds: ``acgan``, ``cgan``, ``dcgan`` (:mod:`medsyn.generators.gan.checkpoint`) and
``srresnet``, ``srgan`` (:mod:`medsyn.generators.sr.checkpoint`), ``pggan``
(:mod:`medsyn.generators.highres.checkpoint`), ``megan``
(:mod:`medsyn.generators.highres.megan_sampling`), ``pix2pix`` and ``cyclegan``
(:mod:`medsyn.generators.translation.checkpoint`).
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
import pickle
import zipfile
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import torch

from medsyn import __version__
from medsyn.errors import CheckpointError
from medsyn.generators.interface import Task, register_task, task_of_kind

log = logging.getLogger(__name__)

FORMAT = "medsyn-checkpoint"
FORMAT_VERSION = 1
DIGEST_KEY = "payload_sha256"

# Heavy entries left out of ``metadata`` (the state of networks, optimizers and RNGs).
STATE_KEYS = ("models", "optimizers", "grad_scaler", "rng", "fixed_noise", "fixed_labels",
              "image_pools")

Loader = Callable[..., object]
_LOADERS: dict[str, Loader | str] = {
    "acgan": "medsyn.generators.gan.checkpoint:load_gan_checkpoint",
    "cgan": "medsyn.generators.gan.checkpoint:load_gan_checkpoint",
    "dcgan": "medsyn.generators.gan.checkpoint:load_gan_checkpoint",
    "srresnet": "medsyn.generators.sr.checkpoint:load_sr_checkpoint",
    "srgan": "medsyn.generators.sr.checkpoint:load_sr_checkpoint",
    "pggan": "medsyn.generators.highres.checkpoint:load_pggan_checkpoint",
    "megan": "medsyn.generators.highres.megan_sampling:load_megan_checkpoint",
    "pix2pix": "medsyn.generators.translation.checkpoint:load_translation_checkpoint",
    "cyclegan": "medsyn.generators.translation.checkpoint:load_translation_checkpoint",
}


def register_kind(kind: str, loader: Loader | str, *, task: Task | str | None = None,
                  replace: bool = False) -> None:
    """Make :func:`load_checkpoint` load checkpoints whose ``kind`` is ``kind`` with ``loader``.

    ``loader(payload: dict, device: torch.device, path: Path)`` returns the loaded object (a
    :class:`~medsyn.generators.interface.GeneratorCheckpoint`); ``loader`` may be a
    ``"package.module:function"`` string, imported when first needed. ``task`` declares what
    the family does (:class:`~medsyn.generators.interface.Task`); evaluation and the report
    read it instead of testing kind strings.
    """
    if not isinstance(kind, str) or not kind:
        raise ValueError("kind must be a non-empty string")
    if not (callable(loader) or (isinstance(loader, str) and ":" in loader)):
        raise ValueError("loader must be a callable or a 'module:function' string")
    if kind in _LOADERS and not replace and _LOADERS[kind] != loader:
        raise ValueError(f"checkpoint kind {kind!r} is already registered (pass replace=True)")
    if task is not None:
        register_task(kind, task, replace=replace)
    elif task_of_kind(kind) is None:
        raise ValueError(f"checkpoint kind {kind!r}: declare its task (task=Task.CONDITIONAL, ...)")
    _LOADERS[kind] = loader


def registered_kinds() -> list[str]:
    return sorted(_LOADERS)


def _resolve_loader(kind: str) -> Loader:
    loader = _LOADERS[kind]
    if isinstance(loader, str):
        module, _, attr = loader.partition(":")
        loader = getattr(importlib.import_module(module), attr)
        _LOADERS[kind] = loader
    return loader


def checkpoint_header(kind: str) -> dict:
    """The fields every medsyn checkpoint starts with."""
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "medsyn_version": __version__,
            "torch_version": str(torch.__version__), "kind": kind,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def _feed(h, obj) -> None:
    """Hash ``obj`` canonically: the same value gives the same bytes before saving and after
    ``torch.load`` (dict keys sorted, tensors contiguous on the CPU, floats by ``repr``)."""
    if isinstance(obj, torch.Tensor):
        t = obj.detach()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        if t.numel():
            flat = t.cpu().contiguous().reshape(-1)
            h.update(memoryview(flat.view(torch.uint8).numpy()))
    elif isinstance(obj, dict):
        h.update(f"D{len(obj)}".encode())
        for key in sorted(obj, key=repr):
            _feed(h, key)
            _feed(h, obj[key])
    elif isinstance(obj, (list, tuple)):
        h.update(f"{'L' if isinstance(obj, list) else 'U'}{len(obj)}".encode())
        for item in obj:
            _feed(h, item)
    else:
        text = repr(obj)
        h.update(f"S{type(obj).__name__}{len(text)}:{text}".encode())


def payload_digest(payload: dict) -> str:
    """sha256 of a checkpoint's content, its own ``payload_sha256`` entry left out."""
    h = hashlib.sha256()
    _feed(h, {k: v for k, v in payload.items() if k != DIGEST_KEY})
    return h.hexdigest()


def seal(payload: dict) -> dict:
    """``payload`` with its :func:`payload_digest` added (what the trainers save)."""
    return {**payload, DIGEST_KEY: payload_digest(payload)}


def _one_char_apart(key, name: str) -> bool:
    """Whether ``key`` is ``name`` with one character changed (a flipped bit in the name)."""
    return isinstance(key, str) and len(key) == len(name) and key != name and \
        sum(a != b for a, b in zip(key, name, strict=True)) == 1


def verify_digest(payload: dict, path: Path) -> None:
    recorded = payload.get(DIGEST_KEY)
    if recorded is None and any(_one_char_apart(k, DIGEST_KEY) for k in payload):
        raise CheckpointError(
            f"{path} is corrupt: the name of its digest entry ({DIGEST_KEY}) is damaged, so the "
            "file changed after it was saved. Refusing to use it; take another checkpoint of "
            "the run (e.g. the previous epochNNN.pt) or a backup copy.")
    if recorded is None:
        log.warning("%s carries no payload digest (written by a medsyn before digests were "
                    "added), so corruption since it was written cannot be detected; loading it "
                    "anyway", path)
        return
    if payload_digest(payload) != recorded:
        raise CheckpointError(
            f"{path} is corrupt: its content no longer matches the digest written with it "
            f"({DIGEST_KEY} {str(recorded)[:12]}...), so the file was damaged or modified after "
            "it was saved. Refusing to use it; take another checkpoint of the run (e.g. the "
            "previous epochNNN.pt) or a backup copy.")


def read_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """Load and validate a checkpoint file; every problem is a :class:`CheckpointError` naming
    the file and what to do."""
    path = Path(path).expanduser()
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist.")
    if path.is_dir():
        hint = " (did you mean its last.pt?)" if (path / "last.pt").exists() else ""
        raise CheckpointError(f"checkpoint {path} is a folder, not a .pt file{hint}.")
    if not path.is_file():          # a FIFO or device: opening it may never return
        raise CheckpointError(f"checkpoint {path} is not a regular file (a FIFO, device or "
                              "socket); give a .pt file.")
    unreadable = (f"{path} cannot be read as a checkpoint: it is not a complete PyTorch (zip) "
                  "file, so it is truncated (an interrupted copy?) or not a checkpoint at all. Use "
                  "another file, e.g. the previous epochNNN.pt of the run.")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(unreadable)
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights only" in str(exc).lower() or "weights_only" in str(exc).lower():
            raise CheckpointError(
                f"{path} is a PyTorch file holding Python objects other than tensors, so it is "
                "not a medsyn checkpoint (medsyn reads checkpoints with weights_only=True and "
                "will not unpickle arbitrary objects).") from None
        raise CheckpointError(f"{path} is not a readable PyTorch file ({exc}); it may be "
                              "truncated or not a checkpoint at all.") from None
    except Exception as exc:  # noqa: BLE001 - any failure to unpickle is a damaged file
        # a flipped bit in the pickle header surfaces as KeyError, TypeError, IndexError,
        # AttributeError, ... from torch's unpickler: the file is damaged either way
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        why = f"{type(exc).__name__}{': ' + first if first else ''}"
        if isinstance(exc, (RuntimeError, EOFError, OSError, zipfile.BadZipFile)):
            raise CheckpointError(f"{unreadable} ({why})") from None
        raise CheckpointError(
            f"{path} is damaged: PyTorch could not unpickle its content ({why}), so the file "
            "changed after it was written (a flipped bit on disk, a bad copy). Use another "
            "checkpoint of the run, e.g. the previous epochNNN.pt, or a backup copy.") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        what = (f"a dict with keys {sorted(map(str, payload))[:8]}" if isinstance(payload, dict)
                else f"a {type(payload).__name__}")
        raise CheckpointError(
            f"{path} is a PyTorch file but not a medsyn checkpoint (it holds {what}, without "
            f"format={FORMAT!r}). medsyn loads only checkpoints written by 'medsyn train'.")
    version = payload.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format version {version!r}, newer than this medsyn "
            f"({__version__}) reads ({FORMAT_VERSION}); upgrade medsyn.")
    if not isinstance(payload.get("kind"), str) or payload["kind"] not in _LOADERS:
        raise CheckpointError(
            f"{path} is a checkpoint of kind {payload.get('kind')!r}, which this medsyn cannot "
            f"load; known kinds: {', '.join(registered_kinds())}.")
    verify_digest(payload, path)
    return payload


def checkpoint_metadata(payload: dict) -> dict:
    """The checkpoint without the network / optimizer / RNG state (what ``.metadata`` shows)."""
    return {k: v for k, v in payload.items() if k not in STATE_KEYS and k != DIGEST_KEY}


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu"):
    """Load any medsyn checkpoint as the object its kind's loader returns.

    For ``acgan`` / ``cgan`` / ``dcgan``: a
    :class:`medsyn.generators.gan.checkpoint.GanCheckpoint` with ``kind``, ``class_names``,
    ``conditional``, ``image_size``, ``channels``, ``metadata``, ``sample(n, labels=None,
    seed=None)``, ``sample_labels(n)`` and ``discriminate(images)``.
    For ``srresnet`` / ``srgan``: a :class:`medsyn.generators.sr.checkpoint.SRCheckpoint` with
    ``kind``, ``scale``, ``channels``, ``metadata`` and ``upscale(lr_uint8) -> uint8``.
    For ``pix2pix`` / ``cyclegan``: a
    :class:`medsyn.generators.translation.checkpoint.TranslationCheckpoint` with ``kind``,
    ``channels``, ``metadata`` and ``translate(images) -> uint8``.
    ``device``: ``"cpu"``, ``"cuda"``, ``"auto"`` or a ``torch.device``.
    """
    from medsyn.device import resolve_device

    dev = resolve_device(device)
    payload = read_checkpoint(path)
    return _resolve_loader(payload["kind"])(payload, device=dev, path=Path(path))
