"""A training run's folder and its continuity, the same for every trainer.

- :func:`locked_run_dir`: one trainer per run folder at a time (a second one is refused with
  the first one's process id);
- :func:`open_run_dir`: never start a fresh run over an existing one; clean what killed writes
  left behind;
- :func:`seed_run`: the seed of each process;
- :func:`check_resume_data`: a run resumes on the data it was trained on, or not at all;
- :func:`training_state` / :func:`restore_training_state`: the networks, optimizers, grad scaler
  and random streams a checkpoint holds, so that a resumed run continues bit for bit;
- :func:`write_run_config`: ``config.json`` (options + what they resolved to);
- :func:`say`, :func:`divergence_advice`: what the trainer tells the user.

The files themselves (``epochNNN.pt`` / ``last.pt``, ``log.jsonl``) are written by
:mod:`medsyn.generators.engine.files`.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from medsyn import __version__
from medsyn.errors import CheckpointError, ConfigError
from medsyn.generators.config import BaseTrainConfig
from medsyn.generators.engine import (
    CONFIG_FILE,
    LAST_CHECKPOINT,
    LOG_FILE,
    DistInfo,
    LoopState,
    Precision,
    all_gather_objects,
    capture_rng_state,
    list_checkpoints,
    restore_rng_state,
    seed_everything,
    unwrap,
)
from medsyn.utils import remove_stale_temp_files, write_json

log = logging.getLogger(__name__)

RUN_MARKERS = (LAST_CHECKPOINT, CONFIG_FILE, LOG_FILE)
LOCK_FILE = ".medsyn-lock"
# a run resumed by a different number of processes cannot replay its random streams; each
# process then starts from a seed that depends on where the run stands
RESEED_STRIDE = 1_000_003


def say(config: BaseTrainConfig, dist: DistInfo, text: str) -> None:
    """A line on stderr from rank 0, unless ``--quiet``."""
    if dist.is_main and not config.quiet:
        from tqdm.auto import tqdm

        tqdm.write(text, file=sys.stderr)


@contextmanager
def locked_run_dir(config: BaseTrainConfig, dist: DistInfo) -> Iterator[None]:
    """Hold the run folder of ``config`` for this training (rank 0), so that a second
    ``medsyn train`` into the same folder, fresh or ``--resume``, is refused instead of writing
    duplicate steps into log.jsonl and overwriting the other run's checkpoints.

    An exclusive ``flock`` on ``RUN/.medsyn-lock``, which holds the process id and start time of
    the holder; the operating system releases it when the process ends, however it ends, so a
    killed run never leaves a stale lock. Where the file system has no locks (some network file
    systems) training goes on with a warning.
    """
    if not dist.is_main:
        yield
        return
    try:
        import fcntl
    except ImportError:              # not POSIX: no lock
        yield
        return
    run_dir = Path(config.out)
    check_run_dir(run_dir, config.resume)    # a refused run changes nothing, not even the lock
    created = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    previous_holder = None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 200).decode("utf-8", "replace").split()
            pid = holder[0] if holder else "?"
            since = f", started {holder[1]}" if len(holder) > 1 else ""
            raise ConfigError(
                f"run folder {run_dir} is being trained by process {pid}{since}; nothing was "
                "changed. Wait for that training to finish (or stop it), or choose another "
                "--out.") from None
        except OSError as exc:
            log.warning("cannot lock run folder %s (%s); a second training into it would not be "
                        "noticed", run_dir, exc.strerror)
        previous_holder = os.pread(fd, 200, 0)
        _write_holder(fd, f"{os.getpid()} {time.strftime('%Y-%m-%dT%H:%M:%S')}\n".encode())
        yield
    finally:
        # the holder line means something only while the lock is held; putting the old one
        # back keeps a refused resume from changing the content of any file of the run folder
        # (a folder of a medsyn without locks gains an empty lock file)
        if previous_holder is not None:
            _write_holder(fd, previous_holder)
        # the file stays (removing a lock file others may have opened would let two
        # processes lock two different files), unless it is all this run wrote
        try:
            if created and [p.name for p in run_dir.iterdir()] == [LOCK_FILE]:
                path.unlink()
                run_dir.rmdir()
        except OSError:
            pass
        os.close(fd)


def _write_holder(fd: int, text: bytes) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, text, 0)


def check_run_dir(run_dir: Path, resume: str | None) -> str | None:
    """Never start a fresh run over an existing one; returns a note when the folder holds a run
    that was stopped before its first checkpoint (nothing to resume, so it starts again)."""
    if resume and Path(resume).expanduser().resolve().parent == run_dir.resolve():
        return None
    checkpoints = [p.name for _, p in list_checkpoints(run_dir)]
    if (run_dir / LAST_CHECKPOINT).exists() or checkpoints:
        found = [m for m in RUN_MARKERS if (run_dir / m).exists()] + checkpoints
        advice = (f"continue it with --resume {run_dir / LAST_CHECKPOINT}"
                  if (run_dir / LAST_CHECKPOINT).exists() else "delete it")
        raise ConfigError(
            f"run folder {run_dir} already holds a run ({', '.join(found[:4])}); nothing was "
            f"overwritten. Choose another --out, or {advice}.")
    found = [m for m in RUN_MARKERS if (run_dir / m).exists()]
    if found:
        return (f"note: {run_dir} holds a run stopped before its first checkpoint "
                f"({', '.join(found)}); nothing to resume, starting it again from scratch.")
    return None


def prepare_run_dir(run_dir: Path) -> None:
    """Remove what killed writes left behind (``.epoch002.pt.*.tmp`` and the like): the run
    folder belongs to this run, so every temporary file in it is stale unless the process
    named in it still runs (two processes writing one run folder is a mistake that should not
    also crash the other one)."""
    for folder in (run_dir, run_dir / "samples"):
        removed = remove_stale_temp_files(folder, legacy_age_s=0)
        for path in removed:
            log.info("removed %s, left by an interrupted write", path)


def open_run_dir(config: BaseTrainConfig, dist: DistInfo) -> Path:
    """The run folder of ``config``, checked (:func:`check_run_dir`) and cleaned
    (:func:`prepare_run_dir`) by rank 0."""
    run_dir = Path(config.out)
    if dist.is_main:
        note = check_run_dir(run_dir, config.resume)
        if note:
            say(config, dist, note)
        prepare_run_dir(run_dir)
    return run_dir


def seed_run(config: BaseTrainConfig, dist: DistInfo) -> None:
    """Seed every random stream of this process: ``--seed`` plus the rank."""
    seed_everything(config.seed + dist.rank)


def check_resume_data(payload: dict, dataset: dict, path: str) -> None:
    """Refuse to resume a checkpoint on other data than it was trained on (classes, image size,
    channels, then the fingerprint of pixels and labels)."""
    saved = payload["dataset"]
    for key, what in (("class_names", "classes"), ("image_size", "image size"),
                      ("channels", "channels")):
        if saved.get(key) != dataset[key]:
            raise CheckpointError(
                f"cannot resume {path}: it was trained on {saved.get('name')}/"
                f"{saved.get('split')} with {what} {saved.get(key)!r}, but the dataset now "
                f"loaded ({dataset['name']}/{dataset['split']}) has {dataset[key]!r}. Resume "
                "with the same data, or start a new run.")
    if saved.get("fingerprint") != dataset["fingerprint"]:
        raise CheckpointError(
            f"cannot resume {path}: the pixels or labels of {dataset['name']}/{dataset['split']} "
            f"differ from those it was trained on (fingerprint {dataset['fingerprint'][:12]}... "
            f"vs {str(saved.get('fingerprint'))[:12]}...). Resume with the same data, or start a "
            "new run.")


def training_state(dist: DistInfo, networks: Mapping[str, nn.Module | None],
                   optimizers: Mapping[str, torch.optim.Optimizer | None],
                   scaler: torch.amp.GradScaler, precision: Precision) -> dict | None:
    """What a checkpoint holds to continue bit for bit: ``models``, ``optimizers``,
    ``grad_scaler``, ``precision``, ``world_size`` and every process's ``rng`` state.

    Called on every rank (the random states are gathered); returns None except on rank 0.
    Entries that are None (an SRResNet has no discriminator) are left out.
    """
    rng_states = all_gather_objects(capture_rng_state(), dist)
    if not dist.is_main:
        return None
    return {
        "models": {name: unwrap(net).state_dict() for name, net in networks.items()
                   if net is not None},
        "optimizers": {name: opt.state_dict() for name, opt in optimizers.items()
                       if opt is not None},
        "grad_scaler": scaler.state_dict() if scaler.is_enabled() else None,
        "precision": precision.name, "world_size": dist.world_size, "rng": rng_states,
    }


def restore_training_state(payload: dict, config: BaseTrainConfig, dist: DistInfo,
                           networks: Mapping[str, nn.Module | None],
                           optimizers: Mapping[str, torch.optim.Optimizer | None],
                           scaler: torch.amp.GradScaler) -> LoopState:
    """Load a checkpoint's :func:`training_state` into the networks, optimizers, scaler and
    random streams of this process; returns where the run stands.

    A job with another number of processes than the one that wrote the checkpoint cannot
    replay its random streams: they restart from a new seed and the user is told.
    """
    for name, net in networks.items():
        if net is not None:
            net.load_state_dict(payload["models"][name])
    for name, opt in optimizers.items():
        if opt is not None:
            opt.load_state_dict(payload["optimizers"][name])
    if scaler.is_enabled() and payload.get("grad_scaler"):
        scaler.load_state_dict(payload["grad_scaler"])
    state = LoopState.from_checkpoint(payload)
    rng = payload.get("rng") or []
    if len(rng) == dist.world_size:
        restore_rng_state(rng[dist.rank])
    else:
        seed_everything(config.seed + dist.rank + RESEED_STRIDE * state.step)
        say(config, dist, f"note: {config.resume} was written by {len(rng)} process(es), "
            f"this job has {dist.world_size}: random streams restart from a new seed, so "
            "this continuation is not bit-identical to an uninterrupted run.")
    return state


RUN_DATASET_KEYS = ("name", "split", "fingerprint", "n_images", "class_names", "image_size",
                    "channels")


def resolved_settings(device: torch.device, precision, channels_last: bool, batches,
                      dist: DistInfo, dataset: dict, **family: object) -> dict:
    """What every trainer's options resolved to, for ``config.json``: device, precision, the
    batches and processes, then the family's own entries (``arch`` ...), the versions and the
    dataset's identity."""
    return {"device": str(device), "precision": precision.name, "channels_last": channels_last,
            "data_on_device": batches.on_device, "world_size": dist.world_size,
            "steps_per_epoch": batches.num_batches, **family, "medsyn_version": __version__,
            "torch_version": str(torch.__version__),
            "dataset": {k: dataset[k] for k in RUN_DATASET_KEYS}}


def write_run_config(run_dir: Path, config: BaseTrainConfig, resolved: dict,
                     payload: dict | None, dist: DistInfo) -> None:
    """``config.json``: every option, and under ``resolved`` what they resolved to (device,
    precision, architecture, data, ``resumed_from``). Rank 0 writes; also makes ``samples/``."""
    if config.resume:
        resolved["resumed_from"] = {"checkpoint": str(config.resume), "epoch": payload["epoch"],
                                    "step": payload["step"]}
    if dist.is_main:
        (run_dir / "samples").mkdir(parents=True, exist_ok=True)
        write_json(run_dir / CONFIG_FILE, {**config.to_dict(), "resolved": resolved})


def divergence_advice(kind: str, run_dir: Path, precision: str,
                      last_checkpoint: Path | None = None) -> str:
    """What to do after a divergence, as commands that work (--lr and --seed are fixed on
    --resume; ``--precision`` may change): a reduced-precision run is resumed in full precision
    from ``last_checkpoint``, or, when it diverged before its first checkpoint, started again
    in full precision."""
    if precision == "fp32":
        fp32 = ""
    elif last_checkpoint is not None:
        last = run_dir / LAST_CHECKPOINT
        fp32 = (f" Or resume the last good checkpoint in full precision: medsyn train {kind} "
                f"--resume {last if last.is_file() else last_checkpoint} --precision fp32.")
    else:
        fp32 = (f" Or start it again in full precision (it diverged before its first "
                f"checkpoint, so there is nothing to resume): medsyn train {kind} ... "
                f"--precision fp32 --out NEW_FOLDER.")
    return (f"Start a new run with a lower learning rate: medsyn train {kind} ... --lr LOWER "
            f"--out NEW_FOLDER (--lr and --seed cannot change on --resume, and resuming "
            f"replays the same steps).{fp32}")
