"""Small helpers shared across stages: hashing, atomic writes, progress bars."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path

from tqdm.auto import tqdm

# ".NAME.PID@HOST.RANDOM.tmp": the temporary file of an atomic write by process PID on HOST
# (older files: ".NAME.PID.RANDOM.tmp", or no PID at all)
_TEMP_FILE = re.compile(r"^\.(?P<name>.+?)\.(?:(?P<pid>\d+)(?:@(?P<host>[A-Za-z0-9-]+))?\.)?"
                        r"(?P<rand>[^.]+)\.tmp$")
# a PID means something only on its own machine: ranks of other nodes share a cache folder on a
# network file system, and their live writers must not look dead here; the hash keeps long names
# that differ only at the end (node-0001, node-0002) apart
_HOST = (re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:24] + "-"
         + hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8])
# what a full or read-only file system answers; the CLI turns these into one-line errors
DISK_FULL_ERRNOS = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
READ_ONLY_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS}


def file_digest(path: str | os.PathLike, algorithm: str = "sha256", chunk: int = 1 << 20) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


# seeds are 32-bit unsigned integers: what every generator medsyn seeds (numpy, torch, and
# the per-batch seeds derived from them) accepts
MAX_SEED = 2**32 - 1


def check_seed(seed, flag: str = "--seed") -> int:
    """``seed`` if it is an integer from 0 to :data:`MAX_SEED`, else a ConfigError naming
    ``flag``."""
    from medsyn.errors import ConfigError

    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"{flag} must be an integer from 0 to {MAX_SEED}, got {seed!r}.")
    return seed


# what a spreadsheet reads as the start of a formula in a CSV cell (OWASP "CSV injection")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value):
    """``value`` for a CSV cell that a spreadsheet opens: text starting like a formula (``=``,
    ``+``, ``-``, ``@``, tab, carriage return) gets a leading apostrophe, so that a run or class
    name such as ``=HYPERLINK(...)`` shows as text instead of running; numbers, and text that
    reads as a number (``-0.5``), are kept as they are."""
    if not isinstance(value, str) or not value.startswith(_FORMULA_START):
        return value
    try:
        float(value)
        return value
    except ValueError:
        return "'" + value


def display_path(path: str | os.PathLike) -> str:
    """``path`` as text that can always be printed and encoded: a name that is not valid UTF-8
    (Python keeps its bytes as surrogates) shows those bytes as ``\\xff`` escapes."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def is_inside(path: str | os.PathLike, folder: str | os.PathLike) -> bool:
    """Whether ``path``, links followed, lies inside ``folder`` (a file a document names, such
    as a figure of results.json, is accepted only from its own folder)."""
    try:
        Path(path).resolve().relative_to(Path(folder).resolve())
    except (ValueError, OSError, RuntimeError):
        return False
    return True


def is_utf8_name(path: str | os.PathLike) -> bool:
    """Whether every byte of ``path`` decodes as UTF-8 (else it cannot appear in JSON, HTML or
    a hash input as text without escaping)."""
    try:
        os.fspath(path).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


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

    A file whose writer process (the PID in its name) is gone from this machine is removed.
    Files of another machine (the host in the name: a cache shared by the nodes of a cluster)
    and files without a PID (written before temporary files were named with one) are removed
    when older than ``legacy_age_s`` (0 for a folder that only one process writes, such as a
    run folder).
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
        if m.group("host") not in (None, _HOST):
            pid = None                   # another machine's process: judged by age only
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
    the temporary file (``.NAME.PID@HOST.RANDOM.tmp``) of a killed writer is removed by
    :func:`remove_stale_temp_files`. A full disk raises :class:`DiskFullError` naming the folder
    and the space needed (``expected_size`` when the caller knows it).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}@{_HOST}.", suffix=".tmp",
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
        full = disk_full_cause(exc) if isinstance(exc, Exception) else None
        if full is not None and not isinstance(exc, DiskFullError):
            raise DiskFullError(path, expected_size, written) from full
        raise


def disk_full_cause(exc: BaseException) -> OSError | None:
    """The full-disk error (``ENOSPC`` / ``EDQUOT``) behind ``exc``, if any: ``exc`` itself or
    an exception it was raised from or while handling. torch's zip writer, for one, turns the
    ``OSError`` of a full disk into ``RuntimeError: ... unexpected pos``."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def write_json(path: str | os.PathLike, obj) -> None:
    with atomic_write(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=False, default=str)
        f.write("\n")


class PlainProgress:
    """Progress as plain lines on stderr, for logs and pipes (``nohup``, CI) where a tqdm bar
    prints nothing: a line every ``interval`` seconds while it runs (count, rate, ETA) and one
    when it ends, unless the whole stage took less than ``quiet_below`` seconds."""

    def __init__(self, iterable: Iterable | None = None, *, total: int | None = None,
                 desc: str = "", unit: str = "it", initial: int = 0, interval: float = 30.0,
                 quiet_below: float = 2.0, stream=None, **_):
        self.iterable = iterable
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)
        self.total, self.desc, self.unit = total, desc, unit
        self.n = self._initial = int(initial)
        self.interval, self.quiet_below = interval, quiet_below
        self.stream = stream if stream is not None else sys.stderr
        self.postfix = ""
        self._start = self._last = time.monotonic()
        self._printed = False
        self._closed = False

    def __iter__(self):
        for item in self.iterable:
            yield item
            self.update(1)
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def set_postfix(self, ordered_dict=None, refresh=True, **kwargs):
        items = {**(ordered_dict or {}), **kwargs}
        self.postfix = " ".join(f"{k}={v}" for k, v in items.items())

    def set_description(self, desc=None, refresh=True):
        self.desc = desc or ""

    def refresh(self):
        pass

    def _line(self, final: bool) -> str:
        elapsed = time.monotonic() - self._start
        done = self.n - self._initial
        rate = done / elapsed if elapsed > 0 else 0.0
        count = f"{self.n}/{self.total}" if self.total is not None else f"{self.n}"
        text = f"{self.desc}: {count} {self.unit} in {elapsed:.1f} s ({rate:.2f} {self.unit}/s"
        if not final and self.total is not None and rate > 0:
            text += f", about {(self.total - self.n) / rate:.0f} s left"
        text += ")" + (f" {self.postfix}" if self.postfix else "")
        return ("done " if final else "") + text

    def _emit(self, final: bool):
        print(self._line(final), file=self.stream, flush=True)
        self._printed = True
        self._last = time.monotonic()

    def update(self, n: int = 1):
        self.n += n
        if time.monotonic() - self._last >= self.interval:
            self._emit(final=False)

    def close(self):
        if self._closed:
            return
        self._closed = True
        if self._printed or time.monotonic() - self._start >= self.quiet_below:
            self._emit(final=True)


def progress_mode() -> str:
    """``MEDSYN_PROGRESS`` (``auto`` when unset); an unknown value falls back to ``auto``."""
    from medsyn.settings import ENV_PROGRESS, PROGRESS_MODES

    mode = os.environ.get(ENV_PROGRESS, "auto").strip().lower() or "auto"
    return mode if mode in PROGRESS_MODES else "auto"


def progress(iterable: Iterable | None = None, **kwargs):
    """Progress on stderr: a tqdm bar on a terminal, :class:`PlainProgress` lines otherwise
    (``MEDSYN_PROGRESS`` = ``auto`` | ``bar`` | ``plain`` | ``off`` overrides)."""
    mode = progress_mode()
    if mode == "auto":
        mode = "bar" if sys.stderr is not None and sys.stderr.isatty() else "plain"
    if mode == "plain":
        return PlainProgress(iterable, **kwargs)
    kwargs.setdefault("disable", True if mode == "off" else None)
    kwargs.setdefault("dynamic_ncols", True)
    kwargs.setdefault("leave", False)
    return tqdm(iterable, **kwargs)
