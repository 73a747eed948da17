"""Training of the translation models: ``medsyn train pix2pix`` / ``medsyn train cyclegan``.

pix2pix trains on (input, target) pairs (:mod:`medsyn.generators.translation.data`): inputs
built offline from a dataset's images (``--condition edges|lowres|noise``) or a folder of
``A/`` and ``B/`` pairs. CycleGAN trains on two unpaired domains (``--source``, ``--target``):
each step takes a batch of source images in the epoch's order and as many target images drawn
at random (seeded by the step). Device, AMP, DDP, atomic checkpoints, log.jsonl and the NaN
guard are :mod:`medsyn.generators.engine`; the run folder, resume and seeding
:mod:`medsyn.generators.engine.run`, as for every family.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import torch

from medsyn.errors import ConfigError
from medsyn.generators import engine
from medsyn.generators.checkpoint import checkpoint_header
from medsyn.generators.engine import run
from medsyn.generators.translation.config import (
    TranslationTrainConfig,
    default_d_layers,
    default_n_blocks,
    default_unet_depth,
    resolve_translation_config,
)
from medsyn.generators.translation.losses import ImagePool
from medsyn.generators.translation.networks import build_translation_networks, translate_uint8
from medsyn.model_range import NORMALISATION, to_model_range
from medsyn.settings import ENV_DATA_ROOT

POOL_KEY = "image_pools"


def strip_indices(n_images: int, count: int) -> list[int]:
    """``count`` image indices spread evenly over the data (fixed for the whole run)."""
    count = min(count, n_images)
    return [int(i * n_images // count) for i in range(count)]


def train_translation(kind: str, *, config_file: str | os.PathLike | None = None,
                      step_callback: Callable[[engine.LoopState], None] | None = None,
                      **options) -> Path:
    """Train a translation model of ``kind`` (``pix2pix`` or ``cyclegan``); returns the run
    folder. ``options`` by name (see :class:`TranslationTrainConfig` and docs/translation.md);
    ``None`` means "not given"."""
    config, payload = resolve_translation_config(kind, options, config_file)
    dist, device = engine.init_distributed(config.device)
    try:
        return _train(config, payload, dist, device, step_callback)
    finally:
        engine.shutdown_distributed(dist)


# ------------------------------------------------------------------ data and architecture


def _pix2pix_data(config: TranslationTrainConfig):
    from medsyn.generators.translation.data import load_condition_pairs, load_folder_pairs

    if config.paired_folder:
        pairs = load_folder_pairs(config.paired_folder, config.split, config.image_size)
    else:
        pairs = load_condition_pairs(
            config.dataset, config.split, condition=config.condition,
            image_size=config.image_size, root=config.data_root,
            canny_sigma=config.canny_sigma, lowres_scale=config.lowres_scale,
            noise_std=config.noise_std, seed=config.seed)
    dataset = {**pairs.dataset, "condition": pairs.condition, "n_images": len(pairs),
               "class_counts": {name: int((pairs.labels == i).sum())
                                for i, name in enumerate(pairs.class_names)}}
    return pairs, dataset


def _cyclegan_data(config: TranslationTrainConfig):
    from medsyn.generators.translation.data import load_domain

    source = load_domain(config.source, image_size=config.image_size, root=config.data_root)
    target = load_domain(config.target, image_size=config.image_size, root=config.data_root)
    if source.images.shape[2:] != target.images.shape[2:]:
        raise ConfigError(
            f"--source {config.source} is {source.info['image_size'][0]} px and --target "
            f"{config.target} is {target.info['image_size'][0]} px; give --image-size to bring "
            "both to one size.")
    fingerprint = hashlib.sha256(f"{source.info['fingerprint']}:{target.info['fingerprint']}"
                                 .encode()).hexdigest()
    dataset = {"name": f"{source.info['selection']} -> {target.info['selection']}",
               "split": source.split, "fingerprint": fingerprint,
               "class_names": [source.info["selection"], target.info["selection"]],
               "image_size": source.info["image_size"], "channels": target.info["channels"],
               "source": source.info, "target": target.info,
               "n_images": len(source) + len(target)}
    return source, target, dataset


def _pix2pix_arch(config: TranslationTrainConfig, in_channels: int, out_channels: int,
                  size: int) -> dict:
    depth = config.unet_depth or default_unet_depth(size)
    if depth < 2 or size % 2 ** depth:
        raise ConfigError(f"the U-Net needs an image size divisible by 2^depth; {size} px "
                          f"with depth {depth} is not. Give --image-size (e.g. 64) or a "
                          "smaller --unet-depth.")
    layers = config.d_layers or default_d_layers(size)
    if size // 2 ** layers < 2:
        raise ConfigError(f"a PatchGAN of {layers} strided layers needs images of at least "
                          f"{2 ** (layers + 1)} px, got {size}; lower --d-layers.")
    config.unet_depth, config.d_layers = depth, layers
    return {"kind": "pix2pix", "channels": out_channels, "in_channels": in_channels,
            "image_size": size,
            "generator": {"name": "unet", "in_channels": in_channels,
                          "out_channels": out_channels, "features": config.features,
                          "depth": depth, "dropout": 0.5},
            "discriminator": {"name": "patchgan", "in_channels": in_channels + out_channels,
                              "features": config.d_features, "n_layers": layers,
                              "norm": "batch", **_spectral(config)}}


def _cyclegan_arch(config: TranslationTrainConfig, channels_a: int, channels_b: int,
                   size: int) -> dict:
    if size % 4:
        raise ConfigError(f"the CycleGAN generator halves the image twice: {size} px does not "
                          "divide by 4; give --image-size (e.g. 64).")
    if channels_a != channels_b and config.identity_weight:
        raise ConfigError(f"the identity loss needs domains with the same channels (source "
                          f"{channels_a}, target {channels_b}); give --identity-weight 0.")
    n_blocks = config.n_blocks or default_n_blocks(size)
    layers = config.d_layers or default_d_layers(size)
    if size // 2 ** layers < 2:
        raise ConfigError(f"a PatchGAN of {layers} strided layers needs images of at least "
                          f"{2 ** (layers + 1)} px, got {size}; lower --d-layers.")
    config.n_blocks, config.d_layers = n_blocks, layers
    return {"kind": "cyclegan", "channels": channels_b, "in_channels": channels_a,
            "image_size": size,
            "generator": {"name": "resnet", "channels_a": channels_a, "channels_b": channels_b,
                          "features": config.features, "n_blocks": n_blocks},
            "discriminator": {"name": "patchgan", "features": config.d_features,
                              "n_layers": layers, "norm": "instance", **_spectral(config)}}


def _spectral(config: TranslationTrainConfig) -> dict:
    # recorded only when on: the arch of a default run stays what it was before the option
    return {"spectral_norm": True} if config.spectral_norm else {}


# ------------------------------------------------------------------ sample strips


def pix2pix_strip(generator, inputs, targets) -> torch.Tensor:
    """uint8 ``[3 N, C, H, W]``: per image input | output | target (the input repeated to the
    target's channels when they differ)."""
    outputs = translate_uint8(generator, inputs)
    shown = inputs if inputs.shape[1] == targets.shape[1] else \
        inputs[:, :1].repeat(1, targets.shape[1], 1, 1)
    return torch.stack([shown, outputs, targets], dim=1).flatten(0, 1)


def cyclegan_strip(generators, a, b) -> torch.Tensor:
    """uint8 ``[3 (Na + Nb), C, H, W]``: rows A | G_AB(A) | G_BA(G_AB(A)), then
    B | G_BA(B) | G_AB(G_BA(B)) (same channels assumed for display; 1-channel images are
    repeated to 3 when the domains differ)."""
    fake_b = translate_uint8(generators.g_ab, a)
    rec_a = translate_uint8(generators.g_ba, fake_b)
    fake_a = translate_uint8(generators.g_ba, b)
    rec_b = translate_uint8(generators.g_ab, fake_a)
    rows = [(a, fake_b, rec_a), (b, fake_a, rec_b)]
    channels = max(x.shape[1] for row in rows for x in row)
    cells = [x if x.shape[1] == channels else x.repeat(1, channels, 1, 1)
             for row in rows for x in row]
    top = torch.stack(cells[:3], dim=1).flatten(0, 1)
    bottom = torch.stack(cells[3:], dim=1).flatten(0, 1)
    return torch.cat([top, bottom])


# ------------------------------------------------------------------ training


def _train(config: TranslationTrainConfig, payload: dict | None, dist: engine.DistInfo,
           device: torch.device, step_callback) -> Path:
    from medsyn.generators.sampling.grid import save_grid
    from medsyn.generators.stabilisers.augment import DiffAugment
    from medsyn.generators.stabilisers.ema import GeneratorEMA
    from medsyn.generators.translation.step import (
        CycleGANStep,
        Pix2PixStep,
        TranslationCollapseDetector,
    )

    run_dir = run.open_run_dir(config, dist)
    paired = config.kind == "pix2pix"
    if paired:
        pairs, dataset = _pix2pix_data(config)
        size = int(pairs.targets.shape[2])
        channels = (int(pairs.inputs.shape[1]), int(pairs.targets.shape[1]))
    else:
        source, target, dataset = _cyclegan_data(config)
        size = int(source.images.shape[2])
        channels = (int(source.images.shape[1]), int(target.images.shape[1]))
    dataset.update({"normalisation": NORMALISATION,
                    "root": config.data_root or os.environ.get(ENV_DATA_ROOT)})
    if payload is not None:
        run.check_resume_data(payload, dataset, config.resume)
        arch = dict(payload["arch"])
    else:
        arch = (_pix2pix_arch if paired else _cyclegan_arch)(config, *channels, size)

    engine.configure_backends(device, config.deterministic)
    run.seed_run(config, dist)
    gen_net, disc_net = build_translation_networks(arch)
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
    # the EMA generator is saved as models.generator_ema: what translate() and evaluate use
    networks = {"generator": gen_net, "discriminator": disc_net,
                "generator_ema": ema.module if ema is not None else None}
    optimizers = {"generator": opt_g, "discriminator": opt_d}
    n_strip = len(pairs) if paired else min(len(source), len(target))
    pools = (ImagePool(config.pool_size or 0), ImagePool(config.pool_size or 0))
    if payload is not None:
        state = run.restore_training_state(payload, config, dist, networks, optimizers, scaler)
        strip = list(payload.get("strip_indices") or strip_indices(n_strip, config.sample_count))
        records = payload.get("log") or []
        stored = payload.get(POOL_KEY) or {}
        if len(payload.get("rng") or []) == dist.world_size:
            # pools were gathered from rank 0 only; other ranks of a resumed DDP job restart
            # theirs (random streams restart anyway when the world size changed)
            pools[0].load_state(stored.get("a") if dist.is_main else None, device)
            pools[1].load_state(stored.get("b") if dist.is_main else None, device)
    else:
        state = engine.LoopState()
        strip = strip_indices(n_strip, config.sample_count)
        records = []

    g_train = engine.maybe_compile(engine.wrap_ddp(gen_net, dist, device), config.compile)
    d_train = engine.maybe_compile(engine.wrap_ddp(disc_net, dist, device), config.compile)
    d_for_g = engine.maybe_compile(disc_net, config.compile) if dist.enabled else d_train
    if ema is not None and payload is None and dist.enabled:
        # each rank initialised its own weights (seed + rank) and DDP has just given every rank
        # rank 0's: the average starts from those, so that it is the same on every rank
        ema.module.load_state_dict(gen_net.state_dict())
    what = f"{dataset['name']}/{dataset['split']}" if paired else dataset["name"]
    augment = DiffAugment(config.augment) or None
    if paired:
        step = Pix2PixStep(config, g_train, d_train, opt_g, opt_d, scaler, precision,
                           channels_last, discriminator_for_g=d_for_g, augment=augment, ema=ema)
        batches = engine.BatchSource([pairs.inputs, pairs.targets], config.batch_size,
                                     device=device, seed=config.seed, dist=dist,
                                     on_device=config.data_on_device, what=what)
        strip_in, strip_out = pairs.inputs[strip].clone(), pairs.targets[strip].clone()
        loss_keys = ("loss_adv", "loss_l1", "loss_g", "loss_d")
        show_keys = ("loss_l1", "loss_adv", "loss_d")
    else:
        batches = engine.BatchSource([source.images], config.batch_size, device=device,
                                     seed=config.seed, dist=dist,
                                     on_device=config.data_on_device, what=what)
        images_b = target.images.to(device) if batches.on_device else target.images
        step = CycleGANStep(config, g_train, d_train, opt_g, opt_d, scaler, precision,
                            channels_last, images_b, pools, rank=dist.rank,
                            discriminator_for_g=d_for_g, augment=augment, ema=ema)
        strip_in, strip_out = source.images[strip].clone(), target.images[strip].clone()
        loss_keys = ("loss_adv", "loss_cycle", "loss_identity", "loss_g", "loss_d")
        show_keys = ("loss_cycle", "loss_adv", "loss_d")

    translation_info = {"kind": config.kind, "paired": paired, "image_size": [size, size],
                        "input_channels": arch["in_channels"], "channels": arch["channels"]}
    if paired:
        translation_info["condition"] = dataset["condition"]
    else:
        translation_info.update({"source": dataset["source"], "target": dataset["target"],
                                 "sampling": "source batches in epoch order, target images "
                                             "drawn at random per step"})
    resolved = run.resolved_settings(device, precision, channels_last, batches, dist, dataset,
                                      arch=arch, translation=translation_info)
    run.write_run_config(run_dir, config, resolved, payload, dist)
    log = engine.JsonlLog(run_dir / engine.LOG_FILE, records, enabled=dist.is_main)

    def save(st: engine.LoopState) -> Path | None:
        training = run.training_state(dist, networks, optimizers, scaler, precision)
        if training is None:
            return None
        ckpt = {**checkpoint_header(config.kind), "arch": arch, "config": config.to_dict(),
                **st.as_dict(), **training, "dataset": dataset, "translation": translation_info,
                "strip_indices": strip, "log": list(log.records)}
        if not paired:
            ckpt[POOL_KEY] = {"a": pools[0].state(), "b": pools[1].state()}
        return engine.save_checkpoint(ckpt, run_dir, st.current_epoch, config.keep_last)

    def draw_conditions(n: int, rng: torch.Generator) -> tuple[torch.Tensor]:
        # training inputs for the EMA U-Net's batch norm statistics (fixed seed: they are a
        # function of its weights alone)
        return (to_model_range(pairs.inputs[torch.randint(0, len(pairs), (n,), generator=rng)]),)

    def end_of_epoch(st: engine.LoopState) -> None:
        if ema is not None and paired:   # before the strip and the checkpoint use it; every rank
            ema.recompute_batch_norm(draw_conditions)
        if not dist.is_main:
            return
        net = ema.module if ema is not None else engine.unwrap(gen_net)
        images = (pix2pix_strip(net, strip_in, strip_out) if paired
                  else cyclegan_strip(net, strip_in, strip_out))
        save_grid(run_dir / "samples" / f"epoch{st.current_epoch:03d}.png", images,
                  rows=images.shape[0] // 3)

    loop = engine.TrainingLoop(
        batches=batches, step_fn=step, epochs=config.epochs, log=log, save=save,
        loss_keys=loss_keys, show_keys=show_keys, max_steps=config.max_steps,
        checkpoint_every=config.checkpoint_every, end_of_epoch=end_of_epoch, dist=dist,
        quiet=config.quiet, step_callback=step_callback,
        last_checkpoint=Path(config.resume) if config.resume else None,
        health_check=TranslationCollapseDetector(run_config=config.to_dict()),
        divergence_advice=run.divergence_advice(config.kind, run_dir, precision.name))
    data_line = (f"{what} ({dataset['n_images']} pairs, {dataset['condition']['description']})"
                 if paired else f"{what} ({len(source)} + {len(target)} images)")
    run.say(config, dist, f"{config.kind}: {data_line}, {size} px on {device} "
                          f"({precision.name}), {batches.num_batches} steps/epoch -> {run_dir}")
    gen_net.train()
    disc_net.train()
    state = loop.run(state)
    run.say(config, dist, f"done: epoch {state.current_epoch}, step {state.step}; last "
                          f"checkpoint {loop.last_checkpoint}")
    engine.barrier(dist)
    return run_dir
