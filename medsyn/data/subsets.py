"""Class-stratified subsets and splits of a dataset, seeded and deterministic.

Every stage that needs a smaller or a held-apart part of a dataset (evaluation references,
the audit's pools, validation splits for classifiers trained on real data) draws it here, so
the same seed gives the same images everywhere.
"""

from __future__ import annotations

import numpy as np

from medsyn.errors import DataError

# The share of a training split held apart for validation when a dataset has no val split.
VAL_FRACTION_WHEN_MISSING = 0.1


def stratified_subset(dataset, n: int | None, seed: int):
    """At most ``n`` images of a dataset, keeping its class proportions (largest remainder)."""
    if n is None or n >= len(dataset):
        return dataset
    if n < 1:
        raise DataError(f"--n-real must be >= 1, got {n}.")
    rng = np.random.default_rng(seed)
    labels = dataset.labels.numpy()
    quotas = split_counts(n, np.bincount(labels, minlength=len(dataset.class_names)))
    idx = []
    for c, q in enumerate(quotas):
        members = np.flatnonzero(labels == c)
        idx += rng.choice(members, q, replace=False).tolist()
    return dataset.subset(sorted(idx))


def split_counts(n: int, weights) -> list[int]:
    """``n`` divided in proportion to ``weights`` (largest remainder, ties to the first)."""
    w = np.asarray(weights, dtype=float)
    exact = n * w / w.sum()
    base = np.floor(exact).astype(int)
    rest = n - base.sum()
    order = np.argsort(-(exact - base), kind="stable")
    base[order[:rest]] += 1
    return base.tolist()


def stratified_rows(labels: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted row indices of ``n`` items drawn without replacement, keeping the class
    proportions of ``labels`` (largest remainder)."""
    counts = np.bincount(labels)
    quotas = split_counts(n, counts)
    rows = [rng.choice(np.flatnonzero(labels == c), q, replace=False)
            for c, q in enumerate(quotas) if q]
    return np.sort(np.concatenate(rows)).astype(np.int64)


def take_per_class(labels: np.ndarray, wanted: np.ndarray, rng: np.random.Generator):
    """Indices of up to ``wanted[c]`` items of each class c, in a seeded order."""
    chosen = []
    for c, n in enumerate(wanted):
        idx = np.flatnonzero(labels == c)
        chosen.append(rng.permutation(idx)[: int(n)])
    return chosen


def split_validation(train, fraction: float = VAL_FRACTION_WHEN_MISSING, seed: int = 0):
    """A stratified, seeded (train, val) split of a dataset that has no validation split."""
    rng = np.random.default_rng([seed, 4242])
    labels = train.labels.numpy()
    val_idx = []
    for c in range(train.num_classes):
        idx = rng.permutation(np.flatnonzero(labels == c))
        val_idx.extend(idx[: max(1, int(round(fraction * len(idx))))] if len(idx) > 1 else [])
    val_mask = np.zeros(len(labels), bool)
    val_mask[val_idx] = True
    sub_train = train.subset(np.flatnonzero(~val_mask))
    sub_val = train.subset(np.flatnonzero(val_mask))
    sub_val.split = f"{train.split}[val {fraction:.0%}]"
    sub_train.split = f"{train.split}[rest]"
    return sub_train, sub_val


def reserved_rows(dataset, fraction: float = VAL_FRACTION_WHEN_MISSING,
                  seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (kept, reserved) rows of a training split, a seeded random ``fraction`` reserved.

    Without patient ids the reserved rows are exactly :func:`split_validation`'s validation
    rows (stratified by class), so ``split_validation(train, fraction, seed)[0]`` is the part a
    generator may train on. With patient ids whole patients are reserved (patients in a
    seeded random order until about ``fraction`` of the images), so no patient is on both
    sides."""
    if not 0 < fraction < 1:
        raise DataError(f"the reserved fraction must be in (0, 1), got {fraction!r}.")
    n = len(dataset)
    ids = getattr(dataset, "patient_ids", None)
    if ids is None:
        sub_train, sub_val = split_validation(dataset, fraction, seed)
        return np.sort(sub_train.parent[1]), np.sort(sub_val.parent[1])
    _, codes = np.unique(np.asarray(ids, dtype=str), return_inverse=True)
    order = np.random.default_rng([seed, 4243]).permutation(codes.max() + 1)
    counts = np.bincount(codes)
    chosen, total = [], 0
    for patient in order[:-1]:               # at least one patient stays for training
        if total >= fraction * n:
            break
        chosen.append(patient)
        total += counts[patient]
    mask = np.isin(codes, chosen)
    return np.flatnonzero(~mask), np.flatnonzero(mask)
