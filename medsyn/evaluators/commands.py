"""``medsyn evaluate``: the command line over :func:`medsyn.evaluators.evaluate`.

Heavy imports (torch, torch-fidelity, matplotlib) happen inside the command so that
``medsyn --help`` stays fast.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer

from medsyn.clitools import console
from medsyn.errors import ConfigError, DataError

REFERENCES = ("train", "test")


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
        colour = "red" if verdict.get("leak_suspected") else "green"
        console.print(f"[{colour}]privacy:[/] {verdict['text']}", highlight=False)
    if out_dir is not None:
        console.print(f"results: {out_dir / 'results.json'}", highlight=False)


def _maybe_dataset(name, split, image_size, root, what, bit_depth=None):
    from medsyn.data import load_dataset

    try:
        return load_dataset(name, split, image_size=image_size, root=root, bit_depth=bit_depth)
    except DataError as exc:
        # stderr, so that --json output stays parseable
        typer.echo(f"note: no {what} ({name}/{split}): {str(exc).splitlines()[0]}", err=True)
        return None


def _resize_info(ds) -> str:
    src = ds.source or {}
    if src.get("resized_to"):
        frm = src.get("resized_from")
        frm = f"from {frm[0]}x{frm[1]}px " if isinstance(frm, list) and len(frm) == 2 else ""
        return f"{ds.name}/{ds.split} resized {frm}to {src['resized_to']}px " \
               f"({src.get('resize_filter')})"
    return f"none: {ds.name}/{ds.split} at its stored size {ds.image_size[0]}px"


def _checkpoint_root(data_root, meta_root):
    """--data-root, else MEDSYN_DATA_ROOT, else the root recorded in the checkpoint if it
    still exists, else the default (an explicit choice always wins over the recording)."""
    from medsyn.settings import ENV_DATA_ROOT

    if data_root is not None or os.environ.get(ENV_DATA_ROOT):
        return data_root
    if meta_root and Path(meta_root).is_dir():
        return Path(meta_root)
    return None


def _evaluate_checkpoints(paths, opts, extractor):
    import numpy as np

    from medsyn.data import load_dataset
    from medsyn.evaluators import inputs
    from medsyn.evaluators.api import evaluate
    from medsyn.generators.sr_config import SR_KINDS
    from medsyn.utils import file_digest

    all_results = []
    for path in paths:
        gen = inputs.load_generator(path, device=opts["device_obj"], allow_sr=True)
        if gen.kind in SR_KINDS:
            all_results.append(_evaluate_sr_checkpoint(gen, path, len(paths), opts, extractor))
            continue
        meta = gen.metadata if isinstance(gen.metadata, dict) else {}
        dmeta = meta.get("dataset") or {}
        name = dmeta.get("name")
        if not name:
            raise ConfigError(f"{path}: its metadata names no dataset, so medsyn cannot find the "
                              "real images; score its samples with --fake/--real instead.")
        train_split = dmeta.get("split", "train")
        size = opts["image_size"] or dmeta.get("image_size") or gen.image_size
        size = int(size[0] if isinstance(size, (list, tuple)) else size)
        root = _checkpoint_root(opts["data_root"], dmeta.get("root"))
        # the intensity rule the generator was trained with, unless --bit-depth says otherwise
        bits = opts["bit_depth"] if opts["bit_depth"] != "auto" else \
            (meta.get("config") or {}).get("bit_depth") or "auto"
        train = load_dataset(name, train_split, image_size=size, root=root, bit_depth=bits)
        inputs.check_checkpoint_dataset(gen, train, path, reference_is_training=True)
        heldout = _maybe_dataset(name, "test", size, root, "held-out split", bits)
        val = _maybe_dataset(name, "val", size, root, "validation split", bits) \
            if opts["needs_val"] else None
        if opts["reference"] in (None, "train"):
            reference = train
        else:
            if heldout is None:
                raise DataError(f"--reference test: {name} has no test split here.")
            reference = heldout
        reference = inputs.stratified_subset(reference, opts["n_real"], opts["seed"])
        counts = np.bincount(reference.labels.numpy(), minlength=len(reference.class_names))
        if opts["n_samples"] is not None:
            counts = np.asarray(inputs.split_counts(opts["n_samples"], counts))
        labels = np.repeat(np.arange(len(counts)), counts)
        images = inputs.sample_generator(gen, labels, opts["seed"], opts["batch_size"])
        fake_labels = labels if gen.conditional else None
        disc = None
        if callable(getattr(gen, "discriminate", None)):
            def disc(imgs, lab, _gen=gen):
                return _gen.discriminate(imgs, lab if _gen.kind == "cgan" else None)
        out_dir = _checkpoint_out_dir(path, len(paths), opts["out"])
        run = {"name": path.parent.name, "checkpoint": str(path), "model_kind": gen.kind,
               "epoch": meta.get("epoch"), "step": meta.get("step"), "run_dir": str(path.parent)}
        prov = {"checkpoint": str(path), "checkpoint_sha256": file_digest(path),
                "dataset": {"name": train.name, "split": train.split,
                            "fingerprint": train.fingerprint},
                "sampling": {"seed": opts["seed"], "n": int(len(labels)),
                             "labels": "as many per class as the reference"
                             if opts["n_samples"] is None else
                             f"{opts['n_samples']} split in the reference's class proportions",
                             "conditional": bool(gen.conditional)}}
        sampler = None
        if gen.conditional:
            def sampler(lab, seed, _gen=gen):
                return inputs.sample_generator(_gen, lab, seed, opts["batch_size"])
        prov["resize"] = {"reference": _resize_info(train),
                          "fakes": "none: sampled at the checkpoint's size"}
        results = evaluate(images, fake_labels, reference=reference, train=train,
                           heldout=heldout, val=val, discriminator=disc, out_dir=out_dir,
                           run=run, provenance=prov, sampler=sampler, **opts["eval"],
                           extractor=extractor.get(train, val))
        all_results.append((results, out_dir))
    return all_results


def _checkpoint_out_dir(path: Path, n_paths: int, out) -> Path:
    if out is None:
        return path.parent / "eval" / path.stem
    return Path(out) if n_paths == 1 else Path(out) / path.stem


def _fake_out_dir(fake, out) -> Path:
    if out is not None:
        return Path(out)
    fake_path = Path(fake).expanduser()
    return fake_path.resolve().parent / "eval" / fake_path.stem


def _evaluate_sr_checkpoint(model, path, n_paths, opts, extractor):
    """A super-resolution checkpoint: PSNR/SSIM-Y vs bicubic and FID of its outputs on the test
    split (medsyn.evaluators.sr.checkpoint)."""
    from medsyn.evaluators.sr import evaluate_sr_model

    for flag, value in (("--n-samples", opts["n_samples"]), ("--image-size", opts["image_size"])):
        if value is not None:
            raise ConfigError(f"{flag} does not apply to super-resolution checkpoints ({path}): "
                              "every HR image of the test split is downscaled and upscaled at "
                              "the model's size; use --n-real N to evaluate a subset.")
    meta = model.metadata if isinstance(model.metadata, dict) else {}
    split = "test" if opts["reference"] is None else opts["reference"]
    out_dir = _checkpoint_out_dir(path, n_paths, opts["out"])
    ev = opts["eval"]
    if extractor.fitted_names or len(extractor.names) > 1:
        raise ConfigError(f"{path}: super-resolution checkpoints are scored in one fixed "
                          f"feature space (inception, pixels or wavelet), got --extractor "
                          f"{','.join(extractor.names)}.")
    results = evaluate_sr_model(
        model, split=split, out_dir=out_dir, batch_size=opts["batch_size"],
        metrics=ev["metrics"], extractor=extractor.fixed(),
        n_bootstrap=ev["n_bootstrap"],
        n_real=opts["n_real"], seed=opts["seed"], use_cache=ev["use_cache"],
        data_root=_checkpoint_root(opts["data_root"], (meta.get("dataset") or {}).get("root")),
        kid_subset_size=ev["kid_subset_size"], overwrite=ev["overwrite"])
    return results, out_dir


def _evaluate_fake(fake, real, opts, extractor):
    from medsyn.data import load_dataset
    from medsyn.data.resize import RESIZE_FILTER
    from medsyn.evaluators import inputs
    from medsyn.evaluators.api import evaluate

    name, split = inputs.parse_real(real)
    root, bits = opts["data_root"], opts["bit_depth"]
    probe = load_dataset(name, split, image_size=opts["image_size"], root=root, bit_depth=bits)
    fakes = inputs.load_fake(fake, probe.class_names, opts["image_size"], bits)
    size = opts["image_size"]
    resize_note = None
    if size is None and tuple(fakes.images.shape[2:]) != tuple(probe.image_size):
        h, w = fakes.images.shape[2:]
        if h == w:
            size = int(h)
            resize_note = (f"reference {name}/{split} resized from {probe.image_size[0]}px to the "
                           f"fakes' {size}px (bicubic, antialiased)")
    reference = probe if size is None or size == probe.image_size[0] else \
        load_dataset(name, split, image_size=size, root=root, bit_depth=bits)
    fakes = inputs.match_reference(fakes, reference)
    fakes = inputs.subsample(fakes, opts["n_samples"], opts["seed"])
    reference = inputs.stratified_subset(reference, opts["n_real"], opts["seed"])
    # the floor and memorization need a training and a held-out split: for a folder without
    # split folders these are its automatic 70/10/20 split (their warnings say so)
    train = reference if split == "train" and opts["n_real"] is None else \
        _maybe_dataset(name, "train", size, root, "training split", bits)
    heldout = reference if split == "test" and opts["n_real"] is None else \
        _maybe_dataset(name, "test", size, root, "held-out split", bits)
    if train is not None and heldout is not None and train.fingerprint == heldout.fingerprint:
        heldout = None
    val = _maybe_dataset(name, "val", size, root, "validation split", bits) \
        if opts["needs_val"] else None
    out_dir = _fake_out_dir(fake, opts["out"])
    if resize_note is None and size is not None and size != probe.image_size[0]:
        resize_note = (f"reference {name}/{split} resized from {probe.image_size[0]}px to "
                       f"{size}px ({RESIZE_FILTER})")
    prov = {"fake": {**fakes.source, "n": len(fakes.images)},
            "resize": {"fakes": fakes.source.get("resize"), "reference": resize_note}}
    if extractor.fitted_names and train is None:
        raise DataError(f"--extractor {','.join(extractor.fitted_names)}: fitted to the real "
                        f"training split of {name}, which is not available here.")
    results = evaluate(fakes.images, fakes.labels, reference=reference, train=train,
                       heldout=heldout, val=val, out_dir=out_dir, provenance=prov,
                       **opts["eval"], extractor=extractor.get(train, val),
                       warnings=fakes.source.get("warnings", ()))
    return [(results, out_dir)]


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
        "classifiers (default: random initialisation; nothing is downloaded).", dir_okay=False),
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
        for k, v in list_extractors().items():
            console.print(f"  {k:14s} {v}", highlight=False)
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
    from medsyn.data.intensity import BIT_DEPTH_HELP, parse_bit_depth

    try:
        bit_depth = parse_bit_depth(bit_depth)
    except DataError:
        raise ConfigError(f"--bit-depth must be {BIT_DEPTH_HELP}, got {bit_depth!r}.") from None

    from medsyn.device import resolve_device
    from medsyn.evaluators import inputs
    from medsyn.evaluators.features import parse_extractor_names
    from medsyn.evaluators.metrics import resolve_metrics
    from medsyn.evaluators.networks.classifier import get_recipe
    from medsyn.evaluators.networks.ssl import get_ssl_recipe

    # everything a user can get wrong is checked before the (slow) network is loaded
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
    recipe = get_recipe(utility_recipe, epochs=utility_epochs,
                        pretrained=str(classifier_weights) if classifier_weights else None)
    paths = inputs.expand_checkpoints(checkpoint) if checkpoint is not None else None
    if fake is not None and not fake.expanduser().exists():
        raise DataError(f"--fake {fake}: no such file or folder.")
    from medsyn.evaluators.results import check_output_folder

    # an output that would be refused is refused before anything slow runs
    for out_dir in ([_checkpoint_out_dir(p, len(paths), out) for p in paths] if paths else
                    [_fake_out_dir(fake, out)]):
        check_output_folder(out_dir, overwrite)
    dev = resolve_device(device)
    ext = _Extractors(extractor_names, dev, inception_weights, recipe, ssl, not no_cache,
                      needed=any(spec.needs_features for spec in specs))
    ext.preload()
    opts = {"device_obj": dev, "image_size": image_size, "data_root": data_root,
            "reference": reference, "n_real": n_real, "n_samples": n_samples, "seed": seed,
            "batch_size": batch_size, "out": out, "bit_depth": bit_depth,
            "needs_val": "classifier" in extractor_names or any(s.name == "utility"
                                                                 for s in specs),
            "eval": {"metrics": metrics, "n_bootstrap": bootstrap, "seed": seed,
                     "device": dev, "batch_size": batch_size,
                     "kid_subset_size": kid_subset_size, "use_cache": not no_cache,
                     "utility_recipe": recipe, "utility_seeds": seeds,
                     "utility_ratio": utility_ratio, "overwrite": overwrite,
                     "n_split": n_memorization if n_memorization is not None else n_real}}
    if checkpoint is not None:
        outputs = _evaluate_checkpoints(paths, opts, ext)
    else:
        outputs = _evaluate_fake(fake, real, opts, ext)
    for results, out_dir in outputs:
        if as_json:
            typer.echo(json.dumps(results, indent=2, default=str))
        else:
            _print_summary(results, out_dir)


class _Extractors:
    """The feature spaces of this command: fixed ones (Inception, pixels, wavelet) are built
    once, up front, so that missing weights fail before anything slow; spaces fitted to the
    real training split (classifier, ssl, radiomics) once per training split; none when the
    chosen metrics need no features."""

    def __init__(self, names, device, inception_weights, recipe, ssl_recipe, use_cache,
                 needed):
        from medsyn.evaluators.features import is_fitted

        self.names, self.device, self.needed = list(names), device, needed
        self.fitted_names = [n for n in self.names if is_fitted(n)]
        self.inception_weights, self.recipe, self.use_cache = inception_weights, recipe, use_cache
        self.ssl_recipe = ssl_recipe
        self._built: dict = {}

    def preload(self):
        if self.needed:
            for name in self.names:
                if name not in self.fitted_names:
                    self._fixed(name)

    def get(self, train, val):
        """``{space name: extractor}`` in the order named (``None`` when no family needs one)."""
        if not self.needed:
            return None
        return {n: self._fitted(n, train, val) if n in self.fitted_names else self._fixed(n)
                for n in self.names}

    def fixed(self):
        """The single fixed space (super-resolution checkpoints are scored in one)."""
        return self._fixed(self.names[0])

    def _fixed(self, name):
        from medsyn.evaluators.features import get_extractor

        if name not in self._built:
            options = {"weights": self.inception_weights} \
                if name.startswith("inception") else {}
            self._built[name] = get_extractor(name, device=self.device, **options)
        return self._built[name]

    def _fitted(self, name, train, val):
        from medsyn.evaluators.features import get_extractor

        key = (name, train.fingerprint, None if val is None else val.fingerprint)
        if key not in self._built:
            self._built[key] = get_extractor(name, device=self.device, train=train, val=val,
                                             recipe=self.recipe, ssl_recipe=self.ssl_recipe,
                                             use_cache=self.use_cache)
        return self._built[key]


def register(app) -> None:
    app.command("evaluate")(evaluate_command)
