"""Is the synthetic set distinguishable from the real one at this n? Two-sample permutation
tests on the features of one space (``--metrics tests``; docs/statistics.md).

Two statistics on the same permutations of the pooled real and synthetic features
(metrics/stats/permutation.py):

- ``fd``: the Frechet distance (FID's formula) between the two sides, one-sided.
- ``mmd``: the unbiased Gaussian-RBF MMD^2 x 1000 (Gretton et al. 2012). The bandwidth is the
  median pairwise distance of the *pooled* set, not of the real set as the ``mmd`` metric
  uses: a function of the pool is unchanged by a permutation, so the test stays exact.

The combined p-value is the min-p combination of the two (Westfall & Young). Each
statistic's effect size is its excess over the mean of its permutation null, in null standard
deviations. The sets are called distinguishable when p <= alpha: with ``(B + 1) alpha`` a
whole number (B = 199 or 19 at 5 %) each statistic's test then rejects exchangeable sets with
probability exactly alpha, and the min-p combination (whose ties make it discrete) at most
alpha. With patient ids on the real set whole patients are permuted; the synthetic
images are one unit each.

Beside it, the same test between two patient-disjoint halves of the real reference, each the
size of the synthetic set where the reference allows: the real-vs-real null, which should not
reject (its p-value is uniform when the test holds its size).

Cost: one eigenproblem of the smaller side per permutation (FD) and one kernel matrix (MMD);
each side is capped at ``MAX_PER_SIDE`` images (whole patients), so 200 permutations take
seconds in a 2,048-d space.
"""

from __future__ import annotations

import numpy as np

from medsyn.evaluators.metrics.context import EvalContext, unavailable
from medsyn.evaluators.metrics.stats.groups import disjoint_halves
from medsyn.evaluators.metrics.stats.permutation import (
    fd_permuted,
    labels_for,
    median_bandwidth,
    min_p_combined,
    mmd2_unbiased,
    permutation_p_values,
    squared_distances,
    standardised_effect,
    subsample_units,
)

ALPHA = 0.05
MAX_PER_SIDE = 500
MMD_SCALE = 1000.0


def _statistic(stat: np.ndarray, p: np.ndarray) -> dict:
    excess, null_mean, effect = standardised_effect(stat)
    return {"value": float(stat[0]), "p_value": float(p[0]), "null_mean": null_mean,
            "excess": excess, "effect_size": effect}


def two_sample_test(first: np.ndarray, second: np.ndarray, rng: np.random.Generator,
                    n_permutations: int = 199, first_groups=None, second_groups=None,
                    alpha: float = ALPHA, device=None) -> dict:
    """Permutation test of ``first`` (real) against ``second`` (synthetic) features on FD and
    RBF MMD^2, combined by min-p. Groups: ids whose items move together (patients)."""
    n1, n2 = len(first), len(second)
    if n1 < 2 or n2 < 2:
        raise ValueError(f"needs at least 2 items per set, got {n1} and {n2}")
    labels, units = labels_for(n1, n2, n_permutations, rng, first_groups, second_groups)
    pooled = np.concatenate([np.asarray(first, np.float64), np.asarray(second, np.float64)])
    fd = fd_permuted(pooled, labels, device)
    sq = squared_distances(pooled)
    bandwidth = median_bandwidth(sq)
    mmd = MMD_SCALE * mmd2_unbiased(np.exp(-sq / (2 * bandwidth ** 2)), labels)
    p_fd, p_mmd = permutation_p_values(fd), permutation_p_values(mmd)
    combined = min_p_combined(p_fd, p_mmd)
    return {"p_value": combined, "alpha": alpha, "distinguishable": bool(combined <= alpha),
            "fd": _statistic(fd, p_fd),
            "mmd": {**_statistic(mmd, p_mmd), "bandwidth": bandwidth,
                    "bandwidth_rule": "median pairwise distance of the pooled set",
                    "scale": MMD_SCALE},
            "n_first": n1, "n_second": n2, "n_permutations": n_permutations, "units": units,
            "combination": "min-p over the same permutations (Westfall & Young)"}


def statement(test: dict, n_real: int, n_fake: int) -> str:
    """The sentence a report prints: "distinguishable at n = ... (p = ...)"."""
    verb = "distinguishable" if test["distinguishable"] else "not distinguishable"
    return (f"{verb} from real at n = {n_fake} synthetic vs {n_real} real images "
            f"(permutation p = {test['p_value']:.3g}, {test['n_permutations']} permutations "
            f"of {test['units']})")


def metric_tests(ctx: EvalContext) -> dict:
    name = ctx.extractor.name
    real, fake = ctx.real.features, ctx.fake.features
    n_r, n_f = len(real), len(fake)
    if min(n_r, n_f) < 4:
        return {"tests": unavailable(f"needs at least 4 images per set (got {n_r} real, {n_f} "
                                     "synthetic)", n_real=n_r, n_fake=n_f, extractor=name)}
    rng = ctx.rng("tests")
    groups = getattr(ctx.reference, "patient_ids", None)
    groups = None if groups is None else np.asarray(groups, str)
    real_rows = subsample_units(n_r, MAX_PER_SIDE, rng, groups)
    fake_rows = np.sort(rng.permutation(n_f)[:MAX_PER_SIDE])
    real_groups = None if groups is None else groups[real_rows]
    b = ctx.options.test_permutations
    test = two_sample_test(real[real_rows], fake[fake_rows], rng, b, real_groups, None,
                           device=ctx.device)
    n_real_used, n_fake_used = len(real_rows), len(fake_rows)
    block = {"value": test["p_value"], "ci95": None, "n_real": n_real_used,
             "n_fake": n_fake_used, "extractor": name, **test,
             "statement": statement(test, n_real_used, n_fake_used),
             "note": "value: the combined permutation p-value (FD and MMD, min-p)"}
    if n_real_used < n_r or n_fake_used < n_f:
        block["subsampled_from"] = {"n_real": n_r, "n_fake": n_f, "max_per_side": MAX_PER_SIDE}
    try:
        half_a, half_b = disjoint_halves(rng, n_r, groups)
    except ValueError as exc:
        block["real_vs_real"] = unavailable(str(exc))
        return {"tests": block}
    size = min(n_fake_used, MAX_PER_SIDE)
    half_a = half_a[subsample_units(len(half_a), size, rng,
                                    None if groups is None else groups[half_a])]
    half_b = half_b[subsample_units(len(half_b), size, rng,
                                    None if groups is None else groups[half_b])]
    null = two_sample_test(real[half_a], real[half_b], rng, b,
                           None if groups is None else groups[half_a],
                           None if groups is None else groups[half_b], device=ctx.device)
    block["real_vs_real"] = {"p_value": null["p_value"], "distinguishable": null["distinguishable"],
                             "fd": null["fd"], "mmd": null["mmd"], "n_first": null["n_first"],
                             "n_second": null["n_second"], "units": null["units"],
                             "halves": "patient-disjoint halves of the real reference"
                             if groups is not None else "disjoint halves of the real reference"}
    return {"tests": block}
