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
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_DATA_ROOT = "MEDSYN_DATA_ROOT"
ENV_CACHE_DIR = "MEDSYN_CACHE_DIR"
ENV_INCEPTION_WEIGHTS = "MEDSYN_INCEPTION_WEIGHTS"
ENV_VGG19_WEIGHTS = "MEDSYN_VGG19_WEIGHTS"
ENV_PROGRESS = "MEDSYN_PROGRESS"
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
