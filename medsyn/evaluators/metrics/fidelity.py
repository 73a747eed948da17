"""Fréchet and kernel distances: FID, KID, IS, intra-FID and the real-vs-real floor."""

from __future__ import annotations

import numpy as np
import torch

from medsyn.evaluators.metrics import stats
from medsyn.evaluators.metrics.context import EvalContext, entry, unavailable
from medsyn.evaluators.metrics.stats.groups import disjoint_halves


def fid_entry(ctx: EvalContext, a: np.ndarray, b: np.ndarray, purpose: str, **extra):
    """FID of ``a`` (the "fake" side) against ``b`` (the "real" side): ``(entry, resamples)``."""
    name = ctx.extractor.name
    if len(a) < 2 or len(b) < 2:
        return unavailable(f"needs at least 2 images per set (got {len(b)} real, {len(a)} fake)",
                           n_real=len(b), n_fake=len(a), extractor=name, **extra), []
    if ctx.options.fid_method == "torch-fidelity":
        value = stats.fid_value(a, b)
    else:
        value = stats.fid_from_grams(a, b, ctx.device, method="gram" if len(a) * len(b) <=
                                     stats._GRAM_MAX_CELLS else "cov")
    if value < 0:
        # FID is a squared distance: a negative value is float rounding of the matrix square
        # root on (near-)identical sets, so it is reported as 0 with the raw value beside it
        extra = {**extra, "raw_value": value,
                 "note": f"torch-fidelity's formula gave {value:.3g} (rounding of the matrix "
                         "square root on near-identical sets); FID is >= 0, reported as 0"}
        value = 0.0
    res = stats.fid_resamples(a, b, ctx.options.n_bootstrap, ctx.rng(purpose), ctx.device)
    return entry(value, res, len(b), len(a), name, lower=0.0, n_bootstrap=ctx.options.n_bootstrap,
                 **extra), res


def kid_entry(ctx: EvalContext, a: np.ndarray, b: np.ndarray, purpose: str, **extra):
    name = ctx.extractor.name
    if len(a) < 2 or len(b) < 2:
        return unavailable(f"needs at least 2 images per set (got {len(b)} real, {len(a)} fake)",
                           n_real=len(b), n_fake=len(a), extractor=name, **extra), []
    x = torch.from_numpy(np.asarray(a)).to(ctx.device, torch.float64)
    y = torch.from_numpy(np.asarray(b)).to(ctx.device, torch.float64)
    d = x.shape[1]
    kxx = stats.poly_kernel(x @ x.T, d)
    kyy = stats.poly_kernel(y @ y.T, d)
    kxy = stats.poly_kernel(x @ y.T, d)
    size, note = stats.kid_subset_size(len(a), len(b), ctx.options.kid_subset_size)
    value, std = stats.kid_subsets_value(kxx, kyy, kxy, size, ctx.options.kid_subsets,
                                         ctx.options.seed)
    res = stats.kid_resamples(kxx, kyy, kxy, ctx.options.n_bootstrap, ctx.rng(purpose))
    out = entry(value, res, len(b), len(a), name, std=std, subset_size=size,
                subsets=ctx.options.kid_subsets, n_bootstrap=ctx.options.n_bootstrap, **extra)
    if note:
        out["note"] = note
    return out, res


def metric_fid(ctx: EvalContext) -> dict:
    return {"fid": fid_entry(ctx, ctx.fake.features, ctx.real.features, "fid")[0]}


def metric_kid(ctx: EvalContext) -> dict:
    return {"kid": kid_entry(ctx, ctx.fake.features, ctx.real.features, "kid")[0]}


def metric_is(ctx: EvalContext) -> dict:
    n = len(ctx.fake)
    base = {"n_fake": n, "extractor": ctx.extractor.name, "splits": ctx.options.is_splits}
    if not ctx.extractor.has_logits or ctx.fake.logits is None:
        return {"is": unavailable(ctx.extractor.logits_unavailable or "no logits", **base)}
    if n < ctx.options.is_splits:
        return {"is": unavailable(f"{n} fake images, fewer than the {ctx.options.is_splits} "
                                  "splits", **base)}
    value, std = stats.inception_score(ctx.fake.logits, ctx.options.is_splits, ctx.options.seed)
    res = stats.inception_score_resamples(ctx.fake.logits, ctx.options.is_splits,
                                          ctx.options.n_bootstrap, ctx.rng("is"),
                                          ctx.options.seed)
    out = entry(value, res, None, n, ctx.extractor.name, lower=1.0, std=std,
                splits=ctx.options.is_splits, n_bootstrap=ctx.options.n_bootstrap)
    out.pop("n_real")
    return {"is": out}


def metric_intra_fid(ctx: EvalContext) -> dict:
    name = ctx.extractor.name
    if ctx.fake_labels is None:
        return {"intra_fid": unavailable(
            "the fake images carry no class labels (use one sub-folder per class, labels in the "
            "npz, or a conditional checkpoint)", extractor=name)}
    d = ctx.extractor.feature_dim
    per_class, values, draws = {}, [], []
    for c, cname in enumerate(ctx.class_names):
        a = ctx.fake.features[ctx.fake_labels == c]
        b = ctx.real.features[ctx.real_labels == c]
        block, res = fid_entry(ctx, a, b, f"intra_fid/{cname}")
        if block["value"] is None:
            per_class[cname] = block
            continue
        block["kid"] = kid_entry(ctx, a, b, f"intra_kid/{cname}")[0]
        if min(len(a), len(b)) < d:
            block["warning"] = (
                f"{min(len(a), len(b))} images in the smaller set, fewer than the {d} feature "
                "dimensions: the covariance is rank-deficient and FID is biased upward at this n; "
                "compare classes at equal n and read the per-class KID (unbiased) beside it")
        per_class[cname] = block
        values.append(block["value"])
        draws.append(res)
    if not values:
        return {"intra_fid": unavailable("no class has at least 2 real and 2 fake images",
                                         extractor=name, per_class=per_class)}
    mean = float(np.mean(values))
    mean_draws = np.mean(np.asarray(draws), axis=0) if all(len(r) for r in draws) else []
    out = {"value": mean,
           "ci95": stats.recentred_interval(mean, mean_draws, lower=0.0),
           "extractor": name, "n_classes": len(values), "per_class": per_class}
    if len(values) < len(ctx.class_names):
        out["note"] = (f"mean over the {len(values)} classes with enough images, of "
                       f"{len(ctx.class_names)}")
    return {"intra_fid": out}


def metric_real_floor(ctx: EvalContext) -> dict:
    name = ctx.extractor.name
    out = {}
    n = len(ctx.real)
    patients = getattr(ctx.reference, "patient_ids", None)
    if patients is not None and len(set(patients)) < 2:
        patients = None
    half_a, half_b = disjoint_halves(ctx.rng("real_floor/halves"), n, patients)
    fa, fb = ctx.real.features[half_a], ctx.real.features[half_b]
    sets = {"sets": f"two disjoint random halves of the reference "
                    f"({ctx.reference.name}/{ctx.reference.split}), {len(half_a)} and "
                    f"{len(half_b)} images"
                    + (", patient-disjoint" if patients is not None else "")}
    out["fid_halves"] = fid_entry(ctx, fb, fa, "real_floor/fid_halves", **sets)[0]
    out["kid_halves"] = kid_entry(ctx, fb, fa, "real_floor/kid_halves", **sets)[0]
    train, test = ctx.features_of("train"), ctx.features_of("heldout")
    if train is None or test is None:
        reason = "needs both the training split and a held-out (test) split of the dataset"
        out["fid_train_vs_test"] = unavailable(reason, extractor=name)
        out["kid_train_vs_test"] = unavailable(reason, extractor=name)
    elif ctx.train.fingerprint == ctx.heldout.fingerprint:
        reason = "the training and held-out sets are the same images"
        out["fid_train_vs_test"] = unavailable(reason, extractor=name)
        out["kid_train_vs_test"] = unavailable(reason, extractor=name)
    else:
        sets = {"sets": f"real {ctx.train.split} (as 'real') vs real {ctx.heldout.split} "
                        f"(as 'fake') of {ctx.train.name}"}
        out["fid_train_vs_test"] = fid_entry(ctx, test.features, train.features,
                                             "real_floor/fid_tt", **sets)[0]
        out["kid_train_vs_test"] = kid_entry(ctx, test.features, train.features,
                                             "real_floor/kid_tt", **sets)[0]
    return {"real_floor": out}
