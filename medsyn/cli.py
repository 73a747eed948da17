"""The ``medsyn`` command line: a thin typer layer over the Python API.

Every command turns user-fixable problems into a one-line error (a :class:`MedsynError`) and a
non-zero exit status, never a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from medsyn import __version__
from medsyn.clitools import MedsynTyper, console, train_group
from medsyn.evaluators import commands as evaluate_commands
from medsyn.evaluators import selftest as selftest_commands
from medsyn.evaluators.audit import commands as audit_commands
from medsyn.generators.gan import commands as gan_commands
from medsyn.generators.highres import commands as highres_commands
from medsyn.generators.sampling import commands as generator_commands
from medsyn.generators.sr import commands as sr_commands
from medsyn.generators.translation import commands as translation_commands
from medsyn.reports import commands as report_commands

app = MedsynTyper(
    name="medsyn",
    help="Train generators of synthetic medical images and evaluate them against real data.",
    no_args_is_help=True,
)
data_app = MedsynTyper(help="List, inspect and download datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")

DataRootOption = typer.Option(
    None, "--data-root", help="Folder holding the datasets (default: $MEDSYN_DATA_ROOT, then the "
    "per-user cache).", file_okay=False)


def _version_callback(value: bool):
    if value:
        typer.echo(f"medsyn {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version_callback,
                                       is_eager=True, help="Print the version and exit.")):
    """medsyn: evaluation-first benchmarking of synthetic medical images."""


# ---------------------------------------------------------------- data


@data_app.command("list")
def data_list(data_root: Path | None = DataRootOption):
    """List the known datasets and whether each is present, and where."""
    from medsyn.data import dataset_status, known_datasets
    from medsyn.settings import data_roots

    table = Table(title="medsyn datasets")
    table.add_column("name", no_wrap=True)
    table.add_column("present")
    table.add_column("where", overflow="fold")
    table.add_column("splits")
    table.add_column("description")
    for spec in known_datasets():
        status = dataset_status(spec.name, data_root)
        where = status["path"] or "-"
        if status.get("sizes"):
            where += f" (sizes {', '.join(map(str, status['sizes']))})"
        table.add_row(spec.name, "yes" if status["present"] else "no", where,
                      "/".join(status.get("splits", spec.splits)), spec.description)
    console.print(table)
    console.print("Searched: " + ", ".join(str(r) for r in data_roots(data_root))
                  + ".  Any folder of images also loads as <path> or 'folder:<path>'.")


@data_app.command("info")
def data_info(
    name: str = typer.Argument(..., help="Dataset name (see 'medsyn data list'), or a folder of "
                               "images (PATH or folder:PATH)."),
    split: list[str] | None = typer.Option(None, "--split", "-s",
                                              help="Split(s) to show (default: all)."),
    image_size: int | None = typer.Option(None, "--image-size",
                                             help="Resize to this square size first."),
    data_root: Path | None = DataRootOption,
    bit_depth: str = typer.Option("auto", "--bit-depth", help="Intensity rule for images stored "
                                  "with more than 8 bits: auto, 8..16 or minmax."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
):
    """Counts per class and split, image size, channels, bit depths and DICOM windows found,
    files not used, fingerprint, source files."""
    from medsyn.data import load_dataset
    from medsyn.data.folder import ALL_SPLIT, SPLIT_NAMES, scan_folder
    from medsyn.data.registry import folder_path, locate

    folder = folder_path(name)
    if split:
        splits = split
    elif folder is not None or _is_folder_dataset(name):
        listing = scan_folder(folder if folder is not None else locate(name, data_root)[0])
        # a folder without split folders is one set: its automatic split is shown on request
        splits = [s for s in listing.splits if s in SPLIT_NAMES] \
            if listing.layout == "splits" else [ALL_SPLIT]
    else:
        from medsyn.data.registry import _spec

        splits = list(_spec(name).splits)
    infos = [load_dataset(name, s, image_size=image_size, root=data_root,
                          bit_depth=bit_depth).describe() for s in splits]
    if as_json:
        typer.echo(json.dumps(infos, indent=2))
        return
    first = infos[0]
    table = Table(title=f"{name}: {first['image_size'][0]}x{first['image_size'][1]} px, "
                        f"{first['channels']} channel(s)")
    table.add_column("class")
    for info in infos:
        table.add_column(info["split"], justify="right")
    for cls in first["class_names"]:
        table.add_row(cls, *[str(i["class_counts"].get(cls, 0)) for i in infos])
    table.add_row("total", *[str(i["n_images"]) for i in infos], style="bold")
    console.print(table)
    for info in infos:
        console.print(f"[bold]{info['split']}[/] fingerprint {info['fingerprint']}")
        src = info["source"]
        for f in src.get("files", []):
            line = f"  file {f['path']}  sha256 {f['sha256']}"
            if "checksum_matches_official" in f:
                line += "  official checksum: " + ("matches" if f["checksum_matches_official"]
                                                   else "DIFFERS (loaded anyway)")
            console.print(line, highlight=False)
        if "root" in src:
            console.print(f"  folder {src['root']}  {src['n_files']} files  files_sha256 "
                          f"{src['files_sha256']}  split: {src['split_layout']}", highlight=False)
        if "resized_to" in src:
            console.print(f"  resized to {src['resized_to']} px ({src['resize_filter']})",
                          highlight=False)
        _print_intensity(src)


def _is_folder_dataset(name: str) -> bool:
    from medsyn.data.registry import known_datasets

    return any(s.name == name and s.kind == "image-folder" for s in known_datasets())


def _print_intensity(src: dict) -> None:
    """Bit depths, the intensity rule, DICOM windows and unused files of a folder dataset."""
    intensity = src.get("intensity") or {}
    if intensity:
        depths = ", ".join(f"{k}: {v}" for k, v in intensity.get("bit_depths", {}).items())
        console.print(f"  bit depths: {depths}", highlight=False)
        console.print(f"  intensity rule: {intensity.get('bit_depth_rule')}", highlight=False)
        for window, count in intensity.get("windows", {}).items():
            console.print(f"  DICOM window ({count} file(s)): {window}", highlight=False)
    for item in src.get("skipped", []):
        console.print(f"  [yellow]not used:[/] {item['path']}: {item['reason']}",
                      highlight=False)
    for message in src.get("warnings", []):
        console.print(f"  [yellow]warning:[/] {message}", highlight=False)


@data_app.command("fetch")
def data_fetch(
    name: str = typer.Argument(..., help="Dataset to download (MedMNIST flags, mnist)."),
    size: int = typer.Option(28, "--size", help="MedMNIST image size: 28, 64, 128 or 224."),
    data_root: Path | None = DataRootOption,
    force: bool = typer.Option(False, "--force", help="Download again even if present."),
):
    """Download a dataset (needs internet) and verify its checksum."""
    from medsyn.data import fetch_dataset

    path = fetch_dataset(name, root=data_root, size=size, force=force)
    typer.echo(f"{name}: {path}")


# Every command group is registered here, in the order of ``medsyn --help``: each generator
# family adds its trainers to ``medsyn train``, each stage its own commands.
train_app = train_group(app)
gan_commands.register_training(train_app)
generator_commands.register(app)        # medsyn sample
sr_commands.register_training(train_app)
sr_commands.register(app)               # medsyn sr
highres_commands.register_training(train_app)
translation_commands.register_training(train_app)
translation_commands.register(app)      # medsyn translate
evaluate_commands.register(app)
audit_commands.register(app)
selftest_commands.register(app)
report_commands.register(app)


def main():
    app()


if __name__ == "__main__":
    main()
