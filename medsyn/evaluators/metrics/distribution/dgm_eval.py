"""dgm-eval's numbers (Stein et al. 2023, layer6ai-labs/dgm-eval at 74c79f7), computed with
its conventions on the features of the run (DINOv2 ViT-L/14 in the ``dinov2:vitl14`` space of
``--protocol dgm-eval``). ``dgm_eval/__main__.py`` ``compute_scores``, metric by metric:

- FD (``metrics/fd.py`` ``compute_FD_with_reps``): ``np.mean``, ``np.cov(rowvar=False)``,
  ``scipy.linalg.sqrtm(S_r S_f)``; medsyn's FID formula (float64) gives the same value.
- FD-infinity (``compute_FD_infinity``): 15 fake-set sizes
  ``linspace(min(5000, max(n_f // 10, 2)), n_f, 15).astype(int32)``, each a draw of that many
  fake features without replacement, FD against the *whole* real set, a least-squares line in
  ``1 / N``, its value at 0 (sklearn ``LinearRegression``, i.e. the same fit as numpy's).
- KD (``metrics/mmd.py`` ``compute_mmd``): 100 subsets of ``min(1000, n_r, n_f)`` rows of each
  set (``np.random.choice(..., replace=False)``, the real subset drawn first), the unbiased
  MMD^2 with the polynomial kernel ``(x.y / d + 1)^3`` (sklearn ``polynomial_kernel``); the mean
  (``kd_value``) and the standard deviation (``kd_variance``, ``np.std``) over the subsets.
- precision / recall / density / coverage (``metrics/prdc.py``, clovaai's prdc): ``nearest_k``
  5 on ``min(10000, n_r, n_f)`` rows of each set (``np.random.choice``, real first).
- Vendi (``metrics/vendi.py``): ``compute_per_class_vendi_scores`` on the generated set: per
  class, rows L2-normalised, linear kernel, ``exp`` of the Shannon entropy of the eigenvalues
  of ``K / n`` (q = 1); dgm-eval reports their mean ("mean vendi per class"). medsyn's classes
  are the fake labels of the run, one class when it has none.

Features are float64, as dgm-eval's ``representations.py`` keeps them.

Draws: dgm-eval draws KD's and PRDC's subsets from numpy's global generator, seeded with
``--seed`` 13579 only when a dataloader subsamples a folder (then consumed by it), and
FD-infinity's from an unseeded ``default_rng()``. medsyn draws KD's subsets, then PRDC's, each
from a fresh ``RandomState(13579)`` (``np.random.seed(13579)`` before each, as
bench/encoder_reference/make_reference.py runs dgm-eval's code, whose values the tests
reproduce), and FD-infinity's from ``default_rng(13579)``, so its values are reproducible. KD
and PRDC do not depend on the draws when both sets have the same size n (n <= 1000 for KD,
n <= 10000 for PRDC): every subset is then the whole set in another order.
"""

from __future__ import annotations

import numpy as np
import torch

from medsyn.evaluators.metrics import stats
from medsyn.evaluators.metrics.context import EvalContext, entry
from medsyn.evaluators.metrics.distribution.fd_infinity import extrapolate_to_infinity
from medsyn.evaluators.metrics.distribution.vendi import vendi_score

SOURCE = ("dgm-eval dgm_eval/__main__.py compute_scores and metrics/{fd,mmd,prdc,vendi}.py "
          "(layer6ai-labs/dgm-eval@74c79f7)")
SEED = 13579
NEAREST_K = 5
PRDC_REDUCED_N = 10000
KD_SUBSETS = 100
KD_SUBSET_SIZE = 1000
FD_INF_POINTS = 15


def fd(real, fake) -> float:
    """FD (medsyn's FID formula, equal to dgm-eval's ``compute_FD_with_reps``)."""
    return stats.fid_value(real, fake)


def fd_infinity(real, fake, rng: np.random.Generator, points: int = FD_INF_POINTS) -> dict:
    """dgm-eval's ``compute_FD_infinity``: the fake set subsampled, the real set whole."""
    fake = np.asarray(fake)
    n = len(fake)
    sizes = np.linspace(min(5000, max(n // 10, 2)), n, points).astype("int32")
    fds = [fd(real, rng.choice(fake, int(size), replace=False)) for size in sizes]
    line = extrapolate_to_infinity(sizes, fds)
    return {"value": line["intercept"], "sizes_fake": sizes.tolist(),
            "fd_at_sizes": [round(float(v), 6) for v in fds], "r2": line["r2"]}


def polynomial_mmd(x: np.ndarray, y: np.ndarray) -> float:
    """dgm-eval's ``compute_polynomial_mmd``: unbiased MMD^2, kernel ``(x.y / d + 1)^3``."""
    from sklearn.metrics.pairwise import polynomial_kernel

    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    k_xx = polynomial_kernel(x, degree=3, coef0=1)
    k_yy = polynomial_kernel(y, degree=3, coef0=1)
    k_xy = polynomial_kernel(x, y, degree=3, coef0=1)
    m = k_xx.shape[0]
    within = (k_xx.sum() - np.trace(k_xx)) + (k_yy.sum() - np.trace(k_yy))
    return float(within / (m * (m - 1)) - 2 * k_xy.sum() / (m * m))


def kd(real, fake, draws: np.random.RandomState, subsets: int = KD_SUBSETS,
       subset_size: int = KD_SUBSET_SIZE) -> tuple[float, float, int]:
    """``(kd_value, kd_variance, subset size)`` as dgm-eval's ``compute_mmd``."""
    real, fake = np.asarray(real), np.asarray(fake)
    size = min(subset_size, len(real), len(fake))
    values = np.zeros(subsets)
    for i in range(subsets):
        r = real[draws.choice(len(real), size, replace=False)]
        f = fake[draws.choice(len(fake), size, replace=False)]
        values[i] = polynomial_mmd(r, f)
    return float(values.mean()), float(values.std()), size


def prdc(real, fake, draws: np.random.RandomState, k: int = NEAREST_K,
         reduced_n: int = PRDC_REDUCED_N) -> tuple[dict, int]:
    """dgm-eval's precision / recall / density / coverage on its subsample of each set."""
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    n = min(reduced_n, len(real), len(fake))
    r = real[draws.choice(len(real), n, replace=False)]
    f = fake[draws.choice(len(fake), min(len(fake), n), replace=False)]
    values, _ = stats.prdc(r, f, k=k)
    return values, n


def mean_vendi_per_class(fake, labels=None) -> tuple[float, int]:
    """dgm-eval's "mean vendi per class" (one class when ``labels`` is None)."""
    fake = np.asarray(fake, np.float64)
    labels = np.zeros(len(fake), int) if labels is None else np.asarray(labels)
    classes = np.unique(labels)
    scores = [vendi_score(torch.as_tensor(fake[labels == c])) for c in classes]
    return float(np.mean(scores)), len(classes)


def dgm_eval_values(real, fake, fake_labels=None, seed: int = SEED) -> dict:
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    inf = fd_infinity(real, fake, np.random.default_rng(seed))
    # np.random.choice of dgm-eval, its global generator seeded before each family
    kd_value, kd_std, kd_size = kd(real, fake, np.random.RandomState(seed))
    prdc_values, prdc_n = prdc(real, fake, np.random.RandomState(seed))
    vendi, n_classes = mean_vendi_per_class(fake, fake_labels)
    return {"fd": fd(real, fake), "fd_infinity": inf, "kd": kd_value, "kd_std": kd_std,
            "kd_subset_size": kd_size, "prdc_n": prdc_n, **prdc_values, "vendi": vendi,
            "vendi_classes": n_classes}


def metric_dgm_eval(ctx: EvalContext) -> dict:
    real, fake = ctx.real.features, ctx.fake.features
    v = dgm_eval_values(real, fake, ctx.fake_labels)
    name, n_r, n_f = ctx.extractor.name, len(real), len(fake)
    inf = v["fd_infinity"]
    return {"dgm_eval": {
        "protocol": "dgm-eval", "source": SOURCE, "extractor": name,
        "fd": entry(v["fd"], [], n_r, n_f, name),
        "fd_infinity": entry(inf["value"], [], n_r, n_f, name, points=FD_INF_POINTS,
                             sizes_fake=inf["sizes_fake"], fd_at_sizes=inf["fd_at_sizes"],
                             r2=inf["r2"], draws=f"numpy default_rng({SEED})"),
        "kd": entry(v["kd"], [], n_r, n_f, name, std=v["kd_std"],
                    subset_size=v["kd_subset_size"], subsets=KD_SUBSETS,
                    draws=f"numpy RandomState({SEED})"),
        **{k: entry(v[k], [], n_r, n_f, name, k=NEAREST_K, reduced_n=v["prdc_n"],
                    draws=f"numpy RandomState({SEED})")
           for k in ("precision", "recall", "density", "coverage")},
        "vendi": entry(v["vendi"], [], n_r, n_f, name, classes=v["vendi_classes"],
                       kernel="linear on L2-normalised features, q = 1, mean over classes"),
        "comparable": ("protocol-comparable with dgm-eval's fd, fd_infinity_value, kd_value, "
                       "precision / recall / density / coverage and mean vendi per class in "
                       "the dinov2:vitl14 space; row-comparable only on the same real set and n"),
        "deviation": ("seeded draws (dgm-eval's depend on its global numpy state and an "
                      "unseeded generator for FD-infinity); the same values whenever the two "
                      "sets have equal size n <= 1000 (KD) / n <= 10000 (PRDC)"),
    }}
