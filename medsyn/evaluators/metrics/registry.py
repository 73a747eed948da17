"""The registry of metric families, and the one declaration of which way each metric is better.

``resolve_metrics(names)`` picks families by name; :func:`metric_directions` /
:func:`declared_directions` say, for every declared result key, the direction in which it gets
worse: ``medsyn audit`` checks the keys against it, the report ranks its columns by it.

This module imports neither torch nor any family: a family may be registered by a
``"package.module:function"`` reference, imported the first time the family runs, so reading
the declarations (``medsyn report``, ``medsyn --help``) stays light.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from medsyn.errors import ConfigError

if TYPE_CHECKING:
    from medsyn.evaluators.metrics.context import EvalContext

MetricFn = Callable[["EvalContext"], dict]

# Which way a metric moves when the synthetic images get worse. WORSE_EITHER: any departure
# from what real data scores is worse (a metric with an optimum in the middle).
WORSE_HIGHER, WORSE_LOWER, WORSE_EITHER = "higher", "lower", "either"
WORSE_DIRECTIONS = (WORSE_HIGHER, WORSE_LOWER, WORSE_EITHER)


@dataclass(frozen=True)
class Direction:
    """How one result key is judged: the way it moves when the synthetic set gets worse, and
    whether generators can be ordered by it."""

    key: str
    worse: str                       # WORSE_HIGHER, WORSE_LOWER or WORSE_EITHER
    declared_by: str                 # the family (or set of result blocks) that declared it
    # WORSE_EITHER only: the value two identical distributions score (density: 1). The audit
    # measures departures from the real-vs-real value itself; a ranking of generators (the
    # report) orders by closeness to this value. Without it an "either" key is not ranked.
    ideal: float | None = None
    # False: the audit checks the direction, but a lower / higher value does not make a better
    # generator (the key is read against a reference: Vendi against the real set's, the
    # memorized fraction against the fraction expected without copying).
    ranked: bool = True

    @property
    def ranks(self) -> bool:
        """Whether generators can be ordered by this key."""
        return self.ranked and (self.worse != WORSE_EITHER or self.ideal is not None)


@dataclass(frozen=True)
class MetricSpec:
    name: str
    function: MetricFn | str         # the family, or a "package.module:function" reference
    description: str
    default: bool = True
    needs_features: bool = True      # False: runs without a feature extractor
    # the result keys the family writes, accepted as names of the family (``--metrics
    # precision,recall`` selects ``prdc``)
    provides: tuple[str, ...] = ()
    # result key -> which way is worse (WORSE_HIGHER, WORSE_LOWER, WORSE_EITHER); what the
    # audit (medsyn.evaluators.audit) checks the key against. Keys left out are not audited.
    worse: Mapping[str, str] = field(default_factory=dict)
    ideal: Mapping[str, float] = field(default_factory=dict)
    unranked: tuple[str, ...] = ()

    @property
    def fn(self) -> MetricFn:
        """The family's function (imported on first use when registered by reference)."""
        return _load(self.function)


@dataclass(frozen=True)
class ResultBlocks:
    """Result keys that no family of this registry computes: blocks another stage writes and
    merges into results.json with :func:`medsyn.evaluators.add_metrics`."""

    name: str
    description: str
    worse: Mapping[str, str] = field(default_factory=dict)
    ideal: Mapping[str, float] = field(default_factory=dict)
    unranked: tuple[str, ...] = ()


_METRICS: dict[str, MetricSpec] = {}
_RESULT_BLOCKS: dict[str, ResultBlocks] = {}


def _load(function: MetricFn | str) -> MetricFn:
    if callable(function):
        return function
    module, _, attr = function.partition(":")
    return getattr(importlib.import_module(module), attr)


def _checked_directions(name: str, worse: Mapping[str, str] | None,
                        ideal: Mapping[str, float] | None, unranked) -> tuple[dict, dict, tuple]:
    worse, ideal, unranked = dict(worse or {}), dict(ideal or {}), tuple(unranked)
    bad = {k: v for k, v in worse.items() if v not in WORSE_DIRECTIONS}
    if bad:
        raise ConfigError(f"metric {name!r}: worse direction(s) {bad} must be one of "
                          f"{', '.join(WORSE_DIRECTIONS)}.")
    not_either = [k for k in ideal if worse.get(k) != WORSE_EITHER]
    if not_either:
        raise ConfigError(f"metric {name!r}: ideal value(s) for {', '.join(not_either)}: only a "
                          f"key whose worse direction is {WORSE_EITHER!r} has an ideal value.")
    undeclared = [k for k in unranked if k not in worse]
    if undeclared:
        raise ConfigError(f"metric {name!r}: unranked key(s) {', '.join(undeclared)} have no "
                          "worse direction; declare one in worse= or leave them out.")
    for key, way in worse.items():
        other = declared_directions().get(key)
        if other is not None and other.declared_by != name and (
                other.worse, other.ideal, other.ranked) != (way, ideal.get(key),
                                                            key not in unranked):
            raise ConfigError(f"metric {name!r}: {key!r} is already declared by "
                              f"{other.declared_by!r} with another direction "
                              f"(worse={other.worse!r}); a result key has one direction.")
    return worse, ideal, unranked


def register_metric(name: str, fn: MetricFn | str, description: str,
                    default: bool = True, overwrite: bool = False,
                    needs_features: bool = True, provides: tuple[str, ...] = (),
                    worse: Mapping[str, str] | None = None,
                    ideal: Mapping[str, float] | None = None,
                    unranked: tuple[str, ...] = ()) -> None:
    """Add a metric family ``fn(ctx) -> {result key: block}`` selectable as ``name``.

    ``fn`` is a function or a ``"package.module:function"`` reference, imported when the family
    first runs. ``default``: run when no ``metrics`` are named. ``needs_features``: the family
    reads ``ctx.fake`` / ``ctx.real`` (so a feature extractor must be loaded).

    Directions, declared here once for ``medsyn audit`` and the report alike: ``worse`` maps
    each result key the family writes (or a value the report derives from its block, such as
    the utility family's ``tstr_acc``) to the direction in which a worse synthetic set moves
    it: ``"higher"``, ``"lower"`` or ``"either"`` (an optimum in the middle). ``ideal``: for an
    ``"either"`` key, the value identical distributions score; the report ranks by closeness
    to it. ``unranked``: keys whose direction the audit checks but by which generators are not
    ordered. A key with no declared direction is neither audited nor ranked."""
    if not overwrite and name in _METRICS:
        raise ConfigError(f"metric {name!r} is already registered.")
    if not (callable(fn) or (isinstance(fn, str) and ":" in fn)):
        raise ConfigError(f"metric {name!r}: give a function or a 'package.module:function' "
                          "reference.")
    worse, ideal, unranked = _checked_directions(name, worse, ideal, unranked)
    _METRICS[name] = MetricSpec(name, fn, description, default, needs_features,
                                tuple(provides), worse, ideal, unranked)


def register_results(name: str, description: str, *, worse: Mapping[str, str],
                     ideal: Mapping[str, float] | None = None,
                     unranked: tuple[str, ...] = (), overwrite: bool = False) -> None:
    """Declare the directions of result keys that no family here computes (blocks written by
    another stage and merged with :func:`medsyn.evaluators.add_metrics`, such as the
    super-resolution evaluation's PSNR-Y). Same meaning of ``worse`` / ``ideal`` /
    ``unranked`` as :func:`register_metric`; nothing becomes selectable in ``--metrics``."""
    if not overwrite and name in _RESULT_BLOCKS:
        raise ConfigError(f"result blocks {name!r} are already declared.")
    worse, ideal, unranked = _checked_directions(name, worse, ideal, unranked)
    _RESULT_BLOCKS[name] = ResultBlocks(name, description, worse, ideal, unranked)


def declared_directions() -> dict[str, Direction]:
    """Every result key with a declared direction (families, then other result blocks)."""
    out: dict[str, Direction] = {}
    for source in (*_METRICS.values(), *_RESULT_BLOCKS.values()):
        for key, way in source.worse.items():
            out.setdefault(key, Direction(key, way, source.name, source.ideal.get(key),
                                          key not in source.unranked))
    return out


def metric_directions() -> dict[str, str]:
    """Every declared result key -> the direction in which it gets worse."""
    return {key: d.worse for key, d in declared_directions().items()}


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
