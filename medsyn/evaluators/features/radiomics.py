"""Radiomics space: hand-crafted intensity and texture features, no learned weights,
z-scored on the real training split.

pyradiomics publishes no wheel for current Pythons (``pip install pyradiomics`` builds from
source and fails on a machine without a compiler toolchain), so the features are computed
with scikit-image and numpy, following the IBSI / pyradiomics definitions:

- first order (17): mean, standard deviation, skewness, excess kurtosis, minimum, 10th / 25th
  / 50th / 75th / 90th percentiles, maximum, interquartile range, range, mean absolute
  deviation, energy (mean of x**2), entropy and uniformity of a 32-bin histogram; on the
  grayscale image / 255;
- GLCM (18): ``skimage.feature.graycomatrix`` of the image quantised to 32 levels (fixed bin
  width 8 of 0..255), symmetric and normalised, distances 1, 2, 4 and angles 0, 45, 90, 135
  degrees; contrast, dissimilarity, homogeneity, ASM, correlation (``graycoprops``'s
  definitions, computed over the whole batch at once) and
  entropy, each averaged over the four angles (rotation-averaged, as pyradiomics does);
- GLRLM (7): gray-level run lengths of the 32-level image along rows and columns: short- and
  long-run emphasis, normalised gray-level and run-length non-uniformity, run percentage,
  low- and high-gray-level run emphasis, averaged over the two directions;
- LBP (28): histograms of ``skimage.feature.local_binary_pattern`` codes, rotation-invariant
  uniform patterns with (P, R) = (8, 1) (10 bins) and (16, 2) (18 bins).

The 70 raw values are z-scored with the mean and standard deviation (ddof 0) of the same
features over every image of the real training split (a feature constant there is only
centred). That reference is part of the extractor's identity (its sha256 is the
``weights_sha256``), so features are comparable only within one reference.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from medsyn.device import resolve_device
from medsyn.errors import ConfigError
from medsyn.evaluators.features.base import FeatureExtractor

LEVELS = 32
GLCM_DISTANCES = (1, 2, 4)
GLCM_ANGLES = (0.0, np.pi / 4, np.pi / 2, 3 * np.pi / 4)
GLCM_PROPS = ("contrast", "dissimilarity", "homogeneity", "ASM", "correlation")
LBP_SETTINGS = ((8, 1), (16, 2))
FIRST_ORDER = ("mean", "std", "skewness", "kurtosis", "min", "p10", "p25", "median", "p75",
               "p90", "max", "iqr", "range", "mad", "energy", "entropy", "uniformity")
GLRLM = ("sre", "lre", "gln", "rln", "rp", "lgre", "hgre")


def feature_names() -> list[str]:
    names = [f"firstorder_{n}" for n in FIRST_ORDER]
    names += [f"glcm_{p.lower()}_d{d}" for d in GLCM_DISTANCES for p in (*GLCM_PROPS, "entropy")]
    names += [f"glrlm_{n}" for n in GLRLM]
    for p, r in LBP_SETTINGS:
        names += [f"lbp_p{p}r{r}_{b}" for b in range(p + 2)]
    return names


def quantise(gray_uint8: np.ndarray, levels: int = LEVELS) -> np.ndarray:
    """Fixed-bin-width quantisation of 0..255 into ``levels`` gray levels (0-based)."""
    return (gray_uint8.astype(np.int64) * levels // 256).astype(np.uint8)


def _percentiles(cum: np.ndarray, n: int, qs) -> np.ndarray:
    """numpy's default (linear) percentiles of uint8 values from cumulative counts ``[N, 256]``."""
    out = []
    for q in qs:
        pos = (n - 1) * q / 100.0
        lo, hi = int(np.floor(pos)), int(np.ceil(pos))
        # the k-th smallest value (0-based) is the number of levels whose cumulative count <= k
        v_lo = (cum <= lo).sum(1).astype(np.float64)
        v_hi = (cum <= hi).sum(1).astype(np.float64)
        out.append(v_lo + (pos - lo) * (v_hi - v_lo))
    return np.stack(out, 1)


def first_order(gray_uint8: np.ndarray) -> np.ndarray:
    """``[N, 17]`` first-order statistics of uint8 images ``[N, H, W]``, on the values / 255.

    Computed from each image's 256-bin histogram (exact for uint8 pixels): moments as
    histogram-weighted sums, percentiles with numpy's linear interpolation.
    """
    n_img = len(gray_uint8)
    flat = gray_uint8.reshape(n_img, -1).astype(np.int64)
    n = flat.shape[1]
    hist = np.bincount((flat + 256 * np.arange(n_img)[:, None]).reshape(-1),
                       minlength=256 * n_img).reshape(n_img, 256).astype(np.float64)
    v = np.arange(256) / 255.0
    w = hist / n
    mean = w @ v
    dev = v[None, :] - mean[:, None]
    var = (w * dev**2).sum(1)
    std = np.sqrt(var)
    safe = np.where(std > 0, std, 1.0)
    skew = np.where(std > 0, (w * dev**3).sum(1) / safe**3, 0.0)
    kurt = np.where(std > 0, (w * dev**4).sum(1) / safe**4 - 3.0, 0.0)
    p = _percentiles(np.cumsum(hist, 1), n, (0, 10, 25, 50, 75, 90, 100)) / 255.0
    prob = hist.reshape(n_img, LEVELS, 256 // LEVELS).sum(2) / n      # 32 bins of width 8
    safe_p = np.where(prob > 0, prob, 1.0)
    entropy = -np.sum(prob * np.log2(safe_p), 1)
    return np.stack([mean, std, skew, kurt, p[:, 0], p[:, 1], p[:, 2], p[:, 3], p[:, 4],
                     p[:, 5], p[:, 6], p[:, 4] - p[:, 2], p[:, 6] - p[:, 0],
                     (w * np.abs(dev)).sum(1), w @ v**2, entropy, (prob**2).sum(1)], axis=1)


def glcm_matrices(q: np.ndarray) -> np.ndarray:
    """``[N, L, L, distances, angles]`` symmetric, normalised GLCMs (scikit-image)."""
    from skimage.feature import graycomatrix

    return np.stack([graycomatrix(img, GLCM_DISTANCES, GLCM_ANGLES, levels=LEVELS,
                                  symmetric=True, normed=True) for img in q])


def glcm_properties(glcm: np.ndarray) -> np.ndarray:
    """``[N, 18]``: contrast, dissimilarity, homogeneity, ASM, correlation (scikit-image's
    ``graycoprops`` definitions) and entropy of each distance, averaged over the angles."""
    i = np.arange(LEVELS, dtype=np.float64)[:, None, None, None]
    j = np.arange(LEVELS, dtype=np.float64)[None, :, None, None]
    P = glcm.astype(np.float64)
    sum_ij = lambda x: (P * x).sum((1, 2))  # noqa: E731 - expectation under each GLCM
    contrast = sum_ij((i - j) ** 2)
    dissimilarity = sum_ij(np.abs(i - j))
    homogeneity = sum_ij(1.0 / (1.0 + (i - j) ** 2))
    asm = (P**2).sum((1, 2))
    mu_i, mu_j = sum_ij(i), sum_ij(j)
    sd_i = np.sqrt(sum_ij((i - mu_i[:, None, None]) ** 2))
    sd_j = np.sqrt(sum_ij((j - mu_j[:, None, None]) ** 2))
    cov = sum_ij((i - mu_i[:, None, None]) * (j - mu_j[:, None, None]))
    # a constant image has an undefined correlation; scikit-image reports 1
    ok = (sd_i > 1e-15) & (sd_j > 1e-15)
    correlation = np.where(ok, cov / np.where(ok, sd_i * sd_j, 1.0), 1.0)
    entropy = -(P * np.log2(np.where(P > 0, P, 1.0))).sum((1, 2))
    props = np.stack([contrast, dissimilarity, homogeneity, asm, correlation, entropy], 1)
    return props.mean(3).transpose(0, 2, 1).reshape(len(P), -1)     # [N, distances * 6]


def run_length_features(q: np.ndarray, levels: int = LEVELS) -> np.ndarray:
    """``[N, 7]`` run-length features of quantised images ``[N, H, W]`` along the rows (runs
    end at the end of each row), vectorised over the batch."""
    n, h, w = q.shape
    starts = np.ones_like(q, dtype=bool)
    starts[:, :, 1:] = q[:, :, 1:] != q[:, :, :-1]
    flat = starts.reshape(-1)
    run_id = np.cumsum(flat) - 1
    lengths = np.bincount(run_id).astype(np.float64)
    first = np.flatnonzero(flat)
    image = first // (h * w)
    gray = q.reshape(-1)[first].astype(np.int64)
    n_runs = np.bincount(image, minlength=n).astype(np.float64)
    per = lambda v: np.bincount(image, weights=v, minlength=n)  # noqa: E731 - sum per image
    sre = per(1.0 / lengths**2) / n_runs
    lre = per(lengths**2) / n_runs
    g1 = gray + 1.0
    lgre = per(1.0 / g1**2) / n_runs
    hgre = per(g1**2) / n_runs
    by_gray = np.bincount(image * levels + gray, minlength=n * levels).reshape(n, levels)
    gln = (by_gray.astype(np.float64) ** 2).sum(1) / n_runs**2
    max_len = int(max(h, w))
    by_len = np.bincount(image * (max_len + 1) + lengths.astype(np.int64),
                         minlength=n * (max_len + 1)).reshape(n, max_len + 1)
    rln = (by_len.astype(np.float64) ** 2).sum(1) / n_runs**2
    rp = n_runs / (h * w)
    return np.stack([sre, lre, gln, rln, rp, lgre, hgre], axis=1)


def lbp_histograms(gray_uint8: np.ndarray) -> np.ndarray:
    """``[28]`` normalised uniform-LBP code histograms of one uint8 image."""
    from skimage.feature import local_binary_pattern

    out = []
    for p, r in LBP_SETTINGS:
        codes = local_binary_pattern(gray_uint8, p, r, method="uniform").astype(np.int64)
        out.append(np.bincount(codes.reshape(-1), minlength=p + 2)[: p + 2] / codes.size)
    return np.concatenate(out)


def raw_features(images: torch.Tensor) -> np.ndarray:
    """The 70 unstandardised features of uint8 images ``[N, C, H, W]`` (channels averaged)."""
    gray_u8 = images.cpu().float().mean(1).round().to(torch.uint8).numpy()
    q = quantise(gray_u8)
    fo = first_order(gray_u8)
    glcm = glcm_properties(glcm_matrices(q))
    rl = (run_length_features(q) + run_length_features(q.transpose(0, 2, 1).copy())) / 2
    lbp = np.stack([lbp_histograms(img) for img in gray_u8])
    return np.concatenate([fo, glcm, rl, lbp], axis=1)


class RawRadiomicsExtractor(FeatureExtractor):
    """The radiomics features before standardisation (what the reference statistics are
    computed from; cached like any real-set features)."""

    name = "radiomics-raw"
    feature_dim = len(feature_names())

    def __init__(self, device=None, **_):
        self.device = resolve_device(device)
        self.conventions = {"input": "uint8 [N, C, H, W]; channels averaged and rounded",
                            "features": "medsyn.evaluators.features.radiomics (module docstring)",
                            "quantisation": f"{LEVELS} levels, fixed bin width {256 // LEVELS}",
                            "glcm": f"distances {list(GLCM_DISTANCES)}, 4 angles averaged",
                            "lbp": f"uniform, (P, R) in {[list(s) for s in LBP_SETTINGS]}",
                            "names": feature_names()}
        self.logits_unavailable = "the radiomics space has no classifier head"

    def extract(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"features": torch.from_numpy(raw_features(images)).float()}


class RadiomicsExtractor(RawRadiomicsExtractor):
    """Radiomics features z-scored with statistics of a real reference set."""

    def __init__(self, mean: np.ndarray, std: np.ndarray, reference: dict, device=None, **_):
        super().__init__(device=device)
        mean = np.asarray(mean, dtype=np.float64)
        std = np.asarray(std, dtype=np.float64)
        if mean.shape != (self.feature_dim,) or std.shape != (self.feature_dim,):
            raise ConfigError(f"radiomics reference statistics must have {self.feature_dim} "
                              f"values each, got {mean.shape} and {std.shape}.")
        self.mean = mean
        self.scale = np.where(std > 1e-8, std, 1.0)
        self.name = "radiomics"
        digest = hashlib.sha256(self.mean.tobytes() + self.scale.tobytes()).hexdigest()
        self.weights_sha256 = digest
        self.conventions = {**self.conventions,
                            "standardisation": "(x - mean) / std over every image of the "
                                               "reference below (std ddof 0; a feature "
                                               "constant there is only centred)",
                            "reference": reference}

    def extract(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        z = (raw_features(images) - self.mean) / self.scale
        return {"features": torch.from_numpy(z).float()}


def radiomics_extractor(device=None, train=None, use_cache: bool = True, batch_size: int = 256,
                        **_) -> RadiomicsExtractor:
    """The radiomics space standardised on the real dataset ``train`` (its raw features are
    cached on disk like any real-set features)."""
    from medsyn.evaluators.features.extraction import dataset_features

    if train is None:
        raise ConfigError("the 'radiomics' feature space is z-scored on the real training split "
                          "of the reference dataset; it needs that split (train=...).")
    raw = dataset_features(train, RawRadiomicsExtractor(device=device), batch_size, use_cache)
    feats = raw.features.astype(np.float64)
    reference = {"name": train.name, "split": train.split, "fingerprint": train.fingerprint,
                 "n": len(train), "image_size": list(train.image_size)}
    return RadiomicsExtractor(feats.mean(0), feats.std(0), reference, device=device)
