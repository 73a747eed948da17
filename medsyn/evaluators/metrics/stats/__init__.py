"""The mathematics of the metrics, on feature matrices, with bootstrap intervals.

Everything here works on features already extracted (``[N, D]`` arrays or tensors): a
bootstrap never re-runs a network. Conventions, stated once:

- FID point value: torch-fidelity's own ``fid_features_to_statistics`` and
  ``fid_statistics_to_metric`` (TTUR's formula), so medsyn's FID equals torch-fidelity's.
- FID bootstrap: the same quantity computed from Gram matrices (see :func:`_fid_gram`), which
  turns each resample into one symmetric eigenproblem of at most ``min(n_1, n_2)`` rows.
- KID: torch-fidelity's convention (polynomial kernel ``(x.y / d + 1) ** 3``, unbiased MMD^2,
  ``subsets`` random subsets of ``subset_size`` drawn with ``numpy.random.RandomState(seed)``),
  computed from one precomputed kernel matrix instead of re-computing it for each subset.
- Precision / recall / density / coverage: Naeem et al. 2020 (``prdc`` package), k nearest
  neighbours, strict ``<`` against the k-NN radius.
- Bootstrap intervals: ``B`` resamples with replacement of both sets; the interval is the
  2.5 / 97.5 percentiles of the resampled values re-centred on the point estimate
  (``value + q - mean(resamples)``). Resampling duplicates images, and FID / KID / k-NN
  metrics are biased in the number of distinct images, so raw percentiles sit above the
  estimate; re-centring keeps the bootstrap's spread and drops that artefact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

CI_METHOD = ("bootstrap percentile interval re-centred on the estimate "
             "(value + q[2.5|97.5] - mean of resamples)")
# Above this many cells (n_1 * n_2) the Gram matrices get large; the d x d path is used instead.
_GRAM_MAX_CELLS = 40_000_000


def _as_tensor(x, device=None, dtype=torch.float64) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    return x.to(device=device, dtype=dtype)


def bootstrap_counts(rng: np.random.Generator, n: int) -> np.ndarray:
    """How often each of ``n`` items is drawn in one resample with replacement."""
    return np.bincount(rng.integers(0, n, size=n), minlength=n)


def recentred_interval(value: float, resamples, lower: float | None = None,
                       upper: float | None = None) -> list[float] | None:
    """95 % interval: the bootstrap percentiles shifted so their mean sits on ``value``."""
    vals = np.asarray([v for v in resamples if v is not None and np.isfinite(v)], dtype=float)
    if value is None or not np.isfinite(value) or len(vals) < 2:
        return None
    shift = value - vals.mean()
    lo, hi = np.percentile(vals, [2.5, 97.5]) + shift
    if lower is not None:
        lo, hi = max(lo, lower), max(hi, lower)
    if upper is not None:
        lo, hi = min(lo, upper), min(hi, upper)
    return [float(lo), float(hi)]


# ---------------------------------------------------------------- FID


def fid_value(features_1, features_2) -> float:
    """FID exactly as torch-fidelity computes it (float64 covariances, eigenvalues of S1 S2)."""
    from threadpoolctl import threadpool_limits
    from torch_fidelity.metric_fid import (
        KEY_METRIC_FID,
        fid_features_to_statistics,
        fid_statistics_to_metric,
    )

    from medsyn.device import extraction_threads

    f1 = torch.as_tensor(features_1, dtype=torch.float32).cpu()
    f2 = torch.as_tensor(features_2, dtype=torch.float32).cpu()
    s1, s2 = fid_features_to_statistics(f1), fid_features_to_statistics(f2)
    # the metric phase runs on one thread (small ops), but this 2048 x 2048 non-symmetric
    # eigenproblem is seconds long and gains from every core: 3.7 s -> 2.9 s on 2 cores
    with threadpool_limits(limits=extraction_threads()):
        return float(fid_statistics_to_metric(s1, s2, verbose=False)[KEY_METRIC_FID])


@dataclass
class _Grams:
    """Linear-kernel Gram matrices of two centred feature sets (shared by FID and KID)."""

    kxx: torch.Tensor
    kyy: torch.Tensor
    kxy: torch.Tensor
    dim: int


def grams(features_1, features_2, device=None) -> _Grams:
    x = _as_tensor(features_1, device)
    y = _as_tensor(features_2, device)
    # FID and the differences KID takes are translation invariant only for FID, so the KID
    # kernel uses the raw features: centre only a copy for the FID path.
    return _Grams(kxx=x @ x.T, kyy=y @ y.T, kxy=x @ y.T, dim=x.shape[1])


def _fid_gram(kxx, kyy, kxy, ca, cb) -> float:
    """FID of two count-weighted feature sets from their Gram matrices.

    With A, B the centred, count-weighted feature rows, S1 = A'A / (n1-1), S2 = B'B / (n2-1),
    the non-zero eigenvalues of S1 S2 are the squared singular values of
    M = A B' / sqrt((n1-1)(n2-1)), so tr sqrt(S1 S2) = sum sqrt(eig(M M')), an eigenproblem
    over the distinct items of the smaller set only (about 63 % of a resample).
    """
    n1, n2 = ca.sum(), cb.sum()
    mu_aa = ca @ kxx @ ca / n1**2
    mu_bb = cb @ kyy @ cb / n2**2
    mu_ab = ca @ kxy @ cb / (n1 * n2)
    tr1 = (ca @ torch.diagonal(kxx) - n1 * mu_aa) / (n1 - 1)
    tr2 = (cb @ torch.diagonal(kyy) - n2 * mu_bb) / (n2 - 1)
    scale = torch.sqrt((n1 - 1) * (n2 - 1))
    # only items drawn at least once enter M: a resample or subset leaves the others out
    if (ca > 0).sum() <= (cb > 0).sum():
        rows = torch.nonzero(ca, as_tuple=True)[0]
        cols = torch.nonzero(cb, as_tuple=True)[0]
        g = kxy[rows][:, cols]
        m = g - (g @ cb[cols] / n2)[:, None] - (ca @ kxy[:, cols] / n1)[None, :] + mu_ab
        m = m * ca[rows].sqrt()[:, None] * cb[cols].sqrt()[None, :]
    else:
        rows = torch.nonzero(cb, as_tuple=True)[0]
        cols = torch.nonzero(ca, as_tuple=True)[0]
        g = kxy[cols][:, rows].T
        m = g - (g @ ca[cols] / n1)[:, None] - (kxy[cols] @ cb / n2)[None, :] + mu_ab
        m = m * cb[rows].sqrt()[:, None] * ca[cols].sqrt()[None, :]
    eig = torch.linalg.eigvalsh(m @ m.T).clamp_min(0)
    fid = mu_aa + mu_bb - 2 * mu_ab + tr1 + tr2 - 2 * eig.sqrt().sum() / scale
    return float(fid)


def _fid_cov(x, y, ca, cb) -> float:
    """The same FID through d x d covariances (used when the Gram matrices would be huge)."""
    def stats(f, c):
        n = c.sum()
        mu = c @ f / n
        fc = f - mu
        cov = (fc * c[:, None]).T @ fc / (n - 1)
        return mu, cov

    mu1, s1 = stats(x, ca)
    mu2, s2 = stats(y, cb)
    evals, evecs = torch.linalg.eigh(s1)
    root = (evecs * evals.clamp_min(0).sqrt()) @ evecs.T
    eig = torch.linalg.eigvalsh(root @ s2 @ root).clamp_min(0)
    diff = mu1 - mu2
    return float(diff @ diff + torch.trace(s1) + torch.trace(s2) - 2 * eig.sqrt().sum())


class CountFid:
    """FID of count-weighted multisets of two fixed feature sets (bootstrap resamples, subsets).

    ``fid(ca, cb)``: ``ca[i]`` copies of row i of ``features_1`` against ``cb[j]`` copies of
    row j of ``features_2`` (0 leaves a row out). The Gram path (one eigenproblem over the
    distinct rows of the smaller multiset) is used unless the Gram matrices would be huge or the
    sets are much larger than the feature dimension; then the d x d covariance path.
    """

    def __init__(self, features_1, features_2, device=None, method: str = "auto"):
        x = _as_tensor(features_1, device)
        y = _as_tensor(features_2, device)
        n1, n2, d = x.shape[0], y.shape[0], x.shape[1]
        centre = y.mean(0)
        self.x, self.y = x - centre, y - centre
        self.n1, self.n2 = n1, n2
        if method == "auto":
            use_gram = n1 * n2 <= _GRAM_MAX_CELLS and 0.64 * min(n1, n2) <= d
            method = "gram" if use_gram else "cov"
        self.method = method
        if method == "gram":
            self.kxx, self.kyy = self.x @ self.x.T, self.y @ self.y.T
            self.kxy = self.x @ self.y.T

    def counts(self, c) -> torch.Tensor:
        return _as_tensor(np.asarray(c), self.x.device)

    def __call__(self, ca, cb) -> float:
        ca, cb = self.counts(ca), self.counts(cb)
        if self.method == "gram":
            return _fid_gram(self.kxx, self.kyy, self.kxy, ca, cb)
        return _fid_cov(self.x, self.y, ca, cb)


def fid_resamples(features_1, features_2, n_bootstrap: int, rng: np.random.Generator,
                  device=None, method: str = "auto") -> list[float]:
    """FID of ``n_bootstrap`` resamples (with replacement) of both sets."""
    if n_bootstrap <= 0:
        return []
    fid = CountFid(features_1, features_2, device, method)
    return [fid(bootstrap_counts(rng, fid.n1), bootstrap_counts(rng, fid.n2))
            for _ in range(n_bootstrap)]


def fid_from_grams(features_1, features_2, device=None, method="gram") -> float:
    """FID of the full sets through the bootstrap's code path (for tests and checks)."""
    x = _as_tensor(features_1, device)
    y = _as_tensor(features_2, device)
    centre = y.mean(0)
    x, y = x - centre, y - centre
    ca = torch.ones(x.shape[0], dtype=x.dtype, device=x.device)
    cb = torch.ones(y.shape[0], dtype=y.dtype, device=y.device)
    if method == "gram":
        return _fid_gram(x @ x.T, y @ y.T, x @ y.T, ca, cb)
    return _fid_cov(x, y, ca, cb)


# ---------------------------------------------------------------- KID


def poly_kernel(linear: torch.Tensor, dim: int, degree: int = 3, coef0: float = 1.0):
    """torch-fidelity's KID kernel ``(x.y / d + coef0) ** degree`` from a linear Gram matrix."""
    return (linear / dim + coef0) ** degree


def kid_subset_size(n_1: int, n_2: int, requested: int = 1000) -> tuple[int, str | None]:
    """The subset size actually used, and a note when it had to be reduced."""
    size = min(requested, n_1, n_2)
    if size < requested:
        return size, (f"subset size reduced from {requested} to {size}: only {min(n_1, n_2)} "
                      "images in the smaller set")
    return size, None


def kid_subsets_value(kxx, kyy, kxy, subset_size: int, subsets: int = 100,
                      seed: int = 0) -> tuple[float, float]:
    """Mean and std of the unbiased MMD^2 over random subsets (torch-fidelity's procedure).

    ``kxx``, ``kyy``, ``kxy`` are polynomial-kernel matrices of the full sets; subsets index
    them. The subsets are the ones torch-fidelity draws with the same seed.
    """
    n1, n2 = kxx.shape[0], kyy.shape[0]
    m = subset_size
    rs = np.random.RandomState(seed)
    ca = np.zeros((subsets, n1))
    cb = np.zeros((subsets, n2))
    for i in range(subsets):
        ca[i, rs.choice(n1, m, replace=False)] = 1
        cb[i, rs.choice(n2, m, replace=False)] = 1
    # 0/1 membership vectors turn each subset's kernel sums into quadratic forms
    ca = torch.from_numpy(ca).to(kxx.device, kxx.dtype)
    cb = torch.from_numpy(cb).to(kxx.device, kxx.dtype)
    t_aa = ((ca @ kxx) * ca).sum(1) - ca @ torch.diagonal(kxx)
    t_bb = ((cb @ kyy) * cb).sum(1) - cb @ torch.diagonal(kyy)
    s_ab = ((ca @ kxy) * cb).sum(1)
    vals = ((t_aa + t_bb) / (m * (m - 1)) - 2 * s_ab / (m * m)).cpu().numpy()
    return float(vals.mean()), float(vals.std())


def kid_resamples(kxx, kyy, kxy, n_bootstrap: int, rng: np.random.Generator) -> list[float]:
    """Unbiased MMD^2 over the whole of each resample (all pairs of distinct positions).

    The count vectors make this a few matrix products for all resamples at once.
    """
    if n_bootstrap <= 0:
        return []
    n1, n2 = kxx.shape[0], kyy.shape[0]
    dev = kxx.device
    ca = torch.from_numpy(np.stack([bootstrap_counts(rng, n1) for _ in range(n_bootstrap)]))
    cb = torch.from_numpy(np.stack([bootstrap_counts(rng, n2) for _ in range(n_bootstrap)]))
    ca, cb = ca.to(dev, kxx.dtype), cb.to(dev, kxx.dtype)
    s_aa = ((ca @ kxx) * ca).sum(1) - ca @ torch.diagonal(kxx)
    s_bb = ((cb @ kyy) * cb).sum(1) - cb @ torch.diagonal(kyy)
    s_ab = ((ca @ kxy) * cb).sum(1)
    mmd = s_aa / (n1 * (n1 - 1)) + s_bb / (n2 * (n2 - 1)) - 2 * s_ab / (n1 * n2)
    return mmd.cpu().tolist()


# ---------------------------------------------------------------- Inception Score


def inception_score(logits, splits: int = 10, seed: int = 0) -> tuple[float, float]:
    """torch-fidelity's Inception Score (mean and std over ``splits``, shuffled with ``seed``)."""
    from torch_fidelity.metric_isc import (
        KEY_METRIC_ISC_MEAN,
        KEY_METRIC_ISC_STD,
        isc_features_to_metric,
    )

    out = isc_features_to_metric(torch.as_tensor(logits, dtype=torch.float32).cpu(),
                                 splits=splits, shuffle=True, rng_seed=seed)
    return float(out[KEY_METRIC_ISC_MEAN]), float(out[KEY_METRIC_ISC_STD])


def inception_score_resamples(logits, splits: int, n_bootstrap: int,
                              rng: np.random.Generator, seed: int = 0) -> list[float]:
    logits = torch.as_tensor(logits, dtype=torch.float32).cpu()
    n = logits.shape[0]
    return [inception_score(logits[torch.from_numpy(rng.integers(0, n, n))], splits, seed)[0]
            for _ in range(n_bootstrap)]


# ---------------------------------------------------------------- precision / recall / ...


def pairwise_distances(a, b, device=None, chunk: int = 4096) -> torch.Tensor:
    """Euclidean distances ``[len(a), len(b)]`` in float64 (chunked over ``a``)."""
    a = _as_tensor(a, device)
    b = _as_tensor(b, device)
    b2 = (b * b).sum(1)
    rows = []
    for start in range(0, a.shape[0], chunk):
        blk = a[start:start + chunk]
        d2 = (blk * blk).sum(1)[:, None] + b2[None, :] - 2 * blk @ b.T
        rows.append(d2.clamp_min_(0).sqrt_())
    return torch.cat(rows)


class _KnnRadii:
    """k-NN radii of a set within itself, for any multiset of its members.

    Rows of the distance matrix are sorted once; for a resample with counts ``c`` the radius of
    item i is the distance at which the counts of *other* items reach k (copies of i itself
    are not its neighbours), which is the plain k-th neighbour distance when all counts are 1.
    """

    def __init__(self, dist: torch.Tensor, k: int):
        d = dist.clone()
        d.fill_diagonal_(-1.0)       # the item itself sorts first and is then dropped
        sorted_d, order = torch.sort(d, dim=1)
        self.sorted = sorted_d[:, 1:]
        self.order = order[:, 1:]
        self.k = k

    def radii(self, counts: torch.Tensor | None = None) -> torch.Tensor:
        if counts is None:
            return self.sorted[:, self.k - 1]
        cum = torch.cumsum(counts[self.order], dim=1)
        pos = torch.argmax((cum >= self.k).to(torch.uint8), dim=1)
        return self.sorted.gather(1, pos[:, None])[:, 0]


def _prdc_from(d_rf, r_real, r_fake, k, c_real=None, c_fake=None) -> dict[str, float]:
    """Naeem et al. metrics from distances ``d_rf`` [real, fake] and radii (weighted by counts)."""
    n_r, n_f = d_rf.shape
    dt = d_rf.dtype
    c_real = torch.ones(n_r, dtype=dt, device=d_rf.device) if c_real is None else c_real
    c_fake = torch.ones(n_f, dtype=dt, device=d_rf.device) if c_fake is None else c_fake
    present_r = c_real > 0
    present_f = c_fake > 0
    inside_real = (d_rf < r_real[:, None]) & present_r[:, None]         # fake j in ball of real i
    inside_fake = (d_rf < r_fake[None, :]) & present_f[None, :]         # real i in ball of fake j
    n_real, n_fake = c_real.sum(), c_fake.sum()
    precision = (inside_real.any(0).to(dt) * c_fake).sum() / n_fake
    recall = (inside_fake.any(1).to(dt) * c_real).sum() / n_real
    density = (c_real @ inside_real.to(dt) @ c_fake) / (k * n_fake)
    masked = torch.where(present_f[None, :], d_rf, torch.full_like(d_rf, float("inf")))
    coverage = ((masked.min(1).values < r_real).to(dt) * c_real).sum() / n_real
    return {"precision": float(precision), "recall": float(recall),
            "density": float(density), "coverage": float(coverage)}


def prdc(real_features, fake_features, k: int = 5, n_bootstrap: int = 0,
         rng: np.random.Generator | None = None, device=None):
    """Precision, recall, density, coverage (Naeem et al. 2020) and their resamples.

    Returns ``(values, resamples)`` where ``resamples`` maps each name to a list.
    """
    d_rr = pairwise_distances(real_features, real_features, device)
    d_ff = pairwise_distances(fake_features, fake_features, device)
    d_rf = pairwise_distances(real_features, fake_features, device)
    knn_r, knn_f = _KnnRadii(d_rr, k), _KnnRadii(d_ff, k)
    del d_rr, d_ff
    values = _prdc_from(d_rf, knn_r.radii(), knn_f.radii(), k)
    resamples = {name: [] for name in values}
    rng = rng or np.random.default_rng(0)
    n_r, n_f = d_rf.shape
    for _ in range(n_bootstrap):
        cr = _as_tensor(bootstrap_counts(rng, n_r), d_rf.device)
        cf = _as_tensor(bootstrap_counts(rng, n_f), d_rf.device)
        out = _prdc_from(d_rf, knn_r.radii(cr), knn_f.radii(cf), k, cr, cf)
        for name, v in out.items():
            resamples[name].append(v)
    return values, resamples


def exclude_same_group(d: torch.Tensor, query_groups, gallery_groups) -> torch.Tensor:
    """``d`` with +inf where query and gallery item belong to the same group (patient)."""
    if query_groups is None or gallery_groups is None:
        return d
    _, codes = np.unique(np.concatenate([np.asarray(query_groups, dtype=str),
                                         np.asarray(gallery_groups, dtype=str)]),
                         return_inverse=True)
    q = torch.from_numpy(codes[: d.shape[0]]).to(d.device)
    g = torch.from_numpy(codes[d.shape[0]:]).to(d.device)
    return d.masked_fill(q[:, None] == g[None, :], float("inf"))


def nearest_distances(queries, gallery, device=None, query_groups=None,
                      gallery_groups=None) -> tuple[np.ndarray, np.ndarray]:
    """Distance from each query to its nearest gallery item, and that item's index.

    With ``query_groups`` and ``gallery_groups`` (patient ids), gallery items of the query's
    own patient are skipped (a query with no other-patient item gets +inf and index -1)."""
    d = exclude_same_group(pairwise_distances(queries, gallery, device), query_groups,
                           gallery_groups)
    best = d.min(1)
    dist, idx = best.values.cpu().numpy(), best.indices.cpu().numpy()
    idx[~np.isfinite(dist)] = -1
    return dist, idx
