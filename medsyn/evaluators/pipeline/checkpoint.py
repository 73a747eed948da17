"""``evaluate_checkpoint``: a generator checkpoint -> the real splits of the dataset it was
trained on -> its samples -> :func:`~medsyn.evaluators.scoring.evaluate.evaluate`, with the
run and its provenance recorded. What a checkpoint can do is read from its task
(:class:`medsyn.generators.interface.Task`), never from its kind's name.

Imports torch only inside functions: the CLI imports this module.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from medsyn.errors import CheckpointError, ConfigError, DataError
from medsyn.generators.interface import Task

REFERENCES = ("train", "test")


def checkpoint_out_dir(path, n_paths: int = 1, out=None) -> Path:
    """Where the evaluation of checkpoint ``path`` goes: ``out`` (``out/<stem>`` when one
    command evaluates several checkpoints), else ``runs/NAME/eval/<stem>/`` beside it."""
    path = Path(path)
    if out is None:
        return path.parent / "eval" / path.stem
    return Path(out) if n_paths == 1 else Path(out) / path.stem


def optional_split(name, split, image_size, root, what, bit_depth=None):
    """The split, or None with a note on stderr when the dataset has no such split here."""
    from medsyn.data import load_dataset

    try:
        return load_dataset(name, split, image_size=image_size, root=root, bit_depth=bit_depth)
    except DataError as exc:
        # stderr, so that --json output stays parseable
        print(f"note: no {what} ({name}/{split}): {str(exc).splitlines()[0]}", file=sys.stderr)
        return None


def resize_note(ds) -> str:
    src = ds.source or {}
    if src.get("resized_to"):
        frm = src.get("resized_from")
        frm = f"from {frm[0]}x{frm[1]}px " if isinstance(frm, list) and len(frm) == 2 else ""
        return f"{ds.name}/{ds.split} resized {frm}to {src['resized_to']}px " \
               f"({src.get('resize_filter')})"
    return f"none: {ds.name}/{ds.split} at its stored size {ds.image_size[0]}px"


def data_root_for(data_root, recorded_root):
    """``data_root``, else MEDSYN_DATA_ROOT, else the root recorded in the checkpoint if it
    still exists, else the default (an explicit choice always wins over the recording)."""
    from medsyn.settings import ENV_DATA_ROOT

    if data_root is not None or os.environ.get(ENV_DATA_ROOT):
        return data_root
    if recorded_root and Path(recorded_root).is_dir():
        return Path(recorded_root)
    return None


def feature_spaces(extractor, device, options, inception_weights, specs):
    """``extractor`` as :class:`~medsyn.evaluators.scoring.spaces.FeatureSpaces` (names are
    built into one; an existing one, shared by several calls, is used as it is)."""
    from medsyn.evaluators.scoring.spaces import FeatureSpaces, space_settings

    if isinstance(extractor, FeatureSpaces):
        return extractor
    spaces = FeatureSpaces(extractor, device, space_settings(options, None, None,
                                                             inception_weights),
                           needed=any(spec.needs_features for spec in specs))
    spaces.preload()
    return spaces


def needs_validation(spaces, specs) -> bool:
    """Whether a chosen space or family reads the real validation split (the privacy audit:
    its default baseline, docs/privacy.md)."""
    from medsyn.evaluators.features import reads_setting

    return any(reads_setting(n, "val") for n in spaces.names) or \
        any(spec.name in ("utility", "privacy") for spec in specs)


def evaluate_checkpoint(checkpoint, *, out_dir=None, reference: str | None = None,
                        metrics=None, extractor="inception", n_samples: int | None = None,
                        n_real: int | None = None, n_split: int | None = None,
                        image_size: int | None = None, data_root=None, bit_depth="auto",
                        device=None, inception_weights=None, options=None,
                        overwrite: bool = False, **settings) -> dict | None:
    """Evaluate a checkpoint's samples against the dataset it was trained on; return the
    results dict, written to ``out_dir`` (default ``runs/NAME/eval/<stem>/``).

    Generators (noise -> image): as many samples per class as the reference split
    (``reference``: ``"train"``, the default, or ``"test"``), or ``n_samples`` in its class
    proportions, scored by :func:`~medsyn.evaluators.scoring.evaluate.evaluate` against the
    training split (the reference), its test split (held out) and, when a space or family
    reads it, its validation split; the discriminator diagnostics and the utility protocol's
    extra samples come from the checkpoint. Super-resolution checkpoints: PSNR/SSIM-Y and FID
    on the test split (:func:`medsyn.evaluators.sr.evaluate_sr_model`); translation
    checkpoints: :func:`medsyn.evaluators.translation.evaluate_translation_model`.

    ``n_real``: at most this many reference images (stratified); ``n_split``: at most this
    many train and test images for the floor and memorization (default ``n_real``).
    ``extractor``: space names, or a :class:`~medsyn.evaluators.scoring.spaces.FeatureSpaces`
    shared by several calls. ``image_size``, ``data_root``, ``bit_depth``: how the dataset is
    loaded (default: as the checkpoint recorded it). ``options`` / ``settings``: the
    evaluation's settings, an :class:`~medsyn.evaluators.metrics.EvalOptions` and/or its fields
    by name (``seed``, ``batch_size``, ``n_bootstrap``, ``utility_recipe``, ...).
    """
    from medsyn.device import resolve_device
    from medsyn.evaluators import inputs
    from medsyn.evaluators.features.sharding import shard_group
    from medsyn.evaluators.metrics import resolve_metrics
    from medsyn.evaluators.results import check_output_folder
    from medsyn.evaluators.scoring.evaluate import resolve_options

    if reference is not None and reference not in REFERENCES:
        raise ConfigError(f"--reference must be one of {REFERENCES}, got {reference!r}.")
    opts = resolve_options(options, settings)
    specs = resolve_metrics(metrics, have_discriminator=True)
    path = Path(checkpoint)
    out_dir = Path(out_dir) if out_dir is not None else checkpoint_out_dir(path)
    check_output_folder(out_dir, overwrite)      # before anything slow
    dev = resolve_device(device)
    spaces = feature_spaces(extractor, dev, opts, inception_weights, specs)
    gen = inputs.load_generator(path, device=dev, allow_sr=True)
    task = inputs.checkpoint_task(gen)
    job = dict(out_dir=out_dir, reference=reference, metrics=metrics, n_samples=n_samples,
               n_real=n_real, image_size=image_size, data_root=data_root, overwrite=overwrite)
    if task is Task.SUPER_RESOLUTION:
        if shard_group() is not None:
            raise ConfigError(f"{path}: super-resolution checkpoints are evaluated in one "
                              "process; run medsyn evaluate without torchrun for them.")
        return _evaluate_sr(gen, path, spaces, opts, **job)
    if task is Task.TRANSLATION:
        return _evaluate_translation(gen, path, spaces, opts, n_split=n_split, **job)
    if not task.samples_from_noise:
        raise CheckpointError(f"{path} is a {task.value} checkpoint ({gen.kind}); medsyn "
                              "evaluate scores generators that sample from noise, "
                              "super-resolution and translation models.")
    return _evaluate_generator(gen, path, spaces, specs, opts, dev, n_split=n_split,
                               bit_depth=bit_depth, **job)


def _evaluate_generator(gen, path: Path, spaces, specs, opts, device, *, out_dir, reference,
                        metrics, n_samples, n_real, n_split, image_size, data_root, bit_depth,
                        overwrite) -> dict:
    import numpy as np

    from medsyn.data import load_dataset
    from medsyn.evaluators import inputs
    from medsyn.evaluators.scoring.evaluate import evaluate
    from medsyn.utils import file_digest

    meta = gen.metadata if isinstance(gen.metadata, dict) else {}
    dmeta = meta.get("dataset") or {}
    name = dmeta.get("name")
    if not name:
        raise ConfigError(f"{path}: its metadata names no dataset, so medsyn cannot find the "
                          "real images; score its samples with --fake/--real instead.")
    train_split = dmeta.get("split", "train")
    size = image_size or dmeta.get("image_size") or gen.image_size
    size = int(size[0] if isinstance(size, (list, tuple)) else size)
    root = data_root_for(data_root, dmeta.get("root"))
    # the intensity rule the generator was trained with, unless bit_depth says otherwise
    bits = bit_depth if bit_depth != "auto" else \
        (meta.get("config") or {}).get("bit_depth") or "auto"
    train = load_dataset(name, train_split, image_size=size, root=root, bit_depth=bits)
    inputs.check_checkpoint_dataset(gen, train, path, reference_is_training=True)
    heldout = optional_split(name, "test", size, root, "held-out split", bits)
    val = optional_split(name, "val", size, root, "validation split", bits) \
        if needs_validation(spaces, specs) else None
    if reference in (None, "train"):
        ref = train
    else:
        if heldout is None:
            raise DataError(f"--reference test: {name} has no test split here.")
        ref = heldout
    ref = inputs.stratified_subset(ref, n_real, opts.seed)
    counts = np.bincount(ref.labels.numpy(), minlength=len(ref.class_names))
    if n_samples is not None:
        counts = np.asarray(inputs.split_counts(n_samples, counts))
    labels = np.repeat(np.arange(len(counts)), counts)
    images = inputs.sample_generator(gen, labels, opts.seed, opts.batch_size)
    conditional = bool(gen.conditional)
    disc = sampler = None
    if callable(getattr(gen, "discriminate", None)):
        # a conditional generator's discriminator may read the labels (a cGAN's does)
        def disc(imgs, lab):
            return gen.discriminate(imgs, lab if conditional else None)
    if conditional:
        def sampler(lab, seed):
            return inputs.sample_generator(gen, lab, seed, opts.batch_size)
    run = {"name": path.parent.name, "checkpoint": str(path), "model_kind": gen.kind,
           "epoch": meta.get("epoch"), "step": meta.get("step"), "run_dir": str(path.parent)}
    prov = {"checkpoint": str(path), "checkpoint_sha256": file_digest(path),
            "dataset": {"name": train.name, "split": train.split,
                        "fingerprint": train.fingerprint},
            "sampling": {"seed": opts.seed, "n": int(len(labels)),
                         "labels": "as many per class as the reference"
                         if n_samples is None else
                         f"{n_samples} split in the reference's class proportions",
                         "conditional": conditional},
            "resize": {"reference": resize_note(train),
                       "fakes": "none: sampled at the checkpoint's size"}}
    return evaluate(images, labels if conditional else None, reference=ref, train=train,
                    heldout=heldout, val=val, metrics=metrics, extractor=spaces.get(train, val),
                    options=opts, device=device,
                    n_split=n_split if n_split is not None else n_real,
                    out_dir=out_dir, overwrite=overwrite, discriminator=disc, sampler=sampler,
                    run=run, provenance=prov)


def _evaluate_sr(model, path: Path, spaces, opts, *, out_dir, reference, metrics, n_samples,
                 n_real, image_size, data_root, overwrite) -> dict:
    """A super-resolution checkpoint: PSNR/SSIM-Y vs bicubic and FID of its outputs on the
    test split (medsyn.evaluators.sr.checkpoint)."""
    from medsyn.evaluators.sr import evaluate_sr_model

    for flag, value in (("--n-samples", n_samples), ("--image-size", image_size)):
        if value is not None:
            raise ConfigError(f"{flag} does not apply to super-resolution checkpoints ({path}): "
                              "every HR image of the test split is downscaled and upscaled at "
                              "the model's size; use --n-real N to evaluate a subset.")
    meta = model.metadata if isinstance(model.metadata, dict) else {}
    if spaces.fitted_names or len(spaces.names) > 1:
        raise ConfigError(f"{path}: super-resolution checkpoints are scored in one fixed "
                          f"feature space (inception, pixels or wavelet), got --extractor "
                          f"{','.join(spaces.names)}.")
    return evaluate_sr_model(
        model, split="test" if reference is None else reference, out_dir=out_dir,
        batch_size=opts.batch_size, metrics=metrics, extractor=spaces.fixed(),
        n_bootstrap=opts.n_bootstrap, n_real=n_real, seed=opts.seed, use_cache=opts.use_cache,
        data_root=data_root_for(data_root, (meta.get("dataset") or {}).get("root")),
        kid_subset_size=opts.kid_subset_size, overwrite=overwrite)


def _evaluate_translation(model, path: Path, spaces, opts, *, out_dir, reference, metrics,
                          n_samples, n_real, n_split, image_size, data_root, overwrite) -> dict:
    """A translation checkpoint: paired or unpaired metrics on the test split
    (medsyn.evaluators.translation.checkpoint)."""
    from medsyn.evaluators.translation import evaluate_translation_model

    for flag, value in (("--n-samples", n_samples), ("--image-size", image_size),
                        ("--metrics", metrics)):
        if value is not None:
            raise ConfigError(f"{flag} does not apply to translation checkpoints ({path}): "
                              "every test image is translated at the model's size and scored "
                              "with the translation protocol; use --n-real N for a subset.")
    meta = model.metadata if isinstance(model.metadata, dict) else {}
    if spaces.fitted_names or len(spaces.names) > 1:
        raise ConfigError(f"{path}: translation checkpoints are scored in one fixed feature "
                          f"space (inception, pixels or wavelet), got --extractor "
                          f"{','.join(spaces.names)}.")
    return evaluate_translation_model(
        model, split="test" if reference is None else reference, out_dir=out_dir,
        batch_size=opts.batch_size, extractor=spaces.fixed(), n_bootstrap=opts.n_bootstrap,
        n_real=n_real, seed=opts.seed, use_cache=opts.use_cache,
        data_root=data_root_for(data_root, (meta.get("dataset") or {}).get("root")),
        classifier_recipe=opts.utility_recipe, n_split=n_split,
        kid_subset_size=opts.kid_subset_size, overwrite=overwrite)
