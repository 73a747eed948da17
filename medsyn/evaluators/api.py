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

from medsyn.device import resolve_device
from medsyn.errors import ConfigError, DataError
from medsyn.evaluators.features import (
    FeatureExtractor,
    check_images,
    get_extractor,
    is_fitted,
    parse_extractor_names,
)
from medsyn.evaluators.metrics import EvalContext, EvalOptions, resolve_metrics, stats
from medsyn.evaluators.results import (
    SCHEMA_VERSION,
    check_output_folder,
    staged_folder,
    write_results,
)
from medsyn.utils import progress

# families that read features of the training and held-out splits (ctx.features_of)
SPLIT_FAMILIES = ("real_floor", "memorization", "alpha_precision", "privacy")
# families that read features but not as a distance between sets: computed in one space only
# (the Inception Score needs Inception's classifier logits, whatever the other spaces are)
ONE_SPACE_FAMILIES = ("is",)
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
             extractor: str | FeatureExtractor | Sequence | dict = "inception",
             extractor_options: dict | None = None, ssl_recipe=None,
             n_bootstrap: int = 50, seed: int = 0, device: str | None = None,
             batch_size: int = 64, out_dir: str | os.PathLike | None = None,
             discriminator: Callable | None = None, kid_subset_size: int = 1000,
             kid_subsets: int = 100, k: int = 5, is_splits: int = 10,
             tsne_max_points: int = 750, use_cache: bool = True, run: dict | None = None,
             provenance: dict | None = None, sampler: Callable | None = None,
             utility_recipe=None, utility_seeds: Sequence[int] = (0, 1, 2),
             utility_ratio: float = 1.0, n_split: int | None = None, overwrite: bool = False,
             figures_dir: str | os.PathLike | None = None,
             warnings: Sequence[str] = (), metric_options: dict | None = None) -> dict:
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
    ``extractor``: a registered name, a :class:`FeatureExtractor`, or several of them (a list,
    ``"inception,ssl,radiomics,wavelet"`` or ``{space name: name or extractor}``; an
    extractor object's space is named by its ``name``): every feature-based family runs in every
    space; the first space's entries stay at ``metrics.<name>`` and each space's are also under
    ``metrics.spaces.<space>.<name>`` (docs/architecture.md section 3). Families that need no
    features (utility, discriminator) and the Inception Score run once.
    ``ssl_recipe``: the ``ssl`` space's training recipe (evaluators/networks/ssl.py; default
    quick).
    ``n_split``: the real-vs-real floor and memorization use at most this many images of the
    train and held-out splits (a stratified subset, noted in the results' warnings); ``None``
    uses every image (the utility protocol always trains on the whole training split).
    ``warnings``: more warnings to record (e.g. files of the fake folder that were skipped);
    the warnings of the datasets' ``source`` (skipped files, automatic splits, intensity) are
    recorded too.
    ``metric_options``: further :class:`EvalOptions` fields by name (e.g. ``{"mmd_sigma": 10,
    "fd_inf_points": 15}``; docs/evaluation.md lists them).
    When ``out_dir`` is given, results.json, metrics.csv and the figures are written there, as
    one unit (:func:`medsyn.evaluators.results.staged_folder`); an existing evaluation there is
    replaced only with ``overwrite``. ``figures_dir``: without ``out_dir``, write only the
    figures there (for callers that write their own results files).
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
    for key, value in (metric_options or {}).items():
        if key not in EvalOptions.__dataclass_fields__:
            raise ConfigError(f"unknown metric option {key!r}; choose from "
                              f"{', '.join(EvalOptions.__dataclass_fields__)}.")
        setattr(options, key, value)
    options.validate()
    if n_split is not None and (isinstance(n_split, bool) or not isinstance(n_split, int)
                                or n_split < 2):
        raise DataError(f"n_split (--n-memorization) must be an integer >= 2, got {n_split!r}.")
    specs = resolve_metrics(metrics, discriminator is not None)
    dev = resolve_device(device)
    needs_features = any(spec.needs_features for spec in specs)
    if out_dir is not None:
        check_output_folder(out_dir, overwrite)      # before anything slow
    spaces: dict[str, FeatureExtractor] = {}
    if needs_features:
        spaces = _build_spaces(extractor, extractor_options, dev, reference, train, val,
                               use_cache, utility_recipe, ssl_recipe)
    args = (fake_images, labels, reference, train, heldout, val, specs, spaces, options, dev,
            discriminator, sampler, started, n_bootstrap, seed, run, provenance, n_split,
            warnings)
    if out_dir is not None:
        with staged_folder(out_dir, overwrite) as stage:
            results = _evaluate(*args, out_path=Path(stage))
            write_results(results, stage)
        return results
    return _evaluate(*args, out_path=Path(figures_dir) if figures_dir is not None else None)


def _evaluate(fake_images, labels, reference, train, heldout, val, specs, spaces, options, dev,
              discriminator, sampler, started, n_bootstrap, seed, run, provenance, n_split,
              extra_warnings, *, out_path) -> dict:
    if out_path is not None:
        out_path.mkdir(parents=True, exist_ok=True)

    def context(ext, space_dir, families):
        return EvalContext(
            fake_labels=labels, fake_images=fake_images, reference=reference, extractor=ext,
            options=options, device=dev, train=train, heldout=heldout, val=val,
            discriminator=discriminator, out_dir=space_dir, sampler=sampler,
            split_limit=n_split,
            split_features_needed=any(spec.name in SPLIT_FAMILIES for spec in families))

    names = list(spaces)
    per_space = [s for s in specs if s.needs_features and s.name not in ONE_SPACE_FAMILIES]
    once = [s for s in specs if s not in per_space]
    contexts = {}
    for i, name in enumerate(names):
        space_dir = out_path if out_path is None or i == 0 else out_path / "spaces" / name
        if space_dir is not None:
            space_dir.mkdir(parents=True, exist_ok=True)
        contexts[name] = context(spaces[name], space_dir, per_space if i else specs)
    # the space the space-independent families see: the first with Inception logits, else the
    # first one (the Inception Score then reports itself unavailable, with the reason)
    logits_space = next((n for n in names if spaces[n].has_logits), names[0] if names else None)
    main = contexts[names[0]] if names else context(None, out_path, specs)
    for name, ctx in contexts.items():
        if per_space or (name == logits_space and any(s.needs_features for s in once)):
            ctx.fake  # noqa: B018 - extracted up front, with all threads, outside the metric phase
    space_metrics: dict[str, dict] = {n: {} for n in names}
    blocks: dict[str, dict] = {}           # family name -> its blocks (first space / once)
    # The metric phase mixes torch and numpy/scipy linear algebra. With both thread pools live,
    # torch's spinning OpenMP workers and OpenBLAS's fight over the cores: measured on the
    # 2-core machine, torch-fidelity's FID on 2808 x 2048 features took 38 s that way and 3.9 s
    # with one thread each. Feature extraction (above) keeps all threads.
    n_families = len(per_space) * len(names) + len(once)
    with threadpool_limits(limits=1), progress(total=n_families, desc="metrics",
                                               unit="family") as bar:
        for i, name in enumerate(names):
            for spec in per_space:
                bar.set_description(f"metrics: {spec.name}"
                                    + (f" [{name}]" if len(names) > 1 else ""))
                out = _run_family(spec, contexts[name])
                bar.update(1)
                space_metrics[name].update(out)
                if i == 0:
                    blocks[spec.name] = out
        for spec in once:
            bar.set_description(f"metrics: {spec.name}")
            ctx = contexts[logits_space] if spec.needs_features else main
            blocks[spec.name] = _run_family(spec, ctx)
            bar.update(1)
        bar.set_description("metrics")
    results_metrics = {k: v for spec in specs for k, v in blocks.get(spec.name, {}).items()}
    if len(names) > 1:
        results_metrics["spaces"] = space_metrics
    figures = dict(main.figures)
    warnings = list(main.warnings)
    for message in [*extra_warnings, *(w for ds in (reference, train, heldout, val)
                                       if ds is not None
                                       for w in (ds.source or {}).get("warnings", []))]:
        if message not in warnings:
            warnings.append(message)
    timings = main.timings
    for name in names[1:]:
        ctx = contexts[name]
        figures.update({f"{key}_{name}": f"spaces/{name}/{path}"
                        for key, path in ctx.figures.items()})
        warnings += [f"[{name}] {w}" for w in ctx.warnings]
        timings.setdefault("spaces", {})[name] = ctx.timings
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
        "extractor": _describe(spaces[names[0]]) if names else None,
        "bootstrap": {"n": n_bootstrap, "method": stats.CI_METHOD},
        "versions": versions(), "device": str(dev), "seed": seed,
        "resize": None, "timings": timings,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if len(names) > 1:
        prov["spaces"] = names
        prov["extractors"] = {n: _describe(spaces[n]) for n in names}
    prov.update(provenance or {})
    results = {"schema_version": SCHEMA_VERSION, "kind": "generation",
               "run": {**EMPTY_RUN, **(run or {})}, "metrics": results_metrics,
               "figures": figures, "warnings": warnings, "provenance": prov}
    return results


def _describe(ext: FeatureExtractor) -> dict:
    return {**ext.describe(), "weights_path": getattr(ext, "weights_path", None)}


def _run_family(spec, ctx: EvalContext) -> dict:
    """One family's blocks; its time (without reference features it happened to extract
    first) goes into ``ctx.timings``."""
    t0, extracted = time.perf_counter(), ctx.extraction_s
    out = spec.fn(ctx)
    ctx.timings[f"{spec.name}_s"] = round(time.perf_counter() - t0 -
                                          (ctx.extraction_s - extracted), 3)
    return out


def _build_spaces(extractor, options, device, reference, train, val, use_cache,
                  utility_recipe, ssl_recipe) -> dict[str, FeatureExtractor]:
    """``{space name: extractor}`` from a name, an extractor, a comma list or a sequence.

    Spaces fitted to the training split (classifier, ssl, radiomics) get ``train`` (else the
    reference), ``val`` and ``use_cache``; the classifier its utility recipe, ssl its recipe.
    """
    if extractor is None:
        raise DataError("the chosen metrics need a feature extractor; pass extractor=...")
    if isinstance(extractor, dict):
        items = list(extractor.items())
    else:
        items = [extractor] if isinstance(extractor, FeatureExtractor) else \
            parse_extractor_names(extractor) if isinstance(extractor, str) else list(extractor)
        items = [(i.name if isinstance(i, FeatureExtractor) else str(i).strip(), i)
                 for i in items]
    if not items:
        raise ConfigError("no feature extractor given; name at least one (see list_extractors).")
    spaces: dict[str, FeatureExtractor] = {}
    for name, item in items:
        if isinstance(item, FeatureExtractor):
            ext = item
        else:
            item = parse_extractor_names([item])[0]
            opts = dict(options or {})
            if is_fitted(item):
                opts.setdefault("train", train if train is not None else reference)
                opts.setdefault("val", val)
                opts.setdefault("use_cache", use_cache)
                if item == "classifier":
                    opts.setdefault("recipe", utility_recipe)
                if item == "ssl":
                    opts.setdefault("ssl_recipe", ssl_recipe)
            ext = get_extractor(item, device=device, **opts)
        if name in spaces:
            raise ConfigError(f"feature space {name!r} is named twice; name each space once.")
        spaces[name] = ext
    return spaces
