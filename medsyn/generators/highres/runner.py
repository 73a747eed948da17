"""What ``pggan`` and ``megan`` runs share: data -> networks, Adam per network, an EMA copy of
every generator, the training loop, checkpoints, resume and sample grids, all from
:mod:`medsyn.generators.engine` and :mod:`medsyn.generators.engine.run` (the same run folders and
guarantees as every other trainer, docs/training.md).

Networks are named ``generator*`` / ``discriminator*``; each ``generator*`` gets an EMA copy
saved as ``generator*_ema`` in the checkpoint's ``models`` (what sampling uses). A subclass
says how to build the networks and the step (:meth:`HighResRun.build`,
:meth:`HighResRun.make_step`) and what its grids and checkpoints add.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from medsyn.device import training_threads
from medsyn.errors import ConfigError
from medsyn.generators import engine
from medsyn.generators.checkpoint import checkpoint_header, read_checkpoint
from medsyn.generators.engine import run
from medsyn.generators.highres.config import HighResTrainConfig
from medsyn.generators.sampling.grid import save_grid
from medsyn.generators.stabilisers.ema import GeneratorEMA
from medsyn.model_range import NORMALISATION
from medsyn.settings import ENV_DATA_ROOT

EMA_SUFFIX = "_ema"


def open_high_res_run(config: HighResTrainConfig, payload: dict | None, run_class,
                      step_callback=None) -> Path:
    """Train ``config`` with ``run_class`` (a :class:`HighResRun`); returns the run folder."""
    if config.resume and payload is None:
        payload = read_checkpoint(config.resume)
    dist, device = engine.init_distributed(config.device)
    try:
        if dist.enabled:
            raise ConfigError(
                f"{config.kind} does not run under torchrun: its networks leave parameters "
                "unused at some steps (levels not yet grown, scales trained on patches), which "
                "DistributedDataParallel refuses. Run it as one process (one GPU).")
        return run_class(config, dist, device).train(payload, step_callback)
    finally:
        engine.shutdown_distributed(dist)


class HighResRun:
    """One training run of a high-resolution family (subclassed per kind)."""

    def __init__(self, config: HighResTrainConfig, dist: engine.DistInfo, device: torch.device):
        self.config, self.dist, self.device = config, dist, device
        self.emas: dict[str, GeneratorEMA] = {}

    # -- what a kind provides

    def build(self, ds, payload: dict | None) -> tuple[dict, dict, list]:
        """``(arch, networks by name, tensors the batches are drawn from)``; call
        :meth:`seed` before creating the networks."""
        raise NotImplementedError

    def make_step(self, arch, nets, train_nets, optimizers, scaler, precision):
        raise NotImplementedError

    def record_fields(self, arch):
        return None

    def health_check(self, arch):
        """``records -> warning or None`` for the loop (a collapse detector), or None."""
        return None

    def checkpoint_extra(self, arch, state: engine.LoopState) -> dict:
        return {}

    def save_models_extra(self) -> dict:
        """Tensors saved beside the networks in ``models`` (left out of ``metadata``)."""
        return {}

    def grid_images(self, arch, fixed: dict, state: engine.LoopState) -> torch.Tensor:
        raise NotImplementedError

    def fixed_inputs(self, arch, rows: int) -> dict:
        raise NotImplementedError

    # -- shared

    @property
    def ema(self) -> GeneratorEMA:
        """The EMA of the (only) generator ``generator``."""
        return self.emas["generator"]

    def seed(self) -> None:
        run.seed_run(self.config, self.dist)

    def train(self, payload: dict | None, step_callback) -> Path:
        from medsyn.data import load_dataset

        config, dist, device = self.config, self.dist, self.device
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
        engine.configure_backends(device, config.deterministic)
        if device.type == "cpu":
            torch.set_num_threads(training_threads(config.threads, config.image_size))
        arch, nets, tensors = self.build(ds, payload)
        channels_last = engine.use_channels_last(config.channels_last, device)
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        nets = {name: net.to(device, memory_format=fmt) for name, net in nets.items()}
        self.emas = {name: GeneratorEMA(net, config.ema_decay) for name, net in nets.items()
                     if name.startswith("generator")}
        betas = (config.beta1, config.beta2)
        optimizers = {name: torch.optim.Adam(net.parameters(), lr=config.lr, betas=betas)
                      for name, net in nets.items()}
        precision = engine.resolve_precision(config.precision, device)
        scaler = precision.grad_scaler()
        networks = {**nets, **{name + EMA_SUFFIX: ema.module for name, ema in self.emas.items()}}
        rows = ds.num_classes if ds.num_classes > 1 else 4
        if payload is not None:
            state = run.restore_training_state(payload, config, dist, networks, optimizers,
                                               scaler)
            fixed = {"noise": payload["fixed_noise"], "labels": payload.get("fixed_labels")}
            records = payload.get("log") or []
        else:
            state = engine.LoopState()
            fixed = self.fixed_inputs(arch, rows)
            records = []
        train_nets = {name: engine.maybe_compile(net, config.compile)
                      for name, net in nets.items()}
        train_nets.update({f"{name}_for_g": train_nets[name] for name in nets
                           if name.startswith("discriminator")})
        step = self.make_step(arch, nets, train_nets, optimizers, scaler, precision)
        batches = engine.BatchSource(tensors, config.batch_size, device=device, seed=config.seed,
                                     dist=dist, on_device=config.data_on_device,
                                     what=f"{ds.name}/{ds.split}")
        resolved = run.resolved_settings(device, precision, channels_last, batches, dist, dataset,
                                          epochs=config.epochs, arch=arch)
        run.write_run_config(run_dir, config, resolved, payload, dist)
        log = engine.JsonlLog(run_dir / engine.LOG_FILE, records, enabled=dist.is_main)

        def save(st: engine.LoopState) -> Path | None:
            training = run.training_state(dist, networks, optimizers, scaler, precision)
            if training is None:
                return None
            training["models"].update(self.save_models_extra())
            ckpt = {**checkpoint_header(config.kind), "arch": arch, "config": config.to_dict(),
                    **st.as_dict(), **training, "dataset": dataset, "log": list(log.records),
                    "fixed_noise": fixed["noise"], "fixed_labels": fixed["labels"],
                    "warnings": list(loop.warnings), **self.checkpoint_extra(arch, st)}
            return engine.save_checkpoint(ckpt, run_dir, st.current_epoch, config.keep_last)

        def end_of_epoch(st: engine.LoopState) -> None:
            if not dist.is_main:
                return
            images = self.grid_images(arch, fixed, st)
            names = list(ds.class_names) if ds.num_classes > 1 else None
            save_grid(run_dir / "samples" / f"epoch{st.current_epoch:03d}.png", images, rows,
                      names)

        loop = engine.TrainingLoop(
            batches=batches, step_fn=step, epochs=config.epochs, log=log, save=save,
            loss_keys=("loss_d", "loss_g"), show_keys=("loss_d", "loss_g"),
            max_steps=config.max_steps, checkpoint_every=config.checkpoint_every,
            end_of_epoch=end_of_epoch, dist=dist, quiet=config.quiet,
            step_callback=step_callback,
            last_checkpoint=Path(config.resume) if config.resume else None,
            record_fields=self.record_fields(arch), health_check=self.health_check(arch),
            divergence_advice=run.divergence_advice(config.kind, run_dir, precision.name))
        run.say(config, dist,
                f"{config.kind}: {ds.name}/{ds.split} ({len(ds)} images, {config.image_size} "
                f"px, {ds.channels} ch, {ds.num_classes} classes) on {device} "
                f"({precision.name}), {batches.num_batches} steps/epoch, epoch "
                f"{state.epoch + 1} of {config.epochs} -> {run_dir}")
        for net in nets.values():
            net.train()
        state = loop.run(state)
        run.say(config, dist, f"done: epoch {state.current_epoch}, step {state.step}; last "
                              f"checkpoint {loop.last_checkpoint}")
        return run_dir
