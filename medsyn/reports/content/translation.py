"""The verdict of a translation evaluation (results kind ``translation``, docs/translation.md)
in plain words, each sentence naming the numbers and the rule it applied:

    verdict = translation_verdict(evaluation.metrics)

Paired models (pix2pix): does the model beat each simple baseline (the input itself, the
bicubic upscaling, the mean training image) on MAE-Y, PSNR-Y and SSIM-Y beyond the 95 %
intervals (the two intervals do not overlap), and how far is its FID from the real-vs-real
floor. Unpaired models (CycleGAN): FID against the floor and against the untranslated inputs,
the target-class rate of the real-data classifier, and whether the content is preserved (the
feature distance of each input to its own output against that to other inputs' outputs). When
the classifier's rate says success and the other two say failure, the verdict says so: the rate
alone would have called a failure a success.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from medsyn.reports.content.verdict import FID_FLOOR_CLOSE, FID_FLOOR_FAR, Verdict, floor_level

# the target-class rate at which the classifier calls the translation a success
TARGET_RATE_SUCCESS = 0.5

THRESHOLDS = (
    "translation: better or worse than a baseline = the two 95 % intervals do not overlap; "
    f"FID vs floor: <= {FID_FLOOR_CLOSE}x close to real, > {FID_FLOOR_FAR}x far; "
    f"target-class rate >= {TARGET_RATE_SUCCESS}: the classifier calls it a success; content "
    "kept = the interval of the feature distance of each input to its own output lies below "
    "that of the distance to another input's output")

BASELINES = {"condition": "the input itself", "bicubic": "the bicubic upscaling",
             "mean_image": "the mean training image"}
# metric -> (label, higher is better, digits)
PAIRED = {"mae_y": ("MAE-Y", False, 2), "psnr_y": ("PSNR-Y", True, 2),
          "ssim_y": ("SSIM-Y", True, 3)}


class _Entry:
    """A results.json entry's value and 95 % interval (None when missing or unavailable)."""

    def __init__(self, metrics: Mapping[str, Any], *path: str):
        obj: Any = metrics
        for key in path:
            obj = obj.get(key) if isinstance(obj, Mapping) else None
        self.value = self.lo = self.hi = None
        if isinstance(obj, Mapping):
            self.value = _num(obj.get("value"))
            ci = obj.get("ci95")
            if isinstance(ci, (list, tuple)) and len(ci) == 2:
                self.lo, self.hi = _num(ci[0]), _num(ci[1])

    def __bool__(self) -> bool:
        return self.value is not None

    def text(self, digits: int) -> str:
        interval = (f" [{self.lo:.{digits}f}, {self.hi:.{digits}f}]"
                    if self.lo is not None and self.hi is not None else "")
        return f"{self.value:.{digits}f}{interval}"


def _and(words: list[str]) -> str:
    return " and ".join([", ".join(words[:-1]), words[-1]] if len(words) > 2 else words)


def _num(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    return float(x) if math.isfinite(x) else None


def _compare(model: _Entry, other: _Entry, higher_better: bool) -> str:
    """``better`` / ``worse`` when the intervals do not overlap, else ``tied`` (also when an
    interval is missing: nothing can be said beyond the estimates)."""
    if None in (model.lo, model.hi, other.lo, other.hi):
        return "tied"
    if model.lo > other.hi:
        return "better" if higher_better else "worse"
    if model.hi < other.lo:
        return "worse" if higher_better else "better"
    return "tied"


def _fid_floor(metrics: Mapping[str, Any], verdict: Verdict, what: str) -> None:
    fid = _Entry(metrics, "fid")
    if not fid:
        return
    floor, which = _Entry(metrics, "real_floor", "fid_train_vs_test"), "real train vs test"
    if not floor:
        floor, which = _Entry(metrics, "real_floor", "fid_halves"), "two real halves"
    if not floor or floor.value <= 0:
        verdict.add("unknown", f"FID of the {what} is {fid.value:.1f}, with no real-vs-real "
                               "floor to read it against.")
        return
    ratio = fid.value / floor.value
    level = floor_level(ratio)
    reading = {"good": "they score about as real images do at this n",
               "fair": "clearly distinguishable from real images, not far from them",
               "poor": "far from the real images' distribution"}[level]
    verdict.add(level, f"FID of the {what} is {ratio:.1f}x the real-vs-real floor "
                       f"({fid.value:.1f} vs {floor.value:.1f}, {which}): {reading}.")


def _paired_sentences(metrics: Mapping[str, Any], verdict: Verdict) -> None:
    model = {m: _Entry(metrics, m) for m in PAIRED}
    for baseline, name in BASELINES.items():
        others = {m: _Entry(metrics, f"{m}_{baseline}") for m in PAIRED}
        shown = [m for m in PAIRED if model[m] and others[m]]
        if not shown:
            continue
        outcome = {m: _compare(model[m], others[m], PAIRED[m][1]) for m in shown}
        detail = "; ".join(f"{PAIRED[m][0]} {model[m].text(PAIRED[m][2])} vs "
                           f"{others[m].text(PAIRED[m][2])}" for m in shown)
        labels = {o: [PAIRED[m][0] for m in shown if outcome[m] == o]
                  for o in ("better", "worse", "tied")}
        if labels["worse"]:
            verdict.add("poor", f"the model is worse than {name} on "
                                f"{_and(labels['worse'])} beyond the 95 % intervals "
                                f"({detail}): a trivial baseline does better.")
        elif labels["tied"]:
            verdict.add("fair", f"the model beats {name} beyond the 95 % intervals on "
                                f"{_and(labels['better']) or 'no metric'}, but not on "
                                f"{_and(labels['tied'])} (intervals overlap; {detail}).")
        else:
            verdict.add("good", f"the model beats {name} on {_and(labels['better'])} "
                                f"beyond the 95 % intervals ({detail}).")
    fid = _Entry(metrics, "fid")
    for baseline, name in BASELINES.items():
        other = _Entry(metrics, f"fid_{baseline}")
        if fid and other:
            outcome = _compare(fid, other, higher_better=False)
            word = {"better": "lower than", "worse": "higher than",
                    "tied": "not separable from"}[outcome]
            verdict.add({"better": "good", "worse": "poor", "tied": "fair"}[outcome],
                        f"its FID, {fid.text(1)}, is {word} that of {name}, {other.text(1)}.")
    _fid_floor(metrics, verdict, "outputs")


def _unpaired_sentences(metrics: Mapping[str, Any], verdict: Verdict) -> None:
    _fid_floor(metrics, verdict, "translated images against the target domain")
    fid, identity = _Entry(metrics, "fid"), _Entry(metrics, "fid_identity")
    moved_away = False
    if fid and identity:
        outcome = _compare(fid, identity, higher_better=False)
        moved_away = outcome == "worse"
        verdict.add({"better": "good", "worse": "poor", "tied": "fair"}[outcome], {
            "better": f"the translated images are closer to the target domain than the "
                      f"untranslated inputs (FID {fid.text(1)} vs {identity.text(1)}).",
            "worse": f"the translated images are further from the target domain than the "
                     f"untranslated inputs (FID {fid.text(1)} vs {identity.text(1)}): doing "
                     "nothing scores better.",
            "tied": f"the translated images are no closer to the target domain than the "
                    f"untranslated inputs, within the intervals (FID {fid.text(1)} vs "
                    f"{identity.text(1)})."}[outcome])
    rate = _Entry(metrics, "target_class_rate")
    block = metrics.get("target_class_rate")
    block = block if isinstance(block, Mapping) else {}
    success = False
    if rate:
        inputs, real = _Entry(block, "inputs"), _Entry(block, "real_target")
        refs = ", ".join(f"{who} {e.text(2)}" for who, e in (("inputs", inputs),
                                                              ("real target images", real)) if e)
        target = block.get("target_class") or "the target class"
        success = rate.value >= TARGET_RATE_SUCCESS and (
            not inputs or _compare(rate, inputs, higher_better=True) == "better")
        verdict.add("good" if success else "poor",
                    f"the real-data classifier puts {100 * rate.value:.0f} % of the translated "
                    f"images in {target} (rate {rate.text(2)}"
                    + (f"; {refs}" if refs else "") + "): "
                    + ("by this measure alone the translation works." if success else
                       "the translation does not reach the target class."))
    own = _Entry(metrics, "content_feature_distance")
    unrelated = _Entry(metrics, "content_feature_distance_unrelated")
    lost = False
    if own and unrelated:
        kept = _compare(own, unrelated, higher_better=False) == "better"
        lost = not kept
        detail = (f"feature distance to its own output {own.text(2)} vs to another input's "
                  f"output {unrelated.text(2)}")
        verdict.add("good" if kept else "poor",
                    f"content is preserved: each output is closer to its own input than to "
                    f"other inputs ({detail})." if kept else
                    f"content is not preserved: each output is about as far from its own input "
                    f"as from any other ({detail}).")
    if success and (moved_away or lost):
        why = " and ".join(w for w, on in (("its images are further from the target domain "
                                            "than the untranslated inputs", moved_away),
                                           ("they keep no more of their input than of any "
                                            "other", lost)) if on)
        verdict.add("poor", f"the target-class rate alone would call this translation a "
                            f"success; it is not one: {why}.")


def translation_verdict(metrics: Mapping[str, Any]) -> Verdict:
    """The plain-language verdict of one results.json ``metrics`` object (translation kind);
    paired when it holds the paired scores (``psnr_y``), else unpaired."""
    verdict = Verdict(thresholds=THRESHOLDS)
    if not isinstance(metrics, Mapping):
        return verdict
    if isinstance(metrics.get("psnr_y"), Mapping):
        _paired_sentences(metrics, verdict)
    else:
        _unpaired_sentences(metrics, verdict)
    return verdict
