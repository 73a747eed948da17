"""Are the held-out real images exchangeable with the training images? (docs/privacy.md)

Every privacy test compares the synthetic set with held-out real images, the baseline "new
patients drawn like the training patients". When the held-out images come from elsewhere (a
later year, another site, MedMNIST's test split), a generator that copies nothing but fits its
training distribution sits "closer to train than new patients do" and is accused. This check
tells that situation apart, before any leak test is read.

A random *probe* of the training images (patient-disjoint from the rest when patients are
known) is set against the held-out images; the other training images form the *reference* R.
Two statistics, computed on the same permutations of the probe / held-out labels:

- ``distance``: the AUC P(d(h, R) > d(p, R)) of the nearest distance to R, held-out h against
  probe p (ties count one half), two-sided. This is the quantity the DCR test and the
  membership attack compare: an AUC of 0.56 means a generator that copies nothing, sampling
  the training distribution, faces an attack AUC of about 0.56 with this baseline.
- ``mmd``: the unbiased RBF MMD^2 (Gretton et al., JMLR 2012) between probe and held-out
  features, one-sided, bandwidth the median pooled pairwise distance (a function of the pooled
  set, so unchanged by a permutation). It sees shifts that leave distances to R alone (e.g. a
  different class balance).

Given R, each point's distance to R and its features depend on that point alone, so under
exchangeability the labels can be permuted and both permutation tests are exact. They are
combined by the min-p rule over the same permutations (Westfall & Young 1993): the combined
p-value is the share of permutations whose smaller p-value is at most the observed one, which
keeps the size at ``alpha`` however correlated the two statistics are. With patient ids whole
patients are permuted (images of one patient are not independent).
"""

from __future__ import annotations

import numpy as np

from medsyn.evaluators.metrics import stats
from medsyn.evaluators.metrics.stats.permutation import (
    exchangeable_units,
    labels_for,
    median_bandwidth,
    min_p_combined,
    mmd2_unbiased,
    permutation_p_values,
    permuted_labels,
    permuted_labels_by_count,
    squared_distances,
    subsample_units,
)

# re-exported: the permutation machinery lives in metrics/stats/permutation.py
__all__ = ["auc_greater", "check_exchangeable", "describe_shift", "exchangeability_test",
           "median_bandwidth", "mmd2_unbiased", "permuted_labels", "permuted_labels_by_count",
           "probe_split", "squared_distances", "subsample_units"]

SHIFT_ALPHA = 0.05            # level of the exchangeability check
N_PERMUTATIONS = 500
MAX_PER_SIDE = 1000           # probe and held-out images used by the check, at most (cost)


def probe_split(n_train: int, size: int, rng: np.random.Generator,
                groups=None) -> tuple[np.ndarray, np.ndarray]:
    """Random (probe, reference) indices of a training set: about ``size`` probe images, whole
    patients on one side when ``groups`` are given (at least one patient left in reference)."""
    units = exchangeable_units(n_train, groups)
    if len(units) < 2:
        raise ValueError("a probe and a reference need at least two training images (patients)")
    order = rng.permutation(len(units))
    taken, count = [], 0
    for u in order[:-1]:
        if count >= size:
            break
        taken.append(u)
        count += len(units[u])
    probe = np.sort(np.concatenate([units[u] for u in taken]))
    mask = np.ones(n_train, bool)
    mask[probe] = False
    return probe, np.flatnonzero(mask)


def auc_greater(values: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """P(value of a second-set item > value of a first-set item) + ties / 2, for each column
    of ``labels`` (the Mann-Whitney U of the second set divided by n1 n2), by ranks."""
    ranks = _rankdata(values)
    lab = labels.astype(np.float64)
    n2 = lab.sum(0)
    n1 = len(values) - n2
    return (ranks @ lab - n2 * (n2 + 1) / 2) / (n1 * n2)


def _rankdata(values: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(np.asarray(values, dtype=np.float64))


def exchangeability_test(probe_features: np.ndarray, held_features: np.ndarray,
                         d_probe: np.ndarray, d_held: np.ndarray, rng: np.random.Generator,
                         n_permutations: int = N_PERMUTATIONS, probe_groups=None,
                         held_groups=None, alpha: float = SHIFT_ALPHA) -> dict:
    """Two-sample permutation test of probe (training) against held-out images.

    ``d_probe`` / ``d_held``: each image's distance to its nearest reference training image
    (the reference disjoint from the probe). Returns the distance AUC and MMD^2 with their
    p-values, the combined min-p p-value and ``shift_detected`` (combined p < ``alpha``)."""
    n1, n2 = len(d_probe), len(d_held)
    if n1 < 2 or n2 < 2:
        raise ValueError(f"needs at least 2 probe and 2 held-out images, got {n1} and {n2}")
    labels, units = labels_for(n1, n2, n_permutations, rng, probe_groups, held_groups)
    d_all = np.concatenate([np.asarray(d_probe, np.float64), np.asarray(d_held, np.float64)])
    auc = auc_greater(d_all, labels)
    sq = squared_distances(np.concatenate([probe_features, held_features]))
    bandwidth = median_bandwidth(sq)
    mmd2 = mmd2_unbiased(np.exp(-sq / (2 * bandwidth ** 2)), labels)
    p_dist_all = permutation_p_values(np.abs(auc - 0.5))
    p_mmd_all = permutation_p_values(mmd2)
    combined = min_p_combined(p_dist_all, p_mmd_all)
    med_probe, med_held = float(np.median(d_probe)), float(np.median(d_held))
    return {
        "p_value": combined, "alpha": alpha, "shift_detected": bool(combined < alpha),
        "distance": {"auc": float(auc[0]), "p_value": float(p_dist_all[0]),
                     "median_heldout": med_held, "median_probe": med_probe,
                     "median_ratio": med_held / med_probe if med_probe > 0 else None},
        "mmd": {"mmd2": float(mmd2[0]), "p_value": float(p_mmd_all[0]),
                "bandwidth": bandwidth, "kernel": "RBF, median heuristic"},
        "n_probe": n1, "n_heldout": n2, "n_permutations": n_permutations, "units": units,
        "combination": "min-p over the same permutations (Westfall & Young)",
    }


def check_exchangeable(train: np.ndarray, heldout: np.ndarray, rng: np.random.Generator,
                       device=None, train_groups=None, held_groups=None,
                       max_per_side: int = MAX_PER_SIDE,
                       n_permutations: int = N_PERMUTATIONS,
                       alpha: float = SHIFT_ALPHA) -> dict:
    """The check on features: draw the probe (half the training set, at most
    ``max_per_side``; whole patients), subsample the held-out set to ``max_per_side``, take
    both sets' nearest distances to the rest of the training set and run
    :func:`exchangeability_test`. Held-out images of training patients are left out (they are
    not new patients)."""
    train = np.asarray(train)
    heldout = np.asarray(heldout)
    keep = np.ones(len(heldout), bool)
    if train_groups is not None and held_groups is not None:
        keep = ~np.isin(np.asarray(held_groups, str), np.asarray(train_groups, str))
    held_idx = np.flatnonzero(keep)
    hg = None if held_groups is None else np.asarray(held_groups, str)[held_idx]
    held_idx = held_idx[subsample_units(len(held_idx), max_per_side, rng, hg)]
    hg = None if held_groups is None else np.asarray(held_groups, str)[held_idx]
    tg = None if train_groups is None else np.asarray(train_groups, str)
    probe, ref = probe_split(len(train), min(len(train) // 2, max_per_side), rng, tg)
    d_probe = stats.nearest_distances(train[probe], train[ref], device)[0]
    d_held = stats.nearest_distances(heldout[held_idx], train[ref], device)[0]
    out = exchangeability_test(train[probe], heldout[held_idx], d_probe, d_held, rng,
                               n_permutations, None if tg is None else tg[probe], hg, alpha)
    out.update({"n_reference": int(len(ref)),
                "n_heldout_dropped_training_patients": int((~keep).sum())})
    return out


def describe_shift(check: dict) -> str:
    """The shift in words: how much farther (or nearer) held-out images sit from the training
    images than training images do, and what the attack would score without any copying."""
    dist = check["distance"]
    ratio = dist.get("median_ratio")
    side = "farther from" if dist["auc"] > 0.5 else "nearer to"
    ratio_txt = f", median distance ratio {ratio:.3f}" if ratio is not None else ""
    return (f"held-out images sit {side} the training images than training images do "
            f"(AUC {dist['auc']:.3f}{ratio_txt}; MMD^2 {check['mmd']['mmd2']:.3g}; combined "
            f"p {check['p_value']:.3g})")

