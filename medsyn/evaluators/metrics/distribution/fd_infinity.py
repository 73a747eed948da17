"""FD-infinity: the Fréchet distance extrapolated to infinitely many images (Chong & Forsyth
2020, "Effectively Unbiased FID and Inception Score and where to find them", CVPR).

FID is biased upward by roughly ``b / n``. Chong & Forsyth compute FID on random subsets of
``n`` generated images for 15 values of n evenly spaced from 5,000 to 50,000, fit a line to FID
against ``1 / n`` and report its value at ``1 / n = 0``. medsyn does the same in any feature
space, with two changes for small medical sets, both stated in the entry:

- sizes are fractions of the sets (default 15 evenly spaced from 20 % to 100 %), and
- *both* sets are subsampled at the same fraction: Chong & Forsyth's real statistics come from
  50,000+ images, medsyn's reference is often a few hundred, and its own ``1 / n`` bias only
  vanishes in the extrapolation if it shrinks along with the fake side's
  (``FID(t) = FD + a / (t n_fake) + b / (t n_real)`` is linear in ``1 / (t n_fake)``).
"""

from __future__ import annotations

import numpy as np

from medsyn.evaluators.metrics import stats
from medsyn.evaluators.metrics.context import EvalContext, entry, unavailable

DEFAULT_POINTS = 15
DEFAULT_MIN_FRACTION = 0.2
DEFAULT_DRAWS = 1


def extrapolate_to_infinity(sizes, values) -> dict:
    """Least-squares line ``value = intercept + slope / size``; the intercept is the limit at
    infinite size. Returns ``{"intercept", "slope", "r2"}``."""
    inv = 1.0 / np.asarray(sizes, dtype=float)
    y = np.asarray(values, dtype=float)
    if len(np.unique(inv)) < 2:
        raise ValueError("extrapolation needs at least two distinct sizes")
    slope, intercept = np.polyfit(inv, y, 1)
    fitted = intercept + slope * inv
    ss_tot = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - float(((y - fitted) ** 2).sum()) / ss_tot if ss_tot > 0 else 1.0
    return {"intercept": float(intercept), "slope": float(slope), "r2": r2}


def subset_fractions(points: int = DEFAULT_POINTS,
                     min_fraction: float = DEFAULT_MIN_FRACTION) -> np.ndarray:
    return np.linspace(min_fraction, 1.0, points)


def _subset_counts(rng, counts: np.ndarray, size: int) -> np.ndarray:
    """``size`` of the ``counts.sum()`` positions of a multiset, drawn without replacement."""
    positions = np.repeat(np.arange(len(counts)), counts)
    chosen = rng.choice(len(positions), size, replace=False)
    return np.bincount(positions[chosen], minlength=len(counts))


def fd_curve(fid: stats.CountFid, rng: np.random.Generator, fractions, draws: int = 1,
             ca: np.ndarray | None = None, cb: np.ndarray | None = None):
    """FID at each fraction of both (multi)sets, averaged over ``draws`` random subsets.

    Returns ``(sizes_fake, sizes_real, fids)``."""
    ca = np.ones(fid.n1, dtype=np.int64) if ca is None else ca
    cb = np.ones(fid.n2, dtype=np.int64) if cb is None else cb
    n1, n2 = int(ca.sum()), int(cb.sum())
    sizes_1 = np.maximum(np.round(np.asarray(fractions) * n1).astype(int), 2)
    sizes_2 = np.maximum(np.round(np.asarray(fractions) * n2).astype(int), 2)
    fids = []
    for m1, m2 in zip(sizes_1, sizes_2, strict=True):
        vals = [fid(_subset_counts(rng, ca, min(m1, n1)), _subset_counts(rng, cb, min(m2, n2)))
                for _ in range(draws)]
        fids.append(float(np.mean(vals)))
    return sizes_1, sizes_2, np.asarray(fids)


def fd_infinity(features_fake, features_real, *, points: int = DEFAULT_POINTS,
                min_fraction: float = DEFAULT_MIN_FRACTION, draws: int = DEFAULT_DRAWS,
                n_bootstrap: int = 0, rng: np.random.Generator | None = None,
                device=None) -> tuple[dict, list[float]]:
    """FD-infinity of two feature sets and its bootstrap resamples.

    Returns ``(fit, resamples)`` where ``fit`` holds ``value`` (the intercept), ``slope``,
    ``r2``, ``sizes_fake``, ``sizes_real`` and ``fd_at_sizes``; each resample redraws both sets
    with replacement and repeats the whole curve and fit on the resample.
    """
    rng = rng or np.random.default_rng(0)
    fid = stats.CountFid(features_fake, features_real, device)
    fractions = subset_fractions(points, min_fraction)
    s1, s2, fids = fd_curve(fid, rng, fractions, draws)
    line = extrapolate_to_infinity(s1, fids)
    fit = {"value": line["intercept"], "slope": line["slope"], "r2": line["r2"],
           "sizes_fake": s1.tolist(), "sizes_real": s2.tolist(),
           "fd_at_sizes": [round(float(v), 6) for v in fids]}
    resamples = []
    for _ in range(n_bootstrap):
        ca = stats.bootstrap_counts(rng, fid.n1)
        cb = stats.bootstrap_counts(rng, fid.n2)
        r1, _, rf = fd_curve(fid, rng, fractions, draws, ca, cb)
        resamples.append(extrapolate_to_infinity(r1, rf)["intercept"])
    return fit, resamples


def metric_fd_infinity(ctx: EvalContext) -> dict:
    name = ctx.extractor.name
    o = ctx.options
    fake, real = ctx.fake.features, ctx.real.features
    n_f, n_r = len(fake), len(real)
    smallest = int(round(o.fd_inf_min_fraction * min(n_f, n_r)))
    settings = {"points": o.fd_inf_points, "min_fraction": o.fd_inf_min_fraction,
                "draws_per_size": o.fd_inf_draws}
    if smallest < 2 or o.fd_inf_points < 2:
        return {"fd_infinity": unavailable(
            f"needs at least 2 images per set in the smallest subset ({o.fd_inf_min_fraction:g} "
            f"of {min(n_f, n_r)}) and at least 2 sizes", n_real=n_r, n_fake=n_f,
            extractor=name, **settings)}
    n_boot = o.bootstrap_for_costly()
    fit, res = fd_infinity(fake, real, points=o.fd_inf_points, min_fraction=o.fd_inf_min_fraction,
                           draws=o.fd_inf_draws, n_bootstrap=n_boot,
                           rng=ctx.rng("fd_infinity"), device=ctx.device)
    value = fit.pop("value")
    out = entry(value, res, n_r, n_f, name, n_bootstrap=n_boot, **settings, **fit,
                method="Chong & Forsyth 2020: FD of random subsets of both sets at each size "
                       "(same fraction of each), least-squares line in 1/n_fake, value at 1/n = 0")
    d = ctx.extractor.feature_dim
    if smallest < d:
        out["warning"] = (
            f"the smallest subsets ({smallest} images) are below the {d} feature dimensions: FD "
            "is far from its large-n 1/n regime there, so the line (r2 "
            f"{fit['r2']:.3f}) may not extrapolate well; compare runs at equal n")
    return {"fd_infinity": out}
