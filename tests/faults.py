"""Helpers shared by the fault and attack tests (tests/test_reliability*.py): tiny image
folders, the one-line CLI error check, the PID of a finished process, simulated kills and
full disks."""

from __future__ import annotations

import errno
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

TINY = dict(image_size=28, batch_size=8, g_width=4, d_width=4, noise_dim=8, device="cpu",
            quiet=True)
TINY_FLAGS = ["--image-size", "28", "--g-width", "4", "--d-width", "4", "--batch-size", "8",
              "--noise-dim", "8", "--device", "cpu"]


def make_image_folder(root: Path, per_class: int = 40, classes=("calm", "busy"),
                      seed: int = 0) -> Path:
    """Classes of smooth 28 px images (7x7 blocks of 4 px): ``root/<class>/<i>.png``."""
    rng = np.random.default_rng(seed)
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            base = rng.random((7, 7))
            img = np.kron(base, np.ones((4, 4))) * 150 + 60 * c
            Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(root / name / f"{i}.png")
    return root


def one_line_error(result, *needles) -> str:
    """The single ``medsyn: error:`` line of a failed CliRunner result (exit status 1, no
    traceback), checked to contain every needle."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception,
                                                                     SystemExit), result.exception
    errors = [line for line in result.output.splitlines() if line.startswith("medsyn: error:")]
    assert len(errors) == 1, result.output
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def dead_pid() -> str:
    """The PID of a process that has finished."""
    return subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()


def medsyn_subprocess(*args, timeout: float = 120, env: dict | None = None,
                      prelude: str = "") -> subprocess.CompletedProcess:
    """``python -m medsyn ARGS`` in a fresh process (for hangs and crashes a CliRunner cannot
    survive); ``prelude`` is Python run before the CLI (e.g. a monkeypatch)."""
    code = f"{prelude}\nfrom medsyn.cli import app\napp()"
    full_env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
                **(env or {})}
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=full_env)


class FullDisk(io.RawIOBase):
    """A file that takes ``room`` bytes and then fails as a full disk does (ENOSPC); what it
    took goes to ``inner``."""

    def __init__(self, inner, room: int):
        self.inner, self.room = inner, room

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        if len(data) > self.room:
            self.room = 0
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= len(data)
        return self.inner.write(data)

    def flush(self):
        self.inner.flush()
