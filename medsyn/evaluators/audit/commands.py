"""``medsyn audit``: the command line over :func:`medsyn.evaluators.audit.audit`."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from medsyn.clitools import console
from medsyn.errors import ConfigError


def audit_command(
    dataset: str = typer.Option(
        ..., "--dataset", "-d", help="DATASET[:SPLIT]: the synthetic sets are built from SPLIT "
        "(held out; default test), the reference is the train split. DATASET:train with "
        "--n-reference N: a reference of N training images and a pool of the others (for "
        "--power at large n)."),
    extractor: str | None = typer.Option(
        None, "--extractor", help="Comma-separated feature spaces (default: inception,pixels; "
        "see medsyn evaluate --list)."),
    metrics: str | None = typer.Option(
        None, "--metrics", "-m", help="Comma-separated metric families (default: every default "
        "family that declares a worse direction)."),
    failures: str | None = typer.Option(
        None, "--failures", help="Comma-separated failures (default: all): blur, noise, "
        "intensity, jpeg, class_drop, cluster_drop, label_swap, memorisation, diversity."),
    out: Path | None = typer.Option(
        None, "--out", "-o", file_okay=False, help="Output folder for audit.json, card.md, "
        "card.html and figures (default: runs/audit-DATASET-SIZEpx, where medsyn report finds "
        "it)."),
    quick: bool = typer.Option(False, "--quick", help="CPU-sized: n 48, pool 160, reference "
                               "320, 20 bootstrap resamples (docs/audit.md)."),
    n: int | None = typer.Option(None, "-n", "--n", help="Images per synthetic set (default "
                                 "300, at most half the held-out images; --quick 48)."),
    n_pool: int | None = typer.Option(None, "--n-pool", help="Held-out images to build from "
                                      "(default: the whole split; --quick 160)."),
    n_reference: int | None = typer.Option(None, "--n-reference", help="Reference (train) "
                                           "images (default: all; --quick 320; required with "
                                           "DATASET:train)."),
    bootstrap: int | None = typer.Option(None, "--bootstrap", help="Bootstrap resamples per "
                                         "interval (default 50; --quick 20)."),
    seed: int = typer.Option(0, "--seed", help="Seed of every sample, perturbation and "
                             "bootstrap."),
    image_size: int | None = typer.Option(None, "--image-size",
                                          help="Resize the dataset to this square size."),
    batch_size: int = typer.Option(64, "--batch-size", help="Images per forward pass."),
    device: str = typer.Option("auto", "--device", help="cpu, cuda, cuda:N or auto."),
    inception_weights: Path | None = typer.Option(
        None, "--inception-weights", help="Local inception-v3-compat weights (default: "
        "$MEDSYN_INCEPTION_WEIGHTS)."),
    extractor_weights: Path | None = typer.Option(
        None, "--extractor-weights", help="Local weights of an encoder you bring, as for medsyn "
        "evaluate: the file of timm:MODEL, dinov2:ARCH, tf:NAME, torchxrayvision:NAME (or write "
        "SPACE@FILE). Without it the encoder's library downloads its weights (not with "
        "MEDSYN_OFFLINE=1 or HF_HUB_OFFLINE=1)."),
    data_root: Path | None = typer.Option(None, "--data-root", file_okay=False,
                                          help="Folder holding the datasets."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not read or write cached "
                                  "real-set features."),
    as_json: bool = typer.Option(False, "--json", help="Print audit.json instead of the card."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing audit in "
                                   "the output folder (all its files and figures); without it "
                                   "an existing audit is never overwritten."),
    power: bool = typer.Option(False, "--power", help="Sample-size power: the detection rate of "
                               "every failure level at several set sizes over repeated draws, "
                               "and the smallest n with 80 % power (docs/statistics.md)."),
    power_sizes: str | None = typer.Option(
        None, "--power-sizes", help="Comma-separated set sizes for --power (default 25,50,100,"
        "200,400,800,1600,2000; sizes above half the held-out pool are left out)."),
    power_repeats: int | None = typer.Option(None, "--power-repeats", help="Draws per size and "
                                             "level for --power (default 20; --quick 10)."),
    reference_sensitivity: bool = typer.Option(
        False, "--reference-sensitivity", help="How much each metric moves between real "
        "references: random halves of the reference (whole patients) and references with one "
        "class left out."),
    preprocessing: bool = typer.Option(
        False, "--preprocessing", help="How much the input pipeline alone moves each metric: "
        "the held-out images under alternative resize filters, 8-bit quantisation, "
        "bit-depth rules and (DICOM files) window rules, scored against the default "
        "pipeline's reference."),
):
    """Measure, on real data, which metric detects which failure: controlled failures of
    held-out images (blur, noise, contrast, JPEG, class/cluster drop, label swaps,
    memorisation, loss of diversity) at graded severities, scored in every space; writes a
    trust card (audit.json, card.md, card.html, figures)."""
    from medsyn.evaluators.audit.runner import audit
    from medsyn.evaluators.features.sharding import join_torchrun, leave_torchrun
    from medsyn.evaluators.inputs import parse_real

    if batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {batch_size}.")
    name, split = parse_real(dataset, default_split="test")
    sizes = None
    if power_sizes is not None:
        try:
            sizes = [int(v) for v in power_sizes.replace(" ", "").split(",") if v]
        except ValueError:
            raise ConfigError(f"--power-sizes: give comma-separated integers, e.g. 50,100,200; "
                              f"got {power_sizes!r}.") from None
    if out is None:
        size = f"-{image_size}px" if image_size else ""
        safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)
        out = Path("runs") / f"audit-{safe}{size}"
    # under torchrun: this rank's device, the process group joined; each rank extracts its
    # shard of every feature set (and its share of --power's draws), rank 0 alone scores the
    # rest and writes (docs/scale.md)
    dev = join_torchrun(device)
    try:
        result = audit(name, split, extractors=extractor, metrics=metrics, failures=failures,
                       quick=quick, n=n, n_pool=n_pool, n_reference=n_reference,
                       n_bootstrap=bootstrap, seed=seed, device=dev, batch_size=batch_size,
                       image_size=image_size, data_root=data_root, out_dir=out,
                       use_cache=not no_cache, inception_weights=inception_weights,
                       extractor_weights=extractor_weights,
                       overwrite=overwrite, power=power, power_sizes=sizes,
                       power_repeats=power_repeats,
                       reference_sensitivity=reference_sensitivity, preprocessing=preprocessing)
    finally:
        leave_torchrun()
    if result is None:          # a torchrun rank other than 0: it wrote nothing
        return
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    from medsyn.evaluators.audit.card import card_markdown

    typer.echo(card_markdown(result))         # Markdown tables: never wrapped to the terminal
    for w in result["warnings"]:
        console.print(f"[yellow]warning:[/] {w}", highlight=False)
    console.print(f"audit: {out / 'audit.json'}  card: {out / 'card.html'}  "
                  f"({result['provenance']['timings']['total_s']:.0f} s)", highlight=False)


def register(app) -> None:
    app.command("audit")(audit_command)
