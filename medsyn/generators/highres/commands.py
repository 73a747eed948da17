"""CLI of the high-resolution family: ``medsyn train pggan`` and ``medsyn train megan``.

Built from the option specs of :mod:`medsyn.generators.highres.config`; torch is imported
inside the handler so ``medsyn --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path

import typer

from medsyn.clitools import add_train_command

KIND_HELP = {
    "pggan": "Train a progressively growing GAN (Karras et al. 2018): from --start-size to "
             "--image-size with fade-in, minibatch standard deviation, equalised learning "
             "rate, pixel norm, class projection and an EMA generator (docs/highres.md).",
    "megan": "Train MEGAN (Uzunova et al. 2019): a U-Net for the whole low-resolution image "
             "from its edge map, then patch GANs at each doubling, conditioned on the upscaled "
             "previous scale and its edges (docs/highres.md).",
}


def _handler(kind: str):
    def handle(options: dict, config_file: Path | None) -> None:
        if kind == "pggan":
            from medsyn.generators.highres.pggan_training import train_pggan as train
        else:
            from medsyn.generators.highres.megan_training import train_megan as train
        run_dir = train(config_file=config_file, **options)
        typer.echo(f"run folder: {run_dir}  (checkpoint: {Path(run_dir) / 'last.pt'})")
    return handle


def register_training(train_app: typer.Typer) -> None:
    """Add ``pggan`` and ``megan`` to the ``medsyn train`` group."""
    from medsyn.generators.highres.config import options_for

    for kind, help_text in KIND_HELP.items():
        add_train_command(train_app, kind, options_for(kind), _handler(kind), help_text)
