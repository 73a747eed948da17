"""alpha-precision, beta-recall and authenticity (Alaa et al. 2022, "How Faithful is your
Synthetic Data? Sample-level Metrics for Evaluating and Auditing Generative Models", ICML).

medsyn follows the practical estimator of the authors' library synthcity
(``synthcity.metrics.eval_statistical.AlphaPrecision``, its "naive" variant), on any feature
space:

1. *Embed*: the features, min-max scaled per dimension on the real reference, with
   scikit-learn's ``MinMaxScaler`` rule, which synthcity's naive variant uses: a dimension
   constant on the reference is shifted by its value and not scaled, so a fake that departs
   from the reference there keeps that distance and lies off its support.
   The paper's alternative embedding, a one-class (Deep SVDD) network trained on the reals, is
   not used: medsyn's feature spaces are already embeddings.
2. *Centre*: the mean of the real reference; the radius ``r_alpha`` of the alpha-support is the
   alpha-quantile of the reals' distances to the centre.
3. alpha-precision curve: ``P_alpha`` = fraction of synthetic samples within ``r_alpha`` of the
   centre (synthcity's and the paper's rule).
   beta-recall curve, the paper's k-NN estimate (default, ``recall_rule="knn"``): the synthetic
   beta-support is the synthetic samples whose distance to the synthetic mean is within the
   beta-quantile of those distances; real sample i counts when its nearest synthetic sample j
   is in the beta-support and i lies within j's k-NN ball among the synthetic samples (k = 5,
   as for precision/recall/density/coverage). ``recall_rule="synthcity"`` reproduces
   synthcity's rule instead: i counts when j is closer to i than i's nearest other real sample
   and j's distance to the synthetic mean is within the beta-quantile of that distance over
   all reals' nearest synthetic samples. For two samples of the *same* distribution that rule
   holds for only about half of the reals (the nearest of two equally dense samples is the
   synthetic one half of the time), so its curve sits near beta / 2 and its score near 0.5
   for a perfect generator (tested); the k-NN rule's curve sits near the diagonal.
4. Both curves are on the diagonal for a perfect generator; the scores are
   ``1 - 2 * integral_0^1 |curve(a) - a| da`` (the paper's IP_alpha, IR_beta), on ``steps``
   evenly spaced levels from 0 to 1 (synthcity: 30), integrated with the trapezoidal rule.
   synthcity instead computes ``1 - sum|curve - a| / sum(a)``, which is the same quantity up to
   the discretisation (a difference of order 1 / steps^2).
5. Authenticity: synthetic sample j is *unauthentic* when it is closer to its nearest real
   (training) sample i than i's nearest other real sample is to i (the paper's section 3.3
   rule). Authenticity = fraction of authentic synthetic samples. synthcity's code indexes the
   per-real array with synthetic indices (``real_to_real[real_to_synth_args]``), which needs
   equal set sizes and mixes the two sets; medsyn implements the paper's rule per synthetic
   sample, so the sets may differ in size and each synthetic sample gets a flag.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from medsyn.errors import DataError
from medsyn.evaluators.metrics import stats
from medsyn.evaluators.metrics.context import EvalContext, entry, unavailable

DEFAULT_STEPS = 30
RECALL_RULES = ("knn", "synthcity")


class Authenticity(NamedTuple):
    """Result of :func:`authenticity`: ``fraction`` of authentic fakes and, per fake, ``flags``
    (True = authentic), the index of its nearest real sample, its distance to it, and that real
    sample's distance to its own nearest other real sample."""

    fraction: float
    flags: np.ndarray
    nearest_real: np.ndarray
    fake_to_real: np.ndarray
    real_to_real: np.ndarray


def minmax_scaler(real: np.ndarray):
    """Per-dimension min-max scaling fitted on ``real``: ``(x - min) / (max - min)``, and
    ``x - min`` in a dimension constant on ``real`` (range below 10 machine epsilons: the
    rule of scikit-learn's ``MinMaxScaler``, which synthcity uses). Mapping such a dimension
    to 0 for every sample instead would hide any fake that differs from the reference only
    there."""
    real = np.asarray(real, dtype=np.float64)
    lo = real.min(0)
    span = real.max(0) - lo
    span[span < 10 * np.finfo(np.float64).eps] = 1.0
    return lambda x: (np.asarray(x, dtype=np.float64) - lo) / span


def _scaled(real, fake, scaling: str | None):
    if scaling in (None, "none"):
        return np.asarray(real, np.float64), np.asarray(fake, np.float64)
    if scaling == "minmax":
        scale = minmax_scaler(real)
        return scale(real), scale(fake)
    raise ValueError(f"unknown scaling {scaling!r}: use 'minmax' or 'none'")


def _without_self(d_self: torch.Tensor, ids: np.ndarray | None) -> torch.Tensor:
    """A copy of a set's distance matrix with each item's distance to itself, and to its own
    copies in a resample (``ids``: the original index of each row), set to infinity."""
    d = d_self.clone()
    if ids is None:
        d.fill_diagonal_(float("inf"))
    else:
        t = torch.as_tensor(ids, device=d.device)
        d[t[:, None] == t[None, :]] = float("inf")
    return d


def nearest_other(d_self: torch.Tensor, ids: np.ndarray | None = None) -> torch.Tensor:
    """Distance of each row to its nearest *other* item of the same set."""
    return _without_self(d_self, ids).min(1).values


def authenticity(real_train, fake, *, scaling: str | None = None, device=None) -> Authenticity:
    """The paper's authenticity of ``fake`` against the real training samples ``real_train``
    (feature matrices ``[N, D]``); Euclidean distances, after ``scaling`` ("minmax" fitted on
    ``real_train``, or None for the features as given)."""
    real, fake_x = _scaled(real_train, fake, scaling)
    if len(real) < 2 or len(fake_x) < 1:
        raise DataError(f"authenticity needs at least 2 real training and 1 synthetic sample "
                        f"(got {len(real)} and {len(fake_x)}); pass larger feature sets.")
    r_r = nearest_other(stats.pairwise_distances(real, real, device)).cpu().numpy()
    f_r, nearest = stats.nearest_distances(fake_x, real, device)
    flags = f_r > r_r[nearest]
    return Authenticity(float(flags.mean()), flags, nearest, f_r, r_r)


def _curve_score(levels: np.ndarray, curve: np.ndarray) -> float:
    gap = np.abs(np.asarray(curve) - levels)
    area = float(((gap[1:] + gap[:-1]) / 2 * np.diff(levels)).sum())     # trapezoidal rule
    # rounded so that a curve on the diagonal's far side scores 0, not 1.1e-16
    return round(1.0 - 2.0 * area, 12)


def _knn_radii(d_self: torch.Tensor, k: int, ids: np.ndarray | None = None) -> torch.Tensor:
    """Distance of each row to its k-th nearest *other* item (infinite when there are fewer
    than k others)."""
    d = _without_self(d_self, ids)
    return torch.topk(d, min(k, d.shape[1]), dim=1, largest=False).values[:, -1]


def _from_distances(levels, d, rule: str, k: int, real_ids=None, fake_ids=None):
    """The curves and authenticity of one (re)sample from precomputed distances ``d``:
    ``rr`` [R, R] real-real, ``rf`` [R, F] real-fake, ``ff`` [F, F] fake-fake, ``rc`` [R] and
    ``fc`` [F] to the real mean, ``ffc`` [F] fake to the fake mean."""
    dt = d["rc"].dtype
    lv = torch.as_tensor(levels, dtype=dt, device=d["rc"].device)
    radii = torch.quantile(d["rc"], lv)
    precision = (d["fc"][None, :] <= radii[:, None]).to(dt).mean(1).cpu().numpy()
    r_r = nearest_other(d["rr"], real_ids)                    # [R]
    r_f, nearest_fake = d["rf"].min(1)                        # each real's nearest fake
    j_d = d["ffc"][nearest_fake]
    if rule == "synthcity":
        covered = r_f <= r_r
        beta_radii = torch.quantile(j_d, lv)
    else:
        covered = r_f <= _knn_radii(d["ff"], k, fake_ids)[nearest_fake]
        beta_radii = torch.quantile(d["ffc"], lv)
    recall = ((covered[None, :] & (j_d[None, :] <= beta_radii[:, None])).to(dt)
              .mean(1).cpu().numpy())
    f_r, nearest_real = d["rf"].min(0)                        # each fake's nearest real
    authentic = (f_r > r_r[nearest_real]).to(dt).mean()
    return precision, recall, float(authentic)


def alpha_precision_beta_recall(real, fake, *, steps: int = DEFAULT_STEPS,
                                scaling: str | None = "minmax", recall_rule: str = "knn",
                                k: int = 5, n_bootstrap: int = 0,
                                rng: np.random.Generator | None = None, device=None) -> dict:
    """alpha-precision, beta-recall (curves and scores) and authenticity of ``fake`` against
    ``real``, with ``n_bootstrap`` resamples of each score.

    Returns ``{"levels", "alpha_precision_curve", "beta_recall_curve", "alpha_precision",
    "beta_recall", "authenticity", "resamples": {score: [..]}}``. Resamples draw both sets
    with replacement; the scaling stays the one fitted on the full reference (a fixed
    embedding); copies of a sample are not its own neighbours.
    """
    if steps < 2:
        raise ValueError(f"steps must be >= 2, got {steps}")
    if recall_rule not in RECALL_RULES:
        raise ValueError(f"recall_rule must be one of {RECALL_RULES}, got {recall_rule!r}")
    real_x, fake_x = _scaled(real, fake, scaling)
    r = stats._as_tensor(real_x, device)
    f = stats._as_tensor(fake_x, device)
    levels = np.linspace(0.0, 1.0, steps)
    full = {"rr": stats.pairwise_distances(r, r), "rf": stats.pairwise_distances(r, f),
            "ff": stats.pairwise_distances(f, f)}

    def distances(ir=None, jf=None):
        rr, ff = (r, f) if ir is None else (r[ir], f[jf])
        d = dict(full) if ir is None else {"rr": full["rr"][ir][:, ir],
                                           "rf": full["rf"][ir][:, jf],
                                           "ff": full["ff"][jf][:, jf]}
        d["rc"] = (rr - rr.mean(0)).norm(dim=1)
        d["fc"] = (ff - rr.mean(0)).norm(dim=1)
        d["ffc"] = (ff - ff.mean(0)).norm(dim=1)
        return d

    prec, rec, auth = _from_distances(levels, distances(), recall_rule, k)
    out = {"levels": levels.tolist(), "alpha_precision_curve": prec.tolist(),
           "beta_recall_curve": rec.tolist(), "alpha_precision": _curve_score(levels, prec),
           "beta_recall": _curve_score(levels, rec), "authenticity": auth}
    res = {"alpha_precision": [], "beta_recall": [], "authenticity": []}
    rng = rng or np.random.default_rng(0)
    for _ in range(n_bootstrap):
        ir = rng.integers(0, len(r), len(r))
        jf = rng.integers(0, len(f), len(f))
        p, q, a = _from_distances(
            levels, distances(torch.as_tensor(ir, device=r.device),
                              torch.as_tensor(jf, device=r.device)),
            recall_rule, k, real_ids=ir, fake_ids=jf)
        res["alpha_precision"].append(_curve_score(levels, p))
        res["beta_recall"].append(_curve_score(levels, q))
        res["authenticity"].append(a)
    out["resamples"] = res
    return out


def metric_alpha_precision(ctx: EvalContext) -> dict:
    """alpha-precision and beta-recall against the reference; authenticity against the real
    training split when the evaluation has it (the paper's memorization question), else
    against the reference."""
    name = ctx.extractor.name
    steps = ctx.options.alpha_steps
    fake, real = ctx.fake.features, ctx.real.features
    n_f, n_r = len(fake), len(real)
    keys = ("alpha_precision", "beta_recall", "authenticity")
    if n_r < 2 or n_f < 2:
        reason = f"needs at least 2 images per set (got {n_r} real, {n_f} fake)"
        return {k: unavailable(reason, n_real=n_r, n_fake=n_f, extractor=name) for k in keys}
    k = ctx.options.k
    common = {"steps": steps, "scaling": "min-max per dimension, fitted on the real reference",
              "n_bootstrap": ctx.options.n_bootstrap}
    out = alpha_precision_beta_recall(real, fake, steps=steps, k=k,
                                      n_bootstrap=ctx.options.n_bootstrap,
                                      rng=ctx.rng("alpha_precision"), device=ctx.device)
    res = out["resamples"]
    blocks = {
        "alpha_precision": entry(out["alpha_precision"], res["alpha_precision"], n_r, n_f, name,
                                 upper=1.0, curve=[round(v, 6) for v in
                                                   out["alpha_precision_curve"]], **common),
        "beta_recall": entry(out["beta_recall"], res["beta_recall"], n_r, n_f, name, upper=1.0,
                             curve=[round(v, 6) for v in out["beta_recall_curve"]], k=k,
                             recall_rule="knn: nearest fake in the fake beta-support and the real "
                                         "inside its k-NN ball among the fakes", **common),
    }
    train = ctx.features_of("train")
    against = ctx.reference
    if train is not None and len(train) >= 2:
        against = ctx.train
        scale = minmax_scaler(real)
        auth = authenticity(scale(train.features), scale(fake), device=ctx.device)
        value = auth.fraction
        draws = []
        rng = ctx.rng("authenticity")
        for _ in range(ctx.options.n_bootstrap):
            pick = rng.integers(0, n_f, n_f)
            draws.append(float(auth.flags[pick].mean()))
        n_against = len(train)
        resample_note = ("fakes resampled; the training set is fixed (it is what the fakes are "
                         "audited against)")
    else:
        value, draws, n_against = out["authenticity"], res["authenticity"], n_r
        resample_note = "both sets resampled"
    blocks["authenticity"] = entry(
        value, draws, n_against, n_f, name, lower=0.0, upper=1.0, **common,
        against=f"{against.name}/{against.split}",
        rule="fake j unauthentic when closer to its nearest real i than i's nearest other real",
        resampling=resample_note)
    held = ctx.features_of("heldout") if train is not None else None
    if held is not None and ctx.heldout.fingerprint != ctx.train.fingerprint and len(held):
        # what new real patients score: the level a generator that does not copy should reach
        blocks["authenticity"]["heldout_real"] = {
            "value": authenticity(scale(train.features), scale(held.features),
                                  device=ctx.device).fraction,
            "n": len(held), "set": f"{ctx.heldout.name}/{ctx.heldout.split}"}
    return blocks


def authenticity_privacy_test(space, ctx) -> dict | None:
    """Authenticity as a test of the privacy audit (metrics/privacy/family.py): the fraction of
    synthetic samples judged authentic against the training set, compared with the same
    fraction for held-out real samples (what a generator that copies nothing scores).
    Flags when the synthetic fraction is lower by a one-sided two-proportion z-test at
    p < 0.01."""
    from scipy.stats import norm

    if len(space.train) < 2 or len(space.fake) < 1 or len(space.heldout) < 1:
        return None
    fake = authenticity(space.train, space.fake, device=ctx.device)
    held = authenticity(space.train, space.heldout, device=ctx.device)
    n_f, n_h = len(fake.flags), len(held.flags)
    pooled = (fake.flags.sum() + held.flags.sum()) / (n_f + n_h)
    se = float(np.sqrt(pooled * (1 - pooled) * (1 / n_f + 1 / n_h)))
    z = (fake.fraction - held.fraction) / se if se > 0 else 0.0
    p = float(norm.cdf(z))
    return {"value": fake.fraction, "heldout_value": held.fraction, "z": float(z),
            "p_value": p, "n_fake": n_f, "n_heldout": n_h, "flags": bool(p < 0.01),
            "rule": "authentic fraction of the synthetic samples below that of held-out real "
                    "samples (one-sided two-proportion z-test, p < 0.01)"}
