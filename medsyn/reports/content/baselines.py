"""Published baselines (medsyn/reports/baselines.toml) and whether they compare with our runs.

Comparability is decided from data: each baseline lists the conditions its numbers were measured
under (dataset, resolution, n, feature extractor, ...) and which of them matter
(``compare_on``); a table of runs provides the same conditions from their results.json files.
A baseline row is *directly comparable* only when every condition it depends on is stated by the
source and equal for all runs of the table. Anything else is said in the row.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from medsyn.errors import ConfigError
from medsyn.reports.content.cells import Cell
from medsyn.reports.content.metrics import METRICS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

BASELINES_SCHEMA = 1

CONDITION_LABELS = {
    "dataset": "dataset",
    "image_size": "resolution",
    "n_classes": "classes",
    "n_fake": "sample count (n)",
    "extractor": "feature extractor",
    "classifier": "classifier",
    "recipe": "training recipe",
    "n_test": "test images",
    "scale": "scale",
    "crop_border": "border crop",
    "y_channel": "luminance (Y) channel",
    "protocol": "protocol",
}

_REQUIRED = ("id", "kind", "method", "short", "citation", "dataset", "resolution",
             "sample_count", "feature_extractor", "protocol", "compare_on", "metrics")
_KINDS = ("generation", "classification", "super-resolution")


@dataclass(frozen=True)
class Baseline:
    id: str
    kind: str
    method: str
    short: str
    citation: str
    doi: str
    url: str
    dataset: str
    dataset_label: str
    resolution: str
    sample_count: str
    feature_extractor: str
    protocol: str
    spread_meaning: str
    checked: str
    compare_on: tuple[str, ...]
    conditions: Mapping[str, Any]
    metrics: Mapping[str, Mapping[str, float]]
    other: Mapping[str, Any]

    @property
    def n_text(self) -> str:
        """The sample size behind the published numbers, as briefly as possible."""
        if "n_fake" in self.conditions:
            return f"n={self.conditions['n_fake']}"
        if "n_test" in self.conditions:
            return f"n={self.conditions['n_test']} test"
        if self.sample_count[:1].isdigit():
            return f"n={self.sample_count}"
        return "n not stated"

    @property
    def link(self) -> str:
        return f"https://doi.org/{self.doi}" if self.doi else self.url

    def cell(self, metric_key: str) -> Cell | None:
        published = self.metrics.get(metric_key)
        if published is None:
            return None
        return Cell(value=float(published["value"]),
                    spread=(float(published["spread"]) if "spread" in published else None))


@dataclass
class Difference:
    condition: str
    state: str              # "same" | "differs" | "not stated" | "unknown for runs"
    baseline_value: Any = None
    run_values: tuple = ()

    @property
    def text(self) -> str:
        label = CONDITION_LABELS.get(self.condition, self.condition)
        runs = ", ".join(_show(v) for v in self.run_values)
        if self.state == "not stated":
            return f"{label} not stated by the source"
        if self.state == "unknown for runs":
            return f"{label} of our runs unknown (source: {_show(self.baseline_value)})"
        if self.state == "differs":
            return f"different {label} ({_show(self.baseline_value)} vs ours {runs})"
        return f"same {label} ({runs})"


@dataclass
class Comparability:
    differences: list[Difference] = field(default_factory=list)
    has_runs: bool = True

    @property
    def comparable(self) -> bool:
        return self.has_runs and all(d.state == "same" for d in self.differences)

    @property
    def note(self) -> str:
        if not self.has_runs:
            return "No runs in this report to compare with."
        if self.comparable:
            same = ", ".join(CONDITION_LABELS.get(d.condition, d.condition)
                             for d in self.differences)
            return f"Directly comparable: same {same} as the runs of this table."
        issues = "; ".join(d.text for d in self.differences if d.state != "same")
        return f"Not directly comparable: {issues}."


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return str(value)


def _validate(raw: Mapping[str, Any], where: str) -> Baseline:
    missing = [k for k in _REQUIRED if k not in raw]
    if missing:
        raise ConfigError(f"{where}: baseline {raw.get('id', '?')!r} lacks {', '.join(missing)}")
    if raw["kind"] not in _KINDS:
        raise ConfigError(f"{where}: baseline {raw['id']!r} has kind {raw['kind']!r}; "
                          f"expected one of {', '.join(_KINDS)}")
    unknown = [k for k in raw["metrics"] if k not in METRICS]
    if unknown:
        raise ConfigError(f"{where}: baseline {raw['id']!r} names unknown metric column(s) "
                          f"{', '.join(unknown)}; known: {', '.join(METRICS)}")
    for key, published in raw["metrics"].items():
        if not isinstance(published, Mapping) or not isinstance(published.get("value"),
                                                                (int, float)):
            raise ConfigError(f"{where}: baseline {raw['id']!r} metric {key!r} needs a numeric "
                              "'value'")
    bad = [k for k in raw["compare_on"] if k not in CONDITION_LABELS]
    if bad:
        raise ConfigError(f"{where}: baseline {raw['id']!r} compares on unknown condition(s) "
                          f"{', '.join(bad)}; known: {', '.join(CONDITION_LABELS)}")
    if not raw.get("doi") and not raw.get("url"):
        raise ConfigError(f"{where}: baseline {raw['id']!r} needs a doi or a url")
    conditions = dict(raw.get("conditions", {}))
    return Baseline(
        id=raw["id"], kind=raw["kind"], method=raw["method"], short=raw["short"],
        citation=raw["citation"], doi=raw.get("doi", ""), url=raw.get("url", ""),
        dataset=raw["dataset"], dataset_label=raw.get("dataset_label",
                                                      str(conditions.get("dataset", "?"))),
        resolution=raw["resolution"], sample_count=raw["sample_count"],
        feature_extractor=raw["feature_extractor"], protocol=raw["protocol"],
        spread_meaning=raw.get("spread_meaning", ""), checked=raw.get("checked", ""),
        compare_on=tuple(raw["compare_on"]), conditions=conditions,
        metrics={k: dict(v) for k, v in raw["metrics"].items()},
        other=dict(raw.get("other", {})))


def load_baselines(path: str | Path | None = None) -> list[Baseline]:
    """The published baselines, from ``path`` or the file shipped in the package."""
    if path is None:
        text = resources.files("medsyn.reports").joinpath("baselines.toml").read_text("utf-8")
        where = "medsyn/reports/baselines.toml"
    else:
        path = Path(path)
        try:
            text = path.read_text("utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read baselines file {path}: {exc.strerror}") from None
        where = str(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where} is not valid TOML: {exc}") from None
    if data.get("schema") != BASELINES_SCHEMA:
        raise ConfigError(f"{where}: schema {data.get('schema')!r} is not supported "
                          f"(expected {BASELINES_SCHEMA})")
    baselines = [_validate(raw, where) for raw in data.get("baseline", [])]
    ids = [b.id for b in baselines]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ConfigError(f"{where}: duplicate baseline id(s) {', '.join(duplicates)}")
    return baselines


def compare(baseline: Baseline, run_conditions: Mapping[str, Iterable[Any]]) -> Comparability:
    """How ``baseline`` relates to a table of runs whose conditions take the given values.

    ``run_conditions`` maps a condition name to the set of values the runs have (empty or
    missing when unknown). With no runs at all, pass an empty mapping and ``has_runs=False`` is
    reported.
    """
    if not run_conditions:
        return Comparability(has_runs=False)
    result = Comparability()
    for condition in baseline.compare_on:
        ours = tuple(sorted({v for v in run_conditions.get(condition, ()) if v is not None},
                            key=str))
        if condition not in baseline.conditions:
            result.differences.append(Difference(condition, "not stated", None, ours))
        elif not ours:
            result.differences.append(Difference(condition, "unknown for runs",
                                                 baseline.conditions[condition]))
        elif set(ours) == {baseline.conditions[condition]}:
            result.differences.append(Difference(condition, "same",
                                                 baseline.conditions[condition], ours))
        else:
            shown = baseline.dataset_label if condition == "dataset" else \
                baseline.conditions[condition]
            result.differences.append(Difference(condition, "differs", shown, ours))
    return result
