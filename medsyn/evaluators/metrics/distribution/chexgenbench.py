"""CheXGenBench's image-quality numbers (Raman1121/CheXGenBench ``metrics/fid.py`` at
9a201c1, torchmetrics 1.7.1, prdc 0.2), computed as that code computes them on its features.

- FID: torchmetrics ``FrechetInceptionDistance``: float64 sums, covariance
  ``(sum x x^T - n mu mu^T) / (n - 1)``, ``tr sqrt(S_r S_f)`` as the real part of the summed
  square roots of the eigenvalues of ``S_r @ S_f``, the result cast to float32 (the CSV rounds
  it to 3 decimals: ``fid_csv``).
- KID: torchmetrics ``KernelInceptionDistance(subset_size=min(n_fake, n_real))``: 100 subsets,
  each ``randperm(n_real)`` then ``randperm(n_fake)`` (the first ``subset_size`` of each) from a
  torch generator seeded 42 (CheXGenBench's ``seed_everything(42)``; its own draws cannot be
  recreated, as model loading consumes the global RNG first: with equal set sizes, the normal
  case, every subset is a permutation and the value does not depend on the draws), kernel
  ``(x.y / d + 1)^3`` in float32, unbiased within-set terms; the mean is reported.
- precision / recall / density / coverage: ``prdc.compute_prdc(real, fake, nearest_k=5)``.

In the ``rad-dino`` space these are CheXGenBench's FID (RadDino), KID (RadDino) and PRDC.
Known deviation: CheXGenBench's "memory-saving" script averages the FIDs of 4 shards; this is
the full-set value. A published row is comparable only for the same real set (MIMIC-CXR test
prompts, duplicates dropped).
"""

from __future__ import annotations

import numpy as np
import torch

from medsyn.evaluators.metrics import stats
from medsyn.evaluators.metrics.context import EvalContext, entry

SOURCE = ("CheXGenBench metrics/fid.py (Raman1121/CheXGenBench@9a201c11), torchmetrics 1.7.1 "
          "FrechetInceptionDistance / KernelInceptionDistance, prdc 0.2")
KID_SUBSETS = 100
KID_SEED = 42
PRDC_K = 5


def torchmetrics_fid(real, fake) -> float:
    """torchmetrics 1.7.1 ``FrechetInceptionDistance.compute`` on float features."""
    def moments(f):
        x = torch.as_tensor(np.asarray(f)).double()
        n = x.shape[0]
        mean = (x.sum(0) / n).unsqueeze(0)
        cov = (x.T @ x - n * mean.T @ mean) / (n - 1)
        return mean.squeeze(0), cov

    mu1, s1 = moments(real)
    mu2, s2 = moments(fake)
    a = (mu1 - mu2).square().sum(dim=-1)
    b = s1.trace() + s2.trace()
    c = torch.linalg.eigvals(s1 @ s2).sqrt().real.sum(dim=-1)
    return float((a + b - 2 * c).to(torch.float32))


def _poly_mmd(f_real: torch.Tensor, f_fake: torch.Tensor) -> torch.Tensor:
    gamma = 1.0 / f_real.shape[1]
    k_xx = (f_real @ f_real.T * gamma + 1.0) ** 3
    k_yy = (f_fake @ f_fake.T * gamma + 1.0) ** 3
    k_xy = (f_real @ f_fake.T * gamma + 1.0) ** 3
    m = k_xx.shape[0]
    kt_xx = (k_xx.sum(dim=-1) - torch.diag(k_xx)).sum()
    kt_yy = (k_yy.sum(dim=-1) - torch.diag(k_yy)).sum()
    value = (kt_xx + kt_yy) / (m * (m - 1))
    return value - 2 * k_xy.sum(dim=0).sum() / (m ** 2)


def torchmetrics_kid(real, fake, subset_size: int | None = None, subsets: int = KID_SUBSETS,
                     seed: int = KID_SEED) -> tuple[float, float]:
    """torchmetrics 1.7.1 ``KernelInceptionDistance.compute``: (mean, std) over the subsets."""
    x = torch.as_tensor(np.asarray(real, dtype=np.float32))
    y = torch.as_tensor(np.asarray(fake, dtype=np.float32))
    size = min(len(x), len(y)) if subset_size is None else subset_size
    g = torch.Generator().manual_seed(seed)
    scores = []
    for _ in range(subsets):
        a = x[torch.randperm(len(x), generator=g)[:size]]
        b = y[torch.randperm(len(y), generator=g)[:size]]
        scores.append(_poly_mmd(a, b))
    s = torch.stack(scores)
    return float(s.mean()), float(s.std(unbiased=False))


def chexgenbench_values(real, fake) -> dict:
    """FID, KID (mean, std, subset size) and PRDC as CheXGenBench's fid.py reports them."""
    fid = torchmetrics_fid(real, fake)
    kid, kid_std = torchmetrics_kid(real, fake)
    prdc, _ = stats.prdc(np.asarray(real, np.float32), np.asarray(fake, np.float32), k=PRDC_K)
    return {"fid": fid, "fid_csv": round(fid, 3), "kid": kid, "kid_std": kid_std,
            "kid_subset_size": min(len(real), len(fake)), **prdc}


def metric_chexgenbench(ctx: EvalContext) -> dict:
    real, fake = ctx.real.features, ctx.fake.features
    v = chexgenbench_values(real, fake)
    name, n_r, n_f = ctx.extractor.name, len(real), len(fake)
    return {"chexgenbench": {
        "protocol": "chexgenbench", "source": SOURCE, "extractor": name,
        "fid": entry(v["fid"], [], n_r, n_f, name, csv=v["fid_csv"]),
        "kid": entry(v["kid"], [], n_r, n_f, name, std=v["kid_std"],
                     subset_size=v["kid_subset_size"], subsets=KID_SUBSETS,
                     draws=f"torch.Generator seeded {KID_SEED}"),
        **{k: entry(v[k], [], n_r, n_f, name, k=PRDC_K)
           for k in ("precision", "recall", "density", "coverage")},
        "comparable": ("protocol-comparable with CheXGenBench's FID (RadDino), KID (RadDino) "
                       "and PRDC in the rad-dino space; row-comparable only on its real set "
                       "(MIMIC-CXR test prompts) and its n"),
        "deviation": "full-set values; CheXGenBench's memory-saving script averages 4 shards",
    }}
