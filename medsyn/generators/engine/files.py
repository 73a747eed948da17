"""The files a trainer writes into its run folder: ``epochNNN.pt`` / ``last.pt`` (atomic, sealed
with their digest, the newest K kept) and the per-step ``log.jsonl``."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

import torch

from medsyn.generators.checkpoint import seal
from medsyn.utils import atomic_write

CHECKPOINT_PATTERN = re.compile(r"^epoch(\d+)\.pt$")
LAST_CHECKPOINT = "last.pt"
LOG_FILE = "log.jsonl"
CONFIG_FILE = "config.json"


def checkpoint_path(run_dir: str | os.PathLike, epoch: int) -> Path:
    return Path(run_dir) / f"epoch{epoch:03d}.pt"


def list_checkpoints(run_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    """``(epoch, path)`` of the ``epochNNN.pt`` files of a run, oldest first."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in run_dir.iterdir()
             if (m := CHECKPOINT_PATTERN.match(p.name))]
    return sorted(found)


def save_checkpoint(payload: dict, run_dir: str | os.PathLike, epoch: int,
                    keep_last: int = 0) -> Path:
    """Write ``epochNNN.pt`` and ``last.pt`` atomically, then keep only the newest ``keep_last``
    ``epochNNN.pt`` files (0 keeps all).

    Each file is written to a temporary name, fsynced and renamed, so a crash at any moment
    leaves the previous checkpoints intact. ``last.pt`` is a hard link to the new file where the
    file system allows it (no second copy is written), a copy otherwise.
    """
    run_dir = Path(run_dir)
    path = checkpoint_path(run_dir, epoch)
    payload = seal(payload)
    with atomic_write(path, expected_size=_state_bytes(payload)) as f:
        torch.save(payload, f)
    _atomic_link_or_copy(path, run_dir / LAST_CHECKPOINT)
    prune_checkpoints(run_dir, keep_last, protect=(path,))
    return path


def _state_bytes(obj) -> int:
    """Bytes of the tensors in ``obj``: about the size its checkpoint file will have."""
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(_state_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_state_bytes(v) for v in obj)
    return 0


def _atomic_link_or_copy(src: Path, dst: Path) -> None:
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.link.tmp")
    try:
        tmp.unlink(missing_ok=True)
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)


def prune_checkpoints(run_dir: str | os.PathLike, keep_last: int,
                      protect: Sequence[Path] = ()) -> list[Path]:
    """Delete all but the newest ``keep_last`` ``epochNNN.pt`` files; returns what was deleted."""
    if keep_last <= 0:
        return []
    protected = {Path(p).resolve() for p in protect}
    found = list_checkpoints(run_dir)
    removed = []
    for _, path in found[:-keep_last]:
        if path.resolve() not in protected:
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


# ------------------------------------------------------------------ log.jsonl


def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class JsonlLog:
    """The run's ``log.jsonl``: one JSON object per step, appended and flushed as training goes.

    ``records`` (from a checkpoint, on resume) replace the file's content first, so steps logged
    after that checkpoint by an interrupted run disappear and the log equals that of an
    uninterrupted run. Non-finite floats are written as ``null`` (JSON has no NaN).
    ``enabled=False`` (ranks other than 0) keeps the records in memory and writes nothing.
    """

    def __init__(self, path: str | os.PathLike, records: Sequence[dict] = (), *,
                 enabled: bool = True):
        self.path = Path(path)
        self.records: list[dict] = [dict(r) for r in records]
        self.enabled = enabled
        if enabled:
            with atomic_write(self.path, "w") as f:
                for r in self.records:
                    f.write(self._line(r))

    @staticmethod
    def _line(record: dict) -> str:
        return json.dumps({k: _json_safe(v) for k, v in record.items()}) + "\n"

    def extend(self, records: Sequence[dict]) -> None:
        self.records.extend(records)
        if self.enabled and records:
            with open(self.path, "a") as f:
                f.write("".join(self._line(r) for r in records))
                f.flush()


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]
