"""How much do the reference and the input pipeline alone move each metric?
(``medsyn audit --reference-sensitivity`` and ``--preprocessing``; docs/statistics.md)

Both score real images only, so whatever they measure is not the generator's doing:

- **Reference sensitivity.** The audit's base sample (held-out real images) is scored against
  other real references: ``draws`` random halves of the training reference (whole patients
  when the dataset has patient ids), and references with one class left out (a cohort with
  another disease mix; cxr3's classes also differ by source dataset). The spread of a metric
  over these references is what the choice of reference alone does to it: a generator's
  difference smaller than that is not evidence.
- **Preprocessing sensitivity.** The same held-out images, decoded and resized by alternative,
  reasonable pipelines, scored against the reference prepared by the default pipeline. Each
  row is the score minus the default pipeline's score, so an identical pipeline gives exactly 0.
  Alternatives: the resize filter (bicubic without antialiasing, bilinear with and without,
  area), 8-bit quantisation (truncation instead of rounding after the resize), for files
  stored with more than 8 bits the bit-depth rule (global min/max, 16 bits), and for DICOM
  files the window (each image's full range, its 0.5..99.5 percentiles; the default is the
  file's own VOI, :mod:`medsyn.data.formats.dicom`). The alternative windows are decoded from
  the source files here only: the dataset's default decoding and its cache key do not change.
  A row that does not apply to the dataset (no resize, no high-bit-depth or DICOM file) says
  why instead of a value.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from medsyn.data.subsets import split_counts
from medsyn.data.transforms.resize import RESIZE_FILTER, resize_uint8

DEFAULT_DRAWS = 10


def _summary(values: list[float | None]) -> dict:
    vals = np.array([v for v in values if v is not None], dtype=float)
    if len(vals) == 0:
        return {"values": values, "mean": None, "sd": None, "min": None, "max": None,
                "range": None}
    return {"values": values, "mean": float(vals.mean()),
            "sd": float(vals.std(ddof=1)) if len(vals) > 1 else 0.0,
            "min": float(vals.min()), "max": float(vals.max()),
            "range": float(vals.max() - vals.min())}


def reference_sensitivity(score_rows: Callable[[np.ndarray], dict], labels: np.ndarray,
                          class_names: list[str], keys: list[str], seed: int,
                          groups=None, draws: int = DEFAULT_DRAWS) -> dict:
    """``score_rows(rows)`` -> ``{key: value}``: the base sample scored against the reference
    rows ``rows``. Returns, per key, the spread over ``draws`` random halves (whole patients
    when ``groups``) and the values with each class left out (equal sizes)."""
    from medsyn.evaluators.metrics.stats.groups import disjoint_halves

    rng = np.random.default_rng([seed, 31])
    n = len(labels)
    halves = [disjoint_halves(rng, n, groups)[0] for _ in range(draws)]
    half_scores = [score_rows(np.sort(rows)) for rows in halves]
    counts = np.bincount(labels, minlength=len(class_names))
    present = [c for c in range(len(class_names)) if counts[c]]
    loo: dict = {}
    if len(present) > 1:
        size = min(n - counts[c] for c in present)
        for c in present:
            keep = counts.copy()
            keep[c] = 0
            quotas = split_counts(size, keep)
            rows = np.sort(np.concatenate([
                rng.choice(np.flatnonzero(labels == k), q, replace=False)
                for k, q in enumerate(quotas) if q]))
            loo[class_names[c]] = score_rows(rows)
    out = {}
    for key in keys:
        block = {"halves": _summary([s.get(key) for s in half_scores])}
        if loo:
            block["leave_one_class_out"] = {
                **{name: s.get(key) for name, s in loo.items()},
                **{k: v for k, v in _summary([s.get(key) for s in loo.values()]).items()
                   if k != "values"}}
        out[key] = block
    return {"keys": out, "draws": draws,
            "half_size": int(np.median([len(h) for h in halves])),
            "units": "patients" if groups is not None else "images",
            "leave_one_class_out_size": int(size) if len(present) > 1 else None}


@dataclass(frozen=True)
class Pipeline:
    name: str
    aspect: str                # what it varies: resize filter, quantisation, bit depth
    description: str


def _interpolate(images: torch.Tensor, size: int, mode: str, antialias: bool,
                 floor: bool = False, chunk: int = 256) -> torch.Tensor:
    out = torch.empty((len(images), images.shape[1], size, size), dtype=torch.uint8)
    for start in range(0, len(images), chunk):
        x = images[start:start + chunk].float()
        kw = {"align_corners": False} if mode in ("bilinear", "bicubic") else {}
        if mode in ("bilinear", "bicubic"):
            kw["antialias"] = antialias
        y = F.interpolate(x, size=(size, size), mode=mode, **kw)
        y = y.floor_() if floor else y.round_()
        out[start:start + chunk] = y.clamp_(0, 255).to(torch.uint8)
    return out


DEFAULT = Pipeline("default", "reference", f"medsyn's: {RESIZE_FILTER}, rounded to 8 bits")
RESIZE_PIPELINES = (
    (Pipeline("bicubic, no antialias", "resize filter",
              "bicubic (a = -0.75) without antialiasing, rounded"),
     lambda x, s: _interpolate(x, s, "bicubic", False)),
    (Pipeline("bilinear, antialiased", "resize filter", "bilinear with antialiasing, rounded"),
     lambda x, s: _interpolate(x, s, "bilinear", True)),
    (Pipeline("bilinear, no antialias", "resize filter",
              "bilinear without antialiasing, rounded"),
     lambda x, s: _interpolate(x, s, "bilinear", False)),
    (Pipeline("area", "resize filter", "area averaging (adaptive average pooling), rounded"),
     lambda x, s: _interpolate(x, s, "area", False)),
    (Pipeline("truncated to 8 bits", "8-bit quantisation",
              "the default bicubic antialiased resize, truncated (floor) instead of rounded"),
     lambda x, s: _interpolate(x, s, "bicubic", True, floor=True)),
)


DICOM_WINDOW_PIPELINES = (
    ("full", Pipeline("DICOM window full range", "DICOM window",
                      "each DICOM image's own min..max after rescale instead of the file's "
                      "VOI window")),
    ("percentile", Pipeline("DICOM window percentile", "DICOM window",
                            "each DICOM image's 0.5th..99.5th percentile after rescale instead "
                            "of the file's VOI window")),
)


FILE_WINDOW_AGAIN = Pipeline("DICOM window file VOI, re-decoded", "DICOM window",
                             "the files decoded again with the file's own VOI window (the "
                             "default rule): must move nothing")
DEFAULT_DICOM = Pipeline("default", "reference", f"medsyn's: each DICOM file's own VOI window, "
                         f"then {RESIZE_FILTER}, rounded to 8 bits")


def preprocessing_variants(native: torch.Tensor, size: int | None, high_depth_loader=None,
                           identical: bool = False, dicom_loader=None,
                           stored_as: str | None = None
                           ) -> list[tuple[Pipeline, torch.Tensor | None, str | None]]:
    """(pipeline, images or None, reason when not applicable) for every alternative.

    ``native``: the evaluated images as stored (uint8, before any resize); ``size``: the
    evaluation size (None: stored size, no resize). ``high_depth_loader(bit_depth)`` -> the
    same images decoded with another bit-depth rule, or None when no file has more than 8 bits;
    ``dicom_loader(window)`` likewise with another DICOM window rule, None without DICOM files.
    ``stored_as``: how the dataset's files are stored (e.g. "PNG 8-bit"), said in the reason of
    the rows that do not apply to them. ``identical``: add a second copy of the default
    pipeline, and with DICOM files the files decoded again under the default window rule (both
    rows must read 0)."""
    def resized(images):
        return images if size is None else resize_uint8(images, size)

    stored = f" (stored as {stored_as})" if stored_as else ""
    default = resized(native)
    out: list = [(DEFAULT if dicom_loader is None else DEFAULT_DICOM, default, None)]
    if identical:
        out.append((Pipeline("default, again", "reference", "the default pipeline run a "
                             "second time (must move nothing)"), resize_uint8(native, size)
                    if size is not None else native.clone(), None))
    for pipeline, fn in RESIZE_PIPELINES:
        if size is None or tuple(native.shape[-2:]) == (size, size):
            out.append((pipeline, None, "no resize: the images are used at their stored size"))
        else:
            out.append((pipeline, fn(native, size), None))
    for rule in ("minmax", 16):
        pipeline = Pipeline(f"bit depth {rule}", "bit-depth rule",
                            f"files with more than 8 bits scaled by the rule {rule!r} instead "
                            "of the default (auto)")
        images = None if high_depth_loader is None else high_depth_loader(rule)
        if images is None:
            out.append((pipeline, None, f"every file is stored with 8 bits{stored}"
                        if dicom_loader is None else "no file but DICOM is stored with more "
                        "than 8 bits (DICOM files are windowed: see the DICOM window rows)"))
        else:
            out.append((pipeline, resized(images), None))
    if identical and dicom_loader is not None:
        out.append((FILE_WINDOW_AGAIN, resized(dicom_loader("file")), None))
    for window, pipeline in DICOM_WINDOW_PIPELINES:
        images = None if dicom_loader is None else dicom_loader(window)
        if images is None:
            out.append((pipeline, None, f"no DICOM file in the dataset{stored}"))
        else:
            out.append((pipeline, resized(images), None))
    return out


def preprocessing_sensitivity(variants, score_images: Callable[[torch.Tensor], dict],
                              keys: list[str]) -> dict:
    """Score every applicable variant; rows hold the values and their change from the
    default pipeline's (the first variant)."""
    rows = []
    base = None
    for pipeline, images, reason in variants:
        row = {"pipeline": pipeline.name, "aspect": pipeline.aspect,
               "description": pipeline.description}
        if images is None:
            rows.append({**row, "unavailable": reason})
            continue
        scores = score_images(images)
        if base is None:
            base = scores
        row["values"] = {k: scores.get(k) for k in keys}
        row["change"] = {k: (None if scores.get(k) is None or base.get(k) is None
                             else float(scores[k] - base[k])) for k in keys}
        rows.append(row)
    return {"rows": rows, "keys": keys}
