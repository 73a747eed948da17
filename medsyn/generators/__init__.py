"""Generators: train image GANs into self-describing run folders and load their checkpoints.

    run_dir = medsyn.generators.train("cgan", dataset="pneumoniamnist", image_size=28, epochs=5)
    gen = medsyn.generators.load_checkpoint(run_dir / "last.pt", device="cpu")
    images = gen.sample(16, seed=0)           # torch.uint8 [16, C, H, W], balanced classes

See docs/training.md. Rooms, one concern each:

    interface.py   Task and the GeneratorCheckpoint protocol every loaded checkpoint follows
    checkpoint.py  the checkpoint file format, safe reading, the kind -> loader registry
    config.py      OptionSpec, BaseTrainConfig (the options every trainer shares), resolution
    engine/        reusable training machinery (precision, DDP, batches, RNG, files, the loop);
                   engine/run.py: a run's folder and continuity (never overwrite, resume
                   checks, seeding); engine/adversarial.py: the D/G update every GAN-like
                   trainer shares
    stabilisers/   parts of a stable recipe any family may use (hinge, SN, DiffAugment, EMA)
    sampling/      ``medsyn sample`` (PNGs of any noise-to-image checkpoint, its command) and
                   the sample grids every trainer writes
    image_files.py images given to a trained model (``medsyn sr`` / ``medsyn translate``)
    gan/           the image GAN family (acgan, cgan, dcgan)
    sr/            the super-resolution family (srresnet, srgan)
    highres/       PGGAN and MEGAN
    translation/   pix2pix and CycleGAN

Names are imported on first use, so ``import medsyn.generators`` (and the CLI) stays light.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "train": "medsyn.generators.gan.training",
    "run_training": "medsyn.generators.gan.training",
    "TrainConfig": "medsyn.generators.gan.config",
    "resolve_config": "medsyn.generators.gan.config",
    "BaseTrainConfig": "medsyn.generators.config",
    "train_sr": "medsyn.generators.sr.training",
    "SRTrainConfig": "medsyn.generators.sr.config",
    "SRCheckpoint": "medsyn.generators.sr.checkpoint",
    "load_checkpoint": "medsyn.generators.checkpoint",
    "read_checkpoint": "medsyn.generators.checkpoint",
    "checkpoint_metadata": "medsyn.generators.checkpoint",
    "register_kind": "medsyn.generators.checkpoint",
    "registered_kinds": "medsyn.generators.checkpoint",
    "GAN_KINDS": "medsyn.generators.gan.kinds",
    "GanCheckpoint": "medsyn.generators.gan.checkpoint",
    "size_plan": "medsyn.generators.gan.nets",
    "Task": "medsyn.generators.interface",
    "GeneratorCheckpoint": "medsyn.generators.interface",
    "task_of_kind": "medsyn.generators.interface",
    "write_samples": "medsyn.generators.sampling",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'medsyn.generators' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
