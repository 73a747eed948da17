"""The Vendi score (Friedman & Dieng 2023, "The Vendi Score: A Diversity Evaluation Metric for
Machine Learning", TMLR): reference-free diversity of one set.

``VS = exp(-sum_i lambda_i log lambda_i)``, the lambda_i the eigenvalues of ``K / n`` for a
similarity kernel K with ``K_ii = 1``: the exponential of the Shannon entropy of the kernel's
spectrum, read as the "effective number of distinct items" (1 for n identical items, n for n
mutually dissimilar ones). medsyn's kernel is the cosine similarity of the feature vectors
(``K = X X' / (|x_i| |x_j|)``), the authors' default for embeddings (``vendi_score``'s
``embedding_vendi_score``, ``normalize=True``); features are not centred. With unit-norm rows X,
the non-zero eigenvalues of ``X X' / n`` are those of ``X' X / n``, so the smaller of the two
matrices is decomposed.

The score grows with n until it saturates, so compare sets of equal size: the entry records n.
"""

from __future__ import annotations

import numpy as np
import torch

from medsyn.evaluators.metrics import stats
from medsyn.evaluators.metrics.context import EvalContext, entry, unavailable


def entropy_exp(eigenvalues: torch.Tensor) -> float:
    lam = eigenvalues.clamp_min(0)
    lam = lam / lam.sum()
    nz = lam[lam > 0]
    return float(torch.exp(-(nz * nz.log()).sum()))


def vendi_score(features, weights=None, device=None) -> float:
    """Vendi score of the rows of ``features`` (cosine-similarity kernel).

    ``weights``: multiplicities of the rows (a bootstrap resample); ``None`` = each once. A row
    of zeros has no direction and is refused."""
    x = stats._as_tensor(features, device)
    norms = x.norm(dim=1, keepdim=True)
    if bool((norms == 0).any()):
        raise ValueError("a feature vector is all zeros: its cosine similarity is undefined")
    x = x / norms
    if weights is not None:
        w = stats._as_tensor(np.asarray(weights), x.device)
        keep = w > 0
        x = x[keep] * w[keep].sqrt()[:, None]
    if x.shape[0] <= x.shape[1]:
        eig = torch.linalg.eigvalsh(x @ x.T)
    else:
        eig = torch.linalg.eigvalsh(x.T @ x)
    return entropy_exp(eig)


def vendi_resamples(features, n_bootstrap: int, rng: np.random.Generator,
                    device=None) -> list[float]:
    n = len(features)
    return [vendi_score(features, stats.bootstrap_counts(rng, n), device)
            for _ in range(n_bootstrap)]


def _set_entry(ctx: EvalContext, features, which: str) -> dict:
    name = ctx.extractor.name
    n = len(features)
    sizes = {"n_real": n} if which == "real" else {"n_fake": n}
    if n < 1:
        return unavailable(f"no {which} images", extractor=name, set=which, **sizes)
    try:
        value = vendi_score(features, device=ctx.device)
    except ValueError as err:
        return unavailable(f"{err} ({which} set)", extractor=name, set=which, **sizes)
    n_boot = ctx.options.bootstrap_for_costly()
    res = vendi_resamples(features, n_boot, ctx.rng(f"vendi/{which}"), ctx.device)
    out = entry(value, res, n if which == "real" else None, n if which == "fake" else None,
                name, lower=1.0, upper=float(n), set=which,
                kernel="cosine similarity of the feature vectors (not centred)",
                n_bootstrap=n_boot)
    out.pop("n_fake" if which == "real" else "n_real")
    return out


def metric_vendi(ctx: EvalContext) -> dict:
    real, fake = ctx.real.features, ctx.fake.features
    out = {"vendi_real": _set_entry(ctx, real, "real"),
           "vendi_fake": _set_entry(ctx, fake, "fake")}
    if len(real) != len(fake):
        note = (f"the real ({len(real)}) and fake ({len(fake)}) sets differ in size; the Vendi "
                "score grows with n, so compare them at equal n")
        for block in out.values():
            if block.get("value") is not None:
                block["note"] = note
    return out
