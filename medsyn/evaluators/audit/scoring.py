"""Scoring one set of the audit: its features (reused from the pool where its pixels are
unchanged) and every audited family's value for it against the reference features."""

from __future__ import annotations

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from medsyn.evaluators.audit import perturbations as P


def set_features(s: P.SyntheticSet, pool_features, extractor, batch_size):
    from medsyn.evaluators.features import Features, extract_features

    feats = np.empty((len(s.labels), pool_features.features.shape[1]), dtype=np.float32)
    logits = None
    if pool_features.logits is not None:
        logits = np.empty((len(s.labels), pool_features.logits.shape[1]), dtype=np.float32)
    reuse = s.pool_rows >= 0
    feats[reuse] = pool_features.features[s.pool_rows[reuse]]
    if logits is not None:
        logits[reuse] = pool_features.logits[s.pool_rows[reuse]]
    if (~reuse).any():
        new = extract_features(extractor, s.images[torch.from_numpy(~reuse)], batch_size,
                               desc=f"{s.failure} level {s.level}")
        feats[~reuse] = new.features
        if logits is not None:
            if new.logits is None:
                logits = None
            else:
                logits[~reuse] = new.logits
    return Features(feats, logits)


def _scalar(block) -> tuple[float | None, list | None, str | None]:
    """A result block's number (``value``, or ``fraction`` for rates), interval and, when it
    has none, the producer's reason."""
    if not isinstance(block, dict):
        return None, None, "not computed"
    value = block.get("value", block.get("fraction"))
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not np.isfinite(value):
        return None, None, block.get("unavailable") or "no value"
    ci = block.get("ci95")
    return float(value), (list(ci) if isinstance(ci, (list, tuple)) else None), None


def score_set(s, feats, ctx_args, specs, directions, ref_f, pool_f):
    from medsyn.evaluators.metrics import EvalContext

    ctx = EvalContext(fake_labels=s.labels, fake_images=s.images, **ctx_args)
    ctx.provide_features("fake", feats)
    ctx.provide_features("reference", ref_f)
    ctx.provide_features("heldout", pool_f)
    blocks: dict = {}
    with threadpool_limits(limits=1):     # see api.evaluate: one thread for the metric phase
        for spec in specs:
            blocks.update(spec.fn(ctx))
    out = {}
    for key in directions:
        value, ci, reason = _scalar(blocks.get(key))
        out[key] = {"value": value, "ci95": ci}
        if reason:
            out[key]["unavailable"] = reason
    return out, ctx.warnings
