"""Diagnostics that are not distances: the GAN discriminator's accuracies and t-SNE."""

from __future__ import annotations

import torch

from medsyn.evaluators.metrics.context import EvalContext, unavailable


def metric_discriminator(ctx: EvalContext) -> dict:
    if ctx.discriminator is None:
        return {"discriminator": unavailable("needs a GAN checkpoint with a discriminator "
                                             "(--checkpoint)")}
    if ctx.heldout is None:
        return {"discriminator": unavailable("needs a held-out (test) split of the dataset")}
    bs = ctx.options.batch_size

    def run(images, labels):
        p, logits = [], []
        for s in range(0, len(images), bs):
            lab = None if labels is None else torch.as_tensor(labels[s:s + bs])
            out = ctx.discriminator(images[s:s + bs], lab)
            p.append(torch.as_tensor(out["p_real"]).float().cpu())
            if out.get("class_logits") is not None:
                logits.append(torch.as_tensor(out["class_logits"]).float().cpu())
        return torch.cat(p), (torch.cat(logits) if logits else None)

    test_labels = ctx.heldout.labels.numpy()
    p_real, logits_real = run(ctx.heldout.images, test_labels)
    p_fake, logits_fake = run(ctx.fake_images, ctx.fake_labels)
    block = {"acc_real_test": float((p_real > 0.5).float().mean()),
             "acc_fake": float((p_fake <= 0.5).float().mean()),
             "mean_p_real_test": float(p_real.mean()), "mean_p_real_fake": float(p_fake.mean()),
             "n_real_test": len(p_real), "n_fake": len(p_fake), "threshold": 0.5}
    if logits_real is not None:
        block["aux_acc_real_test"] = float(
            (logits_real.argmax(1).numpy() == test_labels).mean())
        if logits_fake is not None and ctx.fake_labels is not None:
            block["aux_acc_fake"] = float((logits_fake.argmax(1).numpy() == ctx.fake_labels).mean())
    return {"discriminator": block}


def metric_tsne(ctx: EvalContext) -> dict:
    if ctx.out_dir is None:
        ctx.warn("t-SNE skipped: no output folder to write the figure into")
        return {}
    from medsyn.evaluators.metrics import figures

    ctx.figures["tsne"] = figures.tsne_plot(
        ctx.out_dir / "tsne.png", ctx.real.features, ctx.real_labels, ctx.fake.features,
        ctx.fake_labels, ctx.class_names, ctx.options.tsne_max_points, ctx.options.seed,
        ctx.extractor.name)
    return {}
