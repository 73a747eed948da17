"""``medsyn train srresnet`` / ``medsyn train srgan``: super-resolution training.

    run_dir = medsyn.generators.sr.training.train_sr("srresnet", dataset="cxr3", epochs=100)
    run_dir = train_sr("srgan", dataset="cxr3")                 # MSE pre-training, then GAN
    run_dir = train_sr("srgan", init_from="runs/srresnet-cxr3-x4/last.pt")   # GAN phase only

Two kinds, one trainer (Ledig et al., CVPR 2017):

- ``srresnet``: the SRResNet generator trained with pixel MSE alone (the paper's SRResNet-MSE).
- ``srgan``: phase ``mse`` (the same MSE pre-training, ``--pretrain-epochs`` epochs), then phase
  ``adversarial``: the generator minimises content loss + ``adv_weight`` (1e-3) x BCE-with-logits
  of the discriminator on its output, the discriminator BCE(D(HR), 1) + BCE(D(SR), 0); the
  learning rate drops tenfold at ``--lr-decay-epoch`` (the paper's 1e-4 then 1e-5).
  ``--init-from`` starts from the generator of an SRResNet checkpoint instead (no pre-training,
  unless ``--pretrain-epochs`` asks for it).

Training data are LR/HR pairs of any dataset (:func:`medsyn.generators.sr.data.load_sr_pairs`):
HR images at ``--hr-size`` (default: the dataset's size), LR made with MATLAB bicubic
``imresize``; each step takes one aligned random ``--patch-size`` HR crop per image (96 px by
default, as in the paper) or whole images. Everything else -- device, AMP, DDP, resumable atomic
checkpoints, log.jsonl, NaN guard -- is :mod:`medsyn.generators.engine`, and the run folder,
resume and seeding :mod:`medsyn.generators.engine.run`, as for the GANs.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch

from medsyn.errors import CheckpointError, ConfigError
from medsyn.generators import engine
from medsyn.generators.checkpoint import checkpoint_header, read_checkpoint
from medsyn.generators.engine import run
from medsyn.generators.interface import Task, task_of_kind
from medsyn.generators.sr.config import (
    SRTrainConfig,
    lr_of,
    phase_of,
    phase_plan,
    resolve_sr_config,
)
from medsyn.generators.sr.networks import build_sr_networks
from medsyn.generators.sr.step import SRStep
from medsyn.model_range import NORMALISATION
from medsyn.settings import ENV_DATA_ROOT, ENV_VGG19_WEIGHTS

PAPER_PATCH = 96            # HR crop size of Ledig et al.
PRETRAIN_LOSS = "pixel MSE"


# ------------------------------------------------------------------ networks


def sr_arch(config: SRTrainConfig, channels: int) -> dict:
    """Everything needed to rebuild the networks (stored in the checkpoint)."""
    arch = {"kind": config.kind, "channels": channels, "scale": config.scale,
            "generator": {"name": "srresnet", "channels": channels, "scale": config.scale,
                          "n_blocks": config.n_blocks, "features": config.features},
            "discriminator": None}
    if config.kind == "srgan":
        arch["discriminator"] = {"name": "srgan-discriminator", "channels": channels,
                                 "features": config.d_features, "dense": 1024, "pool_size": 6}
    return arch


def _init_generator_from(path: str, arch: dict, generator) -> dict:
    """Load the generator weights of an SR checkpoint; returns what the run records of it."""
    from medsyn.utils import file_digest

    payload = read_checkpoint(path)
    if task_of_kind(payload["kind"]) is not Task.SUPER_RESOLUTION:
        raise CheckpointError(f"--init-from {path} is a {payload['kind']} checkpoint; it must "
                              "be an srresnet (or srgan) checkpoint.")
    theirs, ours = payload["arch"]["generator"], arch["generator"]
    if theirs != ours:
        diff = ", ".join(f"{k} {theirs.get(k)!r} vs {ours.get(k)!r}" for k in ours
                         if theirs.get(k) != ours.get(k))
        raise CheckpointError(f"--init-from {path}: its generator differs from this run's "
                              f"({diff}); give the same --scale/--n-blocks/--features and data "
                              "channels.")
    generator.load_state_dict(payload["models"]["generator"])
    return {"checkpoint": str(path), "sha256": file_digest(path), "kind": payload["kind"],
            "epoch": payload["epoch"], "step": payload["step"],
            "dataset": {k: (payload.get("dataset") or {}).get(k)
                        for k in ("name", "split", "fingerprint")}}


# ------------------------------------------------------------------ sample strips


def strip_indices(n_images: int, count: int) -> list[int]:
    """``count`` image indices spread evenly over the dataset (fixed for the whole run)."""
    count = min(count, n_images)
    return [int(i * n_images // count) for i in range(count)]


def sample_strip(generator, lr: torch.Tensor, hr: torch.Tensor, scale: int,
                 device: torch.device) -> torch.Tensor:
    """uint8 ``[4 N, C, H, W]``: for each image LR (nearest x scale) | bicubic | SR | HR."""
    from medsyn.data.transforms.matlab_resize import imresize_batch
    from medsyn.generators.sr.networks import upscale_uint8

    sr = upscale_uint8(engine.unwrap(generator), lr, device=device)
    bicubic = imresize_batch(lr, scale)
    nearest = lr.repeat_interleave(scale, dim=2).repeat_interleave(scale, dim=3)
    return torch.stack([nearest, bicubic, sr, hr], dim=1).flatten(0, 1)


def save_strip(path: Path, generator, lr, hr, scale: int, device) -> None:
    from medsyn.generators.sampling.grid import save_grid

    images = sample_strip(generator, lr, hr, scale, device)
    save_grid(path, images, rows=lr.shape[0])


# ------------------------------------------------------------------ training


def train_sr(kind: str, *, config_file: str | os.PathLike | None = None,
             step_callback: Callable[[engine.LoopState], None] | None = None, **options) -> Path:
    """Train an SR model of ``kind`` (``srresnet`` or ``srgan``); returns the run folder.

    ``options`` by name (``dataset``, ``scale``, ``hr_size``, ``patch_size``, ``epochs``,
    ``pretrain_epochs``, ``max_steps``, ``batch_size``, ``out``, ``resume``, ``init_from``, ...;
    see :class:`SRTrainConfig` and docs/super_resolution.md); ``None`` means "not given".
    """
    config, payload = resolve_sr_config(kind, options, config_file)
    dist, device = engine.init_distributed(config.device)
    try:
        with run.locked_run_dir(config, dist):
            return _train(config, payload, dist, device, step_callback)
    finally:
        engine.shutdown_distributed(dist)


def _resolve_patch(config: SRTrainConfig, hr_hw: tuple[int, int]) -> int:
    """The HR crop size (0: whole images), checked against the data."""
    h, w = hr_hw
    patch = config.patch_size
    if patch is None:
        patch = PAPER_PATCH if min(h, w) >= PAPER_PATCH else 0
    if patch:
        if patch % config.scale:
            raise ConfigError(f"--patch-size {patch} is not a multiple of --scale "
                              f"{config.scale}; use e.g. {patch - patch % config.scale}.")
        if patch > min(h, w):
            raise ConfigError(f"--patch-size {patch} is larger than the HR images ({h}x{w}); "
                              "use a smaller one, or 0 for whole images.")
    size = patch or min(h, w)
    if config.kind == "srgan" and size < 16:
        raise ConfigError(f"the SRGAN discriminator needs HR inputs of at least 16 px, but "
                          f"training would feed it {size} px; use a larger --hr-size / "
                          "--patch-size.")
    if (patch or min(h, w)) // config.scale < 1:
        raise ConfigError(f"HR {size} px at scale {config.scale} leaves no LR pixel.")
    return patch


def _train(config: SRTrainConfig, payload: dict | None, dist: engine.DistInfo,
           device: torch.device, step_callback) -> Path:
    from medsyn.generators.sr.data import load_sr_pairs
    from medsyn.generators.sr.losses import ContentLoss

    run_dir = run.open_run_dir(config, dist)
    pairs = load_sr_pairs(config.dataset, config.split, config.scale, config.hr_size,
                          crop="resize" if config.hr_size else "center", root=config.data_root)
    patch = _resolve_patch(config, pairs.hr_size)
    if payload is None:
        config.patch_size = patch
    hr_h, hr_w = pairs.hr_size
    dataset = {**pairs.dataset, "image_size": [hr_h, hr_w], "hr_size": [hr_h, hr_w],
               "lr_size": list(pairs.lr_size), "hr_mode": pairs.hr_mode,
               "degradation": pairs.describe()["degradation"], "normalisation": NORMALISATION,
               "root": config.data_root or os.environ.get(ENV_DATA_ROOT),
               "n_images": len(pairs), "class_counts": {
                   name: int((pairs.labels == i).sum()) for i, name in
                   enumerate(pairs.class_names)}}
    if payload is not None:
        run.check_resume_data(payload, dataset, config.resume)
        arch = dict(payload["arch"])
    else:
        arch = sr_arch(config, pairs.channels)

    engine.configure_backends(device, config.deterministic)
    run.seed_run(config, dist)
    gen_net, disc_net = build_sr_networks(arch)
    initialised_from = payload.get("initialised_from") if payload is not None else None
    if payload is None and config.init_from:
        initialised_from = _init_generator_from(config.init_from, arch, gen_net)
    if config.kind == "srgan":
        content = ContentLoss(config.content_loss, config.vgg19_weights)
        if payload is not None:
            saved = payload.get("content_loss") or {}
            if saved.get("kind") != content.kind or \
                    saved.get("weights_sha256") != content.info().get("weights_sha256"):
                raise CheckpointError(
                    f"cannot resume {config.resume}: it was trained with content loss "
                    f"{saved.get('description')!r}, this run would use "
                    f"{content.description!r}. Give the same VGG19 weights (--vgg19-weights or "
                    f"{ENV_VGG19_WEIGHTS}) or start a new run.")
    else:
        content = None
    content_info = (content.info() if content is not None
                    else {"kind": "pixel", "description": PRETRAIN_LOSS})

    channels_last = engine.use_channels_last(config.channels_last, device)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    gen_net = gen_net.to(device, memory_format=fmt)
    if disc_net is not None:
        disc_net = disc_net.to(device, memory_format=fmt)
    if content is not None:
        content = content.to(device)
    betas = (config.beta1, config.beta2)
    opt_g = torch.optim.Adam(gen_net.parameters(), lr=config.lr, betas=betas)
    opt_d = (torch.optim.Adam(disc_net.parameters(), lr=config.lr, betas=betas)
             if disc_net is not None else None)
    precision = engine.resolve_precision(config.precision, device)
    scaler = precision.grad_scaler()

    networks = {"generator": gen_net, "discriminator": disc_net}
    optimizers = {"generator": opt_g, "discriminator": opt_d}
    if payload is not None:
        state = run.restore_training_state(payload, config, dist, networks, optimizers, scaler)
        strip = list(payload.get("strip_indices") or strip_indices(len(pairs),
                                                                   config.sample_count))
        records = payload.get("log") or []
    else:
        state = engine.LoopState()
        strip = strip_indices(len(pairs), config.sample_count)
        records = []
    strip_lr, strip_hr = pairs.lr[strip].clone(), pairs.hr[strip].clone()

    g_train = engine.maybe_compile(engine.wrap_ddp(gen_net, dist, device), config.compile)
    d_train = d_for_g = None
    if disc_net is not None:
        d_train = engine.maybe_compile(engine.wrap_ddp(disc_net, dist, device), config.compile)
        d_for_g = engine.maybe_compile(disc_net, config.compile) if dist.enabled else d_train
    step = SRStep(config, g_train, d_train, opt_g, opt_d, scaler, precision, content,
                  channels_last, rank=dist.rank, discriminator_for_g=d_for_g)
    batches = engine.BatchSource([pairs.lr, pairs.hr], config.batch_size, device=device,
                                 seed=config.seed, dist=dist, on_device=config.data_on_device,
                                 what=f"{pairs.dataset['name']}/{pairs.dataset['split']}")

    sr_info = {"scale": config.scale, "hr_size": [hr_h, hr_w], "lr_size": list(pairs.lr_size),
               "patch_size": patch, "lr_patch_size": patch // config.scale if patch else 0,
               "degradation": dataset["degradation"], "hr_mode": pairs.hr_mode,
               "pretrain_loss": PRETRAIN_LOSS}
    resolved = run.resolved_settings(device, precision, channels_last, batches, dist, dataset,
                                      arch=arch, sr=sr_info, content_loss=content_info,
                                      phases=phase_plan(config))
    if initialised_from is not None:
        resolved["initialised_from"] = initialised_from
    run.write_run_config(run_dir, config, resolved, payload, dist)
    log = engine.JsonlLog(run_dir / engine.LOG_FILE, records, enabled=dist.is_main)

    def save(st: engine.LoopState) -> Path | None:
        training = run.training_state(dist, networks, optimizers, scaler, precision)
        if training is None:
            return None
        ckpt = {
            **checkpoint_header(config.kind),
            "arch": arch, "config": config.to_dict(), **st.as_dict(),
            "phase": phase_of(config, st.current_epoch), **training,
            "dataset": dataset, "sr": sr_info, "content_loss": content_info,
            "initialised_from": initialised_from, "strip_indices": strip,
            "log": list(log.records),
        }
        return engine.save_checkpoint(ckpt, run_dir, st.current_epoch, config.keep_last)

    def end_of_epoch(st: engine.LoopState) -> None:
        if dist.is_main:
            save_strip(run_dir / "samples" / f"epoch{st.current_epoch:03d}.png", gen_net,
                       strip_lr, strip_hr, config.scale, device)

    def record_fields(step_no: int, epoch_no: int) -> dict:
        return {"phase": phase_of(config, epoch_no), "lr": lr_of(config, epoch_no)}

    loop = engine.TrainingLoop(
        batches=batches, step_fn=step, epochs=config.epochs, log=log, save=save,
        loss_keys=("loss_content", "loss_adv", "loss_g", "loss_d"),
        show_keys=("loss_content", "loss_adv", "loss_d"), max_steps=config.max_steps,
        checkpoint_every=config.checkpoint_every, end_of_epoch=end_of_epoch, dist=dist,
        quiet=config.quiet, step_callback=step_callback, record_fields=record_fields,
        last_checkpoint=Path(config.resume) if config.resume else None,
        divergence_advice=lambda last: run.divergence_advice(config.kind, run_dir,
                                                             precision.name, last))
    plan = ", ".join(f"{p['phase']} epochs {p['epochs'][0]}-{p['epochs'][1]}"
                     for p in phase_plan(config))
    run.say(config, dist,
            f"{config.kind} x{config.scale}: {pairs.dataset['name']}/{pairs.dataset['split']} "
            f"({len(pairs)} images, HR {hr_h}x{hr_w}, LR {pairs.lr_size[0]}x{pairs.lr_size[1]}, "
            f"{'HR crops ' + str(patch) + ' px' if patch else 'whole images'}) on {device} "
            f"({precision.name}), {batches.num_batches} steps/epoch, {plan}; content loss: "
            f"{content_info['description']} -> {run_dir}")
    gen_net.train()
    if disc_net is not None:
        disc_net.train()
    state = loop.run(state)
    run.say(config, dist, f"done: epoch {state.current_epoch}, step {state.step}; last "
                          f"checkpoint {loop.last_checkpoint}")
    engine.barrier(dist)
    return run_dir
