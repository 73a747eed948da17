"""How many images does a metric need to detect a failure? Sample-size power of every audited
metric (``medsyn audit --power``; docs/statistics.md).

For each set size n of a grid and each failure level, ``repeats`` independent draws:

- the *null*: a fresh stratified sample of n held-out real images, scored against the
  reference (level 0), ``repeats`` times;
- each level: a fresh base sample of n images, damaged at that level, scored the same way.

A draw is *detected* when its score lies beyond the null's (1 - alpha) quantile at the same n
in the metric's worse direction (both alpha / 2 tails for an "either" metric). The detection
rate over the draws is the power at (n, level); the *minimum n* of a level is the smallest n of
the grid from which the power stays at or above ``target`` (80 %) for every larger n.

The null threshold is an empirical quantile of ``repeats`` draws, so the false detection rate
is alpha only up to the resolution of ``repeats``. Draws come from one held-out pool: sizes
are capped at half the pool (the failures that replace images need the other half), and at the
largest sizes the draws overlap, which narrows the null; the grid says which sizes were run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from medsyn.data.subsets import stratified_rows
from medsyn.evaluators.audit import perturbations as P

DEFAULT_SIZES = (25, 50, 100, 200, 400, 800, 1600, 2000)
DEFAULT_REPEATS = 20
ALPHA = 0.05
TARGET_POWER = 0.8


def _detected(values: np.ndarray, null: np.ndarray, worse: str, alpha: float) -> np.ndarray:
    if worse == "higher":
        return values > np.quantile(null, 1 - alpha)
    if worse == "lower":
        return values < np.quantile(null, alpha)
    lo, hi = np.quantile(null, [alpha / 2, 1 - alpha / 2])
    return (values < lo) | (values > hi)


def minimum_n(sizes: Sequence[int], rates: Sequence[float | None], target: float) -> int | None:
    """The smallest size from which every rate (this one and all larger) is >= ``target``."""
    best = None
    for n, rate in zip(reversed(list(sizes)), reversed(list(rates)), strict=True):
        if rate is None or rate < target:
            break
        best = n
    return best


def power_curve(score: Callable[[int, int, int], dict], levels: Sequence[int],
                sizes: Sequence[int], repeats: int, directions: dict[str, str],
                alpha: float = ALPHA, target: float = TARGET_POWER) -> dict:
    """Detection rates of every key of ``directions`` at every size and level.

    ``score(level, n, draw)`` -> ``{key: value or None}``: the metrics of draw number ``draw``
    of ``n`` images at ``level`` (0: real, the null). Returns ``{key: {"levels": [{"level",
    "rates": [one per size, None where a draw had no value], "min_n"}], "null_thresholds"}}``.
    """
    null = {n: [score(0, n, r) for r in range(repeats)] for n in sizes}
    damaged = {(lv, n): [score(lv, n, r) for r in range(repeats)]
               for lv in levels for n in sizes}
    out: dict = {}
    for key, worse in directions.items():
        per_level, thresholds = [], []
        for n in sizes:
            vals = np.array([d.get(key) for d in null[n]], dtype=float)
            thresholds.append(None if np.isnan(vals).any() else
                              [float(v) for v in np.quantile(
                                  vals, [alpha / 2, 1 - alpha / 2] if worse == "either"
                                  else [1 - alpha if worse == "higher" else alpha])])
        for lv in levels:
            rates = []
            for n in sizes:
                ref = np.array([d.get(key) for d in null[n]], dtype=float)
                vals = np.array([d.get(key) for d in damaged[(lv, n)]], dtype=float)
                if np.isnan(ref).any() or np.isnan(vals).any():
                    rates.append(None)
                    continue
                rates.append(float(_detected(vals, ref, worse, alpha).mean()))
            per_level.append({"level": lv, "rates": rates,
                              "min_n": minimum_n(sizes, rates, target)})
        out[key] = {"worse": worse, "levels": per_level, "null_thresholds": thresholds}
    return out


def power_sizes(requested: Sequence[int] | None, pool_size: int) -> tuple[list[int], list[int]]:
    """The grid that fits the pool (at most half of it) and the requested sizes left out."""
    grid = sorted(set(requested or DEFAULT_SIZES))
    cap = pool_size // 2
    return [n for n in grid if n <= cap], [n for n in grid if n > cap]


def audit_power(failures, pool: P.Pool, score_set: Callable, sizes: Sequence[int],
                repeats: int, directions: dict[str, str], seed: int,
                alpha: float = ALPHA, target: float = TARGET_POWER) -> dict:
    """:func:`power_curve` of every failure on the audit's held-out pool. ``score_set(set)``
    scores a :class:`perturbations.SyntheticSet` against the reference (``{key: value}``).

    Every draw (a null draw of n real images, shared by the failures, or a damaged draw of one
    failure level) is built from its own seed and scored on its own, so the draws are computed
    as independent items: under ``torchrun`` they are dealt across the ranks (each rank builds,
    extracts and scores whole draws; features/sharding.py ``map_across_ranks``) and every rank
    receives all the scores, the single process's values."""
    from medsyn.evaluators.features.sharding import map_across_ranks

    failures = list(failures)

    def base_pool(n, tag, draw):
        rng = np.random.default_rng([seed, 30, tag, n, draw])
        rows = stratified_rows(pool.labels, n, rng)
        return P.Pool(images=pool.images, labels=pool.labels, base_rows=rows,
                      class_names=pool.class_names, copy_source=pool.copy_source,
                      copy_labels=pool.copy_labels, clusters=pool.clusters,
                      cluster_space=pool.cluster_space)

    def score_draw(draw_key):
        tag, level, n, draw = draw_key       # tag 0: the null; i: the i-th failure (from 1)
        if level == 0:
            return score_set(P.real_set(base_pool(n, 0, draw)))
        damaged = P.build_set(failures[tag - 1], level, base_pool(n, tag, draw),
                              seed * 1000 + draw)
        return score_set(damaged)

    draws = [(0, 0, n, r) for n in sizes for r in range(repeats)]
    draws += [(i, lv, n, r) for i, failure in enumerate(failures, start=1)
              for lv in range(1, len(failure.levels) + 1) for n in sizes for r in range(repeats)]
    scores = dict(zip(draws, map_across_ranks(score_draw, draws, desc="power", unit="draw"),
                      strict=True))
    out = {}
    for i, failure in enumerate(failures, start=1):
        def score(level, n, draw, i=i):
            return scores[(0 if level == 0 else i, level, n, draw)]

        curve = power_curve(score, range(1, len(failure.levels) + 1), sizes, repeats,
                            directions, alpha, target)
        for cell in curve.values():
            for lv in cell["levels"]:
                p = failure.levels[lv["level"] - 1]
                lv["parameter"] = list(p) if isinstance(p, tuple) else p
        out[failure.name] = curve
    return out
