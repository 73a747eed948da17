"""Memorization: synthetic images closer to a training image than held-out reals are."""

from __future__ import annotations

import numpy as np

from medsyn.evaluators.metrics import stats
from medsyn.evaluators.metrics.context import EvalContext, unavailable
from medsyn.evaluators.metrics.privacy.stats import fraction_below
from medsyn.evaluators.metrics.stats.groups import GroupResampler


def metric_memorization(ctx: EvalContext) -> dict:
    name = ctx.extractor.name
    p = ctx.options.memorization_percentile
    train, held = ctx.features_of("train"), ctx.features_of("heldout")
    if train is None or held is None:
        return {"memorization": unavailable(
            "needs the training split and a held-out (test) split of the dataset",
            extractor=name, percentile=p)}
    if ctx.train.fingerprint == ctx.heldout.fingerprint:
        return {"memorization": unavailable("the training and held-out sets are the same images",
                                            extractor=name, percentile=p)}
    held_ids = getattr(ctx.split_dataset("heldout"), "patient_ids", None)
    train_ids = getattr(ctx.split_dataset("train"), "patient_ids", None)
    d_fake, nn_fake = stats.nearest_distances(ctx.fake.features, train.features, ctx.device)
    # a held-out image's distance to a *different* patient's training image is the baseline
    d_held, _ = stats.nearest_distances(held.features, train.features, ctx.device,
                                        held_ids, train_ids)
    finite = np.isfinite(d_held)
    d_held = d_held[finite]
    resampler = None if held_ids is None else GroupResampler(len(d_held), held_ids[finite])
    fraction, threshold, res = fraction_below(d_fake, d_held, p, ctx.options.n_bootstrap,
                                              ctx.rng("memorization"), resampler)
    order = np.argsort(d_fake)[: ctx.options.gallery_pairs]
    block = {
        "fraction": fraction,
        "ci95": stats.recentred_interval(fraction, res, 0.0, 1.0),
        "threshold": threshold, "percentile": p,
        "expected_fraction_without_copying": p / 100.0,
        "n_fake": len(d_fake), "n_train": len(train), "n_heldout": len(d_held),
        "extractor": name,
        "distance": "euclidean in feature space, to the nearest training image",
        "median_fake_distance": float(np.median(d_fake)),
        "median_heldout_distance": float(np.median(d_held)),
        "closest": [{"fake_index": int(i), "train_index": int(nn_fake[i]),
                     "distance": float(d_fake[i])} for i in order],
    }
    if ctx.out_dir is not None:
        from medsyn.evaluators.metrics import figures

        ctx.figures["memorization"] = figures.memorization_gallery(
            ctx.out_dir / "memorization.png", ctx.fake_images,
            ctx.split_dataset("train").images, order, nn_fake, d_fake, threshold, p)
        ctx.figures["memorization_hist"] = figures.distance_histogram(
            ctx.out_dir / "memorization_hist.png", d_fake, d_held, threshold, p)
    return {"memorization": block}
