"""The mathematics of the privacy audit, on distances and features (no datasets, no I/O).

- DCR (distance to closest record): each synthetic image's distance to its nearest training
  image, against the same distance for held-out real images (the baseline a generator that
  does not copy matches). One-sided Mann-Whitney U test (H1: synthetic distances are
  stochastically smaller), the ratio of medians, and the fraction of synthetic images closer
  than the ``percentile``-th percentile of held-out distances.
- C_T (Meehan, Chaudhuri & Dasgupta, AISTATS 2020): the space is cut into cells by k-means on
  the training features; in each cell the distances of held-out (P_n) and synthetic (Q_m)
  points to their nearest training point *of that cell* are compared by a Mann-Whitney U
  z-score Z_U = (U - (nm/2 - 1/2)) / sqrt(nm(n+m+1)/12), U counting pairs with
  L(q) > L(p) (the authors' ``Zu``). C_T is the mean of Z_U over cells holding more than
  ``tau`` of the synthetic points (tau = 20/m as in the authors' experiments), weighted by the
  cell's share of held-out points. C_T << 0: synthetic points sit closer to the training points
  than fresh data does (data-copying); >> 0: farther (underfitting). medsyn also reports
  z = sum(w Z_U) / sqrt(sum w^2), standard normal when the cells' Z_U are independent N(0, 1).
- Membership inference: a training image (member) or a held-out one (non-member) is scored by
  its distance to the nearest synthetic image, smaller = "member"; the AUC of that score is
  0.5 when the synthetic set carries no trace of which images were trained on.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import stats as sps

from medsyn.evaluators.metrics.stats.groups import GroupResampler

ALPHA = 0.01                 # one-sided level at which each test flags
CT_MIN_FAKES = 20            # tau = CT_MIN_FAKES / m (Meehan et al.'s experiments)
LOW_FPR = 0.01               # the attack's operating point reported besides its AUC


def _finite(x) -> float | None:
    """None for NaN / inf (e.g. a rank test on all-tied distances has no p-value)."""
    return float(x) if x is not None and np.isfinite(x) else None


def fraction_below(d_fake: np.ndarray, d_held: np.ndarray, percentile: float,
                   n_bootstrap: int, rng: np.random.Generator,
                   held: GroupResampler | None = None) -> tuple[float, float, list[float]]:
    """Fraction of synthetic distances below the ``percentile``-th percentile of held-out
    distances, the threshold, and bootstrap resamples (held-out side by patient if grouped)."""
    threshold = float(np.percentile(d_held, percentile))
    fraction = float(np.mean(d_fake < threshold))
    res = []
    for _ in range(n_bootstrap):
        hi = held.draw(rng) if held is not None else rng.integers(0, len(d_held), len(d_held))
        t = np.percentile(d_held[hi], percentile)
        res.append(float(np.mean(d_fake[rng.integers(0, len(d_fake), len(d_fake))] < t)))
    return fraction, threshold, res


def dcr_test(d_fake: np.ndarray, d_held: np.ndarray) -> dict:
    """One-sided Mann-Whitney U test that synthetic DCRs are smaller than held-out ones."""
    res = sps.mannwhitneyu(d_fake, d_held, alternative="less")
    med_held = float(np.median(d_held))
    return {"u": float(res.statistic), "p_value": _finite(res.pvalue),
            "median_fake": float(np.median(d_fake)), "median_heldout": med_held,
            "median_ratio": float(np.median(d_fake) / med_held) if med_held > 0 else None}


def auc_smaller_is_positive(d_pos: np.ndarray, d_neg: np.ndarray) -> float:
    """AUC of the score ``-d``: P(d_pos < d_neg) + P(tie) / 2 (rank formula)."""
    ranks = sps.rankdata(np.concatenate([-np.asarray(d_pos), -np.asarray(d_neg)]))
    n1, n2 = len(d_pos), len(d_neg)
    return float((ranks[:n1].sum() - n1 * (n1 + 1) / 2) / (n1 * n2))


def membership_attack(d_members: np.ndarray, d_nonmembers: np.ndarray, n_bootstrap: int,
                      rng: np.random.Generator, members: GroupResampler | None = None,
                      nonmembers: GroupResampler | None = None) -> dict:
    """AUC of telling members from non-members by distance to the synthetic set, its one-sided
    Mann-Whitney p-value (H1: members are closer) and bootstrap resamples of the AUC."""
    auc = auc_smaller_is_positive(d_members, d_nonmembers)
    tpr = tpr_at_fpr(d_members, d_nonmembers, LOW_FPR)
    p = _finite(sps.mannwhitneyu(d_members, d_nonmembers, alternative="less").pvalue)
    members = members or GroupResampler(len(d_members))
    nonmembers = nonmembers or GroupResampler(len(d_nonmembers))
    res, res_tpr = [], []
    for _ in range(n_bootstrap):
        dm, dn = d_members[members.draw(rng)], d_nonmembers[nonmembers.draw(rng)]
        res.append(auc_smaller_is_positive(dm, dn))
        res_tpr.append(tpr_at_fpr(dm, dn, LOW_FPR))
    return {"auc": auc, "p_value": p, "resamples": res, "tpr_at_low_fpr": tpr,
            "low_fpr": LOW_FPR, "tpr_resamples": res_tpr}


def tpr_at_fpr(d_pos: np.ndarray, d_neg: np.ndarray, fpr: float) -> float:
    """Share of members nearer than the ``fpr`` quantile of non-member distances: the attack's
    true-positive rate when it may wrongly accuse that share of non-members (about ``fpr``
    without a leak). A few copied patients show here long before they move the AUC."""
    return float(np.mean(d_pos < np.quantile(d_neg, fpr)))


def mann_whitney_z(l_fake: np.ndarray, l_held: np.ndarray) -> float:
    """Meehan et al.'s Z_U: U = #(L(q) > L(p)) + ties / 2, continuity-corrected z-score."""
    m, n = len(l_fake), len(l_held)
    u = sps.mannwhitneyu(l_fake, l_held, alternative="less").statistic
    return float((u - (n * m / 2 - 0.5)) / np.sqrt(n * m * (n + m + 1) / 12))


def kmeans_cells(train: np.ndarray, n_cells: int, seed: int):
    """k-means (scikit-learn, k-means++, 3 restarts) on the training features."""
    from sklearn.cluster import KMeans

    return KMeans(n_clusters=n_cells, n_init=3, random_state=seed).fit(
        np.asarray(train, dtype=np.float64))


def default_cells(n_train: int, n_heldout: int, n_fake: int) -> int:
    """Cells for C_T: 50 as in Meehan et al.'s MNIST experiments, fewer for small sets so each
    cell holds about 20 held-out and 40 synthetic points on average (so most cells pass the
    20-synthetic-point rule), at least 2 cells."""
    return int(max(2, min(50, n_heldout // 20, n_fake // 40, n_train // 20)))


def data_copying_ct(d_fake_train: torch.Tensor, d_held_train: torch.Tensor,
                    train_cells: np.ndarray, fake_cells: np.ndarray, held_cells: np.ndarray,
                    n_cells: int, tau: float | None = None) -> dict:
    """C_T from full distance matrices (synthetic x train, held-out x train) and cell labels.

    Cells without held-out points are left out (the authors' code stops there; with small
    held-out sets medsyn drops them and says how many)."""
    m, n = d_fake_train.shape[0], d_held_train.shape[0]
    tau = CT_MIN_FAKES / m if tau is None else tau
    cells = []
    for c in range(n_cells):
        cols = torch.from_numpy(np.flatnonzero(train_cells == c)).to(d_fake_train.device)
        qi, pi = np.flatnonzero(fake_cells == c), np.flatnonzero(held_cells == c)
        q_share, p_share = len(qi) / m, len(pi) / n
        cell = {"cell": c, "n_train": int(len(cols)), "n_fake": int(len(qi)),
                "n_heldout": int(len(pi)), "heldout_share": p_share, "z_u": None,
                "included": bool(q_share > tau and len(pi) > 0 and len(cols) > 0)}
        if cell["included"]:
            lq = d_fake_train[torch.from_numpy(qi).to(cols.device)][:, cols].min(1).values
            lp = d_held_train[torch.from_numpy(pi).to(cols.device)][:, cols].min(1).values
            cell["z_u"] = mann_whitney_z(lq.cpu().numpy(), lp.cpu().numpy())
        cells.append(cell)
    used = [c for c in cells if c["included"]]
    out = {"cells": cells, "n_cells": n_cells, "tau": tau, "n_cells_used": len(used),
           "n_cells_without_heldout": sum(1 for c in cells if c["n_heldout"] == 0)}
    if not used:
        return {**out, "value": None, "z": None, "p_value": None}
    w = np.array([c["heldout_share"] for c in used])
    z_u = np.array([c["z_u"] for c in used])
    ct = float(w @ z_u / w.sum())
    z = float(w @ z_u / np.sqrt(w @ w))
    return {**out, "value": ct, "z": z, "p_value": float(sps.norm.cdf(z)),
            "heldout_share_used": float(w.sum()),
            "fake_share_used": float(sum(c["n_fake"] for c in used) / m)}
