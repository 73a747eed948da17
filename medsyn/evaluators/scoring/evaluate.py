"""``evaluate``: score a set of synthetic images against a real reference set."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import os
import platform
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from medsyn.data.dataset import class_indices
from medsyn.device import resolve_device
from medsyn.errors import ConfigError, DataError
from medsyn.evaluators.features import FeatureExtractor, check_images
from medsyn.evaluators.features.sharding import ShardGroup, collective_extraction, shard_group
from medsyn.evaluators.metrics import EvalContext, EvalOptions, resolve_metrics, stats
from medsyn.evaluators.results import (
    SCHEMA_VERSION,
    check_output_folder,
    staged_folder,
    write_results,
)
from medsyn.evaluators.scoring.spaces import build_spaces, space_settings
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


def resolve_options(options: EvalOptions | None = None, keywords: Mapping | None = None,
                    metric_options: Mapping | None = None) -> EvalOptions:
    """A validated copy of ``options`` (default :class:`EvalOptions`) with ``keywords`` (the
    EvalOptions fields a caller passed to :func:`evaluate` by name), then ``metric_options``
    (the same, as a dict) applied."""
    fields = EvalOptions.__dataclass_fields__
    out = dataclasses.replace(options) if options is not None else EvalOptions()
    for key, value in (keywords or {}).items():
        if key not in fields:
            raise TypeError(f"unexpected keyword argument {key!r}; the evaluation's settings "
                            f"are the fields of EvalOptions: {', '.join(fields)}.")
        setattr(out, key, value)
    for key, value in (metric_options or {}).items():
        if key not in fields:
            raise ConfigError(f"unknown metric option {key!r}; choose from "
                              f"{', '.join(fields)}.")
        setattr(out, key, value)
    if not isinstance(out.utility_seeds, tuple):
        out.utility_seeds = tuple(int(s) for s in out.utility_seeds)
    out.validate()
    return out


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
             extractor_options: dict | None = None, options: EvalOptions | None = None,
             device: str | None = None, n_split: int | None = None,
             out_dir: str | os.PathLike | None = None, overwrite: bool = False,
             figures_dir: str | os.PathLike | None = None,
             discriminator: Callable | None = None, sampler: Callable | None = None,
             run: dict | None = None, provenance: dict | None = None,
             warnings: Sequence[str] = (), metric_options: dict | None = None,
             **settings) -> dict | None:
    """Score ``fake_images`` against the real ``reference`` dataset; return the results dict.

    ``fake_images``: uint8 ``[N, C, H, W]`` with the reference's channels and size.
    ``fake_labels``: class indices into ``reference.class_names`` (needed for intra-FID), or None.
    ``train`` / ``heldout``: the real training split and a held-out split (test), needed for
    the train-vs-test floor and memorization (the reference itself may be either).
    ``val``: the real validation split (model selection of the utility classifiers; the privacy
    audit's default held-out baseline, ``privacy_baseline``, docs/privacy.md).
    ``metrics``: names from :func:`medsyn.evaluators.list_metrics` (default: all but the
    discriminator diagnostics, which run when ``discriminator`` is given).
    ``extractor``: a registered name, a :class:`FeatureExtractor`, or several of them (a list,
    ``"inception,ssl,radiomics,wavelet"`` or ``{space name: name or extractor}``; an
    extractor object's space is named by its ``name``): every feature-based family runs in every
    space; the first space's entries stay at ``metrics.<name>`` and each space's are also under
    ``metrics.spaces.<space>.<name>`` (docs/architecture.md section 3). Families that need no
    features (utility, discriminator) and the Inception Score run once. Spaces named here are
    built with the settings they declare in the feature registry (a fitted space gets
    ``train``, else the reference); ``extractor_options`` go to each of them.

    The settings: ``options``, an :class:`~medsyn.evaluators.metrics.EvalOptions`, and/or its
    fields as keywords (``n_bootstrap=50``, ``seed=0``, ``batch_size=64``,
    ``kid_subset_size=1000``, ``kid_subsets=100``, ``k=5``, ``is_splits=10``,
    ``tsne_max_points=750`` (at most this many real and this many fake points in the t-SNE
    figure), ``use_cache=True``, ``utility_recipe`` / ``utility_seeds`` / ``utility_ratio``
    (the utility protocol's classifier recipe: a name, Recipe or dict, also the ``classifier``
    space's; its seeds; the TRTR+S synthetic:real ratio), ``ssl_recipe`` (the ``ssl`` space's
    recipe, evaluators/networks/ssl.py; default quick), ``mmd_sigma``, ``fd_inf_points``, ...;
    docs/evaluation.md lists them). ``metric_options``: the same fields as a dict.

    ``n_split``: the real-vs-real floor and memorization use at most this many images of the
    train and held-out splits (a stratified subset, noted in the results' warnings); ``None``
    uses every image (the utility protocol always trains on the whole training split).
    ``discriminator(images_uint8, labels_or_None) -> {"p_real": [N], "class_logits": [N, K]|None}``.
    ``sampler(labels, seed) -> uint8 images``: draws more synthetic images of given classes
    (a conditional generator), used by the utility protocol when the evaluated set is short.
    ``run`` / ``provenance``: recorded in results.json (``run``: name, checkpoint, ...).
    ``warnings``: more warnings to record (e.g. files of the fake folder that were skipped);
    the warnings of the datasets' ``source`` (skipped files, automatic splits, intensity) are
    recorded too.
    When ``out_dir`` is given, results.json, metrics.csv and the figures are written there, as
    one unit (:func:`medsyn.evaluators.results.staged_folder`); an existing evaluation there is
    replaced only with ``overwrite``. ``figures_dir``: without ``out_dir``, write only the
    figures there (for callers that write their own results files).

    Under ``torchrun`` (a process group of more than one rank, joined with
    :func:`medsyn.evaluators.features.sharding.join_torchrun` or by the caller), every rank
    calls this with the same arguments: each extracts its shard of the features, rank 0
    computes the metrics, writes and returns the results; the other ranks return ``None``.
    """
    started = time.perf_counter()
    check_images(fake_images, "fake images")
    _check_compatible(fake_images, reference)
    labels = None if fake_labels is None else \
        class_indices(fake_labels, reference.class_names, "fake labels", n=len(fake_images))
    opts = resolve_options(options, settings, metric_options)
    if n_split is not None and (isinstance(n_split, bool) or not isinstance(n_split, int)
                                or n_split < 2):
        raise DataError(f"n_split (--n-memorization) must be an integer >= 2, got {n_split!r}.")
    specs = resolve_metrics(metrics, discriminator is not None)
    dev = resolve_device(device)
    group = shard_group()
    if group is not None:
        fake_images, labels = _same_inputs_on_every_rank(group, fake_images, labels,
                                                         (reference, train, heldout, val))
    if out_dir is not None:
        check_output_folder(out_dir, overwrite)      # before anything slow
    spaces: dict[str, FeatureExtractor] = {}
    if any(spec.needs_features for spec in specs):
        fit_on = train if train is not None else reference
        spaces = build_spaces(extractor, extractor_options, dev,
                              space_settings(opts, fit_on, val))
    job = _Job(fake_images=fake_images, labels=labels, reference=reference, train=train,
               heldout=heldout, val=val, specs=specs, spaces=spaces, options=opts, device=dev,
               discriminator=discriminator, sampler=sampler, n_split=n_split, run=run,
               provenance=provenance, warnings=tuple(warnings), started=started, group=group)
    if job.group is not None and not job.group.is_main:
        return _run(job, None)          # extracts its shards, computes and writes nothing
    if out_dir is not None:
        with staged_folder(out_dir, overwrite) as stage:
            results = _run(job, Path(stage))
            write_results(results, stage)
        return results
    return _run(job, Path(figures_dir) if figures_dir is not None else None)


def _same_inputs_on_every_rank(group: ShardGroup, fake_images, labels, datasets):
    """Rank 0's fake images and labels on every rank (a generator sampled on each GPU need not
    give the same bits), after checking that every rank loaded the same real data."""
    if group.world_size > len(fake_images):
        raise ConfigError(f"torchrun started {group.world_size} processes for "
                          f"{len(fake_images)} fake images; start at most one per image "
                          "(--nproc_per_node), or evaluate in one process.")
    prints = [None if ds is None else ds.fingerprint for ds in datasets]
    if any(p != prints for p in group.all_gather_objects(prints)):
        raise DataError("the torchrun ranks loaded different real datasets (their fingerprints "
                        "differ); give every node the same MEDSYN_DATA_ROOT contents.")
    fake_images = group.broadcast_tensor(fake_images)
    if labels is not None:
        labels = group.broadcast_array(np.asarray(labels))
    return fake_images, labels


@dataclass
class _Job:
    """One evaluation, its inputs resolved and validated."""

    fake_images: torch.Tensor
    labels: np.ndarray | None
    reference: object
    train: object | None
    heldout: object | None
    val: object | None
    specs: list
    spaces: dict[str, FeatureExtractor]
    options: EvalOptions
    device: torch.device
    discriminator: Callable | None
    sampler: Callable | None
    n_split: int | None
    run: dict | None
    provenance: dict | None
    warnings: tuple
    started: float
    group: ShardGroup | None = None


def _run(job: _Job, out_path: Path | None) -> dict | None:
    if out_path is not None:
        out_path.mkdir(parents=True, exist_ok=True)
    specs, spaces = job.specs, job.spaces

    def context(ext, space_dir, families):
        return EvalContext(
            fake_labels=job.labels, fake_images=job.fake_images, reference=job.reference,
            extractor=ext, options=job.options, device=job.device, train=job.train,
            heldout=job.heldout, val=job.val, discriminator=job.discriminator,
            out_dir=space_dir, sampler=job.sampler, split_limit=job.n_split,
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
    # the fakes' features are extracted up front, with all threads, outside the metric phase
    # (the real sets' on first use). Under torchrun every feature set the families read is
    # extracted here, each rank its shard, and only rank 0 goes on to the metrics.
    with collective_extraction() as group:
        for name, ctx in contexts.items():
            if per_space or (name == logits_space and any(s.needs_features for s in once)):
                ctx.prefetch(reference=bool(per_space) and group is not None,
                             splits=_splits_read(per_space))
    if group is not None and not group.is_main:
        return None
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
    datasets = (job.reference, job.train, job.heldout, job.val)
    for message in [*job.warnings, *(w for ds in datasets if ds is not None
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
    timings["total_s"] = round(time.perf_counter() - job.started, 3)
    return {"schema_version": SCHEMA_VERSION, "kind": "generation",
            "run": {**EMPTY_RUN, **(job.run or {})}, "metrics": results_metrics,
            "figures": figures, "warnings": warnings, "provenance": _provenance(job, timings)}


def _splits_read(families) -> tuple:
    """The real splits whose features the families read through ``ctx.features_of`` (the
    privacy audit's baseline may be the validation split, metrics/privacy/baseline.py)."""
    names = {spec.name for spec in families}
    splits = ("train", "heldout") if names & set(SPLIT_FAMILIES) else ()
    return splits + (("val",) if "privacy" in names else ())


def _ds_info(ds):
    return None if ds is None else {
        "name": ds.name, "split": ds.split, "fingerprint": ds.fingerprint, "n": len(ds),
        "image_size": list(ds.image_size), "channels": ds.channels,
        "class_counts": ds.class_counts()}


def _provenance(job: _Job, timings: dict) -> dict:
    names, reference = list(job.spaces), job.reference
    prov = {
        "checkpoint": None, "checkpoint_sha256": None,
        "dataset": {"name": reference.name, "split": reference.split,
                    "fingerprint": reference.fingerprint},
        "reference": _ds_info(reference), "train": _ds_info(job.train),
        "heldout": _ds_info(job.heldout), "val": _ds_info(job.val),
        "fake": {"n": len(job.fake_images), "labelled": job.labels is not None,
                 "image_size": list(job.fake_images.shape[2:]),
                 "channels": int(job.fake_images.shape[1])},
        "extractor": _describe(job.spaces[names[0]]) if names else None,
        "bootstrap": {"n": job.options.n_bootstrap, "method": stats.CI_METHOD},
        "versions": versions(), "device": str(job.device), "seed": job.options.seed,
        "resize": None, "timings": timings,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if len(names) > 1:
        prov["spaces"] = names
        prov["extractors"] = {n: _describe(job.spaces[n]) for n in names}
    prov.update(job.provenance or {})
    prov["receipt"] = _receipt(job, prov)
    return prov


def _receipt(job: _Job, prov: dict) -> dict:
    """The evaluation receipt: what a reader needs to trust or reproduce the numbers in one
    place: the known-answer checks of this installation (metrics/conformance.py), library
    versions, the weights of every feature space, and the input pipeline."""
    import scipy
    import sklearn

    from medsyn.data.transforms.resize import RESIZE_FILTER
    from medsyn.evaluators.metrics.conformance import installation_status

    intensity = ((getattr(job.reference, "source", None) or {}).get("intensity") or {})
    return {
        "selftest": installation_status(),
        "versions": {**prov["versions"], "numpy": np.__version__,
                     "scipy": scipy.__version__, "scikit_learn": sklearn.__version__},
        "weights_sha256": {n: ext.weights_sha256 for n, ext in job.spaces.items()},
        "input_pipeline": {"resize_filter": RESIZE_FILTER, "resize": prov.get("resize"),
                           "reference_intensity_rule": intensity.get("bit_depth_rule"),
                           "feature_conventions": {n: ext.conventions
                                                   for n, ext in job.spaces.items()}},
    }


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
