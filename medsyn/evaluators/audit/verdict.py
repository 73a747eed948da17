"""How a metric's response to one failure is judged: detected, late, missed or wrong direction.

Inputs are the metric's value and 95 % interval at every severity level, level 0 being the
held-out real images themselves (the real-vs-real point), and the direction in which the
metric gets worse (declared with the metric: ``register_metric(..., worse={key: ...})``).

- A level *departs* when its value lies outside the level-0 interval: on the worse side
  (above it for "higher is worse", below it for "lower is worse", either side for "either"),
  or on the better side.
- **wrong direction**: the first departing level departs on the better side (e.g. FID that
  drops when the set copies training images).
- **missed**: no level departs.
- **detected**: the first departure is on the worse side at a level <= ``early_level``
  (by default the lower half of the levels: ceil(L / 2));
  **late**: it departs on the worse side only above that.
- **unavailable**: the metric has no value at level 0 or at any level above it.

Beside the verdict: the detection threshold (first level departing on the worse side, also
when a better-side departure came first), the Spearman correlation of the value with the
level (0..L), and whether it moves the right way (the correlation, oriented so that worse is
positive, is > 0; for "either", the correlation of |value - value at level 0| with the level).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

DETECTED, LATE, MISSED, WRONG, UNAVAILABLE = (
    "detected", "late", "missed", "wrong direction", "unavailable")
VERDICTS = (DETECTED, LATE, MISSED, WRONG, UNAVAILABLE)
WORSE, BETTER = "worse", "better"


def default_early_level(n_levels: int) -> int:
    return max(1, math.ceil(n_levels / 2))


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def departure(value, interval, worse: str) -> str | None:
    """Where ``value`` lies against the real-vs-real ``interval``: WORSE, BETTER or None."""
    lo, hi = interval
    if worse == "either":
        return WORSE if value < lo or value > hi else None
    above, below = value > hi, value < lo
    if worse == "higher":
        return WORSE if above else BETTER if below else None
    if worse == "lower":
        return WORSE if below else BETTER if above else None
    raise ValueError(f"unknown worse direction {worse!r}")


def spearman(levels: Sequence[float], values: Sequence[float]) -> float | None:
    """Spearman's rank correlation (scipy), or None with < 3 points or a constant series."""
    if len(values) < 3 or len(set(values)) < 2 or len(set(levels)) < 2:
        return None
    from scipy.stats import spearmanr

    rho = spearmanr(levels, values).statistic
    return float(rho) if math.isfinite(rho) else None


def classify(values: Sequence, intervals: Sequence, worse: str,
             early_level: int | None = None) -> dict:
    """Judge one (failure, metric, space) cell. ``values[i]`` / ``intervals[i]`` at level i;
    a level whose value is None is skipped."""
    n_levels = len(values) - 1
    early = default_early_level(n_levels) if early_level is None else early_level
    out = {"verdict": UNAVAILABLE, "threshold_level": None, "first_departure": None,
           "spearman": None, "moves_right_way": None, "departures": [None] * len(values),
           "early_level": early}
    v0, ci0 = values[0], intervals[0]
    if not _finite(v0):
        out["reason"] = "no value for the real images (level 0)"
        return out
    if ci0 is None or len(ci0) != 2 or not all(_finite(x) for x in ci0):
        out["reason"] = "no interval for the real images (level 0): run with bootstrap >= 2"
        return out
    levels = [i for i in range(1, n_levels + 1) if _finite(values[i])]
    if not levels:
        out["reason"] = "no value at any severity level"
        return out
    for i in levels:
        out["departures"][i] = departure(values[i], ci0, worse)
    worse_levels = [i for i in levels if out["departures"][i] == WORSE]
    first = next((i for i in levels if out["departures"][i] is not None), None)
    out["threshold_level"] = worse_levels[0] if worse_levels else None
    out["first_departure"] = first
    xs = [0, *levels]
    ys = [v0, *[values[i] for i in levels]]
    if worse == "either":
        rho = spearman(xs, [abs(y - v0) for y in ys])
        oriented = rho
    else:
        rho = spearman(xs, ys)
        oriented = None if rho is None else (rho if worse == "higher" else -rho)
    out["spearman"] = rho
    out["moves_right_way"] = None if oriented is None else oriented > 0
    if first is None:
        out["verdict"] = MISSED
    elif out["departures"][first] == BETTER:
        out["verdict"] = WRONG
    else:
        out["verdict"] = DETECTED if first <= early else LATE
    return out
