"""``medsyn sample``: images of any noise-to-image generator checkpoint as PNG files.

The training commands of each family are in its own package (:mod:`medsyn.generators.gan.commands`,
:mod:`medsyn.generators.sr.commands`); :mod:`medsyn.cli` registers all of them.
"""

from __future__ import annotations

from pathlib import Path

import typer


def sample(
    checkpoint: Path = typer.Option(..., "--checkpoint", "-c", help="Checkpoint (.pt) to sample "
                                    "from.", dir_okay=False),
    n: int = typer.Option(..., "--n", "-n", help="Number of images (balanced over classes)."),
    out: Path = typer.Option(..., "--out", "-o", help="New or empty folder to write: one "
                             "sub-folder of PNGs per class and labels.csv.", file_okay=False),
    seed: int = typer.Option(0, "--seed", help="Seed of the noise (same seed, same images)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    batch_size: int = typer.Option(256, "--batch-size", help="Images generated at once."),
):
    """Write generated images as PNGs in one folder per class, plus a CSV of file -> label."""
    from medsyn.generators.sampling import write_samples

    csv_path = write_samples(checkpoint, n, out, seed=seed, device=device, batch_size=batch_size)
    typer.echo(f"{n} images in {out} (labels: {csv_path})")


def register(app: typer.Typer) -> None:
    app.command("sample")(sample)
