"""The training loop shared by every trainer: epochs, resume position, ``max_steps``, buffered
per-step statistics, NaN guard, health check, images/s, progress bar, periodic checkpoints."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from medsyn.errors import ConfigError, MedsynError
from medsyn.generators.engine.batches import BatchSource
from medsyn.generators.engine.distributed import DistInfo, all_reduce_mean_
from medsyn.generators.engine.files import JsonlLog
from medsyn.utils import progress


class TrainingDiverged(MedsynError):
    """A loss became NaN or infinite; training stopped before writing any further checkpoint."""

    def __init__(self, message: str, step: int, key: str):
        super().__init__(message)
        self.step = step
        self.key = key


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
    ``divergence_advice`` ends the message of :class:`TrainingDiverged` (a callable gets the
    last checkpoint written, None before the first).
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
    divergence_advice: str | Callable[[Path | None], str] = DIVERGENCE_ADVICE

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

    def _advice(self) -> str:
        if callable(self.divergence_advice):
            return self.divergence_advice(self.last_checkpoint)
        return self.divergence_advice

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
                + self._advice(), step=last["step"], key=bad)

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
