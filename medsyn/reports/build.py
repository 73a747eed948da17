"""Assemble the report: read the inputs, choose each run's epoch, build the summary sections
and the run pages, write the files. Each step lives in its own module:

- :mod:`~medsyn.reports.content.inputs`: results.json files and run folders -> ``Run`` /
  ``Evaluation``
- :mod:`~medsyn.reports.sections`: epoch selection, summary sections and tables, baselines
- :mod:`~medsyn.reports.runs`: one page per run
- :mod:`~medsyn.reports.writers`: index.html, summary.md, summary.csv, assets/
- :mod:`~medsyn.reports.model`: the view dataclasses they share

    result = medsyn.reports.build_report(["runs/acgan"], out_dir="reports")
    result.index_html, result.summary_csv, result.summary_md, result.problems
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable
from pathlib import Path

from medsyn import __version__
from medsyn.outputs import staged_output
from medsyn.reports.content import audits as audit_cards
from medsyn.reports.content.baselines import load_baselines
from medsyn.reports.content.inputs import collect_inputs, gather_runs
from medsyn.reports.content.metrics import METRICS, TABLES, get_metric
from medsyn.reports.model import ReportResult
from medsyn.reports.runs import build_run_view
from medsyn.reports.sections import baseline_only_sections, build_sections, select_epochs
from medsyn.reports.writers import (
    REPORT,
    Assets,
    check_report_folder,
    write_csv,
    write_html,
    write_markdown,
)
from medsyn.utils import progress

__all__ = ["ReportResult", "build_report", "select_epochs"]


def build_report(inputs: Iterable[str | Path] | None = None, out_dir: str | Path = "reports",
                 *, runs_root: str | Path = "runs", select_by: str | None = None,
                 best_only: bool = False, title: str | None = None,
                 baselines_path: str | Path | None = None,
                 overwrite: bool = False) -> ReportResult:
    """Write OUT/index.html (+ assets), OUT/summary.csv and OUT/summary.md.

    ``inputs`` are results.json files, eval folders or run folders (default: everything under
    ``runs_root``). Problems with individual inputs do not stop the report; they are listed in
    ``ReportResult.problems`` and at the top of the page. The folder is written as one unit;
    an existing report in ``out_dir`` is replaced only with ``overwrite``, and a folder holding
    anything medsyn did not write never (:mod:`medsyn.outputs`).
    """
    if select_by is not None:
        for key in select_by.split(","):
            get_metric(key.strip())
    out_dir = Path(out_dir)
    check_report_folder(out_dir, overwrite)
    baselines = load_baselines(baselines_path)
    input_list = [Path(p) for p in inputs] if inputs else []
    result_inputs, audit_inputs = audit_cards.split_inputs(input_list)
    if input_list and not result_inputs:      # only audits named: no runs to look for
        results, run_dirs, problems = [], [], []
    else:
        results, run_dirs, problems = collect_inputs(result_inputs, runs_root)
    cards = audit_cards.find_audits(audit_inputs, Path(runs_root), problems)
    runs = gather_runs(results, run_dirs, problems)
    select_epochs(runs, select_by)
    n_evaluations = sum(len(r.evaluations) for r in runs)
    if runs:
        sections = build_sections(runs, baselines, best_only=best_only)
    else:
        sections = []
    if not sections:
        sections = baseline_only_sections(baselines)
    # written as one unit (medsyn.outputs): a kill leaves the previous report whole
    with staged_output(out_dir, REPORT, overwrite) as stage:
        assets = Assets(stage, problems)
        unplaced_cards = audit_cards.attach(sections, cards, assets)
        run_views = [build_run_view(run, assets) for run in progress(runs, desc="report runs")]
        write_csv(stage / "summary.csv", sections)
        write_markdown(stage / "summary.md", sections, baselines, runs)
        context = {
            "title": title or "medsyn report",
            "generated": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "version": __version__,
            "inputs": [str(p) for p in input_list] or [f"{runs_root} (default)"],
            "problems": problems, "sections": sections, "runs": run_views,
            "baselines": baselines, "tables": TABLES, "n_evaluations": n_evaluations,
            "no_results": n_evaluations == 0 and not cards,
            "unplaced_cards": unplaced_cards,
            "metric_help": [m for m in METRICS.values()],
            "metric_labels": {k: m.label for k, m in METRICS.items()},
        }
        write_html(stage / "index.html", context)
    return ReportResult(out_dir=out_dir, index_html=out_dir / "index.html",
                        summary_csv=out_dir / "summary.csv", summary_md=out_dir / "summary.md",
                        problems=problems, n_runs=len(runs), n_evaluations=n_evaluations)
