"""The registry of metric families: ``resolve_metrics(names)`` picks them by name."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from medsyn.errors import ConfigError
from medsyn.evaluators.metrics.context import EvalContext


@dataclass(frozen=True)
class MetricSpec:
    name: str
    fn: Callable[[EvalContext], dict]
    description: str
    default: bool = True
    needs_features: bool = True      # False: runs without a feature extractor


_METRICS: dict[str, MetricSpec] = {}


def register_metric(name: str, fn: Callable[[EvalContext], dict], description: str,
                    default: bool = True, overwrite: bool = False,
                    needs_features: bool = True) -> None:
    """Add a metric family ``fn(ctx) -> {result key: block}`` selectable as ``name``.

    ``default``: run when no ``metrics`` are named. ``needs_features``: the family reads
    ``ctx.fake`` / ``ctx.real`` (so a feature extractor must be loaded)."""
    if not overwrite and name in _METRICS:
        raise ConfigError(f"metric {name!r} is already registered.")
    _METRICS[name] = MetricSpec(name, fn, description, default, needs_features)


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
    unknown = [n for n in names if n not in _METRICS]
    if unknown or not names:
        raise ConfigError(f"unknown metric(s) {', '.join(unknown) or '(none given)'}; "
                          f"choose from {', '.join(_METRICS)}.")
    return [_METRICS[n] for n in _METRICS if n in names]
