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

import logging
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from medsyn.errors import ConfigError
from medsyn.evaluators import stats
from medsyn.evaluators.extractors import FeatureExtractor
from medsyn.evaluators.features import Features, dataset_features

log = logging.getLogger(__name__)


@dataclass
class EvalOptions:
    n_bootstrap: int = 50
    seed: int = 0
    kid_subset_size: int = 1000
    kid_subsets: int = 100
    k: int = 5
    is_splits: int = 10
    memorization_percentile: float = 1.0
    gallery_pairs: int = 8
    tsne_max_points: int = 750           # per set (real, fake)
    batch_size: int = 64
    use_cache: bool = True
    # train-on-synthetic utility (medsyn.evaluators.utility); recipe: a name, Recipe or dict
    utility_recipe: object = None
    utility_seeds: tuple = (0, 1, 2)
    utility_ratio: float = 1.0

    def validate(self):
        def need(cond, msg):
            if not cond:
                raise ConfigError(msg)
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
        need(isinstance(self.batch_size, int) and self.batch_size >= 1,
             f"batch_size must be an integer >= 1, got {self.batch_size!r}.")
        need(len(self.utility_seeds) >= 1 and len(set(self.utility_seeds)) ==
             len(self.utility_seeds), f"utility seeds must be distinct integers, at least one, "
             f"got {list(self.utility_seeds)!r}.")
        need(isinstance(self.utility_ratio, (int, float)) and self.utility_ratio > 0,
             f"utility ratio (synthetic per real image in TRTR+S) must be > 0, got "
             f"{self.utility_ratio!r}.")
        from medsyn.evaluators.classifier import get_recipe

        get_recipe(self.utility_recipe)


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
    discriminator: Callable | None = None
    # sampler(labels, seed) -> uint8 images of those classes: more synthetic images on demand
    sampler: Callable | None = None
    # whether families will need features of the train / held-out splits (then a reference
    # that is a subset of one of them is sliced from its features)
    split_features_needed: bool = True
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
                ds = getattr(self, which)
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

    def features_of(self, which: str) -> Features | None:
        """Features of the ``"train"`` or ``"heldout"`` dataset (cached on disk), or None."""
        ds = getattr(self, which)
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


# ---------------------------------------------------------------- shared computations


def fid_entry(ctx: EvalContext, a: np.ndarray, b: np.ndarray, purpose: str, **extra):
    """FID of ``a`` (the "fake" side) against ``b`` (the "real" side): ``(entry, resamples)``."""
    name = ctx.extractor.name
    if len(a) < 2 or len(b) < 2:
        return unavailable(f"needs at least 2 images per set (got {len(b)} real, {len(a)} fake)",
                           n_real=len(b), n_fake=len(a), extractor=name, **extra), []
    value = stats.fid_value(a, b)
    res = stats.fid_resamples(a, b, ctx.options.n_bootstrap, ctx.rng(purpose), ctx.device)
    return entry(value, res, len(b), len(a), name, lower=0.0, n_bootstrap=ctx.options.n_bootstrap,
                 **extra), res


def kid_entry(ctx: EvalContext, a: np.ndarray, b: np.ndarray, purpose: str, **extra):
    name = ctx.extractor.name
    if len(a) < 2 or len(b) < 2:
        return unavailable(f"needs at least 2 images per set (got {len(b)} real, {len(a)} fake)",
                           n_real=len(b), n_fake=len(a), extractor=name, **extra), []
    x = torch.from_numpy(np.asarray(a)).to(ctx.device, torch.float64)
    y = torch.from_numpy(np.asarray(b)).to(ctx.device, torch.float64)
    d = x.shape[1]
    kxx = stats.poly_kernel(x @ x.T, d)
    kyy = stats.poly_kernel(y @ y.T, d)
    kxy = stats.poly_kernel(x @ y.T, d)
    size, note = stats.kid_subset_size(len(a), len(b), ctx.options.kid_subset_size)
    value, std = stats.kid_subsets_value(kxx, kyy, kxy, size, ctx.options.kid_subsets,
                                         ctx.options.seed)
    res = stats.kid_resamples(kxx, kyy, kxy, ctx.options.n_bootstrap, ctx.rng(purpose))
    out = entry(value, res, len(b), len(a), name, std=std, subset_size=size,
                subsets=ctx.options.kid_subsets, n_bootstrap=ctx.options.n_bootstrap, **extra)
    if note:
        out["note"] = note
    return out, res


# ---------------------------------------------------------------- families


def metric_fid(ctx: EvalContext) -> dict:
    return {"fid": fid_entry(ctx, ctx.fake.features, ctx.real.features, "fid")[0]}


def metric_kid(ctx: EvalContext) -> dict:
    return {"kid": kid_entry(ctx, ctx.fake.features, ctx.real.features, "kid")[0]}


def metric_is(ctx: EvalContext) -> dict:
    n = len(ctx.fake)
    base = {"n_fake": n, "extractor": ctx.extractor.name, "splits": ctx.options.is_splits}
    if not ctx.extractor.has_logits or ctx.fake.logits is None:
        return {"is": unavailable(ctx.extractor.logits_unavailable or "no logits", **base)}
    if n < ctx.options.is_splits:
        return {"is": unavailable(f"{n} fake images, fewer than the {ctx.options.is_splits} "
                                  "splits", **base)}
    value, std = stats.inception_score(ctx.fake.logits, ctx.options.is_splits, ctx.options.seed)
    res = stats.inception_score_resamples(ctx.fake.logits, ctx.options.is_splits,
                                          ctx.options.n_bootstrap, ctx.rng("is"),
                                          ctx.options.seed)
    out = entry(value, res, None, n, ctx.extractor.name, lower=1.0, std=std,
                splits=ctx.options.is_splits, n_bootstrap=ctx.options.n_bootstrap)
    out.pop("n_real")
    return {"is": out}


def metric_intra_fid(ctx: EvalContext) -> dict:
    name = ctx.extractor.name
    if ctx.fake_labels is None:
        return {"intra_fid": unavailable(
            "the fake images carry no class labels (use one sub-folder per class, labels in the "
            "npz, or a conditional checkpoint)", extractor=name)}
    d = ctx.extractor.feature_dim
    per_class, values, draws = {}, [], []
    for c, cname in enumerate(ctx.class_names):
        a = ctx.fake.features[ctx.fake_labels == c]
        b = ctx.real.features[ctx.real_labels == c]
        block, res = fid_entry(ctx, a, b, f"intra_fid/{cname}")
        if block["value"] is None:
            per_class[cname] = block
            continue
        block["kid"] = kid_entry(ctx, a, b, f"intra_kid/{cname}")[0]
        if min(len(a), len(b)) < d:
            block["warning"] = (
                f"{min(len(a), len(b))} images in the smaller set, fewer than the {d} feature "
                "dimensions: the covariance is rank-deficient and FID is biased upward at this n; "
                "compare classes at equal n and read the per-class KID (unbiased) beside it")
        per_class[cname] = block
        values.append(block["value"])
        draws.append(res)
    if not values:
        return {"intra_fid": unavailable("no class has at least 2 real and 2 fake images",
                                         extractor=name, per_class=per_class)}
    mean = float(np.mean(values))
    mean_draws = np.mean(np.asarray(draws), axis=0) if all(len(r) for r in draws) else []
    out = {"value": mean,
           "ci95": stats.recentred_interval(mean, mean_draws, lower=0.0),
           "extractor": name, "n_classes": len(values), "per_class": per_class}
    if len(values) < len(ctx.class_names):
        out["note"] = (f"mean over the {len(values)} classes with enough images, of "
                       f"{len(ctx.class_names)}")
    return {"intra_fid": out}


def metric_prdc(ctx: EvalContext) -> dict:
    name, k = ctx.extractor.name, ctx.options.k
    n_r, n_f = len(ctx.real), len(ctx.fake)
    if min(n_r, n_f) <= k:
        reason = f"needs more than k = {k} images per set (got {n_r} real, {n_f} fake)"
        return {m: unavailable(reason, n_real=n_r, n_fake=n_f, extractor=name, k=k)
                for m in ("precision", "recall", "density", "coverage")}
    values, res = stats.prdc(ctx.real.features, ctx.fake.features, k, ctx.options.n_bootstrap,
                             ctx.rng("prdc"), ctx.device)
    upper = {"precision": 1.0, "recall": 1.0, "coverage": 1.0, "density": None}
    return {m: entry(v, res[m], n_r, n_f, name, lower=0.0, upper=upper[m], k=k,
                     n_bootstrap=ctx.options.n_bootstrap)
            for m, v in values.items()}


def metric_real_floor(ctx: EvalContext) -> dict:
    name = ctx.extractor.name
    out = {}
    n = len(ctx.real)
    perm = ctx.rng("real_floor/halves").permutation(n)
    half_a, half_b = perm[: n // 2], perm[n // 2: 2 * (n // 2)]
    fa, fb = ctx.real.features[half_a], ctx.real.features[half_b]
    sets = {"sets": f"two disjoint random halves of the reference "
                    f"({ctx.reference.name}/{ctx.reference.split}), {n // 2} images each"}
    out["fid_halves"] = fid_entry(ctx, fb, fa, "real_floor/fid_halves", **sets)[0]
    out["kid_halves"] = kid_entry(ctx, fb, fa, "real_floor/kid_halves", **sets)[0]
    train, test = ctx.features_of("train"), ctx.features_of("heldout")
    if train is None or test is None:
        reason = "needs both the training split and a held-out (test) split of the dataset"
        out["fid_train_vs_test"] = unavailable(reason, extractor=name)
        out["kid_train_vs_test"] = unavailable(reason, extractor=name)
    elif ctx.train.fingerprint == ctx.heldout.fingerprint:
        reason = "the training and held-out sets are the same images"
        out["fid_train_vs_test"] = unavailable(reason, extractor=name)
        out["kid_train_vs_test"] = unavailable(reason, extractor=name)
    else:
        sets = {"sets": f"real {ctx.train.split} (as 'real') vs real {ctx.heldout.split} "
                        f"(as 'fake') of {ctx.train.name}"}
        out["fid_train_vs_test"] = fid_entry(ctx, test.features, train.features,
                                             "real_floor/fid_tt", **sets)[0]
        out["kid_train_vs_test"] = kid_entry(ctx, test.features, train.features,
                                             "real_floor/kid_tt", **sets)[0]
    return {"real_floor": out}


def metric_memorization(ctx: EvalContext) -> dict:
    name = ctx.extractor.name
    p = ctx.options.memorization_percentile
    train, held = ctx.features_of("train"), ctx.features_of("heldout")
    if train is None or held is None:
        return {"memorization": unavailable(
            "needs the training split and a held-out (test) split of the dataset",
            extractor=name, percentile=p)}
    if ctx.train.fingerprint == ctx.heldout.fingerprint:
        return {"memorization": unavailable("the training and held-out sets are the same images",
                                            extractor=name, percentile=p)}
    d_fake, nn_fake = stats.nearest_distances(ctx.fake.features, train.features, ctx.device)
    d_held, _ = stats.nearest_distances(held.features, train.features, ctx.device)
    threshold = float(np.percentile(d_held, p))
    fraction = float(np.mean(d_fake < threshold))
    rng = ctx.rng("memorization")
    res = []
    for _ in range(ctx.options.n_bootstrap):
        t = np.percentile(d_held[rng.integers(0, len(d_held), len(d_held))], p)
        res.append(float(np.mean(d_fake[rng.integers(0, len(d_fake), len(d_fake))] < t)))
    order = np.argsort(d_fake)[: ctx.options.gallery_pairs]
    block = {
        "fraction": fraction,
        "ci95": stats.recentred_interval(fraction, res, 0.0, 1.0),
        "threshold": threshold, "percentile": p,
        "expected_fraction_without_copying": p / 100.0,
        "n_fake": len(d_fake), "n_train": len(train), "n_heldout": len(d_held),
        "extractor": name,
        "distance": "euclidean in feature space, to the nearest training image",
        "median_fake_distance": float(np.median(d_fake)),
        "median_heldout_distance": float(np.median(d_held)),
        "closest": [{"fake_index": int(i), "train_index": int(nn_fake[i]),
                     "distance": float(d_fake[i])} for i in order],
    }
    if ctx.out_dir is not None:
        from medsyn.evaluators import figures

        ctx.figures["memorization"] = figures.memorization_gallery(
            ctx.out_dir / "memorization.png", ctx.fake_images, ctx.train.images, order,
            nn_fake, d_fake, threshold, p)
        ctx.figures["memorization_hist"] = figures.distance_histogram(
            ctx.out_dir / "memorization_hist.png", d_fake, d_held, threshold, p)
    return {"memorization": block}


def metric_discriminator(ctx: EvalContext) -> dict:
    if ctx.discriminator is None:
        return {"discriminator": unavailable("needs a GAN checkpoint with a discriminator "
                                             "(--checkpoint)")}
    if ctx.heldout is None:
        return {"discriminator": unavailable("needs a held-out (test) split of the dataset")}
    bs = ctx.options.batch_size

    def run(images, labels):
        p, logits = [], []
        for s in range(0, len(images), bs):
            lab = None if labels is None else torch.as_tensor(labels[s:s + bs])
            out = ctx.discriminator(images[s:s + bs], lab)
            p.append(torch.as_tensor(out["p_real"]).float().cpu())
            if out.get("class_logits") is not None:
                logits.append(torch.as_tensor(out["class_logits"]).float().cpu())
        return torch.cat(p), (torch.cat(logits) if logits else None)

    test_labels = ctx.heldout.labels.numpy()
    p_real, logits_real = run(ctx.heldout.images, test_labels)
    p_fake, logits_fake = run(ctx.fake_images, ctx.fake_labels)
    block = {"acc_real_test": float((p_real > 0.5).float().mean()),
             "acc_fake": float((p_fake <= 0.5).float().mean()),
             "mean_p_real_test": float(p_real.mean()), "mean_p_real_fake": float(p_fake.mean()),
             "n_real_test": len(p_real), "n_fake": len(p_fake), "threshold": 0.5}
    if logits_real is not None:
        block["aux_acc_real_test"] = float(
            (logits_real.argmax(1).numpy() == test_labels).mean())
        if logits_fake is not None and ctx.fake_labels is not None:
            block["aux_acc_fake"] = float((logits_fake.argmax(1).numpy() == ctx.fake_labels).mean())
    return {"discriminator": block}


def metric_tsne(ctx: EvalContext) -> dict:
    if ctx.out_dir is None:
        ctx.warn("t-SNE skipped: no output folder to write the figure into")
        return {}
    from medsyn.evaluators import figures

    ctx.figures["tsne"] = figures.tsne_plot(
        ctx.out_dir / "tsne.png", ctx.real.features, ctx.real_labels, ctx.fake.features,
        ctx.fake_labels, ctx.class_names, ctx.options.tsne_max_points, ctx.options.seed,
        ctx.extractor.name)
    return {}


def metric_utility(ctx: EvalContext) -> dict:
    from medsyn.evaluators.features import _EXTRACTION_THREADS
    from medsyn.evaluators.utility import evaluate_utility

    train = ctx.train if ctx.train is not None else (
        ctx.reference if ctx.reference.split == "train" else None)
    if train is None or ctx.heldout is None:
        return {"utility": unavailable(
            "needs the real training split and a held-out (test) split of the dataset")}
    if train.fingerprint == ctx.heldout.fingerprint:
        return {"utility": unavailable("the training and test sets are the same images")}
    o = ctx.options
    # training runs on all cores (the metric phase around it is single-threaded, see api)
    with threadpool_limits(limits=_EXTRACTION_THREADS):
        block = evaluate_utility(
            ctx.fake_images, ctx.fake_labels, train=train, val=ctx.val, test=ctx.heldout,
            recipe=o.utility_recipe, seeds=o.utility_seeds, ratio=o.utility_ratio,
            device=ctx.device, sampler=ctx.sampler, use_cache=o.use_cache, sample_seed=o.seed)
    for note in block.get("notes", []):
        ctx.warn(f"utility: {note}")
    return {"utility": block}


# ---------------------------------------------------------------- registry


@dataclass(frozen=True)
class MetricSpec:
    name: str
    fn: Callable[[EvalContext], dict]
    description: str
    default: bool = True
    needs_features: bool = True      # False: runs without a feature extractor


_METRICS: dict[str, MetricSpec] = {}


def register_metric(name: str, fn: Callable[[EvalContext], dict], description: str,
                    default: bool = True, overwrite: bool = False,
                    needs_features: bool = True) -> None:
    """Add a metric family ``fn(ctx) -> {result key: block}`` selectable as ``name``.

    ``default``: run when no ``metrics`` are named. ``needs_features``: the family reads
    ``ctx.fake`` / ``ctx.real`` (so a feature extractor must be loaded)."""
    if not overwrite and name in _METRICS:
        raise ConfigError(f"metric {name!r} is already registered.")
    _METRICS[name] = MetricSpec(name, fn, description, default, needs_features)


def list_metrics() -> dict[str, str]:
    return {name: spec.description for name, spec in _METRICS.items()}


def resolve_metrics(names, have_discriminator: bool) -> list[MetricSpec]:
    """The families to run: ``None`` means the defaults (plus discriminator diagnostics when a
    discriminator is given); names are validated against the registry."""
    if names is None:
        return [s for s in _METRICS.values()
                if s.default or (s.name == "discriminator" and have_discriminator)]
    if isinstance(names, str):
        names = [n for n in names.replace(" ", "").split(",") if n]
    unknown = [n for n in names if n not in _METRICS]
    if unknown or not names:
        raise ConfigError(f"unknown metric(s) {', '.join(unknown) or '(none given)'}; "
                          f"choose from {', '.join(_METRICS)}.")
    return [_METRICS[n] for n in _METRICS if n in names]


register_metric("fid", metric_fid, "Frechet Inception Distance (torch-fidelity convention)")
register_metric("kid", metric_kid, "Kernel Inception Distance, polynomial kernel, subsets")
register_metric("is", metric_is, "Inception Score, 10 splits (needs classifier logits)")
register_metric("intra_fid", metric_intra_fid, "FID and KID per class, and their mean")
register_metric("prdc", metric_prdc, "precision, recall, density, coverage (Naeem 2020, k=5)")
register_metric("real_floor", metric_real_floor,
                "FID/KID between real halves and between real train and test")
register_metric("memorization", metric_memorization,
                "fakes closer to a training image than held-out reals are")
register_metric("discriminator", metric_discriminator,
                "GAN discriminator accuracy on real test images and on fakes", default=False,
                needs_features=False)
register_metric("tsne", metric_tsne, "t-SNE figure of real and fake features")
register_metric("utility", metric_utility,
                "train-on-synthetic / test-on-real classifier arms over seeds (slow; opt-in)",
                default=False, needs_features=False)
