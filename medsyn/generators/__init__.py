"""Generators: train image GANs into self-describing run folders and load their checkpoints.

    run_dir = medsyn.generators.train("cgan", dataset="pneumoniamnist", image_size=28, epochs=5)
    gen = medsyn.generators.load_checkpoint(run_dir / "last.pt", device="cpu")
    images = gen.sample(16, seed=0)           # torch.uint8 [16, C, H, W], balanced classes

See docs/training.md; the reusable training machinery is :mod:`medsyn.generators.engine`.
Names are imported on first use, so ``import medsyn.generators`` (and the CLI) stays light.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "train": "medsyn.generators.training",
    "run_training": "medsyn.generators.training",
    "TrainConfig": "medsyn.generators.config",
    "resolve_config": "medsyn.generators.config",
    "load_checkpoint": "medsyn.generators.checkpoint",
    "read_checkpoint": "medsyn.generators.checkpoint",
    "checkpoint_metadata": "medsyn.generators.checkpoint",
    "register_kind": "medsyn.generators.checkpoint",
    "registered_kinds": "medsyn.generators.checkpoint",
    "GAN_KINDS": "medsyn.generators.gan",
    "GanCheckpoint": "medsyn.generators.gan",
    "size_plan": "medsyn.generators.nets",
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
