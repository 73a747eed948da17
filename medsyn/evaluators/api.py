"""``evaluate``: score a set of synthetic images against a real reference set."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from medsyn.errors import DataError
from medsyn.evaluators.features import FeatureExtractor, check_images, get_extractor, resolve_device
from medsyn.evaluators.metrics import EvalContext, EvalOptions, resolve_metrics, stats
from medsyn.evaluators.results import SCHEMA_VERSION, write_results

# families that read features of the training and held-out splits (ctx.features_of)
SPLIT_FAMILIES = ("real_floor", "memorization", "privacy")
EMPTY_RUN = {"name": None, "checkpoint": None, "model_kind": None, "epoch": None, "step": None,
             "run_dir": None}


def versions() -> dict:
    import torch_fidelity

    from medsyn import __version__

    return {"medsyn": __version__, "torch": torch.__version__,
            "torch_fidelity": getattr(torch_fidelity, "__version__", "unknown"),
            "python": platform.python_version()}


def _labels_array(labels, n: int, class_names: Sequence[str]) -> np.ndarray | None:
    if labels is None:
        return None
    arr = labels.cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    if arr.shape != (n,):
        raise DataError(f"fake labels must have shape [{n}] (one per image), got {arr.shape}.")
    if arr.dtype.kind not in "iu":
        raise DataError(f"fake labels must be integer class indices, got dtype {arr.dtype}.")
    bad = arr[(arr < 0) | (arr >= len(class_names))]
    if len(bad):
        raise DataError(f"fake label {int(bad[0])} is out of range: the reference has "
                        f"{len(class_names)} classes ({', '.join(class_names)}).")
    return arr.astype(np.int64)


def _check_compatible(fake_images: torch.Tensor, reference) -> None:
    if fake_images.shape[1] != reference.channels:
        raise DataError(
            f"the fake images have {fake_images.shape[1]} channel(s) but the reference "
            f"{reference.name}/{reference.split} has {reference.channels}; convert them first "
            "(comparing grayscale with colour images measures the colour, not the realism).")
    if tuple(fake_images.shape[2:]) != tuple(reference.image_size):
        h, w = reference.image_size
        raise DataError(
            f"the fake images are {fake_images.shape[2]}x{fake_images.shape[3]} but the reference "
            f"{reference.name}/{reference.split} is {h}x{w}; resize one of them first "
            "(medsyn.data.resize_uint8, or load the reference with image_size=...).")


def evaluate(fake_images: torch.Tensor, fake_labels=None, *, reference,
             train=None, heldout=None, val=None, metrics: Sequence[str] | str | None = None,
             extractor: str | FeatureExtractor = "inception", extractor_options: dict | None = None,
             n_bootstrap: int = 50, seed: int = 0, device: str | None = None,
             batch_size: int = 64, out_dir: str | os.PathLike | None = None,
             discriminator: Callable | None = None, kid_subset_size: int = 1000,
             kid_subsets: int = 100, k: int = 5, is_splits: int = 10,
             tsne_max_points: int = 750, use_cache: bool = True, run: dict | None = None,
             provenance: dict | None = None, sampler: Callable | None = None,
             utility_recipe=None, utility_seeds: Sequence[int] = (0, 1, 2),
             utility_ratio: float = 1.0) -> dict:
    """Score ``fake_images`` against the real ``reference`` dataset; return the results dict.

    ``fake_images``: uint8 ``[N, C, H, W]`` with the reference's channels and size.
    ``fake_labels``: class indices into ``reference.class_names`` (needed for intra-FID), or None.
    ``train`` / ``heldout``: the real training split and a held-out split (test), needed for
    the train-vs-test floor and memorization (the reference itself may be either).
    ``metrics``: names from :func:`medsyn.evaluators.list_metrics` (default: all but the
    discriminator diagnostics, which run when ``discriminator`` is given).
    ``discriminator(images_uint8, labels_or_None) -> {"p_real": [N], "class_logits": [N, K]|None}``.
    ``tsne_max_points``: at most this many real and this many fake points in the t-SNE figure.
    ``val``: the real validation split (model selection of the utility classifiers).
    ``sampler(labels, seed) -> uint8 images``: draws more synthetic images of given classes
    (a conditional generator), used by the utility protocol when the evaluated set is short.
    ``utility_recipe`` / ``utility_seeds`` / ``utility_ratio``: the utility protocol's
    classifier recipe (name, Recipe or dict), seeds and TRTR+S synthetic:real ratio.
    When ``out_dir`` is given, results.json, metrics.csv and the figures are written there.
    """
    started = time.perf_counter()
    check_images(fake_images, "fake images")
    _check_compatible(fake_images, reference)
    labels = _labels_array(fake_labels, len(fake_images), reference.class_names)
    options = EvalOptions(n_bootstrap=n_bootstrap, seed=seed, kid_subset_size=kid_subset_size,
                          kid_subsets=kid_subsets, k=k, is_splits=is_splits,
                          batch_size=batch_size, use_cache=use_cache,
                          tsne_max_points=tsne_max_points, utility_recipe=utility_recipe,
                          utility_seeds=tuple(int(s) for s in utility_seeds),
                          utility_ratio=utility_ratio)
    options.validate()
    specs = resolve_metrics(metrics, discriminator is not None)
    dev = resolve_device(device)
    needs_features = any(spec.needs_features for spec in specs)
    if not needs_features:
        extractor = None      # e.g. --metrics utility: no Inception weights needed
    elif isinstance(extractor, str):
        ext_options = dict(extractor_options or {})
        if extractor == "classifier":       # the in-domain network trains on these splits
            ext_options.setdefault("train", train if train is not None else reference)
            ext_options.setdefault("val", val)
            ext_options.setdefault("recipe", utility_recipe)
            ext_options.setdefault("use_cache", use_cache)
        extractor = get_extractor(extractor, device=dev, **ext_options)
    elif extractor is None:
        raise DataError("the chosen metrics need a feature extractor; pass extractor=...")
    out_path = Path(out_dir) if out_dir is not None else None
    if out_path is not None:
        out_path.mkdir(parents=True, exist_ok=True)

    ctx = EvalContext(fake_labels=labels, fake_images=fake_images,
                      reference=reference, extractor=extractor, options=options, device=dev,
                      train=train, heldout=heldout, val=val, discriminator=discriminator,
                      out_dir=out_path, sampler=sampler,
                      split_features_needed=any(spec.name in SPLIT_FAMILIES for spec in specs))
    if needs_features:
        ctx.fake  # noqa: B018 - extracted up front, with all threads, outside the metric phase
    results_metrics: dict = {}
    timings = ctx.timings
    # The metric phase mixes torch and numpy/scipy linear algebra. With both thread pools live,
    # torch's spinning OpenMP workers and OpenBLAS's fight over the cores: measured on the
    # 2-core machine, torch-fidelity's FID on 2808 x 2048 features took 38 s that way and 3.9 s
    # with one thread each. Feature extraction (above) keeps all threads.
    with threadpool_limits(limits=1):
        for spec in specs:
            t0, extracted = time.perf_counter(), ctx.extraction_s
            results_metrics.update(spec.fn(ctx))
            # the family's own time, without reference features it happened to extract first
            took = time.perf_counter() - t0 - (ctx.extraction_s - extracted)
            timings[f"{spec.name}_s"] = round(took, 3)
    timings["total_s"] = round(time.perf_counter() - started, 3)

    def ds_info(ds):
        return None if ds is None else {
            "name": ds.name, "split": ds.split, "fingerprint": ds.fingerprint, "n": len(ds),
            "image_size": list(ds.image_size), "channels": ds.channels,
            "class_counts": ds.class_counts()}

    prov = {
        "checkpoint": None, "checkpoint_sha256": None,
        "dataset": {"name": reference.name, "split": reference.split,
                    "fingerprint": reference.fingerprint},
        "reference": ds_info(reference), "train": ds_info(train), "heldout": ds_info(heldout),
        "val": ds_info(val),
        "fake": {"n": len(fake_images), "labelled": labels is not None,
                 "image_size": list(fake_images.shape[2:]), "channels": int(fake_images.shape[1])},
        "extractor": None if extractor is None else {
            **extractor.describe(), "weights_path": getattr(extractor, "weights_path", None)},
        "bootstrap": {"n": n_bootstrap, "method": stats.CI_METHOD},
        "versions": versions(), "device": str(dev), "seed": seed,
        "resize": None, "timings": timings,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    prov.update(provenance or {})
    results = {"schema_version": SCHEMA_VERSION, "kind": "generation",
               "run": {**EMPTY_RUN, **(run or {})}, "metrics": results_metrics,
               "figures": dict(ctx.figures), "warnings": list(ctx.warnings), "provenance": prov}
    if out_path is not None:
        write_results(results, out_path)
    return results
