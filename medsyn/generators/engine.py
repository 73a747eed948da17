"""Reusable training machinery: device and precision, DDP, batches, RNG, checkpoints, logs, loop.

Every trainer of medsyn (the image GANs here, SRGAN later) is built from these pieces so that
all of them share the same guarantees (see docs/training.md):

- :func:`resolve_precision`, :func:`configure_backends`,
  :func:`maybe_compile`, :func:`unwrap` -- where and how the networks run;
- :func:`init_distributed`, :class:`DistInfo`, :func:`wrap_ddp`, :func:`shutdown_distributed` --
  ``torchrun`` / DistributedDataParallel, rank 0 writes;
- :class:`BatchSource` -- shuffled, seeded batches of in-memory tensors (held on the device when
  they fit), partitioned across ranks by ``DistributedSampler``; resumable mid-epoch;
- :func:`capture_rng_state`, :func:`restore_rng_state`, :func:`seed_everything`;
- :func:`save_checkpoint` (atomic ``epochNNN.pt`` + ``last.pt``, keep the last K),
  :func:`prune_checkpoints`;
- :class:`JsonlLog` -- the per-step ``log.jsonl``;
- :class:`TrainingLoop` -- epochs, resume position, ``max_steps``, buffered per-step statistics,
  NaN guard, images/s, progress bar, periodic checkpoints and end-of-epoch hooks.
"""

from __future__ import annotations

import gc
import inspect
import json
import math
import os
import random
import re
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as torch_dist
from torch import nn

from medsyn.device import DEVICE_CHOICES, resolve_device  # noqa: F401 (re-exported)
from medsyn.errors import ConfigError, DataError, MedsynError
from medsyn.model_range import to_model_range, to_uint8  # noqa: F401 (re-exported)
from medsyn.utils import atomic_write, progress

CHECKPOINT_PATTERN = re.compile(r"^epoch(\d+)\.pt$")
LAST_CHECKPOINT = "last.pt"
LOG_FILE = "log.jsonl"
CONFIG_FILE = "config.json"

PRECISION_CHOICES = ("auto", "fp32", "bf16", "fp16")


class TrainingDiverged(MedsynError):
    """A loss became NaN or infinite; training stopped before writing any further checkpoint."""

    def __init__(self, message: str, step: int, key: str):
        super().__init__(message)
        self.step = step
        self.key = key


# ------------------------------------------------------------------ device and precision


@dataclass(frozen=True)
class Precision:
    """How forward passes run: ``fp32``, or autocast to ``bf16`` / ``fp16`` (with a grad scaler).

    Weights, optimizer state and losses stay float32 in every mode; only the forward
    computations inside :meth:`autocast` use the lower precision.
    """

    name: str
    device_type: str

    @property
    def dtype(self) -> torch.dtype:
        return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[self.name]

    @property
    def uses_grad_scaler(self) -> bool:
        return self.name == "fp16"

    def autocast(self):
        if self.name == "fp32":
            return nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def grad_scaler(self) -> torch.amp.GradScaler:
        """A scaler that is a pass-through unless the precision is fp16, so loops need no branch."""
        return torch.amp.GradScaler(self.device_type, enabled=self.uses_grad_scaler)


def resolve_precision(spec: str, device: torch.device) -> Precision:
    """``auto``: bf16 on a GPU that supports it, fp16 + grad scaling on older GPUs, fp32 on CPU."""
    text = str(spec).strip().lower()
    if text not in PRECISION_CHOICES:
        raise ConfigError(f"--precision must be one of {', '.join(PRECISION_CHOICES)}, "
                          f"got {spec!r}.")
    if text == "auto":
        if device.type == "cuda":
            text = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        else:
            text = "fp32"
    if text == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError(f"--precision bf16: GPU {torch.cuda.get_device_name(device)} does not "
                          "support bfloat16; use --precision fp16 or auto.")
    return Precision(text, device.type)


def configure_backends(device: torch.device, deterministic: bool = False) -> None:
    """cuDNN autotuning and TF32 on GPUs; ``deterministic`` trades speed for repeatable GPU runs."""
    if device.type != "cuda":
        return
    torch.backends.cudnn.benchmark = not deterministic
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.allow_tf32 = not deterministic
    torch.backends.cuda.matmul.allow_tf32 = not deterministic


def use_channels_last(spec: bool | None, device: torch.device) -> bool:
    """channels_last memory format: on by default on GPUs (tensor cores), off on CPU."""
    return device.type == "cuda" if spec is None else bool(spec)


def maybe_compile(module: nn.Module, enabled: bool) -> nn.Module:
    return torch.compile(module) if enabled else module


def unwrap(module: nn.Module) -> nn.Module:
    """The plain module under DistributedDataParallel and ``torch.compile`` wrappers."""
    while True:
        if isinstance(module, nn.parallel.DistributedDataParallel):
            module = module.module
        elif hasattr(module, "_orig_mod"):
            module = module._orig_mod
        else:
            return module


# ------------------------------------------------------------------ distributed


@dataclass(frozen=True)
class DistInfo:
    """This process's place in a ``torchrun`` job (rank 0 of 1 when not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    initialized_here: bool = False

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def distributed_env() -> DistInfo:
    """Rank and world size from the variables ``torchrun`` sets (none set: a single process)."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
    except ValueError as exc:
        raise ConfigError(f"malformed torchrun environment (WORLD_SIZE/RANK/LOCAL_RANK): {exc}") \
            from None
    return DistInfo(rank=rank, world_size=world, local_rank=local)


def init_distributed(device_spec: str = "auto") -> tuple[DistInfo, torch.device]:
    """Join the ``torchrun`` process group if there is one; NCCL on GPUs, gloo on CPU."""
    info = distributed_env()
    device = resolve_device(device_spec, info.local_rank if info.enabled else None)
    if not info.enabled:
        return info, device
    if device.type == "cuda":
        torch.cuda.set_device(device)
    created = False
    if not torch_dist.is_initialized():
        torch_dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        created = True
    return DistInfo(info.rank, info.world_size, info.local_rank, created), device


def shutdown_distributed(info: DistInfo) -> None:
    if info.initialized_here and torch_dist.is_initialized():
        # DDP wrappers still alive at interpreter exit can abort the process when they hold
        # gloo work of a destroyed group; collect them first
        gc.collect()
        torch_dist.destroy_process_group()


def wrap_ddp(module: nn.Module, info: DistInfo, device: torch.device) -> nn.Module:
    """DistributedDataParallel when running under torchrun, the module itself otherwise.

    Buffers are not broadcast: each rank keeps batch-norm statistics of its own batches (the
    usual data-parallel behaviour); rank 0's are the ones checkpointed.
    """
    if not info.enabled:
        return module
    ddp = nn.parallel.DistributedDataParallel
    kwargs = {"device_ids": [device.index] if device.type == "cuda" else None}
    # newer PyTorch renamed broadcast_buffers; syncing buffers once at construction is harmless
    # here (every rank builds identical batch-norm buffers)
    if "forward_sync_buffers" in inspect.signature(ddp.__init__).parameters:
        kwargs["forward_sync_buffers"] = False
    else:
        kwargs["broadcast_buffers"] = False
    return ddp(module, **kwargs)


def all_gather_objects(obj, info: DistInfo) -> list:
    if not info.enabled:
        return [obj]
    out = [None] * info.world_size
    torch_dist.all_gather_object(out, obj)
    return out


def all_reduce_mean_(tensor: torch.Tensor, info: DistInfo) -> torch.Tensor:
    if info.enabled:
        torch_dist.all_reduce(tensor, op=torch_dist.ReduceOp.SUM)
        tensor /= info.world_size
    return tensor


def barrier(info: DistInfo) -> None:
    if info.enabled:
        torch_dist.barrier()


# ------------------------------------------------------------------ batches


class _Length:
    """The only thing DistributedSampler needs of a dataset."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n


class BatchSource:
    """Seeded, shuffled mini-batches of in-memory tensors (images, labels, ...).

    The order of epoch ``e`` is ``torch.utils.data.DistributedSampler(seed=seed)`` with
    ``set_epoch(e)``: a pure function of (seed, epoch, rank, world size), so a run resumed in
    the middle of an epoch sees the same remaining batches (``skip``). Under torchrun each rank
    takes its share; ``batch_size`` is the global batch, each rank gets ``batch_size //
    world_size``. The last incomplete batch of an epoch is dropped (batch norm and the GAN losses
    assume full batches).

    ``on_device``: ``None`` holds the tensors on the training device when they take less than a
    quarter of its free memory (cxr3 at 112 px is 35 MB), else they stay in pinned host memory
    and each batch is copied asynchronously.
    """

    def __init__(self, tensors: Sequence[torch.Tensor], batch_size: int, *, device: torch.device,
                 seed: int, dist: DistInfo | None = None, shuffle: bool = True,
                 on_device: bool | None = None, what: str = "dataset"):
        from torch.utils.data import DistributedSampler

        dist = dist or DistInfo()
        if not tensors or any(len(t) != len(tensors[0]) for t in tensors):
            raise ValueError("tensors must be a non-empty sequence of equally long tensors")
        if batch_size < 1:
            raise ConfigError(f"batch size must be >= 1, got {batch_size}.")
        if batch_size % dist.world_size:
            raise ConfigError(
                f"--batch-size {batch_size} is not divisible by the {dist.world_size} processes "
                "of this torchrun job; each process takes an equal share.")
        self.n = len(tensors[0])
        self.batch_size = batch_size
        self.local_batch_size = batch_size // dist.world_size
        self.device = device
        self.sampler = DistributedSampler(_Length(self.n), num_replicas=dist.world_size,
                                          rank=dist.rank, shuffle=shuffle, seed=seed,
                                          drop_last=True)
        self.num_batches = len(self.sampler) // self.local_batch_size
        if self.num_batches == 0:
            raise DataError(
                f"{what} has {self.n} images, fewer than one batch of {batch_size}"
                + (f" ({self.local_batch_size} per process)" if dist.enabled else "")
                + "; lower --batch-size.")
        if on_device is None:
            on_device = device.type == "cpu" or _fits_on_device(tensors, device)
        self.on_device = bool(on_device)
        if self.on_device:
            self.tensors = [t.to(device) for t in tensors]
        else:
            pin = device.type == "cuda"
            self.tensors = [t.pin_memory() if pin else t for t in tensors]

    def epoch(self, epoch: int, skip: int = 0) -> Iterator[tuple[torch.Tensor, ...]]:
        """Batches of epoch ``epoch`` (0-based), leaving out the first ``skip`` ones."""
        self.sampler.set_epoch(epoch)
        order = torch.tensor(list(self.sampler), dtype=torch.long)
        if self.on_device:
            order = order.to(self.device)
        b = self.local_batch_size
        for i in range(skip, self.num_batches):
            idx = order[i * b:(i + 1) * b]
            if self.on_device:
                yield tuple(t[idx] for t in self.tensors)
            else:
                yield tuple(t[idx].pin_memory().to(self.device, non_blocking=True)
                            if self.device.type == "cuda" else t[idx] for t in self.tensors)


def _fits_on_device(tensors: Sequence[torch.Tensor], device: torch.device) -> bool:
    if device.type != "cuda":
        return False
    free, _ = torch.cuda.mem_get_info(device)
    return sum(t.numel() * t.element_size() for t in tensors) < free // 4


# ------------------------------------------------------------------ randomness


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch (CPU and every GPU)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def capture_rng_state() -> dict:
    """Every global random state a training step may draw from, in a ``weights_only``-loadable
    form (tensors, ints, lists)."""
    py = random.getstate()
    np_state = np.random.get_state()
    state = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": {"key": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "torch": torch.get_rng_state(),
        "cuda": None,
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    npst = state["numpy"]
    np.random.set_state(("MT19937", npst["key"].numpy().astype(np.uint32), npst["pos"],
                         npst["has_gauss"], npst["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        states = state["cuda"]
        for i in range(min(len(states), torch.cuda.device_count())):
            torch.cuda.set_rng_state(states[i], i)


# ------------------------------------------------------------------ checkpoint files


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
    from medsyn.generators.checkpoint import seal

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


# ------------------------------------------------------------------ the loop


@dataclass
class LoopState:
    """Where training stands: ``epoch`` epochs finished, ``batch_in_epoch`` batches of the next
    one done, ``step`` optimizer steps in total."""

    epoch: int = 0
    batch_in_epoch: int = 0
    step: int = 0

    @property
    def current_epoch(self) -> int:
        """1-based number of the epoch the newest weights belong to (as in ``epochNNN.pt``)."""
        return self.epoch if self.batch_in_epoch == 0 else self.epoch + 1

    @property
    def epoch_finished(self) -> bool:
        return self.batch_in_epoch == 0

    def as_dict(self) -> dict:
        return {"epoch": self.current_epoch, "epoch_finished": self.epoch_finished,
                "batch_in_epoch": self.batch_in_epoch, "step": self.step}

    @classmethod
    def from_checkpoint(cls, payload: dict) -> LoopState:
        epoch, step = int(payload["epoch"]), int(payload["step"])
        if payload.get("epoch_finished", True):
            return cls(epoch=epoch, batch_in_epoch=0, step=step)
        return cls(epoch=epoch - 1, batch_in_epoch=int(payload["batch_in_epoch"]), step=step)


StepFn = Callable[[tuple, LoopState], dict]
# --lr and --seed are fixed on --resume (a resumed run replays the same random streams), so the
# advice that works is a new run; trainers pass a version with the exact command
HEALTH_CHECK_HISTORY = 256
DIVERGENCE_ADVICE = ("Start a new run (another --out) with a lower --lr, e.g. half of it, or "
                     "--precision fp32; resuming would replay the same steps and diverge again.")


@dataclass
class TrainingLoop:
    """Runs ``step_fn`` over epochs of ``batches`` and does the bookkeeping around it.

    ``step_fn(batch, state)`` performs one optimisation step and returns a dict of 0-d tensors
    (detached; they may stay on the GPU). The loop stacks them, moves them to the host every
    ``flush_every`` steps (one synchronisation instead of one per value; ``None``: every step on
    CPU, every 25 on GPU), averages them across ranks, checks ``loss_keys`` for NaN/inf, appends
    ``{"step", "epoch", **stats, "images_per_s"}`` records to ``log``, and updates the progress bar.

    At each epoch end (and when ``max_steps`` stops training mid-epoch) it calls
    ``end_of_epoch(state)`` and, every ``checkpoint_every`` epochs, at the last epoch and at a
    ``max_steps`` stop, ``save(state) -> Path`` (called on every rank: it may gather; only rank
    0 is expected to write). A non-finite loss raises :class:`TrainingDiverged` naming the step;
    no checkpoint is written after it, so ``last.pt`` stays the last good one.
    ``step_callback(state)``, if given, runs after every step (benchmarks time steps with it).
    ``record_fields(step, epoch) -> dict``, if given, adds non-numeric fields to each log
    record (SR runs add their ``phase``); it must be a function of the step and epoch only.
    ``health_check(records) -> str | None``, if given, looks at the newest records of the log
    (at least the last :data:`HEALTH_CHECK_HISTORY`) after each flush and returns a warning
    when training has failed without a non-finite loss (GAN collapse); the first warning goes
    to stderr, into that step's log record (``"warning"``) and :attr:`warnings`.
    ``divergence_advice`` ends the message of :class:`TrainingDiverged`.
    """

    batches: BatchSource
    step_fn: StepFn
    epochs: int
    log: JsonlLog
    save: Callable[[LoopState], Path | None]
    loss_keys: Sequence[str] = ("loss_d", "loss_g")
    show_keys: Sequence[str] = ("loss_d", "loss_g")
    max_steps: int | None = None
    checkpoint_every: int = 1
    end_of_epoch: Callable[[LoopState], None] | None = None
    dist: DistInfo = field(default_factory=DistInfo)
    flush_every: int | None = None
    quiet: bool = False
    step_callback: Callable[[LoopState], None] | None = None
    last_checkpoint: Path | None = None
    record_fields: Callable[[int, int], dict] | None = None
    health_check: Callable[[Sequence[dict]], str | None] | None = None
    divergence_advice: str = DIVERGENCE_ADVICE

    def __post_init__(self):
        if self.flush_every is None:
            self.flush_every = 25 if self.batches.device.type == "cuda" else 1
        # a warning logged before a resume stays a warning of the run
        self.warnings: list[str] = [r["warning"] for r in self.log.records if r.get("warning")]
        self._pending: list[tuple[int, int, list[str], torch.Tensor]] = []
        self._window_start = time.perf_counter()
        self._bar = None

    # -- public

    def run(self, state: LoopState) -> LoopState:
        if state.epoch >= self.epochs:
            raise ConfigError(
                f"nothing to train: the run has finished {state.epoch} of --epochs "
                f"{self.epochs}. Pass a larger --epochs to train further.")
        if self.max_steps is not None and state.step >= self.max_steps:
            raise ConfigError(f"nothing to train: the run is at step {state.step}, --max-steps is "
                              f"{self.max_steps}.")
        self._window_start = time.perf_counter()
        while state.epoch < self.epochs:
            stopped = self._run_epoch(state)
            if state.epoch_finished:
                state_is_last = state.epoch >= self.epochs or stopped
                due = state.epoch % self.checkpoint_every == 0 or state_is_last
            else:
                due = True      # a max_steps stop mid-epoch: save where we are
            if self.end_of_epoch is not None:
                self.end_of_epoch(state)
            if due:
                self.last_checkpoint = self.save(state) or self.last_checkpoint
            self._window_start = time.perf_counter()
            if stopped:
                break
        return state

    # -- internals

    def _run_epoch(self, state: LoopState) -> bool:
        epoch_no = state.epoch + 1
        self._bar = progress(total=self.batches.num_batches, initial=state.batch_in_epoch,
                             desc=f"epoch {epoch_no}/{self.epochs}", unit="step")
        stopped = False
        try:
            for batch in self.batches.epoch(state.epoch, skip=state.batch_in_epoch):
                stats = self.step_fn(batch, state)
                state.step += 1
                state.batch_in_epoch += 1
                keys = list(stats)
                row = torch.stack([stats[k].detach().float().reshape(()) for k in keys])
                self._pending.append((state.step, epoch_no, keys, row))
                if len(self._pending) >= self.flush_every:
                    self._flush()
                self._bar.update(1)
                if self.step_callback is not None:
                    self.step_callback(state)
                if self.max_steps is not None and state.step >= self.max_steps:
                    stopped = True
                    break
            self._flush()
        finally:
            self._bar.close()
        if state.batch_in_epoch >= self.batches.num_batches:
            state.epoch += 1
            state.batch_in_epoch = 0
        if not self.quiet and self.dist.is_main and self.log.records:
            self._print_summary(epoch_no, state)
        return stopped

    def _flush(self) -> None:
        if not self._pending:
            return
        rows = torch.stack([r for *_, r in self._pending])
        all_reduce_mean_(rows, self.dist)
        values = rows.cpu().tolist()          # the one host synchronisation of the window
        now = time.perf_counter()
        elapsed = max(now - self._window_start, 1e-9)
        self._window_start = now
        images_per_s = len(self._pending) * self.batches.batch_size / elapsed
        records = []
        bad = None
        for (step, epoch, keys, _), vals in zip(self._pending, values, strict=True):
            record = {"step": step, "epoch": epoch}
            if self.record_fields is not None:
                record.update(self.record_fields(step, epoch))
            record.update(zip(keys, vals, strict=True))
            record["images_per_s"] = images_per_s
            records.append(record)
            bad = next((k for k in self.loss_keys
                        if k in record and not math.isfinite(record[k])), None)
            if bad is not None:
                break
        self._pending.clear()
        if self.health_check is not None and not self.warnings and bad is None:
            warning = self.health_check(self.log.records[-HEALTH_CHECK_HISTORY:] + records)
            if warning:
                records[-1]["warning"] = warning
                self.warnings.append(warning)
                if self.dist.is_main:
                    from tqdm.auto import tqdm
                    tqdm.write(f"warning: step {records[-1]['step']}: {warning}", file=sys.stderr)
        self.log.extend(records)
        last = records[-1]
        if self._bar is not None:
            self._bar.set_postfix({**{k: f"{last[k]:.3f}" for k in self.show_keys if k in last},
                                   "img/s": f"{images_per_s:.0f}"}, refresh=False)
        if bad is not None:
            where = (f"the last good checkpoint, {self.last_checkpoint}, is untouched"
                     if self.last_checkpoint else "no checkpoint had been written yet")
            raise TrainingDiverged(
                f"training diverged: {bad} = {last[bad]} at step {last['step']} (epoch "
                f"{last['epoch']}); stopped there and wrote no checkpoint after it ({where}). "
                + self.divergence_advice, step=last["step"], key=bad)

    def _print_summary(self, epoch_no: int, state: LoopState) -> None:
        recent = []
        for r in reversed(self.log.records):       # this epoch's records are the newest
            if r["epoch"] != epoch_no:
                break
            recent.append(r)
        if not recent:
            return
        parts = [f"epoch {epoch_no}/{self.epochs}", f"step {state.step}"]
        for k in self.show_keys:
            vals = [r[k] for r in recent if k in r]
            if vals:
                parts.append(f"{k} {sum(vals) / len(vals):.3f}")
        total_time = sum(self.batches.batch_size / r["images_per_s"] for r in recent
                         if r.get("images_per_s"))
        if total_time > 0:
            parts.append(f"{len(recent) * self.batches.batch_size / total_time:.0f} img/s")
        from tqdm.auto import tqdm
        tqdm.write("  ".join(parts), file=sys.stderr)
