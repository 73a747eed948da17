"""Values of results.json read into report cells: a number with its interval, sample size and
notes, or the reason it is missing.

:func:`entry_cell` reads a results.json *entry* ({value, ci95, n_real, n_fake, ...}); the
other readers here handle the blocks laid out differently (``utility``'s statistics over
seeds, ``memorization``'s fraction, ``authenticity``'s held-out reference). A value a producer
could not compute becomes a cell whose ``unavailable`` holds the producer's reason, so the
report never prints "nan". The columns that use these readers are in
:mod:`medsyn.reports.content.metrics`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Cell:
    """One value of a table: a number with its interval and sample size, or why it is missing."""

    value: float | None = None
    lo: float | None = None
    hi: float | None = None
    interval_kind: str = "95% CI"
    spread: float | None = None          # a published "±" (meaning given by the baseline)
    std: float | None = None
    n: str | None = None                 # compact sample size, e.g. "n=2808 / 2808"
    n_title: str | None = None           # the same spelled out: "2808 fake / 2808 real images"
    unavailable: str | None = None       # the reason, when the metric could not be computed
    extractor: str | None = None
    warnings: list[str] = field(default_factory=list)   # shown with a warning sign
    notes: list[str] = field(default_factory=list)      # shown on hover only
    best: bool = False
    footnote: int | None = None          # number of the table note giving `unavailable`
    # how much the choice of real reference alone moves this metric in this space, from an
    # audit of the same dataset (content.reference_spread.ReferenceSpread), when there is one
    reference: Any = None

    @property
    def available(self) -> bool:
        return self.value is not None and self.unavailable is None


def _dig(obj: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(obj, Mapping) or key not in obj:
            return None
        obj = obj[key]
    return obj


def _number(x: Any) -> float | None:
    """A finite float, or None (also for NaN/inf, which a producer must never write)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _interval(ci: Any) -> tuple[float | None, float | None]:
    if isinstance(ci, (list, tuple)) and len(ci) == 2:
        lo, hi = _number(ci[0]), _number(ci[1])
        if lo is not None and hi is not None:
            return lo, hi
    return None, None


def _n_text(entry: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(compact, spelled-out) sample size of an entry."""
    n_fake, n_real = entry.get("n_fake"), entry.get("n_real")
    if n_fake is not None and n_real is not None:
        return f"n={n_fake} / {n_real}", f"{n_fake} fake / {n_real} real images"
    if n_fake is not None:
        return f"n={n_fake}", f"{n_fake} fake images"
    if n_real is not None:
        return f"n={n_real} real", f"{n_real} real images"
    if entry.get("n") is not None:
        return f"n={entry['n']}", f"{entry['n']} images"
    return None, None


def _unavailable_reason(raw: Any) -> str:
    if isinstance(raw, Mapping) and raw.get("unavailable"):
        return str(raw["unavailable"])
    if isinstance(raw, Mapping) and "value" in raw and raw["value"] is not None:
        return "non-finite value in results.json"
    return "no value recorded in results.json"


def _plain_number_cell(raw: Any) -> Cell:
    """A bare number where results.json usually holds an entry or a statistic."""
    value = _number(raw)
    return Cell(value=value) if value is not None else Cell(
        unavailable="not a number in results.json")


def entry_cell(entry: Any) -> Cell | None:
    """A results.json *entry* ({value, ci95, n_real, n_fake, extractor, ...}) as a cell."""
    if entry is None:
        return None
    if not isinstance(entry, Mapping):
        return _plain_number_cell(entry)
    value = _number(entry.get("value"))
    n, n_title = _n_text(entry)
    if value is None or entry.get("unavailable"):
        return Cell(unavailable=_unavailable_reason(entry), n=n, n_title=n_title,
                    extractor=entry.get("extractor"))
    lo, hi = _interval(entry.get("ci95"))
    cell = Cell(value=value, lo=lo, hi=hi, n=n, n_title=n_title,
                extractor=entry.get("extractor"), std=_number(entry.get("std")))
    if entry.get("warning"):
        cell.warnings.append(str(entry["warning"]))
    if entry.get("note"):
        cell.notes.append(str(entry["note"]))
    return cell


def path_entry(*path: str) -> Callable[[Mapping[str, Any]], Cell | None]:
    def extract(metrics: Mapping[str, Any]) -> Cell | None:
        return entry_cell(_dig(metrics, path))
    return extract


def _t_interval(values: list[float]) -> tuple[float, float] | None:
    if len(values) < 2:
        return None
    from scipy import stats

    mean = sum(values) / len(values)
    sem = stats.sem(values)
    if not math.isfinite(sem):
        return None
    if sem == 0:
        return mean, mean
    lo, hi = stats.t.interval(0.95, len(values) - 1, loc=mean, scale=sem)
    return float(lo), float(hi)


def _utility(metrics: Mapping[str, Any]) -> Mapping[str, Any] | Cell | None:
    """metrics.utility, or an 'unavailable' cell when the whole protocol could not run."""
    utility = metrics.get("utility")
    if utility is None:
        return None
    if not isinstance(utility, Mapping) or utility.get("unavailable") or "arms" not in utility:
        return Cell(unavailable=_unavailable_reason(utility) if isinstance(utility, Mapping)
                    else "metrics.utility is not an object")
    return utility


def _utility_n(utility: Mapping[str, Any], n_values: int | None,
               path: tuple[str, ...] = ()) -> tuple[str | None, str | None]:
    seeds = utility.get("seeds")
    n_seeds = len(seeds) if isinstance(seeds, list) else n_values
    short, long = [], []
    if path[:2] == ("arms", "class_fidelity"):
        # class fidelity scores the real-trained classifier on the synthetic images
        n_synth = _dig(utility, ("arms", "class_fidelity", "n_eval")) or \
            _dig(utility, ("n", "synthetic"))
        if n_synth is not None:
            short.append(f"n={n_synth}")
            long.append(f"{n_synth} synthetic images")
    else:
        n_test = _dig(utility, ("n", "test"))
        if n_test is not None:
            short.append(f"n={n_test}")
            long.append(f"{n_test} real test images")
    if n_seeds:
        short.append(f"{n_seeds} seed{'s' if n_seeds != 1 else ''}")
        long.append(f"{n_seeds} training seed{'s' if n_seeds != 1 else ''}")
    return (", ".join(short) or None), (", ".join(long) or None)


def _stat_cell(utility: Mapping[str, Any], stat: Any,
               bounds: tuple[float, float] | None = None,
               path: tuple[str, ...] = ()) -> Cell | None:
    """A {mean, std, values, ci95?} statistic over seeds as a cell (t-interval if no ci95)."""
    if stat is None:
        return None
    if not isinstance(stat, Mapping):
        return _plain_number_cell(stat)
    mean = _number(stat.get("mean", stat.get("value")))
    if mean is None or stat.get("unavailable"):
        return Cell(unavailable=_unavailable_reason(stat))
    values = [v for v in (_number(x) for x in stat.get("values") or []) if v is not None]
    n, n_title = _utility_n(utility, len(values), path)
    # one seed has no spread; results.json files before 2026-12-04 wrote std 0.0 for it
    std = _number(stat.get("std")) if len(values) > 1 else None
    cell = Cell(value=mean, std=std, n=n, n_title=n_title)
    lo, hi = _interval(stat.get("ci95"))
    if lo is not None:
        cell.lo, cell.hi = lo, hi
    else:
        interval = _t_interval(values)
        if interval is not None:
            cell.lo, cell.hi = interval
            if bounds is not None:
                # accuracy and AUC cannot leave [0, 1], however wide a 3-seed t-interval is
                cell.lo, cell.hi = max(cell.lo, bounds[0]), min(cell.hi, bounds[1])
            cell.interval_kind = f"95% t-interval over {len(values)} seeds"
    return cell


def utility_stat(*path: str, bounds: tuple[float, float] | None = (0.0, 1.0),
                  ) -> Callable[[Mapping[str, Any]], Cell | None]:
    def extract(metrics: Mapping[str, Any]) -> Cell | None:
        utility = _utility(metrics)
        if utility is None or isinstance(utility, Cell):
            return utility
        return _stat_cell(utility, _dig(utility, path), bounds, path)
    return extract


def memorization_cell(metrics: Mapping[str, Any]) -> Cell | None:
    mem = metrics.get("memorization")
    if mem is None:
        return None
    if not isinstance(mem, Mapping):
        return Cell(unavailable="metrics.memorization is not an object")
    fraction = _number(mem.get("fraction"))
    if fraction is None or mem.get("unavailable"):
        return Cell(unavailable=_unavailable_reason(mem))
    n_fake = mem.get("n_fake")
    cell = Cell(value=fraction, n=f"n={n_fake}" if n_fake is not None else None,
                n_title=f"{n_fake} fake images" if n_fake is not None else None,
                extractor=mem.get("extractor"))
    if mem.get("percentile") is not None:
        cell.notes.append(f"expected about {mem['percentile']} % for a generator that does not "
                          "copy training images")
    return cell


def authenticity_cell(metrics: Mapping[str, Any]) -> Cell | None:
    cell = entry_cell(metrics.get("authenticity"))
    raw = metrics.get("authenticity")
    if cell is not None and cell.available and isinstance(raw, Mapping):
        held = raw.get("heldout_real")
        if isinstance(held, Mapping) and _number(held.get("value")) is not None:
            cell.notes.append(f"held-out real images ({held.get('set', 'test')}) score "
                              f"{held['value']:.3f} against the same training set")
        if raw.get("against"):
            cell.notes.append(f"against {raw['against']}")
    return cell
