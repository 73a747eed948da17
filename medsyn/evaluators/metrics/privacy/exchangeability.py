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
from medsyn.evaluators.metrics.groups import GroupResampler

SHIFT_ALPHA = 0.05            # level of the exchangeability check
N_PERMUTATIONS = 500
MAX_PER_SIDE = 1000           # probe and held-out images used by the check, at most (cost)
_CHUNK = 128                  # permutations per kernel product (memory: N x _CHUNK floats)


def _units(n: int, groups) -> list[np.ndarray]:
    """Items grouped into exchangeable units: patients when known, else single images."""
    if groups is None:
        return [np.array([i]) for i in range(n)]
    return GroupResampler(n, groups).members


def probe_split(n_train: int, size: int, rng: np.random.Generator,
                groups=None) -> tuple[np.ndarray, np.ndarray]:
    """Random (probe, reference) indices of a training set: about ``size`` probe images, whole
    patients on one side when ``groups`` are given (at least one patient left in reference)."""
    units = _units(n_train, groups)
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


def subsample_units(n: int, size: int, rng: np.random.Generator, groups=None) -> np.ndarray:
    """Sorted indices of a random subset of about ``size`` items, whole groups at a time."""
    if n <= size:
        return np.arange(n)
    units = _units(n, groups)
    taken, count = [], 0
    for u in rng.permutation(len(units)):
        if count >= size:
            break
        taken.append(units[u])
        count += len(units[u])
    return np.sort(np.concatenate(taken))


def permuted_labels(first_groups, second_groups, n_permutations: int,
                    rng: np.random.Generator) -> np.ndarray:
    """Boolean [N, 1 + B] "belongs to the second set" labels of the pooled items (first set
    then second): column 0 the observed labels, then ``n_permutations`` permutations of whole
    units (each group id one unit). The number of units on
    each side is kept; with unequal groups the number of items varies."""
    n1 = len(first_groups)
    pooled = np.concatenate([np.asarray(first_groups, dtype=str),
                             np.asarray(second_groups, dtype=str)])
    second = np.zeros(len(pooled), bool)
    second[n1:] = True
    units = _units(len(pooled), pooled)
    if any(second[u].any() and not second[u].all() for u in units):
        raise ValueError("a patient has images in both sets; the check needs patient-disjoint "
                         "sets (drop held-out images of training patients first)")
    n_second_units = sum(1 for u in units if second[u[0]])
    labels = np.zeros((len(pooled), 1 + n_permutations), bool)
    labels[:, 0] = second
    for b in range(1, n_permutations + 1):
        pick = rng.permutation(len(units))[:n_second_units]
        labels[np.concatenate([units[u] for u in pick]), b] = True
    return labels


def permuted_labels_by_count(n_first: int, n_second: int, n_permutations: int,
                             rng: np.random.Generator) -> np.ndarray:
    """:func:`permuted_labels` for independent items (every image its own unit)."""
    n = n_first + n_second
    labels = np.zeros((n, 1 + n_permutations), bool)
    labels[n_first:, 0] = True
    for b in range(1, n_permutations + 1):
        labels[rng.permutation(n)[:n_second], b] = True
    return labels


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


def median_bandwidth(sq_dist: np.ndarray) -> float:
    """The median heuristic: median pairwise Euclidean distance (off-diagonal) of the pool."""
    iu = np.triu_indices(len(sq_dist), 1)
    med = float(np.sqrt(np.median(np.maximum(sq_dist[iu], 0.0))))
    return med if med > 0 else 1.0


def squared_distances(features: np.ndarray) -> np.ndarray:
    x = np.asarray(features, dtype=np.float64)
    sq = (x * x).sum(1)
    d2 = sq[:, None] + sq[None, :] - 2.0 * (x @ x.T)
    np.fill_diagonal(d2, 0.0)
    return np.maximum(d2, 0.0)


def mmd2_unbiased(kernel: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Unbiased MMD^2 between the first (False) and second (True) set for each column of
    ``labels``, from the pooled kernel matrix: mean k within each set (diagonal excluded)
    minus twice the mean k across."""
    k0 = np.array(kernel, dtype=np.float64, copy=True)
    np.fill_diagonal(k0, 0.0)
    row = k0.sum(1)
    total = float(row.sum())
    out = np.empty(labels.shape[1])
    for start in range(0, labels.shape[1], _CHUNK):
        z = labels[:, start:start + _CHUNK].astype(np.float64)
        s22 = (z * (k0 @ z)).sum(0)          # within the second set
        s12 = row @ z - s22                   # across
        s11 = total - s22 - 2 * s12           # within the first set
        n2 = z.sum(0)
        n1 = len(k0) - n2
        out[start:start + _CHUNK] = (s11 / (n1 * (n1 - 1)) + s22 / (n2 * (n2 - 1))
                                     - 2 * s12 / (n1 * n2))
    return out


def _perm_p(stat: np.ndarray) -> np.ndarray:
    """Permutation p-value of every column's statistic (larger = more extreme) against all
    columns, the observed one included: #(T_j >= T_b) / (B + 1)."""
    order = np.sort(stat)
    return (len(stat) - np.searchsorted(order, stat, side="left")) / len(stat)


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
    if probe_groups is None and held_groups is None:
        labels = permuted_labels_by_count(n1, n2, n_permutations, rng)
        units = "images"
    else:
        labels = permuted_labels(
            probe_groups if probe_groups is not None else [f"probe{i}" for i in range(n1)],
            held_groups if held_groups is not None else [f"held{i}" for i in range(n2)],
            n_permutations, rng)
        units = "patients"
    d_all = np.concatenate([np.asarray(d_probe, np.float64), np.asarray(d_held, np.float64)])
    auc = auc_greater(d_all, labels)
    sq = squared_distances(np.concatenate([probe_features, held_features]))
    bandwidth = median_bandwidth(sq)
    mmd2 = mmd2_unbiased(np.exp(-sq / (2 * bandwidth ** 2)), labels)
    p_dist_all, p_mmd_all = _perm_p(np.abs(auc - 0.5)), _perm_p(mmd2)
    min_p = np.minimum(p_dist_all, p_mmd_all)
    combined = float(np.mean(min_p <= min_p[0]))
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

