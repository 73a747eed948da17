"""Two-sample permutation tests on features: shared by the privacy audit's exchangeability
check (privacy/exchangeability.py) and the real-vs-synthetic tests (distribution/two_sample.py).

The pooled items of two sets carry a label "belongs to the second set"; a statistic is
computed for the observed labels and for ``B`` permutations of them, all at once, and its
p-value is the share of the ``B + 1`` labellings (the observed one included) whose statistic is
at least the observed one (Phipson & Smyth 2010: never 0, exact size under exchangeability).

Units: with group ids (patients) whole groups are permuted, so a patient's images never land
on both sides; the number of groups on each side is kept. Without ids every item is its own
unit.

Several statistics on the same permutations combine by the min-p rule (Westfall & Young 1993):
the combined p-value is the share of labellings whose smallest per-statistic p-value is at
most the observed one, which keeps the size whatever the statistics' correlation.
"""

from __future__ import annotations

import numpy as np

from medsyn.evaluators.metrics import stats
from medsyn.evaluators.metrics.stats.groups import GroupResampler

_CHUNK = 128                  # permutations per kernel product (memory: N x _CHUNK floats)


def exchangeable_units(n: int, groups=None) -> list[np.ndarray]:
    """Items grouped into exchangeable units: patients when known, else single images."""
    if groups is None:
        return [np.array([i]) for i in range(n)]
    return GroupResampler(n, groups).members


def subsample_units(n: int, size: int, rng: np.random.Generator, groups=None) -> np.ndarray:
    """Sorted indices of a random subset of about ``size`` items, whole groups at a time."""
    if n <= size:
        return np.arange(n)
    units = exchangeable_units(n, groups)
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
    units = exchangeable_units(len(pooled), pooled)
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


def labels_for(n_first: int, n_second: int, n_permutations: int, rng: np.random.Generator,
               first_groups=None, second_groups=None) -> tuple[np.ndarray, str]:
    """Permuted labels and their unit ("images" or "patients"): whole groups when either set
    has group ids (the other set's items are then one unit each)."""
    if first_groups is None and second_groups is None:
        return permuted_labels_by_count(n_first, n_second, n_permutations, rng), "images"
    if first_groups is not None and second_groups is not None:
        # a patient on both sides is one unit that cannot move: permuted_labels refuses it
        first, second = np.asarray(first_groups, str), np.asarray(second_groups, str)
    else:
        first = (np.char.add("a:", np.asarray(first_groups, str)) if first_groups is not None
                 else np.array([f"a#{i}" for i in range(n_first)]))
        second = (np.char.add("b:", np.asarray(second_groups, str))
                  if second_groups is not None
                  else np.array([f"b#{i}" for i in range(n_second)]))
    return permuted_labels(first, second, n_permutations, rng), "patients"


def permutation_p_values(stat: np.ndarray) -> np.ndarray:
    """Permutation p-value of every column's statistic (larger = more extreme) against all
    columns, the observed one included: #(T_j >= T_b) / (B + 1)."""
    order = np.sort(stat)
    return (len(stat) - np.searchsorted(order, stat, side="left")) / len(stat)


def min_p_combined(*p_values: np.ndarray) -> float:
    """Westfall-Young min-p combination of per-statistic p-values over the same labellings
    (column 0 observed): the share of labellings whose smallest p is <= the observed one."""
    min_p = np.minimum.reduce([np.asarray(p) for p in p_values])
    return float(np.mean(min_p <= min_p[0]))


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


def fd_permuted(features: np.ndarray, labels: np.ndarray, device=None) -> np.ndarray:
    """Frechet distance between the first and second set of every labelling: the bootstrap's
    count-weighted FID (stats.CountFid, Gram path: one eigenproblem of the smaller set per
    labelling) with 0/1 counts."""
    pooled = np.asarray(features, dtype=np.float64)
    fid = stats.CountFid(pooled, pooled, device, method="gram")
    return np.array([fid((~labels[:, b]).astype(np.float64), labels[:, b].astype(np.float64))
                     for b in range(labels.shape[1])])


def standardised_effect(stat: np.ndarray) -> tuple[float, float, float | None]:
    """(excess, null mean, effect size): the observed statistic minus the mean of its
    permutation null, and that excess in null standard deviations (None if the null is flat)."""
    null = stat[1:]
    mean = float(null.mean())
    sd = float(null.std(ddof=1)) if len(null) > 1 else 0.0
    excess = float(stat[0] - mean)
    return excess, mean, (excess / sd if sd > 0 else None)
