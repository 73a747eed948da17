"""Controlled failures: "synthetic" sets made from held-out real images, at graded severities.

Every failure turns the *base sample* (``n`` held-out real images, stratified by class) into a
set of the same size at severity level 1..L; level 0 is the base sample itself (the
real-vs-real point every level is compared with). A set records, per image, the pool row whose
pixels it reuses unchanged (``pool_rows >= 0``: its features are sliced from the pool's cached
features) or ``-1`` (new pixels: extracted once per (failure, level) and space).

Randomness comes from ``numpy.random.default_rng([seed, crc32(failure), level])``: the same
seed gives byte-identical sets whatever else runs.

Spatial parameters (blur sigma, jitter shift) are given at 28 px and scaled with the image
size, so a level means the same loss of detail at 28 and at 112 px.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from medsyn.errors import ConfigError

REFERENCE_SIZE = 28           # spatial parameters are stated at this image size


@dataclass
class Pool:
    """What the failures are built from."""

    images: torch.Tensor               # uint8 [P, C, H, W]: held-out real images (the pool)
    labels: np.ndarray                 # int64 [P]
    base_rows: np.ndarray              # the n pool rows of the base sample (level 0)
    class_names: list[str]
    copy_source: torch.Tensor          # uint8 [R, C, H, W]: training images (memorisation)
    copy_labels: np.ndarray            # int64 [R]
    clusters: np.ndarray | None = None  # k-means cluster of every pool row (cluster drop)
    cluster_space: str | None = None

    @property
    def n(self) -> int:
        return len(self.base_rows)

    @property
    def scale(self) -> float:
        return self.images.shape[-1] / REFERENCE_SIZE


@dataclass
class SyntheticSet:
    failure: str
    level: int
    parameter: object                  # the severity parameter of this level (0: none)
    images: torch.Tensor               # uint8 [n, C, H, W]
    labels: np.ndarray                 # int64 [n], the class each image is presented as
    pool_rows: np.ndarray              # int64 [n]: pool row with identical pixels, or -1
    notes: list[str] = field(default_factory=list)

    @property
    def n_new(self) -> int:
        """Images whose pixels differ from every pool image (they need extraction)."""
        return int((self.pool_rows < 0).sum())


@dataclass(frozen=True)
class Failure:
    name: str
    title: str
    description: str                   # what a level does, with {p} for its parameter
    parameter: str                     # the severity parameter's name and unit
    levels: tuple                      # parameter at levels 1..L (increasingly severe)
    build: Callable                    # (pool, parameter, rng) -> (images, labels, rows, notes)
    needs_clusters: bool = False


def failure_rng(seed: int, failure: str, level: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), zlib.crc32(failure.encode()), int(level)])


def _base(pool: Pool):
    rows = pool.base_rows
    return pool.images[torch.from_numpy(rows)], pool.labels[rows].copy(), rows.copy()


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    return x.round().clamp(0, 255).to(torch.uint8)


def _new_pixels(images, labels, notes=()):
    return images, labels, np.full(len(images), -1, dtype=np.int64), list(notes)


# ---------------------------------------------------------------- pixel failures


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of uint8 images (kernel 2 * ceil(3 sigma) + 1, reflected borders)."""
    from torchvision.transforms.functional import gaussian_blur as tv_blur

    radius = max(1, int(np.ceil(3 * sigma)))
    size = min(2 * radius + 1, 2 * ((min(images.shape[-2:]) - 1) // 2) + 1)
    return _to_uint8(tv_blur(images.float(), [size, size], [float(sigma), float(sigma)]))


def _blur(pool, sigma, rng):
    images, labels, _ = _base(pool)
    return _new_pixels(gaussian_blur(images, sigma * pool.scale), labels)


def _noise(pool, std, rng):
    images, labels, _ = _base(pool)
    noise = torch.from_numpy(rng.normal(0.0, std, size=tuple(images.shape)).astype(np.float32))
    return _new_pixels(_to_uint8(images.float() + noise), labels)


def _contrast(pool, shift, rng):
    contrast, brightness = shift
    images, labels, _ = _base(pool)
    return _new_pixels(_to_uint8((images.float() - 127.5) * contrast + 127.5 + brightness),
                       labels)


def jpeg(images: torch.Tensor, quality: int) -> torch.Tensor:
    """Each image saved as a baseline JPEG at ``quality`` with Pillow and decoded again."""
    from PIL import Image

    out = []
    for img in images.numpy():
        arr = img[0] if img.shape[0] == 1 else np.transpose(img, (1, 2, 0))
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="JPEG", quality=int(quality))
        buf.seek(0)
        dec = np.asarray(Image.open(buf).convert("L" if img.shape[0] == 1 else "RGB"))
        out.append(dec[None] if img.shape[0] == 1 else np.transpose(dec, (2, 0, 1)))
    return torch.from_numpy(np.stack(out))


def _jpeg(pool, quality, rng):
    images, labels, _ = _base(pool)
    return _new_pixels(jpeg(images, quality), labels)


def jitter(images: torch.Tensor, rng: np.random.Generator, shift: int, noise_std: float):
    """Each image shifted by up to ``shift`` px (edge pixels repeated) plus Gaussian noise."""
    pad = torch.nn.functional.pad(images.float(), (shift,) * 4, mode="replicate")
    h, w = images.shape[-2:]
    offsets = rng.integers(0, 2 * shift + 1, size=(len(images), 2))
    out = torch.stack([pad[i, :, dy:dy + h, dx:dx + w] for i, (dy, dx) in enumerate(offsets)])
    noise = torch.from_numpy(rng.normal(0.0, noise_std, size=tuple(out.shape)).astype(np.float32))
    return _to_uint8(out + noise)


# ---------------------------------------------------------------- memorisation and diversity

COPY_NOISE_STD = 2.0            # grey levels: a "slightly noisy" copy
JITTER_NOISE_STD = 2.0


def _memorisation(pool, fraction, rng):
    images, labels, rows = _base(pool)
    n_copies = int(round(fraction * pool.n))
    which = rng.choice(pool.n, n_copies, replace=False)
    src = rng.choice(len(pool.copy_source), n_copies, replace=n_copies > len(pool.copy_source))
    noise = rng.normal(0.0, COPY_NOISE_STD, size=(n_copies, *images.shape[1:]))
    images = images.clone()
    images[torch.from_numpy(which)] = _to_uint8(
        pool.copy_source[torch.from_numpy(src)].float() + torch.from_numpy(noise).float())
    labels[which] = pool.copy_labels[src]
    rows[which] = -1
    notes = [] if n_copies <= len(pool.copy_source) else [
        f"only {len(pool.copy_source)} training images to copy: some are copied twice"]
    return images, labels, rows, notes


def _diversity(pool, fraction, rng):
    images, labels, _ = _base(pool)
    distinct = max(1, int(round(fraction * pool.n)))
    sources = rng.choice(pool.n, distinct, replace=False)
    pick = sources[np.arange(pool.n) % distinct]
    shift = max(1, int(round(pool.scale)))
    out = jitter(images[torch.from_numpy(pick)], rng, shift, JITTER_NOISE_STD)
    return _new_pixels(out, labels[pick])


# ---------------------------------------------------------------- selections of real images


def _replace_rows(pool, rows, drop_mask, allowed_mask, rng, what):
    """Replace base rows where ``drop_mask`` by pool rows where ``allowed_mask`` that are not
    in the base sample (drawn with replacement only when there are too few)."""
    notes = []
    need = int(drop_mask.sum())
    if need == 0:
        return rows, notes
    candidates = np.setdiff1d(np.flatnonzero(allowed_mask), rows)
    if len(candidates) == 0:
        candidates = np.setdiff1d(np.flatnonzero(allowed_mask), rows[drop_mask])
    if len(candidates) == 0:
        raise ConfigError(f"{what}: no held-out image is left to fill the set; use a larger "
                          "--n-pool or a smaller -n.")
    replace = need > len(candidates)
    if replace:
        notes.append(f"{what}: {len(candidates)} unused held-out images for {need} places, so "
                     "some repeat (which also lowers diversity)")
    rows = rows.copy()
    rows[drop_mask] = rng.choice(candidates, need, replace=replace)
    return rows, notes


def rarest_class(pool: Pool) -> int:
    counts = np.bincount(pool.labels[pool.base_rows], minlength=len(pool.class_names))
    present = np.flatnonzero(counts)
    return int(present[np.argmin(counts[present])])


def _class_drop(pool, fraction, rng):
    _, _, rows = _base(pool)
    target = rarest_class(pool)
    members = np.flatnonzero(pool.labels[rows] == target)
    drop = np.zeros(len(rows), bool)
    drop[rng.choice(members, int(round(fraction * len(members))), replace=False)] = True
    rows, notes = _replace_rows(pool, rows, drop, pool.labels != target, rng,
                                f"class drop ({pool.class_names[target]})")
    return pool.images[torch.from_numpy(rows)], pool.labels[rows].copy(), rows, notes


def _cluster_drop(pool, keep, rng):
    if pool.clusters is None:
        raise ConfigError("cluster drop needs the pool's feature clusters (internal error).")
    _, _, rows = _base(pool)
    sizes = np.bincount(pool.clusters)
    kept = np.argsort(-sizes, kind="stable")[:keep]      # the largest modes survive
    allowed = np.isin(pool.clusters, kept)
    rows, notes = _replace_rows(pool, rows, ~allowed[rows], allowed, rng,
                                f"cluster drop (keep {keep})")
    return pool.images[torch.from_numpy(rows)], pool.labels[rows].copy(), rows, notes


def _label_swap(pool, fraction, rng):
    images, labels, rows = _base(pool)
    k = len(pool.class_names)
    if k < 2:
        raise ConfigError("label swaps need at least 2 classes.")
    which = rng.choice(pool.n, int(round(fraction * pool.n)), replace=False)
    labels[which] = (labels[which] + rng.integers(1, k, size=len(which))) % k
    return images, labels, rows, []


N_CLUSTERS = 8

FAILURES: dict[str, Failure] = {f.name: f for f in (
    Failure("blur", "Gaussian blur", "Gaussian blur, sigma {p} px at 28 px (scaled with size)",
            "sigma (px at 28 px)", (0.5, 1.0, 1.5, 2.0), _blur),
    Failure("noise", "Additive noise", "additive Gaussian noise, std {p} grey levels",
            "noise std (grey levels of 255)", (4.0, 8.0, 16.0, 32.0), _noise),
    Failure("intensity", "Intensity / contrast shift",
            "contrast x c around mid-grey, brightness + b, (c, b) = {p}",
            "(contrast, brightness)", ((0.9, 8.0), (0.8, 16.0), (0.7, 24.0), (0.6, 32.0)),
            _contrast),
    Failure("jpeg", "JPEG quantisation", "JPEG (Pillow) at quality {p}", "JPEG quality",
            (75, 50, 25, 10), _jpeg),
    Failure("class_drop", "Mode dropping: a class",
            "{p} of the rarest class replaced by held-out images of the other classes",
            "fraction of the class removed", (0.25, 0.5, 0.75, 1.0), _class_drop),
    Failure("cluster_drop", "Mode dropping: feature clusters",
            f"only the {{p}} largest of {N_CLUSTERS} k-means clusters of held-out features kept",
            f"clusters kept (of {N_CLUSTERS})", (6, 4, 2, 1), _cluster_drop,
            needs_clusters=True),
    Failure("label_swap", "Class-label swaps",
            "{p} of the images labelled as another class (pixels unchanged)",
            "fraction of labels swapped", (0.1, 0.25, 0.5, 1.0), _label_swap),
    Failure("memorisation", "Memorisation",
            f"{{p}} of the set replaced by training images + noise (std {COPY_NOISE_STD:g})",
            "fraction copied from training", (0.1, 0.25, 0.5, 1.0), _memorisation),
    Failure("diversity", "Loss of diversity",
            "distinct images = {p} of n (0: one image), each repeated with a 1 px shift "
            f"and noise (std {JITTER_NOISE_STD:g})",
            "fraction of distinct images", (0.5, 0.2, 0.05, 0.0), _diversity),
)}


def resolve_failures(names) -> list[Failure]:
    if names is None:
        return list(FAILURES.values())
    if isinstance(names, str):
        names = [n for n in names.replace(" ", "").split(",") if n]
    unknown = [n for n in names if n not in FAILURES]
    if unknown or not names:
        raise ConfigError(f"unknown failure(s) {', '.join(unknown) or '(none given)'}; "
                          f"choose from {', '.join(FAILURES)}.")
    return [FAILURES[n] for n in FAILURES if n in names]


def real_set(pool: Pool) -> SyntheticSet:
    """Level 0: the base sample, unchanged."""
    images, labels, rows = _base(pool)
    return SyntheticSet("none", 0, 0, images, labels, rows)


def build_set(failure: Failure, level: int, pool: Pool, seed: int) -> SyntheticSet:
    """The set of ``failure`` at ``level`` (1..L), deterministic in ``seed``."""
    if not 1 <= level <= len(failure.levels):
        raise ConfigError(f"{failure.name}: level {level} is outside 1..{len(failure.levels)}.")
    parameter = failure.levels[level - 1]
    images, labels, rows, notes = failure.build(pool, parameter,
                                                failure_rng(seed, failure.name, level))
    return SyntheticSet(failure.name, level, parameter, images, labels.astype(np.int64),
                        np.asarray(rows, dtype=np.int64), list(notes))


def describe_failure(failure: Failure) -> dict:
    return {"name": failure.name, "title": failure.title, "parameter": failure.parameter,
            "levels": [0, *range(1, len(failure.levels) + 1)],
            "parameters": [None, *[list(p) if isinstance(p, tuple) else p
                                   for p in failure.levels]],
            "descriptions": ["held-out real images, unchanged"]
            + [failure.description.format(p=p) for p in failure.levels]}
