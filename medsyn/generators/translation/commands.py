"""CLI of translation: ``medsyn train pix2pix``, ``medsyn train cyclegan`` and
``medsyn translate``. Heavy imports stay inside the commands."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from medsyn.clitools import add_train_command

TRANSLATION_HELP = {
    "pix2pix": "Train pix2pix (Isola et al. 2017): U-Net generator, PatchGAN discriminator, L1 "
               "+ adversarial loss, on pairs built from a dataset (--condition edges|lowres|"
               "noise) or a folder of A/ and B/ pairs. Defaults: edges, batch 16, Adam "
               "2e-4/0.5, L1 weight 100, 200 epochs.",
    "cyclegan": "Train CycleGAN (Zhu et al. 2017) between two unpaired domains (--source, "
                "--target: DATASET[:SPLIT][:CLASS]): ResNet generators, PatchGAN "
                "discriminators, LSGAN, cycle 10 and identity 0.5 losses, a pool of 50. "
                "Defaults: batch 1, Adam 2e-4/0.5, 200 epochs.",
}


def _handler(kind: str):
    def handle(options: dict, config_file: Path | None) -> None:
        from medsyn.generators.translation.training import train_translation

        run_dir = train_translation(kind, config_file=config_file, **options)
        if os.environ.get("RANK", "0") == "0":
            typer.echo(f"run folder: {run_dir}  (checkpoint: {Path(run_dir) / 'last.pt'})")
    return handle


def translate(
    images: list[Path] = typer.Argument(..., help="Image files (PNG, JPEG, ...) or folders of "
                                        "them."),
    checkpoint: Path = typer.Option(..., "--checkpoint", "-c", help="pix2pix / cyclegan "
                                    "checkpoint (.pt).", dir_okay=False),
    out: Path = typer.Option(..., "--out", "-o", help="Folder to write OUT/<name>.png and "
                             "OUT/translate.json into.", file_okay=False),
    direction: str = typer.Option("forward", "--direction", help="cyclegan: forward (source -> "
                                  "target) or backward."),
    from_images: bool = typer.Option(False, "--from-images", help="pix2pix trained with "
                                     "--condition: the files are images like its targets; "
                                     "build its input (edges, low resolution, noise) first."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing output files."),
):
    """Translate images with a trained pix2pix or CycleGAN model."""
    from medsyn.generators.translation.apply import translate_files

    written = translate_files(checkpoint, images, out, device=device, direction=direction,
                              from_images=from_images, overwrite=overwrite)
    typer.echo(f"{len(written)} image(s) written to {out}")


def register_training(train_app: typer.Typer) -> None:
    """Add ``pix2pix`` and ``cyclegan`` to the ``medsyn train`` group."""
    from medsyn.generators.translation.config import TRANSLATION_KINDS, translation_options_for

    for kind in TRANSLATION_KINDS:
        add_train_command(train_app, kind, translation_options_for(kind), _handler(kind),
                          TRANSLATION_HELP[kind])


def register(app: typer.Typer) -> None:
    """Add ``medsyn translate``."""
    app.command("translate")(translate)
