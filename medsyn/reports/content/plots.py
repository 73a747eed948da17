"""Figures of the report, drawn with matplotlib's object API (no pyplot state, no GUI backend)."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from medsyn.reports.content.inputs import Run, finite
from medsyn.reports.content.metrics import METRICS, MetricSpec
from medsyn.utils import atomic_write

DPI = 110
MAX_RAW_POINTS = 4000
PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf"]

LOSS_PANELS = [
    ("Losses", ["loss_d", "loss_g", "loss_content", "loss_adv"], None),
    ("Discriminator outputs", ["d_x", "d_g_z1", "d_g_z2"], (0.0, 1.0)),
    ("Accuracies", ["aux_acc_real", "aux_acc_fake", "d_acc", "d_acc_real", "d_acc_fake"],
     (0.0, 1.0)),
]
LOSS_LABELS = {
    "loss_d": "Loss_D", "loss_g": "Loss_G", "loss_content": "content loss",
    "loss_adv": "adversarial loss", "d_x": "D(x)", "d_g_z1": "D(G(z)) before D step",
    "d_g_z2": "D(G(z)) after D step", "aux_acc_real": "aux. classifier acc (real)",
    "aux_acc_fake": "aux. classifier acc (fake)", "d_acc": "D real/fake acc",
    "d_acc_real": "D acc on reals", "d_acc_fake": "D acc on fakes",
}


def _figure(n_panels: int, height: float = 3.1):
    from matplotlib.figure import Figure

    n_panels = max(n_panels, 1)
    fig = Figure(figsize=(4.0 * n_panels, height), dpi=DPI, layout="constrained")
    axes = fig.subplots(1, n_panels, squeeze=False)[0]
    return fig, list(axes)


def _save(fig, path: Path) -> Path:
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=DPI)
    return path


def _style(ax, title: str, xlabel: str) -> None:
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel, fontsize=9)
    ax.tick_params(labelsize=8)
    ax.grid(alpha=0.3, linewidth=0.6)


def log_positions(log: Sequence[Mapping[str, Any]]) -> list[float]:
    """x position of each log row in epochs: epoch e spans (e-1, e], steps spread evenly."""
    per_epoch: dict[int, int] = defaultdict(int)
    for row in log:
        epoch = row.get("epoch")
        if isinstance(epoch, int):
            per_epoch[epoch] += 1
    seen: dict[int, int] = defaultdict(int)
    xs = []
    for i, row in enumerate(log):
        epoch = row.get("epoch")
        if isinstance(epoch, int) and per_epoch[epoch]:
            seen[epoch] += 1
            xs.append(epoch - 1 + seen[epoch] / per_epoch[epoch])
        else:
            xs.append(float(row.get("step", i)))
    return xs


def epoch_means(log: Sequence[Mapping[str, Any]], key: str) -> dict[int, float]:
    sums: dict[int, float] = defaultdict(float)
    counts: dict[int, int] = defaultdict(int)
    for row in log:
        epoch, value = row.get("epoch"), finite(row.get(key))
        if isinstance(epoch, int) and value is not None:
            sums[epoch] += value
            counts[epoch] += 1
    return {e: sums[e] / counts[e] for e in sorted(sums)}


def plot_training_log(log: Sequence[Mapping[str, Any]], path: Path,
                      selected_epoch: int | None = None) -> Path | None:
    """Loss_D/Loss_G, D(x)/D(G(z)) and accuracies over training, raw steps and epoch means."""
    panels = [(title, [k for k in keys if any(finite(r.get(k)) is not None for r in log)], ylim)
              for title, keys, ylim in LOSS_PANELS]
    panels = [p for p in panels if p[1]]
    if not panels:
        return None
    xs = log_positions(log)
    by_epoch = any(isinstance(r.get("epoch"), int) for r in log)
    stride = max(1, math.ceil(len(log) / MAX_RAW_POINTS))
    fig, axes = _figure(len(panels))
    for ax, (title, keys, ylim) in zip(axes, panels, strict=True):
        for color, key in zip(PALETTE, keys, strict=False):
            points = [(x, finite(r.get(key))) for x, r in zip(xs[::stride], log[::stride],
                                                                strict=True)]
            points = [(x, y) for x, y in points if y is not None]
            if points:
                ax.plot(*zip(*points, strict=True), color=color, alpha=0.25, linewidth=0.6)
            means = epoch_means(log, key) if by_epoch else {}
            if means:
                ax.plot(list(means), list(means.values()), color=color, linewidth=1.6,
                        marker="o" if len(means) <= 40 else None, markersize=3,
                        label=LOSS_LABELS.get(key, key))
            elif points:
                ax.lines[-1].set_label(LOSS_LABELS.get(key, key))
        _mark_phases(ax, log, xs)
        if selected_epoch is not None:
            ax.axvline(selected_epoch, color="black", linestyle="--", linewidth=1,
                       label=f"selected epoch {selected_epoch}")
        if ylim:
            ax.set_ylim(ylim[0] - 0.03, ylim[1] + 0.03)
        _style(ax, title, "epoch" if by_epoch else "step")
        ax.legend(fontsize=7, loc="best")
    return _save(fig, path)


def _mark_phases(ax, log: Sequence[Mapping[str, Any]], xs: Sequence[float]) -> None:
    """A vertical line where an SR run switches phase (MSE pre-training -> adversarial)."""
    previous = None
    for x, row in zip(xs, log, strict=True):
        phase = row.get("phase")
        if previous is not None and phase is not None and phase != previous:
            ax.axvline(x, color="grey", linestyle=":", linewidth=1)
            ax.annotate(str(phase), (x, 1), xycoords=("data", "axes fraction"), fontsize=7,
                        color="grey", ha="left", va="top")
        if phase is not None:
            previous = phase


def _series(run: Run, spec: MetricSpec):
    points = []
    for evaluation in run.evaluations:
        if evaluation.epoch is None:
            continue
        cell = spec.extract(evaluation.metrics)
        if cell is not None and cell.available:
            points.append((evaluation.epoch, cell.value, cell.lo, cell.hi))
    return points


CURVE_PANELS = {
    "generation": [("FID", ["fid", "fid_floor"]), ("intra-FID", ["intra_fid"]),
                   ("KID", ["kid"]), ("IS", ["is"]),
                   ("Precision / recall / density / coverage",
                    ["precision", "recall", "density", "coverage"]),
                   ("Utility", ["tstr_acc", "trtrs_acc", "class_fidelity"])],
    "super-resolution": [("PSNR-Y (dB)", ["psnr_y", "psnr_y_bicubic"]),
                         ("SSIM-Y", ["ssim_y", "ssim_y_bicubic"]), ("FID (SR vs HR)", ["sr_fid"])],
}


def plot_metric_curves(run: Run, path: Path, rule: str = "") -> Path | None:
    """Each metric against the evaluated epoch, 95% intervals as bands, the selected epoch."""
    panels = []
    for title, keys in CURVE_PANELS.get(run.kind, []):
        series = [(METRICS[k], _series(run, METRICS[k])) for k in keys]
        series = [(spec, pts) for spec, pts in series if len(pts) >= 2]
        if series:
            panels.append((title, series))
    if not panels:
        return None
    columns = min(3, len(panels))
    rows = math.ceil(len(panels) / columns)
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(4.0 * columns, 3.0 * rows), dpi=DPI, layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    selected = run.selected.epoch if run.selected is not None else None
    # every panel spans all evaluated epochs, so a metric computed on a shortlist (utility)
    # lines up with the others instead of stretching two epochs over the whole width
    all_epochs = [e for _, series in panels for _, pts in series for e, *_ in pts]
    margin = 0.05 * max(1, max(all_epochs) - min(all_epochs))
    xlim = (min(all_epochs) - margin, max(all_epochs) + margin)
    for ax, (title, series) in zip(axes, panels, strict=False):
        for color, (spec, pts) in zip(PALETTE, series, strict=False):
            epochs, values, los, his = zip(*pts, strict=True)
            dashed = spec.key in ("fid_floor", "psnr_y_bicubic", "ssim_y_bicubic")
            ax.plot(epochs, values, color=color, marker="o", markersize=3, linewidth=1.4,
                    linestyle="--" if dashed else "-", label=f"{spec.label} {spec.arrow}".strip())
            band = [(e, lo, hi) for e, lo, hi in zip(epochs, los, his, strict=True)
                    if lo is not None and hi is not None]
            if len(band) >= 2:
                be, blo, bhi = zip(*band, strict=True)
                ax.fill_between(be, blo, bhi, color=color, alpha=0.15, linewidth=0)
        if selected is not None:
            ax.axvline(selected, color="black", linestyle="--", linewidth=1,
                       label=f"selected: epoch {selected}")
        _style(ax, title, "epoch")
        ax.set_xlim(*xlim)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 5, 10]))
        ax.legend(fontsize=7, loc="best")
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    if rule:
        fig.suptitle(f"Selection rule: {rule}", fontsize=9)
    return _save(fig, path)


def plot_per_class(per_class: Mapping[str, Any], path: Path) -> Path | None:
    """intra-FID and KID of each class as bars with their 95% intervals."""
    classes = [c for c, v in per_class.items() if isinstance(v, Mapping)]
    if not classes:
        return None

    def values(getter):
        out = []
        for c in classes:
            entry = getter(per_class[c])
            value = finite(entry.get("value")) if isinstance(entry, Mapping) else None
            ci = entry.get("ci95") if isinstance(entry, Mapping) else None
            lo = hi = None
            if isinstance(ci, (list, tuple)) and len(ci) == 2:
                lo, hi = finite(ci[0]), finite(ci[1])
            out.append((value, lo, hi))
        return out

    panels = [("intra-FID per class ↓", values(lambda v: v)),
              ("KID per class ↓", values(lambda v: v.get("kid")))]
    panels = [(t, vals) for t, vals in panels if any(v is not None for v, _, _ in vals)]
    if not panels:
        return None
    fig, axes = _figure(len(panels), height=3.0)
    for ax, (title, vals) in zip(axes, panels, strict=True):
        heights = [v if v is not None else 0.0 for v, _, _ in vals]
        lower = [v - lo if v is not None and lo is not None else 0 for v, lo, _ in vals]
        upper = [hi - v if v is not None and hi is not None else 0 for v, _, hi in vals]
        bars = ax.bar(range(len(classes)), heights, color=PALETTE[: len(classes)] or None,
                      yerr=[lower, upper], capsize=4, alpha=0.85)
        for bar, (v, _, _) in zip(bars, vals, strict=True):
            if v is None:
                ax.annotate("n/a", (bar.get_x() + bar.get_width() / 2, 0), ha="center",
                            va="bottom", fontsize=8)
        ax.set_xticks(range(len(classes)), classes, fontsize=8, rotation=15)
        _style(ax, title, "")
    return _save(fig, path)
