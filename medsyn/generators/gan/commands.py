"""CLI of the image GANs: ``medsyn train acgan``, ``medsyn train cgan``, ``medsyn train dcgan``.

The commands are built from the option specs of :mod:`medsyn.generators.gan.config` by
:func:`medsyn.clitools.add_train_command`; heavy imports (torch) happen inside the handler so
``medsyn --help`` stays fast.
"""

from __future__ import annotations

import os
from pathlib import Path

import typer

from medsyn.clitools import add_train_command

KIND_HELP = {
    "acgan": "Train the AC-GAN of CXR-ACGAN (label embedding + noise; discriminator with a "
             "class head). Defaults reproduce the source at 112 px: batch 64, Adam 2e-4/0.5, "
             "388 epochs.",
    "cgan": "Train a conditional DCGAN (one-hot label joined to the noise and to the image).",
    "dcgan": "Train a DCGAN (no labels).",
}


def _handler(kind: str):
    def handle(options: dict, config_file: Path | None) -> None:
        from medsyn.generators.gan.training import train

        run_dir = train(kind, config_file=config_file, **options)
        if os.environ.get("RANK", "0") == "0":      # under torchrun, rank 0 speaks
            typer.echo(f"run folder: {run_dir}  (checkpoint: {Path(run_dir) / 'last.pt'})")
    return handle


def register_training(train_app: typer.Typer) -> None:
    """Add ``acgan``, ``cgan`` and ``dcgan`` to the ``medsyn train`` group."""
    from medsyn.generators.gan.config import options_for

    for kind, help_text in KIND_HELP.items():
        add_train_command(train_app, kind, options_for(kind), _handler(kind), help_text)
