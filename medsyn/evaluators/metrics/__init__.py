"""Metric families, by name: each is a function of an :class:`EvalContext` that returns the
blocks it adds under ``results["metrics"]``.

Adding a family is one function and one :func:`register_metric` call:

    def sharpness(ctx):
        v = float(laplacian_variance(ctx.fake_images))
        return {"sharpness": entry(v, [], len(ctx.real), len(ctx.fake), "pixels")}

    register_metric("sharpness", sharpness, "variance of the Laplacian of the fakes")

Blocks computed outside :func:`medsyn.evaluators.evaluate` (train-on-synthetic utility,
PSNR/SSIM of super-resolution) are merged into a results folder with
:func:`medsyn.evaluators.add_metrics`.
"""

from __future__ import annotations

from medsyn.evaluators.metrics.alpha_precision import (
    authenticity,
    authenticity_privacy_test,
    metric_alpha_precision,
)
from medsyn.evaluators.metrics.context import EvalContext, EvalOptions, entry, unavailable
from medsyn.evaluators.metrics.diagnostics import metric_discriminator, metric_tsne
from medsyn.evaluators.metrics.fd_infinity import metric_fd_infinity
from medsyn.evaluators.metrics.fidelity import (
    fid_entry,
    kid_entry,
    metric_fid,
    metric_intra_fid,
    metric_is,
    metric_kid,
    metric_real_floor,
)
from medsyn.evaluators.metrics.mmd import metric_mmd
from medsyn.evaluators.metrics.prdc import metric_prdc
from medsyn.evaluators.metrics.privacy.family import metric_privacy, register_privacy_test
from medsyn.evaluators.metrics.privacy.memorization import metric_memorization
from medsyn.evaluators.metrics.registry import (
    WORSE_EITHER,
    WORSE_HIGHER,
    WORSE_LOWER,
    MetricSpec,
    list_metrics,
    metric_directions,
    register_metric,
    resolve_metrics,
)
from medsyn.evaluators.metrics.utility.family import metric_utility
from medsyn.evaluators.metrics.vendi import metric_vendi

__all__ = [
    "EvalContext", "EvalOptions", "MetricSpec", "WORSE_EITHER", "WORSE_HIGHER", "WORSE_LOWER",
    "authenticity", "entry", "fid_entry", "kid_entry", "list_metrics", "metric_directions",
    "register_metric", "register_privacy_test", "resolve_metrics", "unavailable",
]

# `worse`: the direction each result key moves when the synthetic set gets worse (what
# `medsyn audit` checks); a new family declares its own keys the same way. `provides`: result
# keys accepted as names of the family in --metrics.
register_metric("fid", metric_fid, "Frechet Inception Distance (torch-fidelity convention)",
                worse={"fid": WORSE_HIGHER})
register_metric("kid", metric_kid, "Kernel Inception Distance, polynomial kernel, subsets",
                worse={"kid": WORSE_HIGHER})
register_metric("is", metric_is, "Inception Score, 10 splits (needs classifier logits)",
                provides=("inception_score",), worse={"is": WORSE_LOWER})
register_metric("intra_fid", metric_intra_fid, "FID and KID per class, and their mean",
                provides=("intra_kid",), worse={"intra_fid": WORSE_HIGHER})
register_metric("fd_infinity", metric_fd_infinity,
                "FD extrapolated to infinite n (Chong & Forsyth 2020), 15 subset sizes",
                worse={"fd_infinity": WORSE_HIGHER})
register_metric("mmd", metric_mmd,
                "unbiased Gaussian-RBF MMD^2 x 1000 (CMMD-style), median-heuristic bandwidth",
                worse={"mmd": WORSE_HIGHER})
register_metric("prdc", metric_prdc, "precision, recall, density, coverage (Naeem 2020, k=5)",
                provides=("precision", "recall", "density", "coverage"),
                worse={"precision": WORSE_LOWER, "recall": WORSE_LOWER, "density": WORSE_LOWER,
                       "coverage": WORSE_LOWER})
register_metric("alpha_precision", metric_alpha_precision,
                "alpha-precision, beta-recall, authenticity (Alaa et al. 2022, synthcity's way)",
                provides=("beta_recall", "authenticity"),
                worse={"alpha_precision": WORSE_LOWER, "beta_recall": WORSE_LOWER,
                       "authenticity": WORSE_LOWER})
register_metric("vendi", metric_vendi,
                "Vendi score (cosine kernel) of the real and of the fake set: diversity",
                worse={"vendi_fake": WORSE_LOWER})
register_metric("real_floor", metric_real_floor,
                "FID/KID between real halves and between real train and test",
                provides=("fid_halves", "kid_halves", "fid_train_vs_test", "kid_train_vs_test",
                          "floor"))
register_metric("memorization", metric_memorization,
                "fakes closer to a training image than held-out reals are",
                worse={"memorization": WORSE_HIGHER})
register_metric("privacy", metric_privacy,
                "privacy audit: DCR test, C_T data-copying, membership-inference AUC, in the "
                "feature space and raw pixels (opt-in)", default=False)
register_metric("discriminator", metric_discriminator,
                "GAN discriminator accuracy on real test images and on fakes", default=False,
                needs_features=False)
register_metric("tsne", metric_tsne, "t-SNE figure of real and fake features")
register_metric("utility", metric_utility,
                "train-on-synthetic / test-on-real classifier arms over seeds (slow; opt-in)",
                default=False, needs_features=False)

# authenticity (Alaa et al. 2022) also runs as a test of the privacy audit, against the
# held-out baseline, in every space the audit uses
register_privacy_test("authenticity", authenticity_privacy_test)
