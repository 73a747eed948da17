"""``medsyn evaluate``: the command line over :func:`medsyn.evaluators.evaluate_checkpoint`
and :func:`medsyn.evaluators.evaluate_folder` (medsyn.evaluators.api).

Heavy imports (torch, torch-fidelity, matplotlib) happen inside the command so that
``medsyn --help`` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from medsyn.clitools import console
from medsyn.errors import ConfigError, DataError
from medsyn.evaluators.pipeline.checkpoint import (
    REFERENCES,
    checkpoint_out_dir,
    evaluate_checkpoint,
)
from medsyn.evaluators.pipeline.folder import evaluate_folder, folder_out_dir

# leaderboard protocols (docs/evaluation.md, "Encoders you bring"): the space, as a source
# prefix given --extractor-weights (else the weights its library downloads: a Hugging Face repo
# id, the hub's DINOv2 file), and the metric families computed as the protocol's code does
PROTOCOLS = {
    "chexgenbench": ("rad-dino:{weights}", "chexgenbench", "microsoft/rad-dino"),
    "cmmd": ("cmmd-clip:{weights}", "cmmd", "openai/clip-vit-large-patch14-336"),
    "dgm-eval": ("dinov2:vitl14@{weights}", "fid,dgm_eval", ""),
}


def protocol_choice(protocol: str, extractor: str, metrics: str | None,
                    weights: Path | None) -> tuple[str, str]:
    """``(extractor, metrics)`` of ``--protocol``; the user's --metrics are added to its own.
    Without --extractor-weights the space's library downloads its weights (not offline)."""
    if protocol not in PROTOCOLS:
        raise ConfigError(f"--protocol must be one of {', '.join(PROTOCOLS)}, got "
                          f"{protocol!r}.")
    space, families, default = PROTOCOLS[protocol]
    if extractor != "inception":
        raise ConfigError(f"--protocol {protocol} sets the feature space ({space.split(':')[0]})"
                          f"; drop --extractor {extractor}.")
    target = space.format(weights=weights if weights is not None else default)
    return target.rstrip("@"), families + (f",{metrics}" if metrics else "")


def _int_list(flag: str, text: str | None) -> tuple[int, ...] | None:
    """``"32,64"`` -> ``(32, 64)``; None stays None."""
    if text is None:
        return None
    try:
        return tuple(int(v) for v in text.replace(" ", "").split(",") if v)
    except ValueError:
        raise ConfigError(f"{flag} must be comma-separated integers, got {text!r}.") from None


def _print_summary(results: dict, out_dir: Path | None):
    from rich.console import Console
    from rich.table import Table

    from medsyn.evaluators.results import summary_rows

    run = results.get("run") or {}
    prov = results.get("provenance", {})
    ref = prov.get("reference") or {}
    spaces = prov.get("spaces") or [str((prov.get("extractor") or {}).get("name"))]
    title = (f"{run.get('checkpoint') or (prov.get('fake') or {}).get('path') or 'fake images'}"
             f" vs {ref.get('name')}/{ref.get('split')}  [{', '.join(spaces)}]")
    table = Table(title=title, title_justify="left")
    for col, justify in (("metric", "left"), ("value", "right"), ("95% CI", "right"),
                         ("n_real", "right"), ("n_fake", "right")):
        table.add_column(col, justify=justify, no_wrap=True)
    table.add_column("note", overflow="ellipsis", max_width=60)
    for row in summary_rows(results):
        table.add_row(*row)
    # a table squeezed into 80 columns (pipes, CI logs) is unreadable: never narrower than 140
    Console(width=max(console.width, 140)).print(table)
    for w in results.get("warnings", []):
        console.print(f"[yellow]warning:[/] {w}", highlight=False)
    verdict = ((results.get("metrics") or {}).get("privacy") or {}).get("verdict")
    if isinstance(verdict, dict) and verdict.get("text"):
        # yellow: the baseline is shifted and no control decides (docs/privacy.md)
        colour = "red" if verdict.get("leak_suspected") else \
            "yellow" if verdict.get("exchangeable") is False and verdict.get("basis") is None \
            else "green"
        console.print(f"[{colour}]privacy:[/] {verdict['text']}", highlight=False)
    if out_dir is not None:
        console.print(f"results: {out_dir / 'results.json'}", highlight=False)


def evaluate_command(
    checkpoint: str | None = typer.Option(
        None, "--checkpoint", "-c", help="Generator checkpoint (.pt), or a quoted glob such as "
        "'runs/x/epoch*.pt' for one result per checkpoint."),
    fake: Path | None = typer.Option(
        None, "--fake", help="Synthetic images: a folder (PNG/JPEG/TIFF, 12/16-bit, DICOM; "
        "optionally one sub-folder per class, named like the dataset's classes) or an .npz "
        "(images [+ labels])."),
    real: str | None = typer.Option(
        None, "--real", help="Reference for --fake: DATASET[:SPLIT] (e.g. cxr3:train), or a "
        "folder of images (PATH or folder:PATH; every image it holds unless PATH:SPLIT)."),
    metrics: str | None = typer.Option(
        None, "--metrics", "-m", help="Comma-separated metric families (default: all; see "
        "--list)."),
    n_samples: int | None = typer.Option(
        None, "--n-samples", "-n", help="Number of fake images (default: checkpoint: as many "
        "per class as the reference; --fake: all)."),
    n_real: int | None = typer.Option(
        None, "--n-real", help="Use at most this many reference images (stratified by class); "
        "also bounds the train and test images of the floor and memorization check unless "
        "--n-memorization is given."),
    n_memorization: int | None = typer.Option(
        None, "--n-memorization", help="At most this many train and this many test images "
        "(stratified) for the real-vs-real floor and the memorization check (default: "
        "--n-real, else every image)."),
    seed: int = typer.Option(0, "--seed", help="Seed for sampling, subsets and the bootstrap."),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Output folder (default: runs/NAME/eval/<checkpoint stem>/ "
        "next to the checkpoint, or eval/<name>/ next to --fake)."),
    batch_size: int = typer.Option(64, "--batch-size", help="Images per forward pass."),
    device: str = typer.Option("auto", "--device", help="cpu, cuda, cuda:N or auto."),
    reference: str | None = typer.Option(
        None, "--reference", help="Checkpoint's reference split: train or test (default: "
        "train for generators; test for super-resolution checkpoints, whose HR test images "
        "are downscaled, upscaled and compared)."),
    extractor: str = typer.Option(
        "inception", "--extractor", help="Feature space, or a comma list to score every metric "
        "in each (e.g. inception,ssl,radiomics,wavelet; see --list)."),
    extractor_weights: Path | None = typer.Option(
        None, "--extractor-weights", help="Local weights of an encoder you bring: the file of "
        "timm:MODEL, dinov2:ARCH, tf:NAME, torchxrayvision:NAME (or write SPACE@FILE), or the "
        "model folder of --protocol. Without it the encoder's library downloads its weights "
        "(not with MEDSYN_OFFLINE=1 or HF_HUB_OFFLINE=1)."),
    protocol: str | None = typer.Option(
        None, "--protocol", help="Compute a leaderboard's numbers as its code does: "
        "chexgenbench (RAD-DINO FID / KID / PRDC), cmmd (CLIP CMMD) or dgm-eval (DINOv2 "
        "ViT-L/14 FD, FD-infinity, KD, PRDC, Vendi); weights from --extractor-weights, else "
        "downloaded."),
    ssl_recipe: str = typer.Option(
        "quick", "--ssl-recipe", help="Training recipe of the 'ssl' space's SimCLR encoder: "
        "quick (CPU, minutes at 28 px) or standard (100 epochs; a GPU recipe)."),
    inception_weights: Path | None = typer.Option(
        None, "--inception-weights", help="Local torch-fidelity inception-v3-compat weights "
        "(default: $MEDSYN_INCEPTION_WEIGHTS, else torch-fidelity downloads its own)."),
    bootstrap: int = typer.Option(50, "--bootstrap", help="Bootstrap resamples for the 95% "
                                  "intervals (0: none)."),
    kid_subset_size: int = typer.Option(1000, "--kid-subset-size",
                                        help="KID subset size (reduced to the sample count)."),
    image_size: int | None = typer.Option(
        None, "--image-size", help="Resize fakes and reference to this square size."),
    data_root: Path | None = typer.Option(
        None, "--data-root", help="Folder holding the datasets (default: $MEDSYN_DATA_ROOT).",
        file_okay=False),
    bit_depth: str = typer.Option(
        "auto", "--bit-depth", help="Intensity rule for images stored with more than 8 bits, one "
        "for the whole dataset: auto (declared sBIT, else the smallest of 8/10/12/14/16 bits "
        "holding the largest value), 8..16, or minmax (global min/max)."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not read or write cached "
                                  "real-set features and trained real-data classifiers."),
    utility_recipe: str = typer.Option(
        "quick", "--utility-recipe", help="Classifier recipe of the utility protocol and the "
        "'classifier' extractor: quick (ResNet-18, 10 epochs) or medmnist (MedMNIST v2's "
        "100-epoch recipe)."),
    utility_epochs: int | None = typer.Option(
        None, "--utility-epochs", help="Override the recipe's epochs (the LR milestones stay "
        "at the same fractions)."),
    utility_seeds: str = typer.Option(
        "0,1,2", "--utility-seeds", help="Comma-separated training seeds of every utility arm."),
    utility_ratio: float = typer.Option(
        1.0, "--utility-ratio", help="TRTR+S: synthetic images added per real training image."),
    classifier_weights: Path | None = typer.Option(
        None, "--classifier-weights", help="Local timm state_dict to initialise the utility "
        "classifiers (default: random initialisation; nothing is downloaded). It must hold "
        "the recipe's network (a classifier head of another size is replaced).",
        dir_okay=False),
    classifier_weights_partial: bool = typer.Option(
        False, "--classifier-weights-partial", help="Load only the tensors of "
        "--classifier-weights that fit the network (the rest keeps its random initialisation) "
        "instead of refusing a file of another network."),
    privacy_baseline: str = typer.Option(
        "auto", "--privacy-baseline", help="Held-out real images of the privacy audit: auto "
        "(the validation split, else the test split), val, test, or reserve[:FRACTION] (a "
        "random part of the training split, 10% unless FRACTION, that the generator was "
        "trained without); docs/privacy.md."),
    seam_patch: int | None = typer.Option(
        None, "--seam-patch", help="Tile size of the 'seams' metric family (--metrics ...,seams): "
        "a tiled generator's patch size, e.g. 64 for a MEGAN; docs/highres.md."),
    fid_scales: str | None = typer.Option(
        None, "--fid-scales", help="Sizes of the 'scale_fid' family (--metrics ...,scale_fid), "
        "comma-separated, e.g. 32,64,128: FID with both sets downsampled to each."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing evaluation "
                                   "in the output folder (all its files and figures); without "
                                   "it an existing results.json is never overwritten."),
    as_json: bool = typer.Option(False, "--json", help="Print results.json instead of a table."),
    list_only: bool = typer.Option(False, "--list", help="List metric families and feature "
                                   "extractors, and exit."),
):
    """Score synthetic images (a checkpoint's samples, a folder or an npz) against real data:
    FID, KID, IS, intra-FID, precision/recall/density/coverage, real-vs-real floor,
    memorization, t-SNE. Writes results.json, metrics.csv and figures. A super-resolution
    checkpoint (srresnet, srgan) gets PSNR/SSIM-Y of its outputs and of bicubic upscaling, and
    their FID against the HR images, on its dataset's test split."""
    if list_only:
        from medsyn.evaluators.features import list_extractors
        from medsyn.evaluators.metrics import list_metrics

        console.print("[bold]metric families[/] (--metrics)")
        for k, v in list_metrics().items():
            console.print(f"  {k:14s} {v}", highlight=False)
        console.print("[bold]feature extractors[/] (--extractor)")
        from rich.markup import escape

        for k, v in list_extractors().items():      # "[...]" is text, not rich markup
            console.print(f"  {escape(k):14s} {escape(v)}", highlight=False)
        return
    if (checkpoint is None) == (fake is None):
        raise ConfigError("give either --checkpoint X.pt or --fake PATH --real DATASET[:SPLIT].")
    if fake is not None and not real:
        raise ConfigError("--fake needs --real DATASET[:SPLIT] (e.g. --real cxr3:train).")
    if checkpoint is not None and real:
        raise ConfigError("--real is for --fake; a checkpoint's reference is its own dataset "
                          "(choose the split with --reference train|test).")
    if reference is not None and reference not in REFERENCES:
        raise ConfigError(f"--reference must be one of {REFERENCES}, got {reference!r}.")
    for flag, v in (("--n-samples", n_samples), ("--n-real", n_real),
                    ("--n-memorization", n_memorization)):
        if v is not None and v < 2:
            raise ConfigError(f"{flag} must be at least 2, got {v}.")
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {batch_size}.")
    from medsyn.evaluators.metrics.context import parse_privacy_baseline

    try:
        parse_privacy_baseline(privacy_baseline)
    except ConfigError as exc:
        raise ConfigError(f"--privacy-baseline: {exc}") from None
    from medsyn.data.formats.intensity import BIT_DEPTH_HELP, parse_bit_depth

    try:
        bit_depth = parse_bit_depth(bit_depth)
    except DataError:
        raise ConfigError(f"--bit-depth must be {BIT_DEPTH_HELP}, got {bit_depth!r}.") from None

    from medsyn.evaluators import inputs
    from medsyn.evaluators.features import parse_extractor_names
    from medsyn.evaluators.features.sharding import join_torchrun, leave_torchrun
    from medsyn.evaluators.metrics import EvalOptions, resolve_metrics
    from medsyn.evaluators.networks.recipes import get_recipe
    from medsyn.evaluators.networks.ssl import get_ssl_recipe
    from medsyn.evaluators.results import check_output_folder
    from medsyn.evaluators.scoring.spaces import FeatureSpaces, space_settings
    from medsyn.utils import check_seed

    # everything a user can get wrong is checked before the (slow) network is loaded
    check_seed(seed)
    if protocol is not None:
        extractor, metrics = protocol_choice(protocol, extractor, metrics, extractor_weights)
    specs = resolve_metrics(metrics, have_discriminator=True)
    extractor_names = parse_extractor_names(extractor)
    ssl = get_ssl_recipe(ssl_recipe)
    try:
        seeds = tuple(int(x) for x in utility_seeds.replace(" ", "").split(",") if x)
    except ValueError:
        raise ConfigError(f"--utility-seeds must be comma-separated integers, got "
                          f"{utility_seeds!r}.") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError(f"--utility-seeds must be distinct integers, at least one, got "
                          f"{utility_seeds!r}.")
    if not utility_ratio > 0:
        raise ConfigError(f"--utility-ratio must be > 0, got {utility_ratio}.")
    if utility_epochs is not None and utility_epochs < 1:
        raise ConfigError(f"--utility-epochs must be >= 1, got {utility_epochs}.")
    if classifier_weights_partial and classifier_weights is None:
        raise ConfigError("--classifier-weights-partial needs --classifier-weights.")
    recipe = get_recipe(utility_recipe, epochs=utility_epochs,
                        pretrained=str(classifier_weights) if classifier_weights else None,
                        pretrained_partial=True if classifier_weights_partial else None)
    options = EvalOptions(n_bootstrap=bootstrap, seed=seed, batch_size=batch_size,
                          kid_subset_size=kid_subset_size, use_cache=not no_cache,
                          utility_recipe=recipe, utility_seeds=seeds,
                          utility_ratio=utility_ratio, ssl_recipe=ssl,
                          privacy_baseline=privacy_baseline, seam_patch=seam_patch,
                          fid_scales=_int_list("--fid-scales", fid_scales))
    options.validate()
    paths = inputs.expand_checkpoints(checkpoint) if checkpoint is not None else None
    if fake is not None and not fake.expanduser().exists():
        raise DataError(f"--fake {fake}: no such file or folder.")
    out_dirs = [checkpoint_out_dir(p, len(paths), out) for p in paths] if paths else \
        [folder_out_dir(fake, out)]
    # an output that would be refused is refused before anything slow runs
    for out_dir in out_dirs:
        check_output_folder(out_dir, overwrite)
    dev = join_torchrun(device)        # under torchrun: this rank's device, group joined
    # built once for every checkpoint: missing weights fail here, before any sampling
    spaces = FeatureSpaces(extractor_names, dev,
                           space_settings(options, inception_weights=inception_weights,
                                          extractor_weights=extractor_weights),
                           needed=any(spec.needs_features for spec in specs))
    spaces.preload()
    common = dict(metrics=metrics, extractor=spaces, n_samples=n_samples, n_real=n_real,
                  n_split=n_memorization, image_size=image_size, data_root=data_root,
                  bit_depth=bit_depth, device=dev, options=options, overwrite=overwrite)
    try:
        for i, out_dir in enumerate(out_dirs):
            if paths:
                results = evaluate_checkpoint(paths[i], out_dir=out_dir, reference=reference,
                                              **common)
            else:
                results = evaluate_folder(fake, real, out_dir=out_dir, **common)
            if results is None:         # a torchrun rank other than 0: it only extracted
                continue
            if as_json:
                typer.echo(json.dumps(results, indent=2, default=str))
            else:
                _print_summary(results, out_dir)
    finally:
        leave_torchrun()


def register(app) -> None:
    app.command("evaluate")(evaluate_command)
