"""One intensity rule per dataset for images stored with more than 8 bits.

A 12-bit X-ray saved in a 16-bit PNG holds 0..4095. Scaling each image by its own maximum, or
keeping the top 8 of 16 bits, makes the same tissue a different grey in different files (or
turns the whole set black), so the rule is chosen once for the whole dataset from the option
``bit_depth``:

- ``"auto"`` (default): the bit depth the files declare (PNG ``sBIT``) when all of them do;
  otherwise the smallest of 8, 10, 12, 14 or 16 bits that holds the largest value found in the
  dataset (12-bit data -> 12 bits);
- an integer 8..16 (``--bit-depth 12``): values 0 .. 2**b - 1;
- ``"minmax"``: the dataset's global minimum .. maximum.

The chosen range [lo, hi] maps linearly to 0..255 (round half up). It applies to grayscale
files stored with more than 8 bits; 8-bit files are used as stored and DICOM files carry
their own window (:mod:`medsyn.data.formats.dicom`). A warning says when the data use less than
``SMALL_RANGE_FRACTION`` of the range (e.g. 12-bit values declared as 16-bit).
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medsyn.data.formats.imageio import IMAGE_EXTENSIONS, RawImage, decode_raw
from medsyn.errors import DataError

STANDARD_DEPTHS = (8, 10, 12, 14, 16)
SMALL_RANGE_FRACTION = 0.25
BIT_DEPTH_HELP = "auto (default), an integer 8..16, or minmax"


def parse_bit_depth(value) -> str | int:
    """``None``/``"auto"`` -> ``"auto"``; ``"12"``/12 -> 12; ``"minmax"``; else a DataError."""
    if value is None or value == "auto":
        return "auto"
    if value == "minmax":
        return value
    try:
        bits = int(value)
    except (TypeError, ValueError):
        bits = None
    if bits is None or isinstance(value, bool) or not 8 <= bits <= 16 or str(bits) != str(value):
        raise DataError(f"bit depth must be {BIT_DEPTH_HELP}, got {value!r}.")
    return bits


@dataclass
class IntensityRule:
    lo: float
    hi: float
    description: str
    warnings: list[str] = field(default_factory=list)

    def key(self) -> list:
        """What identifies the conversion (part of the array cache key)."""
        return [self.lo, self.hi, self.description]

    def to_uint8(self, raw: RawImage) -> np.ndarray:
        if not raw.high_depth:
            return raw.pixels
        unit = (raw.pixels.astype(np.float64) - self.lo) / (self.hi - self.lo)
        return np.floor(np.clip(unit, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


@dataclass(frozen=True)
class DepthStats:
    """What the rule needs to know about one file stored with more than 8 bits."""

    path: str
    low: int
    high: int
    significant_bits: int | None


def stats_of(raw: RawImage, path) -> DepthStats | None:
    if not raw.high_depth:
        return None
    return DepthStats(str(path), int(raw.pixels.min()), int(raw.pixels.max()),
                      raw.significant_bits)


def probe(path: Path) -> DepthStats | None:
    """Stats of one file, reading only the header of 8-bit and DICOM files; None for those
    and for unreadable files (they are reported when their own split is decoded)."""
    from PIL import Image

    if path.suffix.lower() not in IMAGE_EXTENSIONS:
        return None
    try:
        with Image.open(path) as img:
            if not img.mode.startswith("I"):
                return None
        return stats_of(decode_raw(path), path)
    except (DataError, OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None


def choose_rule(stats: list[DepthStats | None], bit_depth) -> IntensityRule:
    """The rule for a dataset whose high-bit-depth files have these ``stats`` (None entries,
    8-bit and DICOM files, are left out)."""
    option = parse_bit_depth(bit_depth)
    high = [s for s in stats if s is not None]
    if not high:
        note = [] if option == "auto" else [
            f"bit depth {option!r} was given but no file is stored with more than 8 bits "
            "(8-bit images and DICOM windows are used as they are)."]
        return IntensityRule(0, 255, "8-bit images used as stored", note)
    top = max(s.high for s in high)
    bottom = min(s.low for s in high)
    where_top = next(s.path for s in high if s.high == top)
    if option == "minmax":
        if top == bottom:
            raise DataError(f"every pixel of the {len(high)} high-bit-depth image(s) is "
                            f"{top}: a global min/max rule has nothing to scale.")
        return IntensityRule(bottom, top, f"global min/max of the dataset: {bottom}..{top} "
                                          f"-> 0..255 (bit depth minmax), for the {len(high)} "
                                          "file(s) stored with more than 8 bits")
    if isinstance(option, int):
        bits, how = option, f"{option} bits (given)"
        if top > 2 ** bits - 1:
            raise DataError(f"{where_top} holds the value {top}, above the {bits}-bit maximum "
                            f"{2 ** bits - 1} that was given as the bit depth. Give the "
                            "bit depth the data were saved with (e.g. 16), or minmax.")
    else:
        declared = {s.significant_bits for s in high}
        if None not in declared:
            bits = max(declared)
            how = f"{bits} bits, declared by the files (PNG sBIT)"
            if top > 2 ** bits - 1:
                raise DataError(f"{where_top} holds the value {top} although the files declare "
                                f"{bits} significant bits; give the real bit depth "
                                "(--bit-depth 16) or minmax.")
        else:
            bits = next(b for b in STANDARD_DEPTHS if top <= 2 ** b - 1)
            how = (f"{bits} bits: the smallest of {'/'.join(map(str, STANDARD_DEPTHS))} bits "
                   f"that holds the dataset's largest value {top} (bit depth auto; the files "
                   "declare none)")
    hi = 2 ** bits - 1
    rule = IntensityRule(0, hi, f"{how}: 0..{hi} -> 0..255, for the {len(high)} file(s) "
                                "stored with more than 8 bits")
    used = (top - bottom) / hi
    if used < SMALL_RANGE_FRACTION:
        rule.warnings.append(
            f"the {len(high)} high-bit-depth image(s) use only {100 * used:.1f} % of the "
            f"{bits}-bit range (values {bottom}..{top}), so they load dark or flat; if they "
            f"were saved with fewer bits, give that bit depth (--bit-depth 12), or use "
            "--bit-depth minmax.")
    return rule


def describe_intensity(raws: list[RawImage], relpaths: list[str], rule: IntensityRule) -> dict:
    """What ``ds.source["intensity"]`` records: the rule, the bit depths and the windows found
    (counts), and the DICOM window applied to each file."""
    depths: Counter = Counter()
    windows: Counter = Counter()
    per_file = {}
    for raw, rel in zip(raws, relpaths, strict=True):
        if raw.window is not None:
            depths[f"DICOM, {raw.container_bits} bits stored"] += 1
            windows[raw.window] += 1
            per_file[rel] = raw.window
        elif raw.container_bits > 8:
            sbit = f", {raw.significant_bits} significant (sBIT)" if raw.significant_bits else ""
            depths[f"{raw.format} {raw.container_bits}-bit{sbit}"] += 1
        else:
            depths[f"{raw.format} 8-bit"] += 1
    info = {"bit_depth_rule": rule.description, "bit_depths": dict(sorted(depths.items()))}
    if windows:
        info["windows"] = dict(sorted(windows.items()))
        info["dicom_window_per_file"] = per_file
    return info


def decode_image(path: str | os.PathLike, bit_depth=None, dicom_window=None) -> np.ndarray:
    """One file as uint8 (``[H, W]`` or ``[H, W, 3]``), with the intensity rule of
    this module applied to this file alone (``dicom_window``: see
    :mod:`medsyn.data.formats.dicom`)."""
    raw = decode_raw(path, dicom_window)
    return choose_rule([stats_of(raw, path)], bit_depth).to_uint8(raw)
