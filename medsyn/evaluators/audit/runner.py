"""``audit``: score controlled failures of held-out real images with every registered metric
in every chosen feature space, and judge each metric's response (docs/audit.md).

Cost: the real sets (reference and held-out pool) go through each network once and are
cached on disk (the evaluators' real-feature cache); a synthetic set made of unchanged pool
images (class / cluster drop, label swaps, level 0) reuses the pool's features; any other set
is extracted once per space. Metrics are the registry's own families, fed those features.

Under ``torchrun`` (``torchrun --nproc_per_node N -m medsyn audit ...``) every rank builds the
same sets and extracts its shard of each feature set (evaluators/features/sharding.py, as
``medsyn evaluate`` does); rank 0 alone scores them and writes the audit. ``--power``'s draws
are dealt across the ranks instead, each rank building, extracting and scoring whole draws
(power.py).
"""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medsyn.data.subsets import stratified_rows, stratified_subset
from medsyn.errors import ConfigError, DataError
from medsyn.evaluators.audit import perturbations as P
from medsyn.evaluators.audit import statistics as S
from medsyn.evaluators.audit.scoring import score_set, set_features
from medsyn.evaluators.audit.verdict import classify, default_early_level
from medsyn.utils import progress

AUDIT_SCHEMA_VERSION = 1
REFERENCE_SPLIT = "train"
DEFAULT_EXTRACTORS = ("inception", "pixels")


@dataclass(frozen=True)
class Sizes:
    n: int | None                  # images per synthetic set (None: all of the pool)
    n_pool: int | None             # held-out images to build from (None: the whole split)
    n_reference: int | None        # reference (training) images (None: the whole split)
    n_bootstrap: int


# quick: sized for the 2-core CPU at 28 px (docs/audit.md has the measured wall time)
QUICK = Sizes(n=48, n_pool=160, n_reference=320, n_bootstrap=20)
# n at most half the pool when not given: the other half replaces dropped classes / clusters
FULL = Sizes(n=300, n_pool=None, n_reference=None, n_bootstrap=50)


def _parse_list(value, what: str) -> list[str] | None:
    if value is None:
        return None
    items = [v for v in (value.replace(" ", "").split(",") if isinstance(value, str) else value)
             if v]
    if not items:
        raise ConfigError(f"{what}: empty list.")
    return list(items)


def audited_metrics(metrics=None):
    """The metric families the audit runs: those that read features and declare, for at
    least one result key, the direction in which it gets worse; and the declared keys."""
    from medsyn.evaluators.metrics import metric_directions, resolve_metrics

    specs = resolve_metrics(metrics, have_discriminator=False)
    chosen = [s for s in specs if s.needs_features and s.worse]
    skipped = [s.name for s in specs if s not in chosen]
    if metrics is not None and skipped:
        raise ConfigError(f"--metrics: {', '.join(skipped)} cannot be audited (no feature-space "
                          "result with a declared worse direction); audited families: "
                          + ", ".join(s.name for s in resolve_metrics(None, False)
                                      if s.needs_features and s.worse) + ".")
    if not chosen:
        raise ConfigError("no metric to audit: no chosen family declares a worse direction.")
    directions = metric_directions()
    keys = [k for s in chosen for k in s.worse]
    return chosen, {k: directions[k] for k in keys}


def _build_extractor(name, device, train, inception_weights, use_cache, held_split, root,
                     image_size, extractor_weights=None):
    """The named space, built from the settings it declares: a space fitted to the real data
    fits the training split, a classifier is selected on the validation split (never on the
    held-out images it is audited on). Under ``torchrun`` rank 0 fits (and caches) such a
    space first and the other ranks read it, so every rank extracts with the same weights."""

    from medsyn.data import load_dataset
    from medsyn.evaluators.features import build_extractor, is_fitted, reads_setting
    from medsyn.evaluators.features.sharding import built_by_main_first, shard_group

    fitted = is_fitted(name)
    if fitted and shard_group() is not None and not use_cache:
        raise ConfigError(f"--extractor {name}: under torchrun the space fitted to the real "
                          "training split reaches every rank through the cache; drop "
                          "--no-cache (or audit in one process).")

    val = None
    if reads_setting(name, "val") and held_split != "val":
        try:
            val = load_dataset(train.name, "val", image_size=image_size, root=root)
        except DataError:
            val = None
    settings = {"train": train, "val": val, "use_cache": use_cache,
                "inception_weights": inception_weights, "extractor_weights": extractor_weights}
    # rank 0 first: it fits or downloads, the other ranks read its cache instead of racing it
    return built_by_main_first(lambda: build_extractor(name, settings, device=device))


def audit(dataset: str, split: str = "test", *, extractors: Sequence[str] | str | None = None,
          metrics: Sequence[str] | str | None = None, failures: Sequence[str] | str | None = None,
          quick: bool = False, n: int | None = None, n_pool: int | None = None,
          n_reference: int | None = None, n_bootstrap: int | None = None, seed: int = 0,
          k: int = 5, device: str | None = None, batch_size: int = 64,
          image_size: int | None = None, data_root=None, out_dir=None, use_cache: bool = True,
          inception_weights=None, extractor_weights=None, overwrite: bool = False,
          power: bool = False,
          power_sizes: Sequence[int] | None = None, power_repeats: int | None = None,
          reference_sensitivity: bool = False, preprocessing: bool = False) -> dict | None:
    """Audit the metrics on ``dataset``: synthetic sets built from its ``split`` (held out;
    the reference is the training split), each failure at every severity level, scored in
    every space of ``extractors``. Returns the audit dict (the schema of audit.json,
    docs/architecture.md); with ``out_dir``, also writes audit.json, the trust card
    (card.md, card.html) and the figures there, as one unit (:mod:`medsyn.outputs`); an
    earlier audit there is replaced only with ``overwrite``, anything else never.

    ``extractor_weights``: the local weights file (or model folder) of the encoder spaces that
    read one (``timm:``, ``dinov2:``, ``tf:``, ``torchxrayvision:``), as ``medsyn evaluate
    --extractor-weights``.

    ``quick``: the CPU-sized defaults (:data:`QUICK`); explicit ``n`` / ``n_pool`` /
    ``n_reference`` / ``n_bootstrap`` win over either preset.

    ``power``: the detection rate of every failure level at the set sizes ``power_sizes`` over
    ``power_repeats`` draws, and the minimum n for 80 % power (power.py).
    ``reference_sensitivity`` / ``preprocessing``: how much the choice of real reference / the
    input pipeline alone moves each metric (sensitivity.py). Each adds a block to the result.

    Under ``torchrun`` (a process group joined with
    :func:`medsyn.evaluators.features.sharding.join_torchrun` or by the caller) every rank
    calls this with the same arguments and extracts its shard of each feature set, and scores
    its share of the ``power`` draws; rank 0 scores the rest, writes and returns the audit, the
    other ranks return ``None``.
    """
    from medsyn.data import load_dataset
    from medsyn.device import resolve_device
    from medsyn.evaluators.features import (
        dataset_features,
        extract_features,
        list_extractors,
        parse_extractor_names,
    )
    from medsyn.evaluators.features.sharding import collective_extraction, shard_group
    from medsyn.evaluators.metrics import EvalOptions
    from medsyn.evaluators.scoring.evaluate import versions

    started = time.perf_counter()
    preset = QUICK if quick else FULL
    n_given = n is not None
    n = preset.n if n is None else n
    n_pool = preset.n_pool if n_pool is None else n_pool
    n_reference = preset.n_reference if n_reference is None else n_reference
    n_bootstrap = preset.n_bootstrap if n_bootstrap is None else n_bootstrap
    space_names = _parse_list(extractors, "--extractor") or list(DEFAULT_EXTRACTORS)
    unknown = []
    for name in space_names:    # registered names and source:target spaces (timm:MODEL@FILE)
        try:
            parse_extractor_names([name])
        except ConfigError:
            unknown.append(name)
    if unknown:
        raise ConfigError(f"--extractor: unknown feature space(s) {', '.join(unknown)}; "
                          f"registered: {', '.join(sorted(list_extractors()))}.")
    if len(set(space_names)) != len(space_names):
        raise ConfigError(f"--extractor: a space is named twice ({', '.join(space_names)}).")
    chosen_failures = P.resolve_failures(failures)
    specs, directions = audited_metrics(metrics)
    group = shard_group()
    if not isinstance(n_bootstrap, int) or n_bootstrap < 2:
        raise ConfigError(f"--bootstrap must be an integer >= 2 (the real-vs-real interval is a "
                          f"bootstrap interval), got {n_bootstrap!r}.")
    if n is not None and (not isinstance(n, int) or n <= k + 1):
        raise ConfigError(f"-n (images per synthetic set) must be an integer > k + 1 = {k + 1}, "
                          f"got {n!r}.")
    for flag, v in (("--n-pool", n_pool), ("--n-reference", n_reference)):
        if v is not None and (not isinstance(v, int) or v <= k + 1):
            raise ConfigError(f"{flag} must be an integer > k + 1 = {k + 1}, got {v!r}.")
    if split == REFERENCE_SPLIT and n_reference is None:
        raise ConfigError(f"--dataset {dataset}:{split}: the synthetic sets must be built from "
                          f"images held out from the reference ({REFERENCE_SPLIT}); choose the "
                          "test or val split, or give --n-reference N to split the training "
                          "images into a reference of N and a held-out pool of the rest.")
    options = EvalOptions(n_bootstrap=n_bootstrap, seed=seed, k=k, batch_size=batch_size,
                          use_cache=use_cache, fid_method="gram")
    options.validate()
    repeats = S.power_repeats(power_repeats, quick)
    if out_dir is not None:
        from medsyn.evaluators.audit.card import check_audit_folder

        check_audit_folder(Path(out_dir), overwrite)        # before anything slow
    dev = resolve_device(device)

    train = load_dataset(dataset, REFERENCE_SPLIT, image_size=image_size, root=data_root)
    if split == REFERENCE_SPLIT:
        reference, pool_ds = _split_training(train, n_reference, n_pool, seed, k)
        fit_on = reference      # a space fitted to real data never sees the held-out part
        loaded = (train,)
    else:
        held = load_dataset(dataset, split, image_size=image_size, root=data_root)
        if train.fingerprint == held.fingerprint:
            raise DataError(f"{dataset}: the {split} and {REFERENCE_SPLIT} splits are the same "
                            "images; an audit needs held-out images.")
        reference = stratified_subset(train, n_reference, seed)
        pool_ds = stratified_subset(held, n_pool, seed)
        fit_on = train
        loaded = (train, held)
    if group is not None:
        _same_data_on_every_rank(group, loaded)
    if not n_given:
        n = max(k + 2, min(n, len(pool_ds) // 2))
    if n > len(pool_ds):
        raise ConfigError(f"-n {n}: the held-out pool ({dataset}/{split}"
                          f"{f', --n-pool {n_pool}' if n_pool else ''}) has only {len(pool_ds)} "
                          "images; lower -n or raise --n-pool.")
    rng = np.random.default_rng([seed, 1])
    base_rows = stratified_rows(pool_ds.labels.numpy(), n, rng)
    pool = P.Pool(images=pool_ds.images, labels=pool_ds.labels.numpy(), base_rows=base_rows,
                  class_names=list(train.class_names), copy_source=reference.images,
                  copy_labels=reference.labels.numpy())

    timings: dict = {"extraction_s": 0.0, "metrics_s": 0.0}
    warnings: list[str] = []
    built: dict[str, object] = {}

    def space(name):
        if name not in built:
            built[name] = _build_extractor(name, dev, fit_on, inception_weights, use_cache,
                                           split, data_root, image_size, extractor_weights)
        return built[name]

    def real_features(ext):
        t0 = time.perf_counter()
        with collective_extraction():
            ref = dataset_features(reference, ext, batch_size, use_cache)
            pool_f = dataset_features(pool_ds, ext, batch_size, use_cache)
        timings[f"real_features_{ext.name}_s"] = round(time.perf_counter() - t0, 3)
        timings[f"real_features_{ext.name}_cached"] = ref.from_cache and pool_f.from_cache
        return ref, pool_f

    first_real = real_features(space(space_names[0])) if space_names else None
    if any(f.needs_clusters for f in chosen_failures):
        from sklearn.cluster import KMeans

        clusters = None
        if group is None or group.is_main:
            km = KMeans(n_clusters=min(P.N_CLUSTERS, len(pool_ds)), random_state=seed,
                        n_init=10)
            clusters = km.fit_predict(first_real[1].features.astype(np.float64))
        # rank 0's clusters on every rank: k-means' arithmetic may follow the thread count
        pool.clusters = clusters if group is None else group.broadcast_array(clusters)
        pool.cluster_space = space(space_names[0]).name

    sets = [P.real_set(pool)]
    for failure in chosen_failures:
        for level in range(1, len(failure.levels) + 1):
            sets.append(P.build_set(failure, level, pool, seed))
    for s in sets:
        for note in s.notes:
            warnings.append(f"{s.failure} level {s.level}: {note}")
    if group is not None:
        _same_sets_on_every_rank(group, sets)

    extra = S.Extras(power, reference_sensitivity, preprocessing)
    if power:
        extra.sizes, extra.sizes_left_out = S.power_sizes_for(power_sizes, len(pool_ds))
        if not extra.sizes:
            raise ConfigError(f"--power-sizes: every size is above half the held-out pool "
                              f"({len(pool_ds)} images); give sizes <= {len(pool_ds) // 2}, "
                              "or draw the pool from the training split (--dataset NAME:train "
                              "--n-reference N).")
        if extra.sizes_left_out:
            warnings.append(f"--power: set sizes {', '.join(map(str, extra.sizes_left_out))} "
                            f"are above half the held-out pool ({len(pool_ds)} images: the "
                            "failures that replace images draw from the other half) and were "
                            "left out.")
    if preprocessing:
        extra.variants = S.preprocessing_inputs(dataset, split, pool_ds, base_rows, image_size,
                                                data_root)
    spaces_out: dict = {}
    for name in space_names:
        ext = space(name)
        ref_f, pool_f = first_real if name == space_names[0] else real_features(ext)
        # every feature set of this space first (under torchrun: each rank its shards), then
        # the scoring (rank 0 alone)
        t0 = time.perf_counter()
        with collective_extraction():
            set_feats = [set_features(s, pool_f, ext, batch_size) for s in sets]
            variant_feats = [None if images is None else
                             extract_features(ext, images, batch_size, desc="preprocessing")
                             for _, images, _ in extra.variants] if preprocessing else None
        timings["extraction_s"] += time.perf_counter() - t0
        ctx_args = {"reference": reference, "extractor": ext, "options": options, "device": dev,
                    "train": reference, "heldout": pool_ds, "split_features_needed": False}
        power_s = 0.0
        if power:       # on every rank: the draws are dealt across the ranks (power.py)
            t0 = time.perf_counter()
            S.run_power(extra, ext, ctx_args, options, specs, directions, ref_f, pool_f, pool,
                        chosen_failures, repeats, seed, batch_size)
            power_s = time.perf_counter() - t0
        if group is not None and not group.is_main:
            continue
        scores: dict = {}
        for s, feats in progress(list(zip(sets, set_feats, strict=True)),
                                 desc=f"audit [{ext.name}]", unit="set"):
            t1 = time.perf_counter()
            scored, warns = score_set(s, feats, ctx_args, specs, directions, ref_f, pool_f)
            timings["metrics_s"] += time.perf_counter() - t1
            scores[(s.failure, s.level)] = scored
            for w in warns:
                if s.level == 0:
                    warnings.append(f"[{ext.name}] {w}")
        spaces_out[ext.name] = _space_summary(name, ext, chosen_failures, scores, directions)
        if extra.any:
            t0 = time.perf_counter()
            S.run_extras(extra, ext, ctx_args, options, specs, directions, ref_f, pool_f,
                         pool, seed, batch_size, reference, train.class_names, variant_feats)
            timings[f"statistics_{ext.name}_s"] = time.perf_counter() - t0 + power_s
    if group is not None and not group.is_main:
        return None               # a torchrun rank other than 0: extracted (and its power draws)
    timings = {k: round(v, 3) if isinstance(v, float) else v for k, v in timings.items()}
    timings["total_s"] = round(time.perf_counter() - started, 3)

    def ds_info(ds):
        return {"name": ds.name, "split": ds.split, "fingerprint": ds.fingerprint, "n": len(ds),
                "image_size": list(ds.image_size), "channels": ds.channels,
                "class_counts": ds.class_counts()}

    result = {
        "schema_version": AUDIT_SCHEMA_VERSION, "kind": "audit",
        "dataset": {"name": train.name, "image_size": list(train.image_size),
                    "channels": train.channels, "class_names": list(train.class_names),
                    "reference": ds_info(reference), "pool": ds_info(pool_ds),
                    "base_sample": {"n": n, "class_counts": dict(zip(
                        train.class_names, np.bincount(pool.labels[base_rows],
                                                       minlength=len(train.class_names)).tolist(),
                        strict=True))}},
        "settings": {"quick": bool(quick), "n": n, "n_pool": len(pool_ds),
                     "n_reference": len(reference), "n_bootstrap": n_bootstrap, "seed": seed,
                     "k": k, "fid_method": options.fid_method,
                     "metric_families": [s.name for s in specs],
                     "extractors": space_names,
                     "early_level": default_early_level(max(len(f.levels)
                                                            for f in chosen_failures)),
                     "cluster_space": pool.cluster_space,
                     "rarest_class": train.class_names[P.rarest_class(pool)]},
        "directions": directions,
        "failures": {f.name: {**P.describe_failure(f), **_set_info(f, sets)}
                     for f in chosen_failures},
        "spaces": spaces_out,
        **extra.blocks(repeats),
        "figures": {}, "files": {},
        "warnings": warnings,
        "provenance": {"versions": versions(), "device": str(dev),
                       "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                       "timings": timings},
    }
    if out_dir is not None:
        from medsyn.evaluators.audit.card import write_audit

        write_audit(result, Path(out_dir), overwrite)
    return result


def _same_data_on_every_rank(group, datasets) -> None:
    prints = [ds.fingerprint for ds in datasets]
    if any(p != prints for p in group.all_gather_objects(prints)):
        raise DataError("the torchrun ranks loaded different real datasets (their fingerprints "
                        "differ); give every node the same MEDSYN_DATA_ROOT contents.")


def _same_sets_on_every_rank(group, sets) -> None:
    """The synthetic sets are built from the seed on every rank (byte-identical by design,
    perturbations.py); a rank whose sets differ would extract other images than rank 0
    scores."""
    import hashlib

    digest = hashlib.sha256()
    for s in sets:
        digest.update(np.ascontiguousarray(s.images.numpy()).tobytes())
        digest.update(np.ascontiguousarray(s.pool_rows).tobytes())
    if len(set(group.all_gather_objects(digest.hexdigest()))) > 1:
        raise DataError("the torchrun ranks built different synthetic sets from the same seed "
                        "and data; run the audit in one process and report this as a bug.")


def _split_training(train, n_reference: int, n_pool: int | None, seed: int, k: int):
    """``--dataset NAME:train``: a stratified reference of ``n_reference`` training images and
    a held-out pool drawn from the rest (disjoint rows; with patient ids, whole patients in a
    seeded order until ``n_reference`` images, so no patient is on both sides). The pool is a
    subset of ``train`` itself (one ``parent`` level), so its rows map straight to the stored
    images."""
    if n_reference >= len(train) - (k + 1):
        raise ConfigError(f"--n-reference {n_reference}: the {train.name} training split has "
                          f"{len(train)} images and the held-out pool is the rest; give "
                          f"--n-reference <= {len(train) - k - 2}.")
    if train.patient_ids is None:
        reference = stratified_subset(train, n_reference, seed)
    else:
        _, codes = np.unique(np.asarray(train.patient_ids, dtype=str), return_inverse=True)
        order = np.random.default_rng([seed, 30]).permutation(codes.max() + 1)
        cumulative = np.cumsum(np.bincount(codes)[order])
        chosen = order[:int(np.searchsorted(cumulative, n_reference)) + 1]
        reference = train.subset(np.flatnonzero(np.isin(codes, chosen)))
    rest = np.setdiff1d(np.arange(len(train)), reference.parent[1])
    if len(rest) <= k + 1:
        raise ConfigError(f"--n-reference {n_reference}: whole patients leave only {len(rest)} "
                          f"{train.name} training images for the held-out pool; give a smaller "
                          "--n-reference.")
    pool_rows = rest
    if n_pool is not None and n_pool < len(rest):
        rest_labels = train.labels.numpy()[rest]
        pool_rows = rest[stratified_rows(rest_labels, n_pool, np.random.default_rng(seed))]
    pool_ds = train.subset(np.sort(pool_rows))
    pool_ds.split = f"{train.split}[not in the reference]"
    return reference, pool_ds


def _set_info(failure, sets) -> dict:
    mine = sorted((s for s in sets if s.failure == failure.name), key=lambda s: s.level)
    out = {"new_images": [0, *[s.n_new for s in mine]]}
    notes = {str(s.level): s.notes for s in mine if s.notes}
    if notes:
        out["notes"] = notes
    return out


def _space_summary(registry_name, ext, failures, scores, directions) -> dict:
    real = scores[("none", 0)]
    cells: dict = {}
    for f in failures:
        cells[f.name] = {}
        n_levels = len(f.levels)
        for key, worse in directions.items():
            per_level = [real[key]] + [scores[(f.name, lv)][key]
                                       for lv in range(1, n_levels + 1)]
            judged = classify([p["value"] for p in per_level], [p["ci95"] for p in per_level],
                              worse)
            thr = judged["threshold_level"]
            cell = {"verdict": judged["verdict"], "threshold_level": thr,
                    "threshold_parameter": None if thr is None else
                    _jsonable(f.levels[thr - 1]),
                    "first_departure": judged["first_departure"],
                    "early_level": judged["early_level"],
                    "spearman": judged["spearman"], "moves_right_way": judged["moves_right_way"],
                    "worse": worse,
                    "levels": [{"level": lv, "parameter": None if lv == 0 else
                                _jsonable(f.levels[lv - 1]), **per_level[lv],
                                "departure": judged["departures"][lv]}
                               for lv in range(n_levels + 1)]}
            if "reason" in judged:
                cell["reason"] = judged["reason"]
            unavailable = {p.get("unavailable") for p in per_level if p.get("unavailable")}
            if unavailable and judged["verdict"] == "unavailable":
                cell["reason"] = "; ".join(sorted(unavailable))
            cells[f.name][key] = cell
    return {"extractor": registry_name, "describe": ext.describe(),
            "real_vs_real": real, "cells": cells}


def _jsonable(p):
    return list(p) if isinstance(p, tuple) else p
