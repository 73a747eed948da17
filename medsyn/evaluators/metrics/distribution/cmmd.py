"""CMMD (Jayasumana et al. 2024, "Rethinking FID"), computed as its reference code does.

google-research/cmmd ``distance.py`` (4c42994) and its PyTorch port sayakpaul/cmmd-pytorch
``distance.py`` (f7673a9), line for line:

    CMMD = 1000 * ( mean_{i,j} k(x_i, x_j) + mean_{i,j} k(y_i, y_j) - 2 mean_{i,j} k(x_i, y_j) )
    k(a, b) = exp(-|a - b|^2 / (2 * 10^2)),  |a - b|^2 = |a|^2 + |b|^2 - 2 a.b (not clamped)

over every pair *including* the diagonals (the biased V-statistic: >= 0, exactly 0 for a set
against itself), in float32, with x the reference (real) embeddings and y the evaluated ones.
The embeddings are unit-norm CLIP ViT-L/14-336 ``image_embeds`` (the ``cmmd-clip`` space);
this family divides whatever features it is given by their L2 norm, as CMMD's embedding does,
so sigma = 10 means what it means in CMMD. float32 matters: float64 gives values 2e-3 (relative)
away on the reference arrays (docs/encoders_research.md section 3).

It is not medsyn's ``mmd`` family (unbiased, median-heuristic bandwidth, any features); the
two are different estimators and only this one is comparable with published CMMD values.
"""

from __future__ import annotations

import numpy as np
import torch

from medsyn.evaluators.metrics.context import EvalContext, entry

SIGMA = 10.0
SCALE = 1000.0
SOURCE = ("cmmd-pytorch distance.py (sayakpaul/cmmd-pytorch@f7673a9f), = google-research "
          "cmmd/distance.py (4c429948)")


def unit_norm(features) -> np.ndarray:
    x = np.asarray(features, dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def cmmd_value(reference, evaluated, sigma: float = SIGMA, scale: float = SCALE) -> float:
    """CMMD between float32 embeddings ``reference`` [n, d] and ``evaluated`` [m, d], as
    cmmd-pytorch's ``mmd(x, y)`` computes it (no normalisation here)."""
    x = torch.as_tensor(np.asarray(reference, dtype=np.float32))
    y = torch.as_tensor(np.asarray(evaluated, dtype=np.float32))
    x_sq = torch.diag(x @ x.T)
    y_sq = torch.diag(y @ y.T)
    gamma = 1 / (2 * sigma ** 2)
    k_xx = torch.mean(torch.exp(-gamma * (-2 * (x @ x.T) + x_sq[:, None] + x_sq[None, :])))
    k_xy = torch.mean(torch.exp(-gamma * (-2 * (x @ y.T) + x_sq[:, None] + y_sq[None, :])))
    k_yy = torch.mean(torch.exp(-gamma * (-2 * (y @ y.T) + y_sq[:, None] + y_sq[None, :])))
    return float(scale * (k_xx + k_yy - 2 * k_xy))


def metric_cmmd(ctx: EvalContext) -> dict:
    real, fake = ctx.real.features, ctx.fake.features
    value = cmmd_value(unit_norm(real), unit_norm(fake))
    return {"cmmd": entry(value, [], len(real), len(fake), ctx.extractor.name,
                          sigma=SIGMA, scale=SCALE, protocol="cmmd",
                          estimator="biased V-statistic (diagonals included), float32",
                          unit_norm=True, reference="real", source=SOURCE,
                          comparable="with published CMMD values only in the cmmd-clip space "
                                     "(CLIP ViT-L/14-336)")}
