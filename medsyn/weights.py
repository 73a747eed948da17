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


def _examples(keys: list[str], shown: int = 3) -> str:
    return ", ".join(keys[:shown]) + (", ..." if len(keys) > shown else "")


def fit_state_dict(state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], *,
                   what: str, path: str | os.PathLike, network: str,
                   head: set[str] = frozenset(), stem: set[str] = frozenset(),
                   partial: bool = False, partial_flag: str = "") -> dict[str, torch.Tensor]:
    """The tensors of ``state`` (a user's weights file) that load into ``network``, whose own
    state dict is ``expected``.

    A file of another network loads partly or not at all into a non-strict loader, which then
    trains from random weights while provenance names the file: here every tensor of
    ``expected`` must be in the file with its shape, and every tensor of the file in
    ``expected``, except the ``head`` tensors (a classifier for another number of classes:
    dropped, replaced) and the shapes of the ``stem`` tensors (adapted to another channel
    count by the loader). Anything else raises :class:`ConfigError` listing what differs,
    unless ``partial``: then only the tensors that fit are returned.
    """
    missing = sorted(k for k in expected if k not in state and k not in head)
    unexpected = sorted(k for k in state if k not in expected and k not in head)
    mismatched = sorted(k for k in state if k in expected and k not in head | stem
                        and tuple(state[k].shape) != tuple(expected[k].shape))
    if not (missing or unexpected or mismatched):
        return state
    if partial:
        return {k: v for k, v in state.items()
                if k in expected and k not in mismatched or k in head or k in stem}
    parts = []
    if missing:
        parts.append(f"{len(missing)} of its {len(expected)} tensors are missing from the file "
                     f"(e.g. {_examples(missing)})")
    if unexpected:
        parts.append(f"{len(unexpected)} tensors of the file are unexpected, {network} has "
                     f"no such layer (e.g. {_examples(unexpected)})")
    if mismatched:
        parts.append(f"{len(mismatched)} have another shape (e.g. {_examples(mismatched)})")
    opt_in = f", or pass {partial_flag} to load only the tensors that fit" if partial_flag else ""
    raise ConfigError(
        f"{what} {Path(path).expanduser()} do not fit {network}: {'; '.join(parts)}. The file "
        f"holds the weights of another network; give a state_dict of {network} saved with "
        f"torch.save{opt_in}.")
