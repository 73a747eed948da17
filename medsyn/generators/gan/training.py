"""``medsyn.generators.train``: train an image GAN into a self-describing run folder.

    run_dir = medsyn.generators.train("acgan", dataset="cxr3", image_size=112, epochs=388)

writes ``config.json``, ``log.jsonl``, ``samples/epochNNN.png``, ``epochNNN.pt`` and ``last.pt``
(docs/architecture.md, section 2). Under ``torchrun`` every process calls it; rank 0 writes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch

from medsyn.device import training_threads
from medsyn.generators import engine
from medsyn.generators.checkpoint import checkpoint_header, read_checkpoint
from medsyn.generators.engine import run
from medsyn.generators.gan.checkpoint import generate
from medsyn.generators.gan.config import TrainConfig, resolve_config
from medsyn.generators.gan.kinds import gan_kind
from medsyn.generators.gan.step import CollapseDetector, GanStep
from medsyn.generators.sampling.grid import save_grid
from medsyn.generators.stabilisers.augment import DiffAugment
from medsyn.generators.stabilisers.ema import GeneratorEMA
from medsyn.model_range import NORMALISATION
from medsyn.settings import ENV_DATA_ROOT


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
        with run.locked_run_dir(config, dist):
            return _train(config, resume_payload, dist, device, step_callback)
    finally:
        engine.shutdown_distributed(dist)


def _train(config: TrainConfig, payload: dict | None, dist: engine.DistInfo,
           device: torch.device, step_callback) -> Path:
    from medsyn.data import load_dataset

    spec = gan_kind(config.kind)
    run_dir = run.open_run_dir(config, dist)
    ds = load_dataset(config.dataset, config.split, image_size=config.image_size,
                      root=config.data_root, bit_depth=config.bit_depth)
    dataset = {"name": ds.name, "split": ds.split, "fingerprint": ds.fingerprint,
               "class_names": list(ds.class_names), "image_size": config.image_size,
               "channels": ds.channels, "normalisation": NORMALISATION,
               "root": config.data_root or os.environ.get(ENV_DATA_ROOT),
               "n_images": len(ds), "class_counts": ds.class_counts(), "source": ds.source}
    if payload is not None:
        run.check_resume_data(payload, dataset, config.resume)
        arch = dict(payload["arch"])
    else:
        arch = spec.arch(config.to_dict(), ds.num_classes, ds.channels, config.image_size)

    engine.configure_backends(device, config.deterministic)
    if device.type == "cpu":
        torch.set_num_threads(training_threads(config.threads, config.image_size))
    run.seed_run(config, dist)
    gen_net, disc_net = spec.build(arch)
    channels_last = engine.use_channels_last(config.channels_last, device)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    gen_net = gen_net.to(device, memory_format=fmt)
    disc_net = disc_net.to(device, memory_format=fmt)
    betas = (config.beta1, config.beta2)
    opt_g = torch.optim.Adam(gen_net.parameters(), lr=config.lr, betas=betas)
    opt_d = torch.optim.Adam(disc_net.parameters(), lr=config.lr_d or config.lr, betas=betas)
    ema = GeneratorEMA(gen_net, config.ema_decay) if config.ema_decay else None
    precision = engine.resolve_precision(config.precision, device)
    scaler = precision.grad_scaler()

    rows = ds.num_classes if spec.conditional else 4
    # the EMA generator is saved as models.generator_ema: what sample() and evaluation use
    networks = {"generator": gen_net, "discriminator": disc_net,
                "generator_ema": ema.module if ema is not None else None}
    optimizers = {"generator": opt_g, "discriminator": opt_d}
    if payload is not None:
        state = run.restore_training_state(payload, config, dist, networks, optimizers, scaler)
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
    if ema is not None and payload is None and dist.enabled:
        # each rank initialised its own weights (seed + rank) and DDP has just given every rank
        # rank 0's: the average starts from those, so that it is the same on every rank
        ema.module.load_state_dict(gen_net.state_dict())
    # G's step goes through D past its DDP wrapper (D's weights are frozen there)
    d_for_g = engine.maybe_compile(disc_net, config.compile) if dist.enabled else d_train
    label_prior = None
    if spec.conditional and config.fake_labels == "prior":
        label_prior = torch.bincount(ds.labels, minlength=ds.num_classes).to(device, torch.float32)
        label_prior /= label_prior.sum()
    step = GanStep(spec, g_train, d_train, opt_g, opt_d, scaler, precision, arch["noise_dim"],
                   arch["num_classes"], config.label_smoothing, channels_last,
                   discriminator_for_g=d_for_g, loss=config.loss,
                   augment=DiffAugment(config.augment) or None, ema=ema, label_prior=label_prior)
    batches = engine.BatchSource([ds.images, ds.labels], config.batch_size, device=device,
                                 seed=config.seed, dist=dist, on_device=config.data_on_device,
                                 what=f"{ds.name}/{ds.split}")

    resolved = run.resolved_settings(device, precision, channels_last, batches, dist, dataset,
                                      arch=arch)
    run.write_run_config(run_dir, config, resolved, payload, dist)
    log = engine.JsonlLog(run_dir / engine.LOG_FILE, records, enabled=dist.is_main)

    def save(st: engine.LoopState) -> Path | None:
        training = run.training_state(dist, networks, optimizers, scaler, precision)
        if training is None:
            return None
        ckpt = {
            **checkpoint_header(config.kind),
            "arch": arch, "config": config.to_dict(), **st.as_dict(), **training,
            "dataset": dataset, "log": list(log.records),
            "fixed_noise": fixed_noise, "fixed_labels": fixed_labels,
            "warnings": list(loop.warnings),
        }
        return engine.save_checkpoint(ckpt, run_dir, st.current_epoch, config.keep_last)

    def draw_inputs(n: int, rng: torch.Generator):
        z = torch.randn(n, arch["noise_dim"], generator=rng)
        if not spec.conditional:
            return z, None
        prior = (label_prior.cpu() if label_prior is not None
                 else torch.full((arch["num_classes"],), 1.0 / arch["num_classes"]))
        return z, torch.multinomial(prior, n, replacement=True, generator=rng)

    def end_of_epoch(st: engine.LoopState) -> None:
        if ema is not None:      # before the grid and the checkpoint use it; on every rank
            ema.recompute_batch_norm(draw_inputs)
        if not dist.is_main:
            return
        images = generate(ema.module if ema is not None else gen_net, fixed_noise, fixed_labels,
                          device, precision=precision)
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
        health_check=CollapseDetector(run_config=config.to_dict()),
        divergence_advice=lambda last: run.divergence_advice(config.kind, run_dir,
                                                             precision.name, last))
    run.say(config, dist,
            f"{config.kind}: {ds.name}/{ds.split} ({len(ds)} images, {config.image_size} px, "
            f"{ds.channels} ch, {ds.num_classes} classes) on {device} ({precision.name}"
            f"{', ' + str(torch.get_num_threads()) + ' threads' if device.type == 'cpu' else ''}"
            f"{', x' + str(dist.world_size) + ' processes' if dist.enabled else ''}), "
            f"{batches.num_batches} steps/epoch, epoch {state.epoch + 1} of {config.epochs}"
            f" -> {run_dir}")
    gen_net.train()
    disc_net.train()
    state = loop.run(state)
    run.say(config, dist, f"done: epoch {state.current_epoch}, step {state.step}; last "
                          f"checkpoint {loop.last_checkpoint}"
                          + "".join(f"\nwarning: {w}" for w in loop.warnings))
    engine.barrier(dist)
    return run_dir
