"""Evaluation of a translation checkpoint (``medsyn evaluate --checkpoint pix2pix.pt``).

    results = evaluate_translation_checkpoint("runs/pix2pix-cxr3-edges-64px/last.pt")

Paired models (pix2pix) on the test pairs, built exactly as the training pairs were (same
condition and settings, or the folder's ``test/A`` and ``test/B``):

- ``mae_y``, ``psnr_y``, ``ssim_y`` of the outputs against the targets on luminance
  (:mod:`medsyn.evaluators.translation.metrics`), each with a 95 % bootstrap interval over
  images, and the same for the simple baselines: the input itself where it is an image of the
  target's kind (``_bicubic`` for ``lowres``, ``_condition`` otherwise) and the mean training
  target (``_mean_image``);
- ``fid`` / ``kid`` / ``prdc`` of the outputs against the targets, next to the real-vs-real
  floor (``real_floor``: two halves of the test targets), and ``fid_<baseline>``.

Unpaired models (cyclegan) on the test split of the source domain, translated forward:

- ``fid`` / ``kid`` / ``prdc`` against the target domain's test images, next to the
  real-vs-real floor (``real_floor``) and ``fid_identity`` (the untranslated inputs);
- ``target_class_rate``: the share of outputs the real-data classifier (trained on the target
  dataset, :func:`~medsyn.evaluators.networks.classifier.real_classifier`) assigns to the
  target class, next to the same rate of the inputs and of real target images;
- content preservation: ``content_ssim_y`` (input vs output) and
  ``content_feature_distance`` (input vs its output in the feature space) next to
  ``content_feature_distance_unrelated`` (input vs another input's output);
- ``cycle_mae_y``: MAE on luminance between each input and its reconstruction;
- ``memorization`` of the outputs against the target's training images.

Writes ``results.json`` (``"kind": "translation"``), ``metrics.csv``,
``per_image_translation.csv`` and ``translation_examples.png``.
"""

from __future__ import annotations

import datetime as _dt
import os
import time
from pathlib import Path

import numpy as np
import torch

from medsyn.errors import CheckpointError, DataError
from medsyn.generators.interface import Task, task_of_kind

TRANSLATION_RESULTS_KIND = Task.TRANSLATION.results_kind
PER_IMAGE_CSV = "per_image_translation.csv"
EXAMPLES_FIGURE = "translation_examples.png"
TRANSLATION_BOOTSTRAP = 1000        # resamples of the per-image intervals (cheap)
# real_floor: two halves of the test targets, what the report's verdict reads the FID against
PAIRED_FEATURE_METRICS = ("fid", "kid", "prdc", "real_floor")
UNPAIRED_FEATURE_METRICS = ("fid", "kid", "prdc", "real_floor", "memorization")


def evaluate_translation_checkpoint(checkpoint: str | os.PathLike, *, device=None,
                                    **options) -> dict:
    """Load a translation checkpoint and :func:`evaluate_translation_model` it."""
    from medsyn.generators import load_checkpoint, read_checkpoint
    from medsyn.generators.interface import kinds_of_task

    path = Path(checkpoint)
    kind = read_checkpoint(path).get("kind")
    if task_of_kind(kind) is not Task.TRANSLATION:
        raise CheckpointError(f"{path} is a {kind!r} checkpoint, not a translation model "
                              f"({', '.join(kinds_of_task(Task.TRANSLATION))}).")
    return evaluate_translation_model(load_checkpoint(path, device), **options)


def _dataset(name, split, images, class_name="all", source=None):
    from medsyn.data.dataset import ImageDataset

    return ImageDataset(name, split, images, torch.zeros(len(images), dtype=torch.int64),
                        [class_name], dict(source or {}))


def _rows(n: int, n_real: int | None, seed: int) -> np.ndarray:
    if n_real is None or n_real >= n:
        return np.arange(n)
    if n_real < 1:
        raise DataError(f"--n-real must be >= 1, got {n_real}.")
    return np.sort(np.random.default_rng(seed).choice(n, n_real, replace=False))


def load_test_pairs(model, split: str = "test", data_root=None):
    """The test pairs of a pix2pix model, built as its training pairs were."""
    from medsyn.generators.translation.data import load_condition_pairs, load_folder_pairs

    cfg = model.metadata.get("config") or {}
    try:
        if cfg.get("paired_folder"):
            pairs = load_folder_pairs(cfg["paired_folder"], split, cfg.get("image_size"))
            if pairs.dataset["split"] != split:
                raise DataError(f"{cfg['paired_folder']} has no {split}/A and {split}/B, so "
                                "there are no held-out pairs to evaluate on; put test pairs "
                                f"under {split}/.")
            train = load_folder_pairs(cfg["paired_folder"], cfg.get("split") or "train",
                                      cfg.get("image_size")).targets
        else:
            pairs = load_condition_pairs(
                cfg["dataset"], split, condition=cfg["condition"], image_size=cfg.get(
                    "image_size"), root=data_root, canny_sigma=cfg.get("canny_sigma", 2.0),
                lowres_scale=cfg.get("lowres_scale", 4), noise_std=cfg.get("noise_std", 25.0),
                seed=cfg.get("seed", 0))
            from medsyn.data import load_dataset

            train = load_dataset(cfg["dataset"], cfg.get("split") or "train",
                                 image_size=cfg.get("image_size"), root=data_root).images
    except DataError as exc:
        raise DataError(f"cannot evaluate {model.path}: {str(exc).splitlines()[0]}") from None
    return pairs, train


def mean_image(images: torch.Tensor, n: int) -> torch.Tensor:
    """The mean image of ``images`` (rounded to uint8), repeated ``n`` times."""
    mean = images.double().mean(dim=0).round().clamp(0, 255).to(torch.uint8)
    return mean.unsqueeze(0).repeat(n, 1, 1, 1)


def example_strip(*columns: torch.Tensor) -> torch.Tensor:
    """uint8 ``[k N, C, H, W]``: per image the columns side by side (1-channel columns are
    repeated to 3 when others have 3)."""
    channels = max(c.shape[1] for c in columns)
    columns = [c if c.shape[1] == channels else c[:, :1].repeat(1, channels, 1, 1)
               for c in columns]
    return torch.stack(columns, dim=1).flatten(0, 1)


def evaluate_translation_model(model, *, split: str = "test",
                               out_dir: str | os.PathLike | None = None, batch_size: int = 16,
                               extractor="inception", extractor_options: dict | None = None,
                               n_bootstrap: int = 50, n_real: int | None = None, seed: int = 0,
                               data_root: str | os.PathLike | None = None,
                               use_cache: bool = True, n_examples: int = 4,
                               baselines: bool = True, classifier_recipe=None,
                               n_split: int | None = None, overwrite: bool = False,
                               **evaluate_options) -> dict:
    """Score a loaded translation checkpoint on ``split``; see the module docstring.

    ``n_real``: a random subset of that many test images (pairs, or source images);
    ``n_split``: at most this many target images in the real-vs-real floor and memorization
    (default ``n_real``).
    ``baselines``: also the FIDs of the baselines (paired) / of the inputs (unpaired).
    ``classifier_recipe``: the recipe of the real-data classifier of the target-class rate
    (default ``quick``). ``out_dir`` default: ``RUN/eval/<checkpoint stem>/``, written as one
    unit. Other keywords go to :func:`medsyn.evaluators.evaluate`.
    """
    from medsyn.evaluators.results import check_output_folder, staged_folder, write_results

    started = time.perf_counter()
    path = Path(model.path)
    out_dir = Path(out_dir) if out_dir is not None else path.parent / "eval" / path.stem
    check_output_folder(out_dir, overwrite)
    if isinstance(extractor, str):
        from medsyn.evaluators.features import get_extractor

        extractor = get_extractor(extractor, device=model.device, **(extractor_options or {}))
    common = dict(extractor=extractor, n_bootstrap=n_bootstrap, seed=seed, device=model.device,
                  batch_size=batch_size, use_cache=use_cache, **evaluate_options)
    with staged_folder(out_dir, overwrite) as out:
        if model.paired:
            results = _paired(out, model, split, data_root, n_real, seed, batch_size,
                              n_examples, baselines, common)
        else:
            results = _unpaired(out, model, split, data_root, n_real, seed, batch_size,
                                n_examples, baselines, classifier_recipe, common,
                                n_split if n_split is not None else n_real)
        _finish(results, model, path, seed, started)
        write_results(results, out)
    return results


def _paired(out, model, split, data_root, n_real, seed, batch_size, n_examples, baselines,
            common) -> dict:
    from medsyn.evaluators.scoring.evaluate import evaluate
    from medsyn.evaluators.translation.metrics import (
        PAIRED_METRICS,
        convention,
        mean_entry,
        paired_table,
    )
    from medsyn.generators.sampling.grid import save_grid

    pairs, train_targets = load_test_pairs(model, split, data_root)
    rows = _rows(len(pairs), n_real, seed)
    inputs, targets = pairs.inputs[rows], pairs.targets[rows]
    names = pairs.names or [f"{pairs.class_names[int(c)]}/{int(i)}"
                            for i, c in zip(rows, pairs.labels[rows], strict=True)]
    ids = [names[int(i)] for i in rows] if pairs.names else names
    t0 = time.perf_counter()
    outputs = model.translate(inputs, batch_size=batch_size)
    condition = (pairs.condition or {}).get("condition")
    references = {}
    if inputs.shape == targets.shape:
        references["bicubic" if condition == "lowres" else "condition"] = inputs
    references["mean_image"] = mean_image(train_targets, len(targets))
    table = paired_table(outputs, targets, ids)
    for baseline, images in references.items():
        other = paired_table(images, targets, ids)
        for m in PAIRED_METRICS:
            table[f"{m}_{baseline}"] = other[m].to_numpy()
    conv = convention(model.channels)
    metrics = {}
    for column in table.columns[1:]:
        metrics[column] = mean_entry(table[column].to_numpy(), plane=conv["plane"],
                                     n_boot=TRANSLATION_BOOTSTRAP, seed=seed)
    t_paired = time.perf_counter() - t0
    table.to_csv(out / PER_IMAGE_CSV, index=False, float_format="%.6f")

    reference = _dataset(pairs.dataset["name"], split, targets,
                         source={"translation_targets": pairs.condition})
    feature = evaluate(outputs, None, reference=reference, metrics=list(PAIRED_FEATURE_METRICS),
                       **common)
    metrics.update(feature["metrics"])
    if baselines:
        for baseline, images in references.items():
            fid = evaluate(images, None, reference=reference, metrics=["fid"],
                           **common)["metrics"]["fid"]
            fid["note"] = f"FID of the {baseline.replace('_', ' ')} baseline against the targets"
            metrics[f"fid_{baseline}"] = fid
    picks = sorted({int(i) for i in np.linspace(0, len(rows) - 1,
                                                min(n_examples, len(rows))).round()})
    save_grid(out / EXAMPLES_FIGURE, example_strip(inputs[picks], outputs[picks],
                                                   targets[picks]), rows=len(picks))
    return {"metrics": metrics, "feature": feature, "timings": {"paired_metrics_s":
                                                                round(t_paired, 3)},
            "translation": {"paired": True, "convention": conv, "condition": pairs.condition,
                            "baselines": {
                                "condition": "the input image itself",
                                "bicubic": "the lowres input: MATLAB bicubic down and up",
                                "mean_image": "the mean training target, rounded to uint8"},
                            "dataset": {k: pairs.dataset.get(k) for k in
                                        ("name", "split", "fingerprint", "image_size",
                                         "class_names")},
                            "n": len(rows), "examples": "input | output | target"}}


def _target_class_rate(model, outputs, inputs, target_real, size, data_root, recipe, seed,
                       n_boot) -> dict:
    """The share of outputs the real-data classifier of the target dataset puts in the target
    class, with the same rate of the inputs and of real target images for reference."""
    from medsyn.data import load_dataset
    from medsyn.data.subsets import split_validation
    from medsyn.evaluators.networks.classifier import predict_proba, real_classifier
    from medsyn.evaluators.sr.metrics import bootstrap_mean_ci

    target = model.target or {}
    name, cls = target.get("name"), target.get("class")
    if not cls:
        return {"value": None, "unavailable": "the target domain is a whole dataset, not one "
                "class of it, so there is no target class to reach"}
    train = load_dataset(name, "train", image_size=size, root=data_root)
    if train.num_classes < 2:
        return {"value": None, "unavailable": f"{name} has one class: no classifier to ask"}
    try:
        val = load_dataset(name, "val", image_size=size, root=data_root)
    except DataError:
        train, val = split_validation(train, seed=seed)
    clf = real_classifier(train, val, recipe, seed=seed, device=model.device,
                          desc=f"classifier {name} (target-class rate)")
    k = train.class_names.index(cls)

    def rate(images):
        hits = (predict_proba(clf.model, images, recipe=clf.recipe).argmax(axis=1) == k)
        hits = hits.astype(np.float64)
        return {"value": float(hits.mean()), "ci95": bootstrap_mean_ci(hits, n_boot, seed),
                "n": int(hits.size)}

    entry = {**rate(outputs), "target_class": cls, "classifier": {
        "dataset": f"{name}/train", "recipe": clf.recipe.name, "seed": seed,
        "from_cache": clf.from_cache, "best_epoch": clf.best_epoch},
        "inputs": rate(inputs), "real_target": rate(target_real)}
    entry["n_fake"] = entry["n"]
    return entry


def _unpaired(out, model, split, data_root, n_real, seed, batch_size, n_examples, baselines,
              classifier_recipe, common, n_split) -> dict:
    from medsyn.evaluators.features.extraction import extract_features
    from medsyn.evaluators.scoring.evaluate import evaluate
    from medsyn.evaluators.translation.metrics import (
        convention,
        feature_distances,
        mean_entry,
        paired_table,
    )
    from medsyn.generators.sampling.grid import save_grid
    from medsyn.generators.translation.data import load_domain

    size = (model.metadata.get("config") or {}).get("image_size")
    try:
        source = load_domain(model.source["spec"], split=split, image_size=size, root=data_root)
        target = load_domain(model.target["spec"], split=split, image_size=size, root=data_root)
        target_train = load_domain(model.target["spec"], image_size=size, root=data_root)
    except DataError as exc:
        raise DataError(f"cannot evaluate {model.path}: {str(exc).splitlines()[0]}") from None
    rows = _rows(len(source), n_real, seed)
    inputs = source.images[rows]
    target_test = target.images[_rows(len(target), n_real, seed + 1)]
    t0 = time.perf_counter()
    outputs = model.translate(inputs, batch_size=batch_size)
    recon = model.translate(outputs, batch_size=batch_size, direction="backward")
    ids = [f"{source.info['selection']}/{int(i)}" for i in rows]
    conv = convention(model.channels)
    table = paired_table(recon, inputs, ids, names=("mae_y",)).rename(
        columns={"mae_y": "cycle_mae_y"})
    metrics = {"cycle_mae_y": mean_entry(table["cycle_mae_y"], plane=conv["plane"],
                                         n_boot=TRANSLATION_BOOTSTRAP, seed=seed,
                                         note="input vs G_BA(G_AB(input))")}
    if inputs.shape == outputs.shape:
        table["content_ssim_y"] = paired_table(outputs, inputs, ids,
                                               names=("ssim_y",))["ssim_y"].to_numpy()
        metrics["content_ssim_y"] = mean_entry(table["content_ssim_y"], plane=conv["plane"],
                                               n_boot=TRANSLATION_BOOTSTRAP, seed=seed,
                                               note="each input vs its output")
    else:
        metrics["content_ssim_y"] = {"value": None, "unavailable": "inputs and outputs have "
                                     "other channels"}
    extractor = common["extractor"]
    f_in = extract_features(extractor, inputs, desc="features of the inputs").features
    f_out = extract_features(extractor, outputs, desc="features of the outputs").features
    own, unrelated = feature_distances(f_in, f_out, seed)
    table["content_feature_distance"] = own
    for key, values, note in (("content_feature_distance", own, "each input vs its output"),
                              ("content_feature_distance_unrelated", unrelated,
                               "each input vs the output of another input")):
        metrics[key] = mean_entry(values, plane=extractor.name, n_boot=TRANSLATION_BOOTSTRAP,
                                  seed=seed, note=note)
    t_paired = time.perf_counter() - t0
    table.to_csv(out / PER_IMAGE_CSV, index=False, float_format="%.6f")

    cls = target.class_name or "all"
    reference = _dataset(target.name, target.split, target_test, cls, {"domain": target.info})
    train = _dataset(target_train.name, target_train.split, target_train.images, cls,
                     {"domain": target_train.info})
    feature = evaluate(outputs, None, reference=reference, train=train, heldout=reference,
                       metrics=list(UNPAIRED_FEATURE_METRICS), n_split=n_split, **common)
    metrics.update(feature["metrics"])
    if baselines:
        fid = evaluate(inputs, None, reference=reference, metrics=["fid"],
                       **common)["metrics"]["fid"]
        fid["note"] = "FID of the untranslated inputs against the target images"
        metrics["fid_identity"] = fid
    t1 = time.perf_counter()
    metrics["target_class_rate"] = _target_class_rate(
        model, outputs, inputs, target_test, size, data_root, classifier_recipe, seed,
        TRANSLATION_BOOTSTRAP)
    t_rate = time.perf_counter() - t1
    picks = sorted({int(i) for i in np.linspace(0, len(rows) - 1,
                                                min(n_examples, len(rows))).round()})
    save_grid(out / EXAMPLES_FIGURE, example_strip(inputs[picks], outputs[picks], recon[picks]),
              rows=len(picks))
    return {"metrics": metrics, "feature": feature,
            "timings": {"paired_metrics_s": round(t_paired, 3),
                        "target_class_rate_s": round(t_rate, 3)},
            "translation": {"paired": False, "convention": conv, "source": source.info,
                            "target": target.info, "target_train": target_train.info,
                            "n": len(rows), "n_target": int(len(target_test)),
                            "examples": "input | output | reconstruction"}}


def _finish(results: dict, model, path: Path, seed: int, started: float) -> None:
    from medsyn.evaluators.results import SCHEMA_VERSION
    from medsyn.evaluators.scoring.evaluate import versions
    from medsyn.utils import file_digest

    feature = results.pop("feature")
    meta = model.metadata
    prov = dict(feature["provenance"])
    prov.update({
        "checkpoint": str(path), "checkpoint_sha256": file_digest(path),
        "dataset": {k: (meta.get("dataset") or {}).get(k) for k in
                    ("name", "split", "fingerprint", "image_size", "class_names")},
        "translation": results.pop("translation"),
        "model": {"kind": model.kind, "paired": model.paired, "channels": model.channels,
                  "input_channels": model.input_channels, "image_size": model.image_size,
                  "epoch": model.epoch, "step": model.step},
        "outputs": f"{model.kind} generator in eval mode on {model.device}, fp32",
        "versions": versions(), "device": str(model.device), "seed": seed,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    })
    prov["timings"] = {**(prov.get("timings") or {}), **results.pop("timings"),
                       "total_s": round(time.perf_counter() - started, 3)}
    results.update({
        "schema_version": SCHEMA_VERSION, "kind": TRANSLATION_RESULTS_KIND,
        "run": {"name": path.parent.name, "checkpoint": str(path), "model_kind": model.kind,
                "epoch": model.epoch, "step": model.step, "run_dir": str(path.parent)},
        "figures": {**feature.get("figures", {}), "translation_examples": EXAMPLES_FIGURE},
        "files": {"per_image_translation": PER_IMAGE_CSV},
        "warnings": list(feature.get("warnings", [])),
        "provenance": prov})
