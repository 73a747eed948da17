"""Precision, recall, density and coverage (Naeem et al. 2020) in feature space."""

from __future__ import annotations

from medsyn.evaluators.metrics import stats
from medsyn.evaluators.metrics.context import EvalContext, entry, unavailable


def metric_prdc(ctx: EvalContext) -> dict:
    name, k = ctx.extractor.name, ctx.options.k
    n_r, n_f = len(ctx.real), len(ctx.fake)
    if min(n_r, n_f) <= k:
        reason = f"needs more than k = {k} images per set (got {n_r} real, {n_f} fake)"
        return {m: unavailable(reason, n_real=n_r, n_fake=n_f, extractor=name, k=k)
                for m in ("precision", "recall", "density", "coverage")}
    values, res = stats.prdc(ctx.real.features, ctx.fake.features, k, ctx.options.n_bootstrap,
                             ctx.rng("prdc"), ctx.device)
    upper = {"precision": 1.0, "recall": 1.0, "coverage": 1.0, "density": None}
    return {m: entry(v, res[m], n_r, n_f, name, lower=0.0, upper=upper[m], k=k,
                     n_bootstrap=ctx.options.n_bootstrap)
            for m, v in values.items()}
