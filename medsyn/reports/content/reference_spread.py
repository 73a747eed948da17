"""Reference sensitivity beside a generator's score (issue 30, docs/statistics.md section 3).

``medsyn audit --reference-sensitivity`` measures, per feature space and metric, how much the
choice of real reference alone moves a score: over random halves of the reference (the same
kind of reference drawn again) and over references with one class left out (another disease
mix). In the report, a run's cell of that metric and space shows this spread, and says whether
the run's distance to the real-vs-real floor is within it:

- *within the spread of redrawn references*: the distance is at most the halves' range
  (max - min): another draw of the same kind of reference could move the score as much;
- *within a class-mix change*: larger than that, but at most the largest move of a reference
  with one class left out (``max |value - full reference value|``);
- *beyond the reference choice*: larger than both.

The same two spreads judge the gap between generators: for each metric and space, the
section says whether the gap between its two best runs is within the spread of redrawn
references, within a class-mix change, or larger than the reference choice
(:func:`generator_gap`).

The floor is the evaluation's own real-vs-real floor for FID and KID when results.json has it
(``real_floor.fid_halves`` / ``kid_halves``, same n as the run), else the audit's real-vs-real
score of that metric and space (held-out real images against the reference, at the audit's n,
which the sentence states: metrics biased in n, such as FID and coverage, read differently
at another n).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

REDRAWN = "within the spread of redrawn references"
CLASS_MIX = "within a class-mix change of the reference"
BEYOND = "beyond the reference choice"
# results.json keys of the evaluation's own floor, per metric key
EVALUATION_FLOORS = {"fid": "fid_halves", "kid": "kid_halves"}


@dataclass
class ReferenceSpread:
    """What the report shows beside one cell."""

    halves_range: float | None         # max - min of the metric over random reference halves
    class_mix_shift: float | None      # largest |one class left out - full reference|
    floor: float | None
    floor_source: str
    distance: float | None             # |run's value - floor|
    verdict: str | None                # REDRAWN, CLASS_MIX, BEYOND, or None without a floor
    sentence: str
    audit_path: str
    space: str = ""

    @property
    def within(self) -> bool:
        return self.verdict in (REDRAWN, CLASS_MIX)

    @property
    def short(self) -> str:
        """The compact text of the cell: 'ref. ±a / class mix b', and the verdict word."""
        parts = []
        if self.halves_range is not None:
            parts.append(f"ref. range {_g(self.halves_range)}")
        if self.class_mix_shift is not None:
            parts.append(f"class mix {_g(self.class_mix_shift)}")
        text = ", ".join(parts)
        if self.verdict == REDRAWN:
            text += ": within"
        elif self.verdict == CLASS_MIX:
            text += ": within class mix"
        return text


def _g(x: float) -> str:
    return f"{x:.3g}"


def _number(x) -> float | None:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    return float(x) if x == x and abs(x) != float("inf") else None


def _entry_value(entry) -> float | None:
    return _number(entry.get("value")) if isinstance(entry, Mapping) else _number(entry)


def spread_of(audit: Mapping, space: str, key: str) -> tuple[float | None, float | None,
                                                             float | None] | None:
    """(halves range, class-mix shift, the audit's full-reference real-vs-real value) of a
    metric in a space, or None when the audit has no reference sensitivity for it."""
    block = (((audit.get("reference_sensitivity") or {}).get("spaces") or {}).get(space)
             or {}).get("keys", {}).get(key)
    if not isinstance(block, Mapping):
        return None
    halves = block.get("halves") or {}
    lo, hi = _number(halves.get("min")), _number(halves.get("max"))
    halves_range = None if lo is None or hi is None else hi - lo
    full = _entry_value(((audit.get("spaces") or {}).get(space) or {})
                        .get("real_vs_real", {}).get(key))
    loo = block.get("leave_one_class_out") or {}
    lmin, lmax = _number(loo.get("min")), _number(loo.get("max"))
    shift = None
    if full is not None and lmin is not None and lmax is not None:
        shift = max(abs(lmax - full), abs(lmin - full))
    if halves_range is None and shift is None:
        return None
    return halves_range, shift, full


def reference_spread(audit: Mapping, audit_path: str, space: str, key: str, label: str,
                     value: float | None, evaluation_metrics: Mapping | None,
                     own_space: bool) -> ReferenceSpread | None:
    """The spread of ``key`` in ``space`` from ``audit`` beside a run's ``value``.

    ``evaluation_metrics``: the run's results.json ``metrics`` (its floor); ``own_space``:
    whether the cell is in the evaluation's primary space (where its top-level floor is)."""
    found = spread_of(audit, space, key)
    if found is None:
        return None
    halves_range, shift, audit_floor = found
    floor, source = None, ""
    own_key = EVALUATION_FLOORS.get(key)
    if own_key and own_space and isinstance(evaluation_metrics, Mapping):
        floor = _entry_value((evaluation_metrics.get("real_floor") or {}).get(own_key))
        source = f"this evaluation's real-vs-real floor ({own_key})"
    if floor is None and audit_floor is not None:
        floor = audit_floor
        n = (audit.get("settings") or {}).get("n")
        source = ("the audit's real-vs-real score (held-out real images vs the reference"
                  + (f", n = {n}" if n else "") + ")")
    spreads = []
    if halves_range is not None:
        spreads.append(f"random halves of the reference move {label} by up to "
                       f"{_g(halves_range)}")
    if shift is not None:
        spreads.append(f"a reference with one class left out moves it by up to {_g(shift)}")
    spread_text = "; ".join(spreads)
    if value is None or floor is None:
        return ReferenceSpread(halves_range, shift, floor, source, None, None,
                               f"Reference sensitivity ({space}, {audit_path}): "
                               f"{spread_text}.", audit_path, space)
    distance = abs(value - floor)
    verdict = _verdict(distance, halves_range, shift)
    reading = {
        REDRAWN: ("this is within what redrawing the reference alone does: not evidence of a "
                  "difference from real data"),
        CLASS_MIX: ("this is larger than redrawing the reference but within what a reference "
                    "with another class mix does"),
        BEYOND: "this is larger than the reference choice moves the metric",
    }[verdict]
    sentence = (f"{label} {_g(value)} is {_g(distance)} from {source}, {_g(floor)}. In "
                f"{space}, {spread_text} (medsyn audit --reference-sensitivity, "
                f"{audit_path}): {reading}.")
    return ReferenceSpread(halves_range, shift, floor, source, distance, verdict, sentence,
                           audit_path, space)


def _verdict(gap: float, halves_range: float | None, shift: float | None) -> str:
    if halves_range is not None and gap <= halves_range:
        return REDRAWN
    if shift is not None and gap <= shift:
        return CLASS_MIX
    return BEYOND


@dataclass
class GeneratorGap:
    """Whether the gap between the two best runs of a metric is larger than the reference
    choice moves that metric."""

    label: str
    space: str
    best: tuple[str, float]            # (run label, value)
    runner_up: tuple[str, float]
    gap: float
    verdict: str
    sentence: str


def generator_gap(label: str, space: str, best: tuple[str, float],
                  runner_up: tuple[str, float], spread: ReferenceSpread) -> GeneratorGap:
    """The gap |best - runner-up| of metric ``label`` in ``space`` against ``spread`` (the
    reference spread of that metric and space): within the halves' range (redrawing the
    reference could reverse the order), within the class-mix shift, or beyond both."""
    gap = abs(best[1] - runner_up[1])
    verdict = _verdict(gap, spread.halves_range, spread.class_mix_shift)
    spreads = []
    if spread.halves_range is not None:
        spreads.append(f"redrawing the reference moves it by up to {_g(spread.halves_range)}")
    if spread.class_mix_shift is not None:
        spreads.append(f"a class-mix change by up to {_g(spread.class_mix_shift)}")
    reading = {
        REDRAWN: (f"the gap is within what redrawing the reference alone does, so it does not "
                  f"show that {best[0]} is the better generator"),
        CLASS_MIX: ("the gap is larger than redrawing the reference does but within what a "
                    "reference with another class mix does"),
        BEYOND: f"the gap is larger than the reference choice moves {label}",
    }[verdict]
    sentence = (f"{label} ({space}): {best[0]} {_g(best[1])} and {runner_up[0]} "
                f"{_g(runner_up[1])} differ by {_g(gap)}; {', '.join(spreads)}: {reading}.")
    return GeneratorGap(label, space, best, runner_up, gap, verdict, sentence)
