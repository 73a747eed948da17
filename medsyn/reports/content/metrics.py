"""The report's columns: where each value lives in results.json and how it is printed.

Every column of the summary tables is a :class:`MetricSpec`. Its ``extract`` function turns the
``metrics`` object of a results.json (docs/architecture.md, section 3) into a :class:`Cell`, or
``None`` when the evaluation did not compute that metric at all. A metric that was attempted but
could not be computed becomes a cell with ``unavailable`` set to the producer's reason: the
report never prints "nan". The readers that make cells are in
:mod:`medsyn.reports.content.cells`; this module is the column table.

Which way a column is better is not decided here: it is the direction declared where the metric
is registered (``register_metric(..., worse=...)`` in :mod:`medsyn.evaluators.metrics`), read
through :func:`better_direction`. A column whose key has no declared direction is not ranked.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from medsyn.evaluators.metrics import WORSE_EITHER, WORSE_HIGHER, WORSE_LOWER, declared_directions
from medsyn.reports.content.cells import (
    Cell,
    authenticity_cell,
    memorization_cell,
    path_entry,
    utility_stat,
)

LOWER = "lower"
HIGHER = "higher"
CLOSER_TO = "closer to"
UNRANKED = "unranked"


def better_direction(key: str) -> tuple[str, float | None]:
    """(LOWER, HIGHER, CLOSER_TO or UNRANKED; the ideal value for CLOSER_TO) of a result key,
    from the direction its metric declares."""
    direction = declared_directions().get(key)
    if direction is None or not direction.ranks:
        return UNRANKED, None
    if direction.worse == WORSE_EITHER:
        return CLOSER_TO, direction.ideal
    return {WORSE_HIGHER: LOWER, WORSE_LOWER: HIGHER}[direction.worse], None


TABLES = {
    "fidelity": "Fidelity and diversity",
    "distribution": "Further distances, fidelity/diversity curves, authenticity and diversity "
                    "(any feature space)",
    "protocols": "Leaderboard protocols: numbers as each protocol's code computes them",
    "utility": "Downstream utility (classifier trained on synthetic images, tested on real)",
    "sr": "Super-resolution",
    "translation": "Image-to-image translation (docs/translation.md)",
}


@dataclass(frozen=True)
class MetricSpec:
    """One column: presentation only; its direction comes from the metric registry."""

    key: str
    label: str
    table: str
    digits: int
    extract: Callable[[Mapping[str, Any]], Cell | None]
    help: str
    percent: bool = False
    signed: bool = False
    # the result key whose declared direction the column takes, when it is not ``key`` (the
    # super-resolution table's FID column reads the results' "fid")
    direction_key: str | None = None

    @property
    def _direction(self) -> tuple[str, float | None]:
        return better_direction(self.direction_key or self.key)

    @property
    def better(self) -> str:
        """'lower', 'higher', 'closer to 1' or 'unranked'."""
        way, ideal = self._direction
        return f"{CLOSER_TO} {ideal:g}" if way == CLOSER_TO else way

    @property
    def arrow(self) -> str:
        way, ideal = self._direction
        return f"→{ideal:g}" if way == CLOSER_TO else {LOWER: "↓", HIGHER: "↑"}.get(way, "")

    @property
    def best_word(self) -> str:
        """'lowest', 'highest' or 'closest to 1': the value an epoch is selected by."""
        way, ideal = self._direction
        return f"closest to {ideal:g}" if way == CLOSER_TO else {LOWER: "lowest",
                                                                  HIGHER: "highest"}[way]

    def format_number(self, x: float | None) -> str:
        if x is None:
            return ""
        if self.percent:
            return f"{100 * x:.{self.digits}f} %"
        sign = "+" if self.signed else ""
        if x != 0 and abs(x) < 0.5 * 10 ** -self.digits:
            # e.g. a KID of 3e-05 must not print as 0.0000
            return f"{x:{sign}.1e}"
        return f"{x:{sign}.{self.digits}f}"

    def rank_key(self, value: float) -> float:
        """Smaller is better, whatever the metric's direction."""
        way, ideal = self._direction
        if way == LOWER:
            return value
        if way == HIGHER:
            return -value
        if way == CLOSER_TO:
            return abs(value - ideal)
        raise ValueError(f"metric {self.key!r} is not ranked")

    @property
    def ranked(self) -> bool:
        return self._direction[0] != UNRANKED


def _translation_columns() -> list[MetricSpec]:
    """The translation table (results kind ``translation``): the model's paired scores, the
    best simple baseline's, and the unpaired protocol's (docs/translation.md). Keys start with
    ``tr_`` (the SR table owns ``psnr_y``); directions are the results' keys'."""
    def col(key, label, digits, path, text, direction=None, percent=False):
        return MetricSpec(f"tr_{key}", label, "translation", digits, path_entry(path), text,
                          percent=percent, direction_key=direction)

    return [
        col("mae_y", "MAE-Y", 2, "mae_y", "Mean absolute error on luminance (0..255) against "
            "the paired targets.", "mae_y"),
        col("psnr_y", "PSNR-Y (dB)", 2, "psnr_y", "PSNR on luminance against the paired "
            "targets.", "psnr_y"),
        col("ssim_y", "SSIM-Y", 4, "ssim_y", "SSIM on luminance against the paired targets.",
            "ssim_y"),
        col("psnr_y_condition", "Input PSNR-Y (dB)", 2, "psnr_y_condition", "Baseline: the "
            "input image itself against the targets."),
        col("psnr_y_bicubic", "Bicubic PSNR-Y (dB)", 2, "psnr_y_bicubic", "Baseline: the "
            "bicubic (lowres) input against the targets."),
        col("psnr_y_mean_image", "Mean-image PSNR-Y (dB)", 2, "psnr_y_mean_image", "Baseline: "
            "the mean training target against the targets."),
        col("fid", "FID", 2, "fid", "FID of the outputs against the real targets (paired) or "
            "the target domain's test images (unpaired).", "fid"),
        col("fid_identity", "FID of the inputs", 2, "fid_identity", "Baseline: the "
            "untranslated inputs against the target domain."),
        col("target_class_rate", "Target-class rate", 3, "target_class_rate", "Share of "
            "outputs the real-data classifier puts in the target class.", "target_class_rate",
            percent=True),
        col("content_ssim_y", "Content SSIM-Y", 4, "content_ssim_y", "SSIM on luminance of "
            "each input and its output.", "content_ssim_y"),
        col("cycle_mae_y", "Cycle MAE-Y", 2, "cycle_mae_y", "MAE on luminance between each "
            "input and its reconstruction.", "cycle_mae_y"),
    ]


# ---------------------------------------------------------------- the registry

METRICS: dict[str, MetricSpec] = {m.key: m for m in [
    MetricSpec("fid", "FID", "fidelity", 2, path_entry("fid"),
               "Fréchet Inception Distance between fake and real features."),
    MetricSpec("fid_floor", "FID floor (real↔real)", "fidelity", 2,
               path_entry("real_floor", "fid_halves"),
               "FID between two disjoint halves of the real reference: what a perfect generator "
               "would score at this sample size. Read every FID against it."),
    MetricSpec("intra_fid", "intra-FID", "fidelity", 2, path_entry("intra_fid"),
               "Mean over classes of the FID between fake and real images of the same class."),
    MetricSpec("kid", "KID", "fidelity", 4, path_entry("kid"),
               "Kernel Inception Distance (unbiased, polynomial kernel)."),
    MetricSpec("is", "IS", "fidelity", 2, path_entry("is"),
               "Inception Score (10 splits)."),
    MetricSpec("precision", "Precision", "fidelity", 3, path_entry("precision"),
               "Fraction of fake images inside the real manifold (k-NN balls, Naeem et al. 2020)."),
    MetricSpec("recall", "Recall", "fidelity", 3, path_entry("recall"),
               "Fraction of real images inside the fake manifold."),
    MetricSpec("density", "Density", "fidelity", 3, path_entry("density"),
               "Expected number of real k-NN balls containing a fake image, over k; 1 for "
               "identical distributions, so the value closest to 1 is marked best."),
    MetricSpec("coverage", "Coverage", "fidelity", 3, path_entry("coverage"),
               "Fraction of real images whose k-NN ball contains a fake image."),
    MetricSpec("memorization", "Memorized", "fidelity", 1, memorization_cell,
               "Fraction of fake images closer to a training image than the 1st percentile of "
               "held-out real images' distances to the training set.", percent=True),
    MetricSpec("fd_infinity", "FD∞", "distribution", 2, path_entry("fd_infinity"),
               "Fréchet distance extrapolated to infinitely many images (Chong & Forsyth 2020): "
               "FD on subsets of 15 sizes, a line in 1/n, its value at 1/n = 0."),
    MetricSpec("mmd", "RBF-MMD² ×1000", "distribution", 3, path_entry("mmd"),
               "Unbiased squared MMD with a Gaussian kernel (CMMD-style), bandwidth by the "
               "median heuristic on the real reference, x 1000."),
    MetricSpec("alpha_precision", "α-precision", "distribution", 3,
               path_entry("alpha_precision"),
               "Alaa et al. 2022: 1 - 2 x area between the alpha-precision curve (fakes inside "
               "the real alpha-support) and the diagonal; 1 for a perfect generator."),
    MetricSpec("beta_recall", "β-recall", "distribution", 3, path_entry("beta_recall"),
               "Alaa et al. 2022: the same score for the beta-recall curve (reals covered by "
               "the fakes' beta-support, k-NN rule)."),
    MetricSpec("authenticity", "Authenticity", "distribution", 3, authenticity_cell,
               "Fraction of fakes not closer to their nearest training image than that image's "
               "nearest other training image (Alaa et al. 2022); read it against held-out real "
               "images' value (hover)."),
    MetricSpec("vendi_fake", "Vendi (fake)", "distribution", 2,
               path_entry("vendi_fake"),
               "Vendi score of the synthetic set (cosine kernel): its effective number of "
               "distinct images. Read against the real set's, at equal n."),
    MetricSpec("vendi_real", "Vendi (real)", "distribution", 2,
               path_entry("vendi_real"), "Vendi score of the real reference set."),
    MetricSpec("tstr_acc", "TSTR acc", "utility", 3,
               utility_stat("arms", "tstr", "accuracy"),
               "Accuracy on real test images of a classifier trained on synthetic images only."),
    MetricSpec("trtr_acc", "TRTR acc", "utility", 3,
               utility_stat("arms", "trtr", "accuracy"),
               "Accuracy of the same classifier trained on real training images (reference)."),
    MetricSpec("trtr_auc", "TRTR AUC", "utility", 3,
               utility_stat("arms", "trtr", "auc_macro"),
               "Macro one-vs-rest AUC of the real-trained classifier (reference)."),
    MetricSpec("trtrs_acc", "TRTR+S acc", "utility", 3,
               utility_stat("arms", "trtr_s", "accuracy"),
               "Accuracy when training on real plus synthetic images."),
    MetricSpec("gain_acc", "Augmentation gain", "utility", 3,
               utility_stat("gain", "accuracy", bounds=(-1.0, 1.0)),
               "TRTR+S accuracy minus TRTR accuracy.", signed=True),
    MetricSpec("tstr_ratio", "TSTR / TRTR", "utility", 2,
               utility_stat("tstr_over_trtr", "accuracy", bounds=(0.0, float("inf"))),
               "TSTR accuracy as a fraction of TRTR accuracy."),
    MetricSpec("class_fidelity", "Class fidelity", "utility", 3,
               utility_stat("arms", "class_fidelity", "accuracy"),
               "Accuracy of the real-trained classifier on labelled synthetic images."),
    MetricSpec("psnr_y", "PSNR-Y (dB)", "sr", 2, path_entry("psnr_y"),
               "PSNR on the luminance channel of the super-resolved images."),
    MetricSpec("ssim_y", "SSIM-Y", "sr", 4, path_entry("ssim_y"),
               "SSIM on the luminance channel of the super-resolved images."),
    MetricSpec("psnr_y_bicubic", "Bicubic PSNR-Y (dB)", "sr", 2,
               path_entry("psnr_y_bicubic"), "PSNR-Y of bicubic upscaling of the same inputs."),
    MetricSpec("ssim_y_bicubic", "Bicubic SSIM-Y", "sr", 4,
               path_entry("ssim_y_bicubic"), "SSIM-Y of bicubic upscaling of the same inputs."),
    MetricSpec("sr_fid", "FID (SR vs HR)", "sr", 2, path_entry("fid"),
               "FID of the super-resolved images against the real high-resolution images.",
               direction_key="fid"),
    # --protocol cmmd | chexgenbench | dgm-eval (docs/evaluation.md, "Encoders you bring")
    MetricSpec("cmmd", "CMMD", "protocols", 3, path_entry("cmmd"),
               "CMMD as google-research/cmmd computes it: biased Gaussian-kernel MMD x 1000, "
               "sigma 10, unit-norm embeddings (CLIP ViT-L/14-336 in the cmmd-clip space)."),
    MetricSpec("cxgb_fid", "FID (CheXGenBench)", "protocols", 3,
               path_entry("chexgenbench", "fid"),
               "FID as CheXGenBench's fid.py computes it (torchmetrics 1.7.1), in the space of "
               "the run (RAD-DINO for --protocol chexgenbench).", direction_key="fid"),
    MetricSpec("cxgb_kid", "KID (CheXGenBench)", "protocols", 4,
               path_entry("chexgenbench", "kid"),
               "KID as CheXGenBench computes it: subset size min(n_real, n_fake), 100 subsets.",
               direction_key="kid"),
    *[MetricSpec(f"cxgb_{k}", f"{k.capitalize()} (CheXGenBench)", "protocols", 3,
                 path_entry("chexgenbench", k), f"{k.capitalize()} with k = 5 (prdc 0.2), as "
                 "CheXGenBench computes it.", direction_key=k)
      for k in ("precision", "recall", "density", "coverage")],
    # --protocol dgm-eval (metrics.dgm_eval)
    MetricSpec("dgm_fd", "FD (dgm-eval)", "protocols", 3, path_entry("dgm_eval", "fd"),
               "FD as dgm-eval computes it, in the space of the run (DINOv2 ViT-L/14 for "
               "--protocol dgm-eval).", direction_key="fid"),
    MetricSpec("dgm_fd_infinity", "FD∞ (dgm-eval)", "protocols", 3,
               path_entry("dgm_eval", "fd_infinity"),
               "dgm-eval's FD-infinity: 15 fake-set sizes, the whole real set, value at 1/N = "
               "0.", direction_key="fd_infinity"),
    MetricSpec("dgm_kd", "KD (dgm-eval)", "protocols", 4, path_entry("dgm_eval", "kd"),
               "dgm-eval's KD: 100 subsets of min(1000, n) images, cubic polynomial kernel.",
               direction_key="kid"),
    *[MetricSpec(f"dgm_{k}", f"{k.capitalize()} (dgm-eval)", "protocols", 3,
                 path_entry("dgm_eval", k), f"{k.capitalize()} with k = 5 on dgm-eval's "
                 "subsample (at most 10,000 images per set).", direction_key=k)
      for k in ("precision", "recall", "density", "coverage")],
    MetricSpec("dgm_vendi", "Vendi (dgm-eval)", "protocols", 2, path_entry("dgm_eval", "vendi"),
               "dgm-eval's mean Vendi score per class of the generated set (linear kernel on "
               "L2-normalised features); diversity, not ranked.", direction_key="vendi_fake"),
    *_translation_columns(),
]}

# Which metric picks a run's "best" epoch by default, per results kind.
DEFAULT_SELECTION = {"generation": ("fid", "kid", "intra_fid"),
                     "super-resolution": ("psnr_y", "ssim_y"),
                     "translation": ("psnr_y", "fid")}


def metrics_for_table(table: str) -> list[MetricSpec]:
    return [m for m in METRICS.values() if m.table == table]


def tables_for_kind(kind: str) -> list[str]:
    if kind == "translation":
        return ["translation"]
    return ["sr"] if kind == "super-resolution" else \
        ["fidelity", "distribution", "protocols", "utility"]


def get_metric(key: str) -> MetricSpec:
    try:
        return METRICS[key]
    except KeyError:
        from medsyn.errors import ConfigError

        choices = ", ".join(k for k, m in METRICS.items() if m.ranked)
        raise ConfigError(f"unknown metric {key!r} for epoch selection; choose one of: "
                          f"{choices}") from None


def mark_best(cells: list[Cell | None], spec: MetricSpec) -> None:
    """Set ``best`` on the cells with the best available value (ties all marked).

    Nothing is marked when fewer than two cells have a value, or when every value is the same
    (four runs all at recall 0.000): a lone number or a tie of all is not a winner.
    """
    if not spec.ranked:
        return
    ranked = [(spec.rank_key(c.value), c) for c in cells if c is not None and c.available]
    if len(ranked) < 2:
        return
    best = min(k for k, _ in ranked)
    is_best = [math.isclose(k, best, rel_tol=1e-12, abs_tol=1e-12) for k, _ in ranked]
    if all(is_best):
        return
    for flag, (_, cell) in zip(is_best, ranked, strict=True):
        cell.best = flag
