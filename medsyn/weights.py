"""Weight files a user hands to medsyn (Inception, classifier, VGG19 weights), read safely.

A ``.pth`` file is a pickle, and unpickling runs whatever code the file names. Every weights
file medsyn is given is therefore read with ``torch.load(weights_only=True)`` (tensors and plain
containers only; a file that needs anything else is refused, never executed) and must be a
state dict of tensors. Its sha256 goes into the provenance of whatever uses it.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from medsyn.errors import ConfigError


class UnsafeWeightsError(ConfigError):
    """A weights file that holds Python objects other than tensors (possibly code); refused
    without unpickling them."""


def read_state_dict(path: str | os.PathLike, what: str, fix: str = "") -> dict[str, torch.Tensor]:
    """The ``{name: tensor}`` state dict stored in ``path``, loaded without running code.

    ``what`` names the file in messages (e.g. "Inception weights"); ``fix`` says what to give
    instead. A file holding Python objects other than tensors, a corrupt file and one that is
    not a state dict all raise :class:`ConfigError` naming the file (the first as
    :class:`UnsafeWeightsError`).
    """
    path = Path(path).expanduser()
    fix = f" {fix}" if fix else ""
    if not path.is_file():
        raise ConfigError(f"{what} {path}: file not found.{fix}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure to unpickle means the same to a user
        text = str(exc)
        # the weights_only unpickler names the GLOBAL it refused: a class or function, i.e. code
        if "GLOBAL" in text:
            raise UnsafeWeightsError(
                f"{what} {path} holds Python objects other than tensors; medsyn loads weight "
                "files with torch.load(weights_only=True) and will not unpickle code from them "
                f"(nothing in the file was run).{fix}") from None
        raise ConfigError(f"{what} {path} cannot be read as a PyTorch state dict "
                          f"({type(exc).__name__}): it is truncated, corrupt or not a file "
                          f"written by torch.save.{fix}") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not state or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise ConfigError(f"{what} {path} is not a state_dict of tensors (it holds a "
                          f"{type(state).__name__}).{fix}")
    return state
