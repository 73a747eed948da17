"""Plain-language reading of one evaluation, and readable text for raw result values.

The verdict turns the numbers a newcomer cannot yet weigh into sentences, each naming the
number and the threshold it was compared with (the thresholds are module constants, listed in
docs/report.md, so a reader can disagree with them):

    verdict = evaluation_verdict(evaluation.metrics)
    verdict.sentences   # ["FID is 4.5x the real-vs-real floor (143.7 vs 31.9): ...", ...]
    verdict.level       # "good" | "fair" | "poor" | "unknown" (the worst sentence's level)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# FID / floor ratio: at most CLOSE the synthetic set scores like real data at this n; above
# FAR it is far from the real distribution.
FID_FLOOR_CLOSE = 1.5
FID_FLOOR_FAR = 3.0

# recall / coverage (Naeem et al.): below LOW almost none of the real data is covered.
COVER_LOW = 0.10
COVER_PART = 0.50
# precision: below this, many samples lie outside the real manifold.
PRECISION_LOW = 0.50
# memorization: flagged when the fraction is at least this many times the fraction expected
# without copying AND the interval's lower end is above that expectation.
MEMORIZATION_FACTOR = 2.0
# utility: TSTR / TRTR accuracy at least this is "nearly as useful as real data".
TSTR_RATIO_GOOD = 0.90
TSTR_RATIO_POOR = 0.70

THRESHOLDS = (
    f"FID vs floor: <= {FID_FLOOR_CLOSE}x close to real, > {FID_FLOOR_FAR}x far; "
    f"recall/coverage: < {COVER_LOW} almost none covered, < {COVER_PART} part; "
    f"precision < {PRECISION_LOW}: many samples off the real manifold; "
    f"memorized: >= {MEMORIZATION_FACTOR}x the expected fraction with the interval above it; "
    f"TSTR/TRTR: >= {TSTR_RATIO_GOOD} good, < {TSTR_RATIO_POOR} poor")

_LEVELS = ("good", "fair", "poor")


@dataclass
class Verdict:
    sentences: list[str] = field(default_factory=list)
    levels: list[str] = field(default_factory=list)
    thresholds: str = THRESHOLDS

    def add(self, level: str, sentence: str) -> None:
        self.levels.append(level)
        self.sentences.append(sentence[:1].upper() + sentence[1:])

    @property
    def level(self) -> str:
        known = [lv for lv in self.levels if lv in _LEVELS]
        return max(known, key=_LEVELS.index) if known else "unknown"


def floor_level(ratio: float) -> str:
    """"good" / "fair" / "poor" for an FID-to-floor ratio: the thresholds every verdict uses."""
    if ratio <= FID_FLOOR_CLOSE:
        return "good"
    return "fair" if ratio <= FID_FLOOR_FAR else "poor"


def _num(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    return float(x) if math.isfinite(x) else None


def _value(metrics: Mapping[str, Any], *path: str) -> float | None:
    obj: Any = metrics
    for key in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    if isinstance(obj, Mapping):
        obj = obj.get("value", obj.get("mean"))
    return _num(obj)


def _fid_sentence(metrics: Mapping[str, Any], verdict: Verdict) -> None:
    fid = _value(metrics, "fid")
    if fid is None:
        return
    floor, which = _value(metrics, "real_floor", "fid_train_vs_test"), "real train vs test"
    if floor is None:
        floor, which = _value(metrics, "real_floor", "fid_halves"), "two real halves"
    if floor is None or floor <= 0:
        verdict.add("unknown", f"FID is {fid:.1f}, with no real-vs-real floor to read it "
                               "against (evaluate with --metrics real_floor).")
        return
    ratio = fid / floor
    level = floor_level(ratio)
    reading = {"good": "the synthetic images score about as real data does at this n",
               "fair": "clearly distinguishable from real data, not far from it",
               "poor": "far from the real distribution"}[level]
    verdict.add(level, f"FID is {ratio:.1f}x the real-vs-real floor ({fid:.1f} vs {floor:.1f}, "
                       f"{which}): {reading}.")


def _coverage_sentence(metrics: Mapping[str, Any], verdict: Verdict) -> None:
    recall, coverage = _value(metrics, "recall"), _value(metrics, "coverage")
    precision = _value(metrics, "precision")
    if recall is not None:
        cov = f"recall {recall:.3f}" + (f", coverage {coverage:.3f}" if coverage is not None
                                        else "")
        worst = min(recall, coverage) if coverage is not None else recall
        if worst < COVER_LOW:
            verdict.add("poor", f"{cov}: the samples cover almost none of the real data "
                                "(low diversity or mode collapse).")
        elif worst < COVER_PART:
            verdict.add("fair", f"{cov}: the samples cover part of the real data.")
        else:
            verdict.add("good", f"{cov}: the samples cover most of the real data.")
    if precision is not None:
        if precision < PRECISION_LOW:
            verdict.add("poor", f"precision {precision:.3f}: many samples lie outside the real "
                                "data's manifold (unrealistic images).")
        else:
            verdict.add("good", f"precision {precision:.3f}: most samples look like real data "
                                "in feature space.")


def _memorization_sentence(metrics: Mapping[str, Any], verdict: Verdict) -> None:
    mem = metrics.get("memorization")
    if not isinstance(mem, Mapping):
        return
    fraction = _num(mem.get("fraction"))
    expected = _num(mem.get("expected_fraction_without_copying"))
    if expected is None and _num(mem.get("percentile")) is not None:
        expected = _num(mem.get("percentile")) / 100.0
    if fraction is None or expected is None:
        return
    ci = mem.get("ci95")
    lo = _num(ci[0]) if isinstance(ci, (list, tuple)) and len(ci) == 2 else None
    if fraction >= MEMORIZATION_FACTOR * expected and (lo is None or lo > expected):
        verdict.add("poor", f"memorization: {100 * fraction:.1f} % of the samples are closer to "
                            f"a training image than held-out real images are (about "
                            f"{100 * expected:.0f} % expected without copying): inspect the "
                            "closest pairs below.")
    else:
        verdict.add("good", f"memorization: {100 * fraction:.1f} % of the samples are unusually "
                            f"close to a training image (about {100 * expected:.0f} % expected "
                            "without copying): no sign of copying.")


def _utility_sentence(metrics: Mapping[str, Any], verdict: Verdict) -> None:
    ratio = _value(metrics, "utility", "tstr_over_trtr", "accuracy")
    if ratio is None:
        return
    if ratio >= TSTR_RATIO_GOOD:
        level, reading = "good", "nearly as useful as real data for training a classifier"
    elif ratio >= TSTR_RATIO_POOR:
        level, reading = "fair", "useful for training, but clearly below real data"
    else:
        level, reading = "poor", "much less useful than real data for training a classifier"
    verdict.add(level, f"a classifier trained on the synthetic images reaches {ratio:.2f}x the "
                       f"accuracy of one trained on real images: {reading}.")


def evaluation_verdict(metrics: Mapping[str, Any]) -> Verdict:
    """The plain-language verdict of one results.json ``metrics`` object (generation kind)."""
    verdict = Verdict()
    if not isinstance(metrics, Mapping):
        return verdict
    _fid_sentence(metrics, verdict)
    _coverage_sentence(metrics, verdict)
    _memorization_sentence(metrics, verdict)
    _utility_sentence(metrics, verdict)
    return verdict


# ---------------------------------------------------------------- readable raw values


def plain_number(x: Any, digits: int = 3) -> str:
    """Integers as integers, other numbers with ``digits`` decimals (4 significant figures for
    very small values), anything else as text."""
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return str(x)
    if isinstance(x, float):
        if not math.isfinite(x):
            return "n/a"
        if x.is_integer() and abs(x) < 1e15:
            return str(int(x))
        if x != 0 and abs(x) < 10 ** -digits:
            return f"{x:.{digits + 1}g}"
        return f"{x:.{digits}f}"
    return str(x)


def memorization_details(mem: Mapping[str, Any]) -> dict:
    """The memorization block as readable facts plus a table of the closest pairs (instead of
    printing the ``closest`` list as a Python structure)."""
    labels = {"threshold": "distance threshold (held-out percentile)",
              "percentile": "percentile of held-out distances",
              "expected_fraction_without_copying": "fraction expected without copying",
              "n_fake": "synthetic images", "n_train": "training images",
              "n_heldout": "held-out real images", "extractor": "feature space",
              "distance": "distance", "median_fake_distance": "median synthetic distance",
              "median_heldout_distance": "median held-out distance", "ci95": "95 % interval"}
    facts = []
    for key, value in mem.items():
        if key in ("fraction", "closest"):
            continue
        if key == "ci95" and isinstance(value, (list, tuple)) and len(value) == 2:
            shown = f"[{plain_number(value[0])}, {plain_number(value[1])}]"
        elif isinstance(value, (Mapping, list, tuple)):
            continue
        else:
            shown = plain_number(value)
        facts.append((labels.get(key, key.replace("_", " ")), shown))
    pairs = []
    for pair in mem.get("closest") or []:
        if isinstance(pair, Mapping):
            pairs.append({"fake": plain_number(pair.get("fake_index")),
                          "train": plain_number(pair.get("train_index")),
                          "distance": plain_number(_num(pair.get("distance")))})
    return {"facts": facts, "pairs": pairs}
