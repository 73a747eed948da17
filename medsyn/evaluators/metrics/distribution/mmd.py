"""Unbiased squared MMD with a Gaussian RBF kernel, CMMD-style (Jayasumana et al. 2024,
"Rethinking FID: Towards a Better Evaluation Metric for Image Generation").

``k(x, y) = exp(-|x - y|^2 / (2 sigma^2))``, and

    MMD^2_u = sum_{i != j} k(x_i, x_j) / (m (m - 1)) + sum_{i != j} k(y_i, y_j) / (n (n - 1))
              - 2 sum_{i, j} k(x_i, y_j) / (m n)

(Gretton et al. 2012, eq. 3), an unbiased estimator of the population MMD^2 (so it can be
slightly negative when the distributions match). Reported x 1000, as CMMD does.

Bandwidth: CMMD fixes sigma = 10 for its unit-norm CLIP embeddings. medsyn's feature spaces have
arbitrary scales, so sigma defaults to the median heuristic on the real reference: the median
Euclidean distance between distinct real images (Gretton et al. 2012). It is computed once, on
the full reference (a fixed random subset of 4,000 when it is larger), and kept fixed in the
bootstrap. A fixed sigma can be given instead.
Differences from CMMD's reference code, stated: that code averages the kernel matrices
*including* their diagonals (the biased V-statistic); medsyn excludes them (the U-statistic).
"""

from __future__ import annotations

import numpy as np
import torch

from medsyn.evaluators.metrics import stats
from medsyn.evaluators.metrics.context import EvalContext, entry, unavailable

SCALE = 1000.0


def squared_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return ((a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T).clamp_min_(0)


BANDWIDTH_MAX_ITEMS = 4000


def median_bandwidth(features_real, device=None) -> float:
    """The median Euclidean distance between distinct items of the reference set (above
    ``BANDWIDTH_MAX_ITEMS`` items: of a fixed random subset of that many, seed 0)."""
    x = stats._as_tensor(features_real, device)
    if len(x) > BANDWIDTH_MAX_ITEMS:
        pick = np.random.default_rng(0).choice(len(x), BANDWIDTH_MAX_ITEMS, replace=False)
        x = x[torch.as_tensor(np.sort(pick), device=x.device)]
    d2 = squared_distances(x, x)
    upper = torch.ones_like(d2, dtype=torch.bool).triu_(diagonal=1)
    return float(np.median(d2[upper].sqrt().cpu().numpy()))


def rbf_kernels(features_1, features_2, sigma: float, device=None):
    x = stats._as_tensor(features_1, device)
    y = stats._as_tensor(features_2, device)
    gamma = 1.0 / (2.0 * sigma ** 2)
    return (torch.exp(-gamma * squared_distances(x, x)),
            torch.exp(-gamma * squared_distances(y, y)),
            torch.exp(-gamma * squared_distances(x, y)))


def mmd2_unbiased(kxx: torch.Tensor, kyy: torch.Tensor, kxy: torch.Tensor) -> float:
    m, n = kxx.shape[0], kyy.shape[0]
    sxx = kxx.sum() - torch.diagonal(kxx).sum()
    syy = kyy.sum() - torch.diagonal(kyy).sum()
    return float(sxx / (m * (m - 1)) + syy / (n * (n - 1)) - 2 * kxy.sum() / (m * n))


def rbf_mmd(features_fake, features_real, sigma: float | None = None, *, n_bootstrap: int = 0,
            rng: np.random.Generator | None = None, device=None):
    """Unbiased RBF MMD^2 x 1000 of two feature sets: ``(value, resamples, sigma)``.

    ``sigma`` None: the median heuristic on ``features_real``. Resamples use the same kernel
    matrices with bootstrap count vectors (as KID's do, :func:`stats.kid_resamples`)."""
    if sigma is None:
        sigma = median_bandwidth(features_real, device)
    if not np.isfinite(sigma) or sigma <= 0:
        raise ValueError(f"RBF bandwidth must be a positive number, got {sigma!r}")
    kxx, kyy, kxy = rbf_kernels(features_fake, features_real, sigma, device)
    value = SCALE * mmd2_unbiased(kxx, kyy, kxy)
    res = stats.kid_resamples(kxx, kyy, kxy, n_bootstrap, rng or np.random.default_rng(0))
    return value, [SCALE * r for r in res], sigma


def metric_mmd(ctx: EvalContext) -> dict:
    name = ctx.extractor.name
    fake, real = ctx.fake.features, ctx.real.features
    n_f, n_r = len(fake), len(real)
    fixed = ctx.options.mmd_sigma
    rule = (f"fixed sigma = {fixed:g} (--mmd-sigma)" if fixed is not None else
            "median heuristic: sigma = median Euclidean distance between distinct real "
            "reference images, computed once on the full reference")
    if min(n_f, n_r) < 2:
        return {"mmd": unavailable(f"needs at least 2 images per set (got {n_r} real, {n_f} "
                                   "fake)", n_real=n_r, n_fake=n_f, extractor=name)}
    if fixed is None:
        sigma = median_bandwidth(real, ctx.device)
        if not sigma > 0:
            return {"mmd": unavailable("the real reference images are all identical in this "
                                       "space: the median-heuristic bandwidth is 0",
                                       n_real=n_r, n_fake=n_f, extractor=name)}
    else:
        sigma = fixed
    value, res, sigma = rbf_mmd(fake, real, sigma, n_bootstrap=ctx.options.n_bootstrap,
                                rng=ctx.rng("mmd"), device=ctx.device)
    return {"mmd": entry(value, res, n_r, n_f, name, sigma=sigma, bandwidth_rule=rule,
                         kernel="gaussian rbf exp(-|x-y|^2 / (2 sigma^2))", scale=SCALE,
                         estimator="unbiased (U-statistic, diagonals excluded), x 1000",
                         n_bootstrap=ctx.options.n_bootstrap)}
