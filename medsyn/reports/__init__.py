"""Reports: results.json files (+ the run folders they point to) -> one HTML page.

    from medsyn.reports import build_report
    result = build_report(["runs/acgan"], out_dir="reports")

See docs/report.md. Heavy imports (matplotlib, jinja2) happen inside the functions that need
them, so importing this package stays cheap.
"""

from medsyn.reports.build import build_report
from medsyn.reports.content.baselines import Baseline, compare, load_baselines
from medsyn.reports.content.inputs import SUPPORTED_SCHEMA_VERSIONS, Problem
from medsyn.reports.content.metrics import METRICS, MetricSpec
from medsyn.reports.model import ReportResult

__all__ = ["build_report", "ReportResult", "load_baselines", "Baseline", "compare", "Problem",
           "METRICS", "MetricSpec", "SUPPORTED_SCHEMA_VERSIONS"]
