"""Train-on-synthetic utility as a metric family (the protocol itself is protocol.py)."""

from __future__ import annotations

from threadpoolctl import threadpool_limits

from medsyn.evaluators.metrics.context import EvalContext, unavailable


def metric_utility(ctx: EvalContext) -> dict:
    from medsyn.device import extraction_threads
    from medsyn.evaluators.metrics.utility.protocol import evaluate_utility

    train = ctx.train if ctx.train is not None else (
        ctx.reference if ctx.reference.split == "train" else None)
    if train is None or ctx.heldout is None:
        return {"utility": unavailable(
            "needs the real training split and a held-out (test) split of the dataset")}
    if train.fingerprint == ctx.heldout.fingerprint:
        return {"utility": unavailable("the training and test sets are the same images")}
    o = ctx.options
    # training runs on all cores (the metric phase around it is single-threaded, see api)
    with threadpool_limits(limits=extraction_threads()):
        block = evaluate_utility(
            ctx.fake_images, ctx.fake_labels, train=train, val=ctx.val, test=ctx.heldout,
            recipe=o.utility_recipe, seeds=o.utility_seeds, ratio=o.utility_ratio,
            device=ctx.device, sampler=ctx.sampler, use_cache=o.use_cache, sample_seed=o.seed)
    for note in block.get("notes", []):
        ctx.warn(f"utility: {note}")
    return {"utility": block}
