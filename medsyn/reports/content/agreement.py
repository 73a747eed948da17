"""Ranking agreement: do the metrics and feature spaces order the evaluations the same way?

For the evaluations of one report section (several runs and/or epochs), every ranked metric
of the generation tables, in every feature space an evaluation recorded, is a *source*: it
orders the evaluations from best to worst. The table holds Kendall's tau-b
(``scipy.stats.kendalltau``) between each pair of sources, over the evaluations both scored:
+1 = same order, -1 = reversed, about 0 = unrelated. Values are turned into "smaller is
better" keys first (:meth:`MetricSpec.rank_key`), so a positive tau always means agreement,
whichever direction each metric prefers.

Spaces: an evaluation over several spaces holds ``metrics.spaces.<space>.<metric>`` blocks
laid out like the top level (whose blocks are the first space's); each is named by its key, and
the top-level copy is recognised by its entries' ``extractor``. Without ``metrics.spaces`` the
top-level metrics are named by their extractor. :func:`metric_blocks` lists the blocks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from medsyn.reports.content.metrics import METRICS, MetricSpec

MIN_EVALUATIONS = 3          # fewer than 3 shared evaluations: tau is +-1 or undefined
AGREEMENT_TABLES = ("fidelity", "distribution", "utility")


@dataclass(frozen=True)
class Source:
    metric: str          # MetricSpec key
    space: str           # feature space (extractor name), "-" when the entry names none

    @property
    def label(self) -> str:
        label = METRICS[self.metric].label
        return label if self.space == "-" else f"{label} [{self.space}]"


@dataclass
class TauCell:
    tau: float | None
    p_value: float | None
    n: int
    reason: str | None = None          # why tau is missing (too few shared evaluations, ties)

    def text(self) -> str:
        return f"{self.tau:+.2f}" if self.tau is not None else "-"


@dataclass
class Agreement:
    sources: list[Source]
    taus: dict[tuple[Source, Source], TauCell]
    n_evaluations: int
    labels: list[str] = field(default_factory=list)     # the evaluations, in order
    left_out: list[str] = field(default_factory=list)   # sources with too few values

    def cell(self, a: Source, b: Source) -> TauCell:
        return self.taus[(a, b)]

    def pairs(self) -> list[tuple[Source, Source, TauCell]]:
        """Each unordered pair once (for CSV / text)."""
        out = []
        for i, a in enumerate(self.sources):
            for b in self.sources[i + 1:]:
                out.append((a, b, self.taus[(a, b)]))
        return out


def metric_blocks(metrics: Mapping[str, Any]) -> list[tuple[str | None, Mapping[str, Any]]]:
    """``(space name or None, block)``: the top-level metrics mapping (None: named by its
    entries' extractor), then each ``metrics.spaces.<space>`` mapping under its name."""
    blocks: list[tuple[str | None, Mapping[str, Any]]] = [(None, metrics)]
    spaces = metrics.get("spaces")
    if isinstance(spaces, Mapping):
        blocks += [(str(k), b) for k, b in spaces.items() if isinstance(b, Mapping)]
    return blocks


def _space_names(metrics: Mapping[str, Any]) -> dict[str, str]:
    """extractor name -> space name, from the ``metrics.spaces`` blocks (so that the top-level
    copy of a space is recognised as that space)."""
    names: dict[str, str] = {}
    for space, block in metric_blocks(metrics)[1:]:
        for value in block.values():
            if isinstance(value, Mapping) and value.get("extractor"):
                names.setdefault(str(value["extractor"]), space)
    return names


def ranked_values(metrics: Mapping[str, Any],
                  specs: Sequence[MetricSpec]) -> dict[Source, float]:
    """Every (metric, space) value of one evaluation as a "smaller is better" key. A space is
    named by its key under ``metrics.spaces``, else by the entries' extractor."""
    names = _space_names(metrics)
    out: dict[Source, float] = {}
    for space, block in metric_blocks(metrics):
        for spec in specs:
            cell = spec.extract(block)
            if cell is None or not cell.available:
                continue
            name = space or names.get(str(cell.extractor), cell.extractor) or "-"
            out.setdefault(Source(spec.key, str(name)), spec.rank_key(cell.value))
    return out


def _tau(x: list[float], y: list[float]) -> TauCell:
    from scipy.stats import kendalltau

    n = len(x)
    if n < MIN_EVALUATIONS:
        return TauCell(None, None, n, f"only {n} evaluations scored by both")
    if len(set(x)) < 2 or len(set(y)) < 2:
        return TauCell(None, None, n, "one of the two gives every evaluation the same value")
    result = kendalltau(x, y)
    tau, p = float(result.statistic), float(result.pvalue)
    if not math.isfinite(tau):
        return TauCell(None, None, n, "undefined (ties)")
    return TauCell(tau, p if math.isfinite(p) else None, n)


def ranking_agreement(evaluations: Sequence[tuple[str, Mapping[str, Any]]],
                      specs: Sequence[MetricSpec] | None = None) -> Agreement | None:
    """Kendall tau between the rankings of ``evaluations`` (``(label, metrics)`` pairs) by
    every ranked (metric, space); None when fewer than 3 evaluations or 2 sources."""
    if len(evaluations) < MIN_EVALUATIONS:
        return None
    specs = list(specs) if specs is not None else [
        m for m in METRICS.values() if m.ranked and m.table in AGREEMENT_TABLES]
    values = [ranked_values(metrics, specs) for _, metrics in evaluations]
    order = {s.key: i for i, s in enumerate(specs)}
    found = sorted({s for v in values for s in v}, key=lambda s: (order[s.metric], s.space))
    sources, left_out = [], []
    for s in found:
        if sum(s in v for v in values) >= MIN_EVALUATIONS:
            sources.append(s)
        else:
            left_out.append(s.label)
    if len(sources) < 2:
        return None
    taus = {}
    for a in sources:
        for b in sources:
            shared = [v for v in values if a in v and b in v]
            taus[(a, b)] = _tau([v[a] for v in shared], [v[b] for v in shared])
    return Agreement(sources=sources, taus=taus, n_evaluations=len(evaluations),
                     labels=[label for label, _ in evaluations], left_out=left_out)


def markdown_lines(agreement: Agreement) -> list[str]:
    """The tau matrix as a Markdown table (sources numbered, named in a legend)."""
    n = len(agreement.sources)
    lines = ["| | " + " | ".join(f"({i})" for i in range(1, n + 1)) + " |",
             "|" + "|".join(["---"] * (n + 1)) + "|"]
    for i, a in enumerate(agreement.sources, 1):
        row = [agreement.cell(a, b).text() if a != b else "1" for b in agreement.sources]
        lines.append(f"| ({i}) {a.label} | " + " | ".join(row) + " |")
    return lines
