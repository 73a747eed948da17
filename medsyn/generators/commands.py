"""CLI of the generators stage: ``medsyn train {acgan,cgan,dcgan}`` and ``medsyn sample``
(plus the super-resolution commands of :mod:`medsyn.generators.sr_commands`).

Training commands are built from option specs (:mod:`medsyn.generators.config`), so another
trainer (SRGAN) adds its own command to the same group with the shared options:

    from medsyn.generators.commands import add_train_command, train_group
    add_train_command(train_group(app), "srgan", my_option_specs, handler, "Train an SRGAN.")

Heavy imports (torch) happen inside the command functions so ``medsyn --help`` stays fast.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import typer

from medsyn.clitools import MedsynTyper

TRAIN_GROUP = "train"

KIND_HELP = {
    "acgan": "Train the AC-GAN of CXR-ACGAN (label embedding + noise; discriminator with a "
             "class head). Defaults reproduce the source at 112 px: batch 64, Adam 2e-4/0.5, "
             "388 epochs.",
    "cgan": "Train a conditional DCGAN (one-hot label joined to the noise and to the image).",
    "dcgan": "Train a DCGAN (no labels).",
}


def train_group(app: typer.Typer) -> MedsynTyper:
    """The ``medsyn train`` sub-group of ``app``, created on first use."""
    for group in app.registered_groups:
        if group.name == TRAIN_GROUP:
            return group.typer_instance
    group = MedsynTyper(help="Train a generator into a run folder (config.json, log.jsonl, "
                             "samples/, epochNNN.pt, last.pt). See docs/training.md.",
                        no_args_is_help=True)
    app.add_typer(group, name=TRAIN_GROUP)
    return group


def option_parameter(spec) -> inspect.Parameter:
    """A typer parameter (default None = "not given") for an :class:`OptionSpec`."""
    if spec.type is bool:
        flags = (f"{spec.flag}/--no-{spec.flag[2:]}",)
    else:
        flags = (spec.flag,)
    return inspect.Parameter(spec.name, inspect.Parameter.KEYWORD_ONLY,
                             default=typer.Option(None, *flags, help=spec.help, show_default=False),
                             annotation=spec.type | None)


CONFIG_PARAMETER = inspect.Parameter(
    "config", inspect.Parameter.KEYWORD_ONLY,
    default=typer.Option(None, "--config", help="TOML file of options (keys named like the "
                         "options, e.g. batch_size = 32); options given here win.",
                         show_default=False, dir_okay=False),
    annotation=Path | None)


def build_command(specs: Sequence, handler: Callable[[dict, Path | None], None],
                  doc: str) -> Callable:
    """A function typer can register, with one option per spec plus ``--config``.

    ``handler(options, config_file)`` gets only the options the user gave.
    """
    params = [CONFIG_PARAMETER] + [option_parameter(s) for s in specs]

    def command(**kwargs):
        config_file = kwargs.pop("config", None)
        handler({k: v for k, v in kwargs.items() if v is not None}, config_file)

    command.__signature__ = inspect.Signature(params)
    command.__annotations__ = {p.name: p.annotation for p in params}
    command.__doc__ = doc
    return command


def add_train_command(group: typer.Typer, name: str, specs: Sequence,
                      handler: Callable[[dict, Path | None], None], doc: str) -> None:
    cmd = build_command(specs, handler, doc)
    cmd.__name__ = f"train_{name}"
    group.command(name)(cmd)


def _gan_handler(kind: str):
    def handle(options: dict, config_file: Path | None) -> None:
        from medsyn.generators.training import train

        run_dir = train(kind, config_file=config_file, **options)
        if os.environ.get("RANK", "0") == "0":      # under torchrun, rank 0 speaks
            typer.echo(f"run folder: {run_dir}  (checkpoint: {Path(run_dir) / 'last.pt'})")
    return handle


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
    from medsyn.generators.config import options_for

    group = train_group(app)
    for kind in ("acgan", "cgan", "dcgan"):
        add_train_command(group, kind, options_for(kind), _gan_handler(kind), KIND_HELP[kind])
    app.command("sample")(sample)
    from medsyn.generators import sr_commands

    sr_commands.register(app)
