"""Small helpers shared across stages: hashing, atomic writes, progress bars."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path

from tqdm.auto import tqdm

# ".NAME.PID.RANDOM.tmp": the temporary file of an atomic write by process PID
_TEMP_FILE = re.compile(r"^\.(?P<name>.+?)\.(?:(?P<pid>\d+)\.)?(?P<rand>[^.]+)\.tmp$")
# what a full or read-only file system answers; the CLI turns these into one-line errors
DISK_FULL_ERRNOS = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
READ_ONLY_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS}


def file_digest(path: str | os.PathLike, algorithm: str = "sha256", chunk: int = 1 << 20) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def format_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def free_bytes(folder: str | os.PathLike) -> int | None:
    """Free space of the file system holding ``folder`` (or its nearest existing parent)."""
    path = Path(folder).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None


class DiskFullError(OSError):
    """A write ran out of space; the message names the folder and the space needed.

    An ``OSError`` (errno ENOSPC) so that code catching disk problems still does; the CLI prints
    it as one line (see :mod:`medsyn.clitools`).
    """

    def __init__(self, path: Path, needed: int | None, written: int | None):
        folder = path.parent
        free = free_bytes(folder)
        if needed:
            need = f"about {format_bytes(needed)} was needed"
        elif written:
            need = f"more than the {format_bytes(written)} written before the disk filled " \
                   "was needed"
        else:
            need = "the space needed is unknown"
        have = "" if free is None else f", {format_bytes(free)} is free there"
        super().__init__(errno.ENOSPC,
                         f"disk full while writing {path.name} in {folder}: {need}{have}. "
                         "Earlier files were kept and the partial file was removed; free some "
                         "space there or write to another folder", str(path))
        self.needed = needed


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:          # exists but belongs to someone else
        return True
    return True


def remove_stale_temp_files(folder: str | os.PathLike, *,
                            legacy_age_s: float = 24 * 3600) -> list[Path]:
    """Delete the temporary files (``.NAME.*.tmp``) that killed atomic writes left in ``folder``.

    A file whose writer process (the PID in its name) is gone is removed. Files without a PID
    (written before temporary files were named with one) are removed when older than
    ``legacy_age_s`` (0 for a folder that only one process writes, such as a run folder).
    Returns the removed paths.
    """
    folder = Path(folder)
    removed = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    now = time.time()
    for p in entries:
        m = _TEMP_FILE.match(p.name)
        if m is None or not p.is_file() or p.is_symlink():
            continue
        pid = m.group("pid")
        try:
            if pid is not None:
                if _pid_alive(int(pid)):
                    continue
            elif now - p.stat().st_mtime < legacy_age_s:
                continue
        except OSError:
            continue
        try:
            p.unlink()
            removed.append(p)
        except OSError:
            pass
    return removed


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", *, expected_size: int | None = None):
    """Write to a temporary file in the same folder, fsync, then rename over ``path``.

    A crash at any moment leaves either the old file or the complete new one, never a torn file;
    the temporary file (``.NAME.PID.RANDOM.tmp``) of a killed writer is removed by
    :func:`remove_stale_temp_files`. A full disk raises :class:`DiskFullError` naming the folder
    and the space needed (``expected_size`` when the caller knows it).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp",
                               dir=path.parent)
    try:
        # mkstemp creates 0600 files; give the result the permissions open() would have
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            written = os.path.getsize(tmp)
        except OSError:
            written = None
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError) and not isinstance(exc, DiskFullError) \
                and exc.errno in DISK_FULL_ERRNOS:
            raise DiskFullError(path, expected_size, written) from exc
        raise


def write_json(path: str | os.PathLike, obj) -> None:
    with atomic_write(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=False, default=str)
        f.write("\n")


def progress(iterable: Iterable | None = None, **kwargs):
    """A tqdm progress bar on stderr that hides itself when stderr is not a terminal."""
    kwargs.setdefault("disable", None)
    kwargs.setdefault("dynamic_ncols", True)
    kwargs.setdefault("leave", False)
    return tqdm(iterable, **kwargs)
