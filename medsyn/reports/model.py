"""The report's view model: what the summary tables, the run pages and the writers share.

Plain dataclasses filled by :mod:`medsyn.reports.sections` (summary sections and their tables)
and :mod:`medsyn.reports.runs` (one page per run), read by :mod:`medsyn.reports.writers`
(HTML, Markdown, CSV).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from medsyn.reports.content.agreement import Agreement
from medsyn.reports.content.baselines import Baseline, Comparability
from medsyn.reports.content.cells import Cell
from medsyn.reports.content.inputs import Evaluation, Problem, Run
from medsyn.reports.content.metrics import MetricSpec
from medsyn.reports.content.verdict import Verdict


@dataclass
class Row:
    kind: str                      # "run" | "baseline"
    label: str
    cells: dict[str, Cell | None]
    evaluation: Evaluation | None = None
    run: Run | None = None
    selected: bool = False
    baseline: Baseline | None = None
    ref: int | None = None
    comparability: Comparability | None = None
    audit_anchor: str | None = None            # the trust card of this row's dataset (audit)

    @property
    def anchor(self) -> str | None:
        return f"run-{slug(self.run.name, self.run.key)}" if self.run is not None else None

    @property
    def full_label(self) -> str:
        return baseline_label(self.baseline) if self.baseline is not None else self.label


@dataclass
class Table:
    key: str
    title: str
    columns: list[MetricSpec]
    rows: list[Row]
    footnotes: list[tuple[int, str]] = field(default_factory=list)

    def number_footnotes(self) -> None:
        """Give each distinct 'unavailable' reason a number, listed under the table."""
        numbers: dict[tuple[str, str], int] = {}
        for row in self.rows:
            for spec in self.columns:
                cell = row.cells.get(spec.key)
                if cell is not None and cell.unavailable is not None:
                    key = (spec.label, cell.unavailable)
                    if key not in numbers:
                        numbers[key] = len(numbers) + 1
                    cell.footnote = numbers[key]
        self.footnotes = [(n, f"{label} unavailable: {reason}")
                          for (label, reason), n in numbers.items()]


@dataclass
class Section:
    title: str
    kind: str
    dataset: str | None
    image_size: int | None
    notes: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    agreement: Agreement | None = None      # Kendall tau between metric/space rankings
    audit_cards: list = field(default_factory=list)     # reports.content.audits.AuditCard


@dataclass
class Figure:
    title: str
    src: str | None
    caption: str = ""
    missing: str | None = None
    width: int | None = None        # display width in px for small images shown enlarged
    native: bool = False            # never shrunk to the page: every pixel shown (strips)


@dataclass
class RunView:
    run: Run
    anchor: str
    facts: list[tuple[str, str]]
    figures: list[Figure]
    per_eval: list[dict]
    config_items: list[tuple[str, str]]
    at_selected: list[tuple[str, str]]
    verdict: Verdict | None = None
    verdict_of: str = ""


@dataclass
class ReportResult:
    out_dir: Path
    index_html: Path
    summary_csv: Path
    summary_md: Path
    problems: list[Problem]
    n_runs: int
    n_evaluations: int


def slug(name: str, key: str = "") -> str:
    base = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "run"
    if key:
        base += "-" + hashlib.sha1(key.encode()).hexdigest()[:6]
    return base


def baseline_label(b: Baseline) -> str:
    return f"{b.short}: {b.method}"

