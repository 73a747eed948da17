"""What every metric family receives (:class:`EvalContext`, :class:`EvalOptions`) and the
shape of what it returns (:func:`entry`, :func:`unavailable`)."""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from medsyn.data.subsets import VAL_FRACTION_WHEN_MISSING
from medsyn.errors import ConfigError
from medsyn.evaluators.features import FeatureExtractor, Features, dataset_features
from medsyn.evaluators.metrics import stats
from medsyn.utils import check_seed

log = logging.getLogger(__name__)

# the privacy audit's held-out images (metrics/privacy/baseline.py, docs/privacy.md)
PRIVACY_BASELINES = ("auto", "val", "test", "reserve")


def parse_privacy_baseline(value: str) -> tuple[str, float | None]:
    """``"auto"``, ``"val"``, ``"test"``, ``"reserve"`` or ``"reserve:0.2"`` -> (kind, fraction)."""
    text = str(value).strip().lower()
    kind, _, frac = text.partition(":")
    if kind not in PRIVACY_BASELINES or (frac and kind != "reserve"):
        raise ConfigError(f"privacy baseline must be one of auto, val, test, reserve or "
                          f"reserve:FRACTION, got {value!r}.")
    if kind != "reserve":
        return kind, None
    try:
        fraction = float(frac) if frac else VAL_FRACTION_WHEN_MISSING
    except ValueError:
        raise ConfigError(f"privacy baseline {value!r}: the reserved fraction must be a "
                          "number in (0, 1), e.g. reserve:0.1.") from None
    if not 0 < fraction < 1:
        raise ConfigError(f"privacy baseline {value!r}: the reserved fraction must be in "
                          "(0, 1).")
    return kind, fraction


@dataclass
class EvalOptions:
    """The settings of an evaluation, by name (docs/evaluation.md lists them): what
    :func:`medsyn.evaluators.evaluate` takes as ``options=`` or as keywords, and what every
    metric family reads as ``ctx.options``."""

    n_bootstrap: int = 50
    seed: int = 0
    kid_subset_size: int = 1000
    kid_subsets: int = 100
    k: int = 5
    is_splits: int = 10
    memorization_percentile: float = 1.0
    # held-out real images of the privacy audit: auto | val | test | reserve[:FRACTION]
    # (metrics/privacy/baseline.py)
    privacy_baseline: str = "auto"
    gallery_pairs: int = 8
    tsne_max_points: int = 750           # per set (real, fake)
    batch_size: int = 64
    use_cache: bool = True
    # train-on-synthetic utility (metrics/utility/protocol.py); recipe: a name, Recipe or dict.
    # It is also the recipe of the 'classifier' feature space.
    utility_recipe: object = None
    utility_seeds: tuple = (0, 1, 2)
    utility_ratio: float = 1.0
    # the 'ssl' feature space's SimCLR recipe (networks/ssl.py): a name, SSLRecipe or dict
    ssl_recipe: object = None
    # FD-infinity, RBF MMD, alpha-precision (metrics/distribution/)
    fd_inf_points: int = 15
    fd_inf_min_fraction: float = 0.2
    fd_inf_draws: int = 1
    mmd_sigma: float | None = None           # None: median heuristic on the real reference
    alpha_steps: int = 30
    # permutations of the two-sample tests (--metrics tests, distribution/two_sample.py)
    test_permutations: int = 199
    # FD-infinity and Vendi resamples each cost eigen-decompositions of the whole set (FD-inf:
    # one per subset size): at most this many resamples for them (None: n_bootstrap)
    costly_bootstrap: int | None = 20
    # tile size of the 'seams' family (metrics/highres.py): a tiled generator's patch size
    seam_patch: int | None = None
    # sizes of the 'scale_fid' family (metrics/highres.py): FID with both sets downsampled
    fid_scales: tuple | None = None

    def bootstrap_for_costly(self) -> int:
        if self.costly_bootstrap is None:
            return self.n_bootstrap
        return min(self.n_bootstrap, self.costly_bootstrap)
    # FID point values: "torch-fidelity" (its own functions, the reported convention) or
    # "gram" (the bootstrap's Gram-matrix path: the same number to ~1e-7 relative, about 80x
    # faster at n = 128 vs 500, d = 2048; what medsyn audit uses for its hundreds of FIDs)
    fid_method: str = "torch-fidelity"

    def validate(self):
        def need(cond, msg):
            if not cond:
                raise ConfigError(msg)
        check_seed(self.seed, "seed (--seed)")
        need(isinstance(self.n_bootstrap, int) and self.n_bootstrap >= 0,
             f"n_bootstrap must be an integer >= 0, got {self.n_bootstrap!r}.")
        need(isinstance(self.kid_subset_size, int) and self.kid_subset_size >= 2,
             f"kid_subset_size must be an integer >= 2, got {self.kid_subset_size!r}.")
        need(isinstance(self.kid_subsets, int) and self.kid_subsets >= 1,
             f"kid_subsets must be an integer >= 1, got {self.kid_subsets!r}.")
        need(isinstance(self.k, int) and self.k >= 1, f"k must be an integer >= 1, got {self.k!r}.")
        need(isinstance(self.is_splits, int) and self.is_splits >= 1,
             f"is_splits must be an integer >= 1, got {self.is_splits!r}.")
        need(0 < self.memorization_percentile < 100,
             f"memorization_percentile must be in (0, 100), got {self.memorization_percentile!r}.")
        need(self.fid_method in ("torch-fidelity", "gram"),
             f"fid_method must be 'torch-fidelity' or 'gram', got {self.fid_method!r}.")
        need(isinstance(self.batch_size, int) and self.batch_size >= 1,
             f"batch_size must be an integer >= 1, got {self.batch_size!r}.")
        need(len(self.utility_seeds) >= 1 and len(set(self.utility_seeds)) ==
             len(self.utility_seeds), f"utility seeds must be distinct integers, at least one, "
             f"got {list(self.utility_seeds)!r}.")
        need(isinstance(self.utility_ratio, (int, float)) and self.utility_ratio > 0,
             f"utility ratio (synthetic per real image in TRTR+S) must be > 0, got "
             f"{self.utility_ratio!r}.")
        need(isinstance(self.fd_inf_points, int) and self.fd_inf_points >= 2,
             f"fd_inf_points (subset sizes of FD-infinity) must be an integer >= 2, got "
             f"{self.fd_inf_points!r}.")
        need(isinstance(self.fd_inf_min_fraction, (int, float))
             and 0 < self.fd_inf_min_fraction < 1,
             f"fd_inf_min_fraction must be in (0, 1), got {self.fd_inf_min_fraction!r}.")
        need(isinstance(self.fd_inf_draws, int) and self.fd_inf_draws >= 1,
             f"fd_inf_draws must be an integer >= 1, got {self.fd_inf_draws!r}.")
        need(self.mmd_sigma is None or (isinstance(self.mmd_sigma, (int, float))
                                        and np.isfinite(self.mmd_sigma) and self.mmd_sigma > 0),
             f"mmd_sigma (RBF bandwidth) must be a positive number or unset, got "
             f"{self.mmd_sigma!r}.")
        need(self.costly_bootstrap is None or (isinstance(self.costly_bootstrap, int)
                                               and self.costly_bootstrap >= 0),
             f"costly_bootstrap must be an integer >= 0 or unset, got "
             f"{self.costly_bootstrap!r}.")
        need(isinstance(self.test_permutations, int) and self.test_permutations >= 19,
             f"test_permutations must be an integer >= 19 (a p-value below 0.05 needs at "
             f"least 19), got {self.test_permutations!r}.")
        need(self.seam_patch is None or (isinstance(self.seam_patch, int)
                                         and not isinstance(self.seam_patch, bool)
                                         and self.seam_patch >= 2),
             f"seam_patch (tile size of the seams metric) must be an integer >= 2 or unset, "
             f"got {self.seam_patch!r}.")
        need(self.fid_scales is None or (len(self.fid_scales) >= 1 and all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 8 for s in self.fid_scales)),
             f"fid_scales must be sizes in pixels (integers >= 8) or unset, got "
             f"{self.fid_scales!r}.")
        need(isinstance(self.alpha_steps, int) and self.alpha_steps >= 2,
             f"alpha_steps must be an integer >= 2, got {self.alpha_steps!r}.")
        from medsyn.evaluators.networks.recipes import get_recipe
        from medsyn.evaluators.networks.ssl import get_ssl_recipe

        get_recipe(self.utility_recipe)
        get_ssl_recipe(self.ssl_recipe)
        parse_privacy_baseline(self.privacy_baseline)


@dataclass
class EvalContext:
    """Everything a metric family may use. Features are extracted once, here or lazily."""

    fake_labels: np.ndarray | None
    fake_images: torch.Tensor
    reference: object                        # ImageDataset
    extractor: FeatureExtractor | None       # None when no family needs features
    options: EvalOptions
    device: torch.device
    train: object | None = None              # ImageDataset of the training split
    heldout: object | None = None            # ImageDataset of held-out real images (test)
    val: object | None = None                # ImageDataset of the validation split
    # (split_dataset / features_of take "train", "heldout" or "val")
    discriminator: Callable | None = None
    # sampler(labels, seed) -> uint8 images of those classes: more synthetic images on demand
    sampler: Callable | None = None
    # whether families will need features of the train / held-out splits (then a reference
    # that is a subset of one of them is sliced from its features)
    split_features_needed: bool = True
    # at most this many images of the train / held-out splits (stratified) for the families
    # that compare against them (floor, memorization); None: every image
    split_limit: int | None = None
    out_dir: Path | None = None
    figures: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)
    timings: dict = field(default_factory=dict)
    extraction_s: float = 0.0                # feature extraction done lazily inside metrics
    _extra: dict = field(default_factory=dict)

    @property
    def fake(self) -> Features:
        """Features of the fake images, extracted on first use."""
        if "fake" not in self._extra:
            from medsyn.evaluators.features import extract_features

            t0 = time.perf_counter()
            self._extra["fake"] = extract_features(self.extractor, self.fake_images,
                                                   self.options.batch_size, desc="fake features")
            took = time.perf_counter() - t0
            self.timings["fake_features_s"] = round(took, 3)
            self.extraction_s += took
        return self._extra["fake"]

    @property
    def real(self) -> Features:
        """Features of the reference set, extracted (or read from the cache) on first use, so
        families that need none (IS, discriminator) cost no reference pass."""
        if "reference" not in self._extra:
            t0 = time.perf_counter()
            parent = getattr(self.reference, "parent", None)
            sliced = None
            for which in ("train", "heldout") if self.split_features_needed else ():
                ds = self.split_dataset(which)
                if parent is not None and ds is not None and ds is not self.reference \
                        and ds.fingerprint == parent[0]:
                    # a subset (--n-real) of a split whose features are needed anyway:
                    # slice them instead of running the network on the subset again
                    sliced = self.features_of(which).take(parent[1])
                    break
            if sliced is not None:
                self._extra["reference"] = sliced
                self.timings["real_features_sliced_from"] = which
                return sliced                 # its extraction time is counted under `which`
            self._extra["reference"] = dataset_features(
                self.reference, self.extractor, self.options.batch_size, self.options.use_cache)
            took = time.perf_counter() - t0
            self.timings["real_features_s"] = round(took, 3)
            self.timings["real_features_cached"] = self._extra["reference"].from_cache
            self.extraction_s += took
        return self._extra["reference"]

    @property
    def class_names(self) -> list[str]:
        return list(self.reference.class_names)

    @property
    def real_labels(self) -> np.ndarray:
        return self.reference.labels.numpy()

    def rng(self, purpose: str) -> np.random.Generator:
        """A generator seeded by the run's seed and the purpose, so each metric's resamples are
        reproducible whichever other metrics run."""
        return np.random.default_rng([self.options.seed, zlib.crc32(purpose.encode())])

    def split_dataset(self, which: str):
        """The ``"train"`` or ``"heldout"`` dataset as the split families use it: a stratified
        subset of ``split_limit`` images when that is set and smaller than the split."""
        ds = getattr(self, which)
        if ds is None or self.split_limit is None or len(ds) <= self.split_limit:
            return ds
        key = f"subset/{which}"
        if key not in self._extra:
            from medsyn.data.subsets import stratified_subset

            self._extra[key] = stratified_subset(ds, self.split_limit, self.options.seed)
            self.warn(f"the real-vs-real floor, memorization, privacy and authenticity checks "
                      f"used a stratified "
                      f"subset of {self.split_limit} of the {len(ds)} images of "
                      f"{ds.name}/{ds.split} (seed {self.options.seed}); the full protocol "
                      "(no --n-real / --n-memorization) uses every image")
        return self._extra[key]

    def features_of(self, which: str) -> Features | None:
        """Features of the ``"train"`` or ``"heldout"`` dataset (cached on disk), or None;
        bounded by ``split_limit`` (see :meth:`split_dataset`)."""
        ds = self.split_dataset(which)
        if ds is None:
            return None
        if ds is self.reference or ds.fingerprint == self.reference.fingerprint:
            return self.real
        if which not in self._extra:
            t0 = time.perf_counter()
            self._extra[which] = dataset_features(ds, self.extractor, self.options.batch_size,
                                                  self.options.use_cache)
            took = time.perf_counter() - t0
            self.timings[f"{which}_features_s"] = round(took, 3)
            self.timings[f"{which}_features_cached"] = self._extra[which].from_cache
            self.extraction_s += took
        return self._extra[which]

    def prefetch(self, reference: bool = True, splits: tuple = ()) -> None:
        """Extract now the feature sets the families will read: the fakes, the reference
        (``reference``) and the ``splits`` (``"train"``, ``"heldout"``, ``"val"``) there are.
        Under ``torchrun`` this is the collective phase (features/sharding.py); a set missed
        here is extracted later by rank 0 alone."""
        self.fake  # noqa: B018 - extracted on first use
        if reference:
            self.real  # noqa: B018
            for which in splits:
                self.features_of(which)

    def provide_features(self, which: str, features: Features) -> None:
        """Hand over features computed elsewhere for ``"fake"``, ``"reference"``, ``"train"``
        or ``"heldout"`` (the audit scores many sets against the same real features)."""
        if which not in ("fake", "reference", "train", "heldout"):
            raise ValueError(f"unknown feature set {which!r}")
        self._extra[which] = features

    def warn(self, message: str):
        log.warning(message)
        self.warnings.append(message)


def entry(value, resamples, n_real, n_fake, extractor: str, lower=None, upper=None,
          **extra) -> dict:
    """A metric entry as results.json stores it (see docs/architecture.md section 3)."""
    value = None if value is None or not np.isfinite(value) else float(value)
    out = {"value": value,
           "ci95": stats.recentred_interval(value, resamples, lower, upper) if value is not None
           else None,
           "n_real": int(n_real) if n_real is not None else None,
           "n_fake": int(n_fake) if n_fake is not None else None,
           "extractor": extractor}
    out.update(extra)
    return out


def unavailable(reason: str, **extra) -> dict:
    return {"value": None, "unavailable": reason, **extra}
