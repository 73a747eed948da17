"""Where medsyn looks for data, weights and caches.

Every location can be given explicitly (function argument or CLI option); otherwise it comes
from an environment variable, otherwise from a per-user default. Nothing is hard-coded.

| variable                   | meaning                                                        |
|----------------------------|----------------------------------------------------------------|
| ``MEDSYN_DATA_ROOT``       | folder holding the datasets (``cxr3/``, ``medmnist/``, ...)    |
| ``MEDSYN_CACHE_DIR``       | decoded-array, feature and classifier caches                   |
| ``MEDSYN_INCEPTION_WEIGHTS`` | local torch-fidelity ``inception-v3-compat`` weights file    |
| ``MEDSYN_VGG19_WEIGHTS``   | local torchvision VGG19 weights for the SRGAN content loss     |
| ``MEDSYN_PROGRESS``        | ``auto`` (bar on a terminal, plain lines otherwise), ``bar``,  |
|                            | ``plain`` or ``off``                                           |
| ``MEDSYN_OFFLINE``         | ``1``: encoder sources never download weights (also when       |
|                            | ``HF_HUB_OFFLINE=1``); a missing file is a one-line error      |
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_DATA_ROOT = "MEDSYN_DATA_ROOT"
ENV_CACHE_DIR = "MEDSYN_CACHE_DIR"
ENV_INCEPTION_WEIGHTS = "MEDSYN_INCEPTION_WEIGHTS"
ENV_VGG19_WEIGHTS = "MEDSYN_VGG19_WEIGHTS"
ENV_PROGRESS = "MEDSYN_PROGRESS"
ENV_OFFLINE = "MEDSYN_OFFLINE"
# variables that make encoder sources offline: medsyn's own and the Hugging Face hub's
OFFLINE_VARIABLES = (ENV_OFFLINE, "HF_HUB_OFFLINE")
PROGRESS_MODES = ("auto", "bar", "plain", "off")


def _user_cache_base() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME")
    return Path(xdg) if xdg else Path.home() / ".cache"


def cache_dir() -> Path:
    """Folder for medsyn's caches (created on demand by the code that writes there)."""
    env = os.environ.get(ENV_CACHE_DIR)
    return Path(env).expanduser() if env else _user_cache_base() / "medsyn"


def default_data_root() -> Path:
    """Per-user data folder used when neither an explicit root nor ``MEDSYN_DATA_ROOT`` is set."""
    return cache_dir() / "data"


def data_roots(root: str | os.PathLike | None = None) -> list[Path]:
    """Folders to search for datasets, in order of precedence.

    An explicit ``root`` wins alone: if a user names a folder, silently falling back to another
    would hide their mistake.
    """
    if root is not None:
        return [Path(root).expanduser()]
    roots = []
    env = os.environ.get(ENV_DATA_ROOT)
    if env:
        roots.append(Path(env).expanduser())
    roots.append(default_data_root())
    return roots


def writable_data_root(root: str | os.PathLike | None = None) -> Path:
    """Where ``medsyn data fetch`` saves downloads: the first of :func:`data_roots`."""
    return data_roots(root)[0]


def env_path(variable: str) -> Path | None:
    value = os.environ.get(variable)
    return Path(value).expanduser() if value else None


def offline_variable() -> str | None:
    """The variable (``MEDSYN_OFFLINE``, else ``HF_HUB_OFFLINE``) that forbids downloading
    weights, when one is set to a true value (1, true, yes, on); None when downloads are
    allowed."""
    for variable in OFFLINE_VARIABLES:
        if os.environ.get(variable, "").strip().lower() in ("1", "true", "yes", "on"):
            return variable
    return None
