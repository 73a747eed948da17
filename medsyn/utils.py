"""Small helpers shared across stages: hashing, atomic writes, progress bars."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path

from tqdm.auto import tqdm


def file_digest(path: str | os.PathLike, algorithm: str = "sha256", chunk: int = 1 << 20) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb"):
    """Write to a temporary file in the same folder, fsync, then rename over ``path``.

    A crash at any moment leaves either the old file or the complete new one, never a torn file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
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
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


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
