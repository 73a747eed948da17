"""``medsyn.generators.train``: train an image GAN into a self-describing run folder.

    run_dir = medsyn.generators.train("acgan", dataset="cxr3", image_size=112, epochs=388)

writes ``config.json``, ``log.jsonl``, ``samples/epochNNN.png``, ``epochNNN.pt`` and ``last.pt``
(docs/architecture.md, section 2). Under ``torchrun`` every process calls it; rank 0 writes.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

import torch

from medsyn import __version__
from medsyn.device import training_threads
from medsyn.errors import CheckpointError, ConfigError
from medsyn.generators import engine
from medsyn.generators.checkpoint import checkpoint_header, read_checkpoint
from medsyn.generators.config import TrainConfig, resolve_config
from medsyn.generators.gan import CollapseDetector, GanStep, gan_kind, generate
from medsyn.generators.grid import save_grid
from medsyn.settings import ENV_DATA_ROOT
from medsyn.utils import remove_stale_temp_files, write_json

log = logging.getLogger(__name__)

NORMALISATION = "x / 127.5 - 1 (uint8 0..255 -> [-1, 1]); back: round((y + 1) * 127.5)"
RUN_MARKERS = (engine.LAST_CHECKPOINT, engine.CONFIG_FILE, engine.LOG_FILE)


def train(kind: str, *, config_file: str | os.PathLike | None = None,
          step_callback: Callable[[engine.LoopState], None] | None = None, **options) -> Path:
    """Train a GAN of ``kind`` (``acgan``, ``cgan``, ``dcgan``); returns the run folder.

    ``options`` are the training options by name (``dataset``, ``image_size``, ``epochs``,
    ``max_steps``, ``batch_size``, ``lr``, ``out``, ``resume``, ``g_width``, ...; see
    :class:`TrainConfig` and docs/training.md); ``None`` means "not given". ``config_file``: a
    TOML file of options (explicit ``options`` win).
    """
    config, payload = resolve_config(kind, options, config_file)
    return run_training(config, payload, step_callback=step_callback)


def run_training(config: TrainConfig, resume_payload: dict | None = None, *,
                 step_callback: Callable[[engine.LoopState], None] | None = None) -> Path:
    """Train with a fully resolved :class:`TrainConfig` (see :func:`resolve_config`)."""
    if config.resume and resume_payload is None:
        resume_payload = read_checkpoint(config.resume)
    dist, device = engine.init_distributed(config.device)
    try:
        return _train(config, resume_payload, dist, device, step_callback)
    finally:
        engine.shutdown_distributed(dist)


def _say(config: TrainConfig, dist: engine.DistInfo, text: str) -> None:
    if dist.is_main and not config.quiet:
        from tqdm.auto import tqdm

        tqdm.write(text, file=sys.stderr)


def _check_run_dir(run_dir: Path, resume: str | None) -> str | None:
    """Never start a fresh run over an existing one; returns a note when the folder holds a run
    that was stopped before its first checkpoint (nothing to resume, so it starts again)."""
    if resume and Path(resume).expanduser().resolve().parent == run_dir.resolve():
        return None
    checkpoints = [p.name for _, p in engine.list_checkpoints(run_dir)]
    if (run_dir / engine.LAST_CHECKPOINT).exists() or checkpoints:
        found = [m for m in RUN_MARKERS if (run_dir / m).exists()] + checkpoints
        advice = (f"continue it with --resume {run_dir / engine.LAST_CHECKPOINT}"
                  if (run_dir / engine.LAST_CHECKPOINT).exists() else "delete it")
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


def divergence_advice(kind: str, run_dir: Path, precision: str) -> str:
    """What to do after a divergence, as commands that work (--lr and --seed are fixed on
    --resume)."""
    fp32 = ("" if precision == "fp32" else
            f" Or resume the last good checkpoint in full precision: medsyn train {kind} "
            f"--resume {run_dir / engine.LAST_CHECKPOINT} --precision fp32.")
    return (f"Start a new run with a lower learning rate: medsyn train {kind} ... --lr LOWER "
            f"--out NEW_FOLDER (--lr and --seed cannot change on --resume, and resuming "
            f"replays the same steps).{fp32}")


def _check_resume_data(payload: dict, dataset: dict, path: str) -> None:
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


def _train(config: TrainConfig, payload: dict | None, dist: engine.DistInfo,
           device: torch.device, step_callback) -> Path:
    from medsyn.data import load_dataset

    spec = gan_kind(config.kind)
    run_dir = Path(config.out)
    if dist.is_main:
        note = _check_run_dir(run_dir, config.resume)
        if note:
            _say(config, dist, note)
        prepare_run_dir(run_dir)
    ds = load_dataset(config.dataset, config.split, image_size=config.image_size,
                      root=config.data_root, bit_depth=config.bit_depth)
    dataset = {"name": ds.name, "split": ds.split, "fingerprint": ds.fingerprint,
               "class_names": list(ds.class_names), "image_size": config.image_size,
               "channels": ds.channels, "normalisation": NORMALISATION,
               "root": config.data_root or os.environ.get(ENV_DATA_ROOT),
               "n_images": len(ds), "class_counts": ds.class_counts(), "source": ds.source}
    if payload is not None:
        _check_resume_data(payload, dataset, config.resume)
        arch = dict(payload["arch"])
    else:
        arch = spec.arch(config.to_dict(), ds.num_classes, ds.channels, config.image_size)

    engine.configure_backends(device, config.deterministic)
    if device.type == "cpu":
        torch.set_num_threads(training_threads(config.threads, config.image_size))
    engine.seed_everything(config.seed + dist.rank)
    gen_net, disc_net = spec.build(arch)
    channels_last = engine.use_channels_last(config.channels_last, device)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    gen_net = gen_net.to(device, memory_format=fmt)
    disc_net = disc_net.to(device, memory_format=fmt)
    betas = (config.beta1, config.beta2)
    opt_g = torch.optim.Adam(gen_net.parameters(), lr=config.lr, betas=betas)
    opt_d = torch.optim.Adam(disc_net.parameters(), lr=config.lr, betas=betas)
    precision = engine.resolve_precision(config.precision, device)
    scaler = precision.grad_scaler()

    rows = ds.num_classes if spec.conditional else 4
    if payload is not None:
        gen_net.load_state_dict(payload["models"]["generator"])
        disc_net.load_state_dict(payload["models"]["discriminator"])
        opt_g.load_state_dict(payload["optimizers"]["generator"])
        opt_d.load_state_dict(payload["optimizers"]["discriminator"])
        if scaler.is_enabled() and payload.get("grad_scaler"):
            scaler.load_state_dict(payload["grad_scaler"])
        state = engine.LoopState.from_checkpoint(payload)
        rng = payload.get("rng") or []
        if len(rng) == dist.world_size:
            engine.restore_rng_state(rng[dist.rank])
        else:
            engine.seed_everything(config.seed + dist.rank + 1_000_003 * state.step)
            _say(config, dist, f"note: {config.resume} was written by {len(rng)} process(es), "
                 f"this job has {dist.world_size}: random streams restart from a new seed, so "
                 "this continuation is not bit-identical to an uninterrupted run.")
        fixed_noise, fixed_labels = payload["fixed_noise"], payload.get("fixed_labels")
        records = payload.get("log") or []
    else:
        state = engine.LoopState()
        noise_gen = torch.Generator().manual_seed(config.seed)
        fixed_noise = torch.randn(rows * config.sample_columns, arch["noise_dim"],
                                  generator=noise_gen)
        fixed_labels = (torch.arange(rows).repeat_interleave(config.sample_columns)
                        if spec.conditional else None)
        records = []

    g_train = engine.maybe_compile(engine.wrap_ddp(gen_net, dist, device), config.compile)
    d_train = engine.maybe_compile(engine.wrap_ddp(disc_net, dist, device), config.compile)
    # G's step goes through D past its DDP wrapper (D's weights are frozen there)
    d_for_g = engine.maybe_compile(disc_net, config.compile) if dist.enabled else d_train
    step = GanStep(spec, g_train, d_train, opt_g, opt_d, scaler, precision, arch["noise_dim"],
                   arch["num_classes"], config.label_smoothing, channels_last,
                   discriminator_for_g=d_for_g)
    batches = engine.BatchSource([ds.images, ds.labels], config.batch_size, device=device,
                                 seed=config.seed, dist=dist, on_device=config.data_on_device,
                                 what=f"{ds.name}/{ds.split}")

    resolved = {
        "device": str(device), "precision": precision.name, "channels_last": channels_last,
        "data_on_device": batches.on_device, "world_size": dist.world_size,
        "steps_per_epoch": batches.num_batches, "arch": arch, "medsyn_version": __version__,
        "torch_version": str(torch.__version__),
        "dataset": {k: dataset[k] for k in ("name", "split", "fingerprint", "n_images",
                                             "class_names", "image_size", "channels")},
    }
    if config.resume:
        resolved["resumed_from"] = {"checkpoint": str(config.resume), "epoch": payload["epoch"],
                                    "step": payload["step"]}
    if dist.is_main:
        (run_dir / "samples").mkdir(parents=True, exist_ok=True)
        write_json(run_dir / engine.CONFIG_FILE, {**config.to_dict(), "resolved": resolved})
    log = engine.JsonlLog(run_dir / engine.LOG_FILE, records, enabled=dist.is_main)

    def save(st: engine.LoopState) -> Path | None:
        rng_states = engine.all_gather_objects(engine.capture_rng_state(), dist)
        if not dist.is_main:
            return None
        ckpt = {
            **checkpoint_header(config.kind),
            "arch": arch, "config": config.to_dict(), **st.as_dict(),
            "models": {"generator": engine.unwrap(gen_net).state_dict(),
                       "discriminator": engine.unwrap(disc_net).state_dict()},
            "optimizers": {"generator": opt_g.state_dict(), "discriminator": opt_d.state_dict()},
            "grad_scaler": scaler.state_dict() if scaler.is_enabled() else None,
            "precision": precision.name, "world_size": dist.world_size, "rng": rng_states,
            "dataset": dataset, "log": list(log.records),
            "fixed_noise": fixed_noise, "fixed_labels": fixed_labels,
            "warnings": list(loop.warnings),
        }
        return engine.save_checkpoint(ckpt, run_dir, st.current_epoch, config.keep_last)

    def end_of_epoch(st: engine.LoopState) -> None:
        if not dist.is_main:
            return
        images = generate(gen_net, fixed_noise, fixed_labels, device, precision=precision)
        names = list(ds.class_names) if spec.conditional else None
        save_grid(run_dir / "samples" / f"epoch{st.current_epoch:03d}.png", images, rows, names)

    loss_keys = ("loss_d", "loss_g")
    show = loss_keys + (("aux_acc_real",) if spec.aux_classifier else ("d_x",))
    loop = engine.TrainingLoop(
        batches=batches, step_fn=step, epochs=config.epochs, log=log, save=save,
        loss_keys=loss_keys, show_keys=show, max_steps=config.max_steps,
        checkpoint_every=config.checkpoint_every, end_of_epoch=end_of_epoch, dist=dist,
        quiet=config.quiet, step_callback=step_callback,
        last_checkpoint=Path(config.resume) if config.resume else None,
        health_check=CollapseDetector(),
        divergence_advice=divergence_advice(config.kind, run_dir, precision.name))
    _say(config, dist,
         f"{config.kind}: {ds.name}/{ds.split} ({len(ds)} images, {config.image_size} px, "
         f"{ds.channels} ch, {ds.num_classes} classes) on {device} ({precision.name}"
         f"{', ' + str(torch.get_num_threads()) + ' threads' if device.type == 'cpu' else ''}"
         f"{', x' + str(dist.world_size) + ' processes' if dist.enabled else ''}), "
         f"{batches.num_batches} steps/epoch, epoch {state.epoch + 1} of {config.epochs}"
         f" -> {run_dir}")
    gen_net.train()
    disc_net.train()
    state = loop.run(state)
    _say(config, dist, f"done: epoch {state.current_epoch}, step {state.step}; last checkpoint "
                       f"{loop.last_checkpoint}"
                       + "".join(f"\nwarning: {w}" for w in loop.warnings))
    engine.barrier(dist)
    return run_dir
