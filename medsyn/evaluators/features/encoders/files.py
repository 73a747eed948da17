"""The files of encoders users bring: a local file or folder when one is given, else the one the
library's own download puts in its cache (unless ``MEDSYN_OFFLINE=1`` or ``HF_HUB_OFFLINE=1``);
read without running code (safetensors, or ``torch.load(weights_only=True)``), whichever way
they came, and checksummed for the provenance and the real-feature cache key."""

from __future__ import annotations

import hashlib
import importlib
import os
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from medsyn.errors import ConfigError, MedsynError
from medsyn.settings import ENV_OFFLINE, offline_variable
from medsyn.utils import file_digest
from medsyn.weights import UnsafeWeightsError, read_state_dict

_DIGESTS: dict[tuple, str] = {}
_CACHE_ONLY_LOCK = threading.RLock()


def digest(path: Path) -> str:
    """sha256 of a file, remembered per (path, size, mtime) for the session."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        _DIGESTS[key] = file_digest(path)
    return _DIGESTS[key]


def folder_digest(folder: Path) -> str:
    """One sha256 over the names and sha256s of every file in a model folder (weights,
    config, preprocessor config): any change to any of them changes it."""
    h = hashlib.sha256()
    for p in sorted(q for q in folder.rglob("*") if q.is_file() and ".cache" not in q.parts):
        h.update(f"{p.relative_to(folder).as_posix()}\0{digest(p)}\n".encode())
    return h.hexdigest()


def downloaded(what: str, fetch, place: str, from_cache=None):
    """``fetch()``: the library's own download of the weights of ``what``. Offline
    (``MEDSYN_OFFLINE=1`` or ``HF_HUB_OFFLINE=1``) it is not called (``from_cache()``, a
    look-up of the library's cache that never uses the network, is, when given), and that,
    like a failed download, is a one-line error ending with ``place`` (which file to put
    where, or which option to pass)."""
    variable = offline_variable()
    if variable is not None:
        if from_cache is not None:
            try:
                return from_cache()
            except MedsynError:
                raise
            except Exception:  # noqa: BLE001 - not in the cache, whatever the library says
                pass
        raise ConfigError(f"{what}: not found locally, and {variable} is set, so nothing is "
                          f"downloaded. {place}")
    try:
        return fetch()
    except MedsynError:
        raise
    except Exception as exc:  # noqa: BLE001 - no network, an HTTP error, a proxy: all the same
        first = (str(exc).strip().splitlines() or [""])[0][:160]
        raise ConfigError(f"{what}: the download failed ({type(exc).__name__}: {first}). "
                          f"{place} (set {ENV_OFFLINE}=1 to never try downloading).") from None


@contextmanager
def cache_only() -> Iterator[None]:
    """Within it, the hub libraries read their caches and never the network: huggingface_hub's
    offline switch (its ``constants.HF_HUB_OFFLINE``, read on every request) is on, and
    ``torch.hub.download_url_to_file`` (behind ``load_state_dict_from_url``) refuses. For
    libraries such as open_clip, which have no ``local_files_only`` of their own.

    The switches are process-wide, so one thread at a time holds them (a lock), and a nested
    use in the same thread leaves them to the outermost."""
    with _CACHE_ONLY_LOCK:
        try:
            import huggingface_hub.constants as hub_constants
        except ImportError:
            hub_constants = None
        saved_offline = getattr(hub_constants, "HF_HUB_OFFLINE", None)
        saved_download = torch.hub.download_url_to_file

        def refuse(url, dst, *args, **kwargs):
            raise OSError(f"{url} is not in the cache (offline)")
        torch.hub.download_url_to_file = refuse
        if hub_constants is not None:
            hub_constants.HF_HUB_OFFLINE = True
        try:
            yield
        finally:
            torch.hub.download_url_to_file = saved_download
            if hub_constants is not None:
                hub_constants.HF_HUB_OFFLINE = saved_offline


def hub_cache_path(url: str, file_name: str | None = None) -> Path:
    """Where ``torch.hub.load_state_dict_from_url`` - torch-fidelity's and torchvision's
    download - keeps ``url``: ``$TORCH_HOME/hub/checkpoints/`` under ``file_name``, default the
    URL's base name."""
    return Path(torch.hub.get_dir()) / "checkpoints" / (file_name or url.rsplit("/", 1)[1])


def hub_cache_file(url: str, what: str, how: str, file_name: str | None = None) -> Path:
    """The file of ``url`` in the torch hub cache (:func:`hub_cache_path`), downloaded there
    when missing. ``how``: the other way to give the file (an option)."""
    path = hub_cache_path(url, file_name)
    if path.is_file():
        return path

    def fetch():
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(url, str(path), progress=False)
        return path
    return downloaded(what, fetch, f"Place {url} at {path}, or {how}.")


def hub_repo_cache(repo: str) -> Path:
    """Where the Hugging Face hub keeps ``repo``'s files (``HF_HUB_CACHE``, from ``HF_HOME``):
    the folder ``hf download REPO`` fills, which ``local_files_only`` reads offline."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE) / f"models--{repo.replace('/', '--')}"


def hub_file(repo: str, names: list[str], revision: str | None, what: str, give: str) -> Path:
    """The first of ``names`` that the Hugging Face hub's ``hf_hub_download`` finds in
    ``repo`` (the download timm uses), in the hub's cache; offline, the first already there
    (``local_files_only=True``), else a one-line error naming the repo, the file, the cache
    folder and ``give`` (the other way to give the file)."""
    import huggingface_hub
    from huggingface_hub.errors import EntryNotFoundError

    def fetch(local_only: bool) -> Path:
        for name in names[:-1]:
            try:
                return Path(huggingface_hub.hf_hub_download(repo, name, revision=revision,
                                                            local_files_only=local_only))
            except EntryNotFoundError:          # not in the repo, or not in the cache
                continue
        return Path(huggingface_hub.hf_hub_download(repo, names[-1], revision=revision,
                                                    local_files_only=local_only))
    place = (f"On a machine with internet, hf download {repo} {names[0]} puts it in "
             f"{hub_repo_cache(repo)}: copy that folder to the same path here; or {give}.")
    return downloaded(f"{what} ({' or '.join(names)} of the Hugging Face hub repo {repo})",
                      lambda: fetch(False), place, from_cache=lambda: fetch(True))


def local_file(path: str | os.PathLike | None, what: str, how_to_get: str) -> Path:
    """``path`` as an existing file, else a one-line error naming it and how to get it."""
    if path is None or not str(path).strip():
        raise ConfigError(f"{what}: no weights file given. {how_to_get}")
    p = Path(str(path).strip()).expanduser()
    if not p.is_file():
        raise ConfigError(f"{what} {p}: file not found. {how_to_get}")
    return p


def local_folder(path: str | os.PathLike, what: str, how_to_get: str,
                 needs: tuple[str, ...] = ("config.json",)) -> Path:
    """``path`` as an existing model folder holding ``needs``, else a one-line error."""
    p = Path(str(path).strip()).expanduser()
    if not p.is_dir():
        raise ConfigError(f"{what} {p}: folder not found (a Hugging Face repo id, "
                          f"OWNER/NAME, is downloaded instead). {how_to_get}")
    for name in needs:
        if not (p / name).is_file():
            raise ConfigError(f"{what} {p / name}: file not found in the model folder. "
                              f"{how_to_get}")
    return p


def read_weights(path: Path, what: str, fix: str = "") -> dict[str, torch.Tensor]:
    """A state dict from ``.safetensors`` (read by safetensors) or a ``torch.save`` file (read
    with ``weights_only=True``). A TorchScript archive or a pickled module is refused without
    running it, with ``fix`` (the one-line conversion) in the message."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except Exception as exc:  # noqa: BLE001 - a damaged file means the same to a user
            raise ConfigError(f"{what} {path} cannot be read as safetensors "
                              f"({type(exc).__name__}: {str(exc)[:120]}). {fix}") from None
    if _is_torchscript(path):
        raise UnsafeWeightsError(
            f"{what} {path} is a TorchScript archive: loading it runs the code it holds, so "
            f"medsyn refuses it (nothing in the file was run). {fix}")
    return read_state_dict(path, what, fix)


def _is_torchscript(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as z:
            return any(n.endswith("/constants.pkl") or n.split("/")[-2:-1] == ["code"]
                       for n in z.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def require_safe_loader(library: str, loader, parameter: str, fix: str, *,
                        torch_default_suffices: bool = True) -> None:
    """Refuse a library's own weight loading when it could unpickle code: the ``loader``
    function must take ``parameter`` (``weights_only``), or (``torch_default_suffices``)
    torch must default to ``weights_only=True`` (torch >= 2.6). Checked before any download."""
    import inspect

    try:
        takes_it = parameter in inspect.signature(loader).parameters
    except (TypeError, ValueError):
        takes_it = False
    major, minor = (int(part) for part in torch.__version__.split(".")[:2])
    if takes_it or (torch_default_suffices and (major, minor) >= (2, 6)):
        return
    raise ConfigError(f"{library} loads its pretrained weights with torch.load's pickle on "
                      f"torch {torch.__version__} (no {parameter}), which can run code from "
                      f"the file, so medsyn does not use it. {fix}")


def need_package(module: str, extra: str, what: str):
    """Import an optional package, or a one-line error saying which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(f"{what} needs the Python package {module!r} ({exc.msg}); install "
                          f"it with: pip install 'medsyn[{extra}]'.") from None
