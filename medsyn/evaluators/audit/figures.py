"""Metric-versus-severity curves of one failure in one space (one panel per metric)."""

from __future__ import annotations

import math
from pathlib import Path

from medsyn.evaluators.audit.verdict import UNAVAILABLE
from medsyn.evaluators.metrics.figures import _pyplot, _save

VERDICT_COLOUR = {"detected": "#2e7d32", "late": "#b7791f", "missed": "#c62828",
                  "wrong direction": "#6a1b9a"}


def severity_curves(path: Path, audit: dict, space_name: str, failure_name: str) -> str:
    plt = _pyplot()
    cells = audit["spaces"][space_name]["cells"][failure_name]
    failure = audit["failures"][failure_name]
    keys = [k for k in audit["directions"] if k in cells and cells[k]["verdict"] != UNAVAILABLE]
    cols = min(4, max(1, len(keys)))
    rows = max(1, math.ceil(len(keys) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
    for ax in axes.flat[len(keys):]:
        ax.axis("off")
    for ax, key in zip(axes.flat, keys, strict=False):
        cell = cells[key]
        pts = [lv for lv in cell["levels"] if lv.get("value") is not None]
        x = [p["level"] for p in pts]
        y = [p["value"] for p in pts]
        lo = [p["value"] - p["ci95"][0] if p.get("ci95") else 0 for p in pts]
        hi = [p["ci95"][1] - p["value"] if p.get("ci95") else 0 for p in pts]
        base = cell["levels"][0].get("ci95")
        if base:
            ax.axhspan(base[0], base[1], color="#9aa5b1", alpha=0.3, lw=0,
                       label="real vs real 95%")
        colour = VERDICT_COLOUR.get(cell["verdict"], "#333333")
        ax.errorbar(x, y, yerr=[lo, hi], fmt="o-", color=colour, ms=3, capsize=2, lw=1.2)
        if cell.get("threshold_level") is not None:
            ax.axvline(cell["threshold_level"], color=colour, ls=":", lw=1)
        rho = "" if cell.get("spearman") is None else f", ρ {cell['spearman']:+.2f}"
        ax.set_title(f"{key} ({cell['worse']} = worse)\n{cell['verdict']}{rho}", fontsize=8)
        ax.set_xticks(range(len(cell["levels"])))
        ax.tick_params(labelsize=7)
        ax.set_xlabel("severity level", fontsize=7)
    fig.suptitle(f"{failure['title']} [{space_name}]: {failure['parameter']} = "
                 + ", ".join(str(p) for p in failure["parameters"][1:]), fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    return _save(fig, path)
