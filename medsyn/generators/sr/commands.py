"""CLI of super-resolution: ``medsyn train srresnet``, ``medsyn train srgan`` and ``medsyn sr``.

The training commands join the ``medsyn train`` group with the shared option machinery
(:func:`medsyn.clitools.add_train_command`); heavy imports stay inside the commands.
"""

from __future__ import annotations

import os
from pathlib import Path

import typer

from medsyn.clitools import add_train_command

SR_HELP = {
    "srresnet": "Train SRResNet (the SRGAN generator) with pixel MSE alone (SRResNet-MSE). "
                "Defaults: x4, 96 px HR crops, batch 16, Adam 1e-4/0.9, 100 epochs.",
    "srgan": "Train SRGAN: MSE pre-training of SRResNet, then content loss + 1e-3 x adversarial "
             "loss (Ledig et al. 2017). Defaults: x4, 96 px HR crops, batch 16, Adam 1e-4/0.9, "
             "100 + 100 epochs, lr x0.1 halfway through the adversarial phase; --init-from "
             "starts from a trained srresnet.",
}


def _sr_handler(kind: str):
    def handle(options: dict, config_file: Path | None) -> None:
        from medsyn.generators.sr.training import train_sr

        run_dir = train_sr(kind, config_file=config_file, **options)
        if os.environ.get("RANK", "0") == "0":
            typer.echo(f"run folder: {run_dir}  (checkpoint: {Path(run_dir) / 'last.pt'})")
    return handle


def sr(
    images: list[Path] = typer.Argument(..., help="Image files (PNG, JPEG, ...) or folders of "
                                        "them, grayscale or RGB."),
    checkpoint: Path = typer.Option(..., "--checkpoint", "-c", help="srresnet / srgan "
                                    "checkpoint (.pt).", dir_okay=False),
    out: Path = typer.Option(..., "--out", "-o", help="Folder to write OUT/<name>.png and "
                             "OUT/sr.json into.", file_okay=False),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing output files."),
):
    """Upscale images with a trained super-resolution model (x its scale)."""
    from medsyn.generators.sr.apply import upscale_files

    written = upscale_files(checkpoint, images, out, device=device, overwrite=overwrite)
    typer.echo(f"{len(written)} image(s) written to {out}")


def register_training(train_app: typer.Typer) -> None:
    """Add ``srresnet`` and ``srgan`` to the ``medsyn train`` group."""
    from medsyn.generators.sr.config import SR_KINDS, sr_options_for

    for kind in SR_KINDS:
        add_train_command(train_app, kind, sr_options_for(kind), _sr_handler(kind),
                          SR_HELP[kind])


def register(app: typer.Typer) -> None:
    """Add ``medsyn sr``."""
    app.command("sr")(sr)
