"""The registry of metric families: ``resolve_metrics(names)`` picks them by name."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from medsyn.errors import ConfigError
from medsyn.evaluators.metrics.context import EvalContext


@dataclass(frozen=True)
class MetricSpec:
    name: str
    fn: Callable[[EvalContext], dict]
    description: str
    default: bool = True
    needs_features: bool = True      # False: runs without a feature extractor
    # the result keys the family writes, accepted as names of the family (``--metrics
    # precision,recall`` selects ``prdc``)
    provides: tuple[str, ...] = ()
    # result key -> which way is worse (WORSE_HIGHER, WORSE_LOWER, WORSE_EITHER); what the
    # audit (medsyn.evaluators.audit) checks the key against. Keys left out are not audited.
    worse: Mapping[str, str] = field(default_factory=dict)


# Which way a metric moves when the synthetic images get worse. WORSE_EITHER: any departure
# from what real data scores is worse (a metric with an optimum in the middle).
WORSE_HIGHER, WORSE_LOWER, WORSE_EITHER = "higher", "lower", "either"
WORSE_DIRECTIONS = (WORSE_HIGHER, WORSE_LOWER, WORSE_EITHER)

_METRICS: dict[str, MetricSpec] = {}


def register_metric(name: str, fn: Callable[[EvalContext], dict], description: str,
                    default: bool = True, overwrite: bool = False,
                    needs_features: bool = True, provides: tuple[str, ...] = (),
                    worse: Mapping[str, str] | None = None) -> None:
    """Add a metric family ``fn(ctx) -> {result key: block}`` selectable as ``name``.

    ``default``: run when no ``metrics`` are named. ``needs_features``: the family reads
    ``ctx.fake`` / ``ctx.real`` (so a feature extractor must be loaded). ``worse``: for each
    result key the family writes, the direction in which a worse synthetic set moves it
    (``"higher"``, ``"lower"`` or ``"either"``); ``medsyn audit`` checks every declared key."""
    if not overwrite and name in _METRICS:
        raise ConfigError(f"metric {name!r} is already registered.")
    worse = dict(worse or {})
    bad = {k: v for k, v in worse.items() if v not in WORSE_DIRECTIONS}
    if bad:
        raise ConfigError(f"metric {name!r}: worse direction(s) {bad} must be one of "
                          f"{', '.join(WORSE_DIRECTIONS)}.")
    _METRICS[name] = MetricSpec(name, fn, description, default, needs_features,
                                tuple(provides), worse)


def metric_directions() -> dict[str, str]:
    """Every declared result key -> the direction in which it gets worse."""
    return {key: way for spec in _METRICS.values() for key, way in spec.worse.items()}


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
    if not names:
        raise ConfigError(f"no metric named; choose from {', '.join(_METRICS)}.")
    aliases = {key: spec.name for spec in _METRICS.values() for key in spec.provides}
    wanted, unknown = set(), []
    for n in names:
        if n in _METRICS or n in aliases:
            wanted.add(_METRICS[n].name if n in _METRICS else aliases[n])
        else:
            unknown.append(n)
    if unknown:
        hints = []
        for n in unknown:
            close = difflib.get_close_matches(n, [*_METRICS, *aliases], n=1, cutoff=0.6)
            hints.append(f"{n} (did you mean {close[0]}?)" if close else n)
        raise ConfigError(f"unknown metric(s) {', '.join(hints)}; choose from "
                          f"{', '.join(_METRICS)} (or a metric a family computes: "
                          f"{', '.join(sorted(aliases))}).")
    return [spec for spec in _METRICS.values() if spec.name in wanted]
