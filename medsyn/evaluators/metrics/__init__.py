"""Metric families, by name: each is a function of an :class:`EvalContext` that returns the
blocks it adds under ``results["metrics"]``.

Adding a family is one function and one :func:`register_metric` call:

    def sharpness(ctx):
        v = float(laplacian_variance(ctx.fake_images))
        return {"sharpness": entry(v, [], len(ctx.real), len(ctx.fake), "pixels")}

    register_metric("sharpness", sharpness, "variance of the Laplacian of the fakes",
                    worse={"sharpness": "lower"})

The registration is also where each result key's direction is declared, once: ``medsyn audit``
checks the key against it and the report ranks its column by it (registry.py says how).

Blocks computed outside :func:`medsyn.evaluators.evaluate` (train-on-synthetic utility,
PSNR/SSIM of super-resolution) are merged into a results folder with
:func:`medsyn.evaluators.add_metrics`; their directions are declared here too.

The built-in families are registered by ``"module:function"`` references and the other names
of this package are imported on first use: importing it (to read the directions, as the report
does) loads no torch.
"""

from __future__ import annotations

import importlib

from medsyn.evaluators.metrics.registry import (
    WORSE_EITHER,
    WORSE_HIGHER,
    WORSE_LOWER,
    Direction,
    MetricSpec,
    declared_directions,
    list_metrics,
    metric_directions,
    register_metric,
    register_results,
    resolve_metrics,
)

# name -> the submodule that defines it, imported on first use
_LAZY = {
    "EvalContext": "context", "EvalOptions": "context", "entry": "context",
    "unavailable": "context",
    "authenticity": "distribution.alpha_precision",
    "authenticity_privacy_test": "distribution.alpha_precision",
    "metric_alpha_precision": "distribution.alpha_precision",
    "metric_discriminator": "diagnostics", "metric_tsne": "diagnostics",
    "metric_fd_infinity": "distribution.fd_infinity",
    "fid_entry": "fidelity", "kid_entry": "fidelity", "metric_fid": "fidelity",
    "metric_intra_fid": "fidelity", "metric_is": "fidelity", "metric_kid": "fidelity",
    "metric_real_floor": "fidelity",
    "metric_memorization": "privacy.memorization", "metric_mmd": "distribution.mmd",
    "metric_prdc": "distribution.prdc",
    "metric_privacy": "privacy.family", "register_privacy_test": "privacy.family",
    "metric_tests": "distribution.two_sample",
    "metric_utility": "utility.family", "metric_vendi": "distribution.vendi",
    "metric_cmmd": "distribution.cmmd", "metric_chexgenbench": "distribution.chexgenbench",
    "metric_dgm_eval": "distribution.dgm_eval",
}

__all__ = [
    "Direction", "EvalContext", "EvalOptions", "MetricSpec", "WORSE_EITHER", "WORSE_HIGHER",
    "WORSE_LOWER", "authenticity", "declared_directions", "entry", "fid_entry", "kid_entry",
    "list_metrics", "metric_directions", "register_metric", "register_privacy_test",
    "register_results", "resolve_metrics", "unavailable",
]


def _privacy_module():
    """metrics/privacy/family.py with authenticity (Alaa et al. 2022) registered as one of its
    tests: it runs against the held-out baseline in every space the privacy audit uses."""
    from medsyn.evaluators.metrics.distribution import alpha_precision
    from medsyn.evaluators.metrics.privacy import family as privacy

    privacy.register_privacy_test("authenticity", alpha_precision.authenticity_privacy_test)
    return privacy


def _privacy_family(ctx):
    return _privacy_module().metric_privacy(ctx)


def __getattr__(name):
    if name in _LAZY:
        module = (_privacy_module() if _LAZY[name] == "privacy.family"
                  else importlib.import_module(f"{__name__}.{_LAZY[name]}"))
        return getattr(module, name)
    try:                       # a submodule: ``medsyn.evaluators.metrics.stats``
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"{__name__}.{name}":
            raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_LAZY))


_M = "medsyn.evaluators.metrics"

# `worse`: the direction each result key moves when the synthetic set gets worse (what
# `medsyn audit` checks, and what the report ranks by); a new family declares its own keys the
# same way. `provides`: result keys accepted as names of the family in --metrics.
register_metric("fid", f"{_M}.fidelity:metric_fid",
                "Frechet Inception Distance (torch-fidelity convention)",
                worse={"fid": WORSE_HIGHER})
register_metric("kid", f"{_M}.fidelity:metric_kid",
                "Kernel Inception Distance, polynomial kernel, subsets",
                worse={"kid": WORSE_HIGHER})
register_metric("is", f"{_M}.fidelity:metric_is",
                "Inception Score, 10 splits (needs classifier logits)",
                provides=("inception_score",), worse={"is": WORSE_LOWER})
register_metric("intra_fid", f"{_M}.fidelity:metric_intra_fid",
                "FID and KID per class, and their mean",
                provides=("intra_kid",), worse={"intra_fid": WORSE_HIGHER})
# seams of tiled generators (MEGAN): not a default, and no direction is declared (neither
# audited nor ranked) until it has been measured on real runs (docs/highres.md)
register_metric("seams", f"{_M}.highres:metric_seams",
                "gradient energy across tile borders vs inside tiles, synthetic / real "
                "(needs --seam-patch)", default=False, needs_features=False)
register_metric("scale_fid", f"{_M}.highres:metric_scale_fid",
                "FID of both sets downsampled to each of --fid-scales (fid_<S>px)",
                default=False)
register_metric("fd_infinity", f"{_M}.distribution.fd_infinity:metric_fd_infinity",
                "FD extrapolated to infinite n (Chong & Forsyth 2020), 15 subset sizes",
                worse={"fd_infinity": WORSE_HIGHER})
register_metric("mmd", f"{_M}.distribution.mmd:metric_mmd",
                "unbiased Gaussian-RBF MMD^2 x 1000 (CMMD-style), median-heuristic bandwidth",
                worse={"mmd": WORSE_HIGHER})
# leaderboard protocols (docs/evaluation.md, "Encoders you bring"): opt-in, meant for the space
# of their protocol (--protocol cmmd | chexgenbench | dgm-eval picks both)
register_metric("cmmd", f"{_M}.distribution.cmmd:metric_cmmd",
                "CMMD as its reference code: biased RBF MMD x 1000, sigma 10, unit-norm "
                "embeddings, float32 (use the cmmd-clip space)", default=False,
                worse={"cmmd": WORSE_HIGHER})
register_metric("chexgenbench", f"{_M}.distribution.chexgenbench:metric_chexgenbench",
                "CheXGenBench's FID / KID / PRDC as its fid.py computes them (use the rad-dino "
                "space)", default=False)
register_metric("dgm_eval", f"{_M}.distribution.dgm_eval:metric_dgm_eval",
                "dgm-eval's FD, FD-infinity, KD, PRDC (k=5) and Vendi with its subset sizes "
                "(use the dinov2:vitl14 space)", default=False)
# density (Naeem et al. 2020) is 1 in expectation for identical distributions; it falls when
# fakes leave the real manifold and rises above 1 when they crowd into its dense regions
# (copies, a collapsed mode): a departure either way is worse.
register_metric("prdc", f"{_M}.distribution.prdc:metric_prdc",
                "precision, recall, density, coverage (Naeem 2020, k=5)",
                provides=("precision", "recall", "density", "coverage"),
                worse={"precision": WORSE_LOWER, "recall": WORSE_LOWER,
                       "density": WORSE_EITHER, "coverage": WORSE_LOWER},
                ideal={"density": 1.0})
register_metric("alpha_precision",
                f"{_M}.distribution.alpha_precision:metric_alpha_precision",
                "alpha-precision, beta-recall, authenticity (Alaa et al. 2022, synthcity's way)",
                provides=("beta_recall", "authenticity"),
                worse={"alpha_precision": WORSE_LOWER, "beta_recall": WORSE_LOWER,
                       "authenticity": WORSE_LOWER})
# a more diverse set is not a better one (noise is diverse): Vendi is read against the real set's
register_metric("vendi", f"{_M}.distribution.vendi:metric_vendi",
                "Vendi score (cosine kernel) of the real and of the fake set: diversity",
                worse={"vendi_fake": WORSE_LOWER}, unranked=("vendi_fake",))
# a p-value, not a score to rank: no direction, and opt-in (its permutations cost seconds)
register_metric("tests", f"{_M}.distribution.two_sample:metric_tests",
                "two-sample permutation tests real vs synthetic on FD and MMD (p-value, "
                "effect size; whole patients with a manifest)", default=False)
# not a property of the fakes: no direction
register_metric("real_floor", f"{_M}.fidelity:metric_real_floor",
                "FID/KID between real halves and between real train and test",
                provides=("fid_halves", "kid_halves", "fid_train_vs_test", "kid_train_vs_test",
                          "floor"))
# read against the fraction expected without copying (the percentile), not ranked
register_metric("memorization", f"{_M}.privacy.memorization:metric_memorization",
                "fakes closer to a training image than held-out reals are",
                worse={"memorization": WORSE_HIGHER}, unranked=("memorization",))
register_metric("privacy", _privacy_family,
                "privacy audit: DCR test, C_T data-copying, membership-inference AUC, in the "
                "feature space and raw pixels (opt-in)", default=False)
register_metric("discriminator", f"{_M}.diagnostics:metric_discriminator",
                "GAN discriminator accuracy on real test images and on fakes", default=False,
                needs_features=False)
register_metric("tsne", f"{_M}.diagnostics:metric_tsne", "t-SNE figure of real and fake features")
# the report's names for values of the utility block (utility.arms.tstr.accuracy is tstr_acc);
# the real-trained arm (trtr_acc, trtr_auc) is a reference, with no direction
register_metric("utility", f"{_M}.utility.family:metric_utility",
                "train-on-synthetic / test-on-real classifier arms over seeds (slow; opt-in)",
                default=False, needs_features=False,
                worse={"tstr_acc": WORSE_LOWER, "trtrs_acc": WORSE_LOWER,
                       "gain_acc": WORSE_LOWER, "tstr_ratio": WORSE_LOWER,
                       "class_fidelity": WORSE_LOWER})
# written by the super-resolution evaluation (medsyn.evaluators.sr); its FID is the "fid" key
# declared above, the bicubic upscaling of the same inputs is a reference with no direction
register_results("super_resolution",
                 "PSNR and SSIM on the luminance channel of super-resolved images",
                 worse={"psnr_y": WORSE_LOWER, "ssim_y": WORSE_LOWER})
# written by the translation evaluation (medsyn.evaluators.translation); psnr_y / ssim_y / fid
# are the keys declared above, the baselines (*_condition, *_bicubic, *_mean_image,
# fid_identity) and the unrelated-pair feature distance are references with no direction
register_results("translation",
                 "MAE on luminance, content preservation, cycle error and target-class rate of "
                 "translated images",
                 worse={"mae_y": WORSE_HIGHER, "cycle_mae_y": WORSE_HIGHER,
                        "content_ssim_y": WORSE_LOWER, "content_feature_distance": WORSE_HIGHER,
                        "target_class_rate": WORSE_LOWER})
