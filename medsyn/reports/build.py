"""Assemble the report: summary tables with baselines, per-run sections, files on disk.

    result = medsyn.reports.build_report(["runs/acgan"], out_dir="reports")
    result.index_html, result.summary_csv, result.summary_md, result.problems
"""

from __future__ import annotations

import csv
import datetime as _dt
import hashlib
import html
import io
import json
import re
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from medsyn import __version__
from medsyn.errors import ConfigError
from medsyn.reports import audits as audit_cards
from medsyn.reports import plots
from medsyn.reports.agreement import Agreement, markdown_lines, ranking_agreement
from medsyn.reports.baselines import Baseline, Comparability, compare, load_baselines
from medsyn.reports.inputs import (
    Evaluation,
    Problem,
    Run,
    class_names,
    collect_inputs,
    dataset_name,
    finite,
    gather_runs,
    image_size,
)
from medsyn.reports.metrics import (
    DEFAULT_SELECTION,
    METRICS,
    TABLES,
    Cell,
    MetricSpec,
    get_metric,
    mark_best,
    metrics_for_table,
    tables_for_kind,
)
from medsyn.reports.privacy import markdown_line as privacy_markdown_line
from medsyn.reports.privacy import privacy_view
from medsyn.reports.verdict import Verdict, evaluation_verdict, memorization_details, plain_number
from medsyn.utils import atomic_write, progress

ASSETS = "assets"
MARKER = ".medsyn-report"
MIN_DISPLAY_WIDTH = 360
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".svg", ".gif", ".webp")
GENERATION_BASELINE_KINDS = {"fidelity": ("generation",),
                             "utility": ("generation", "classification")}


# ---------------------------------------------------------------- view objects


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
    audit_cards: list = field(default_factory=list)     # reports.audits.AuditCard


@dataclass
class Figure:
    title: str
    src: str | None
    caption: str = ""
    missing: str | None = None
    width: int | None = None        # display width in px for small images shown enlarged


def display_width(path: Path) -> int | None:
    """An enlarged width for small images (sample grids of 28 px images), else None."""
    try:
        from PIL import Image

        with Image.open(path) as image:
            width = image.size[0]
    except (OSError, ValueError):
        return None
    if width >= MIN_DISPLAY_WIDTH:
        return None
    factor = -(-MIN_DISPLAY_WIDTH // max(width, 1))
    return min(width * factor, 900)


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


# ---------------------------------------------------------------- selection


def comparison_conditions(e: Evaluation) -> tuple:
    """What must be equal for two evaluations' scores to be compared: the number of synthetic
    and real images and the feature extractor (FID, KID and the k-NN metrics depend on all)."""
    m = e.metrics
    for key in ("fid", "kid", "psnr_y", "precision", "intra_fid"):
        entry = m.get(key)
        if isinstance(entry, Mapping) and (entry.get("n_fake") is not None
                                           or entry.get("extractor")):
            return (entry.get("n_fake"), entry.get("n_real"), entry.get("extractor"))
    return (None, None, None)


def _describe_conditions(cond: tuple) -> str:
    n_fake, n_real, extractor = cond
    parts = [f"n_fake={n_fake}" if n_fake is not None else None,
             f"n_real={n_real}" if n_real is not None else None, extractor]
    return ", ".join(p for p in parts if p) or "unknown conditions"


def select_epochs(runs: list[Run], select_by: str | None) -> None:
    """Pick each run's best evaluated epoch and record the rule used.

    Only evaluations made under the same conditions (sample sizes, feature extractor) are
    compared: among several groups, the one with the most evaluations (ties: more synthetic
    images) is used, and the rule says how many evaluations were left out and why."""
    for run in runs:
        run.selected, run.selection_rule = None, ""
        if not run.evaluations:
            continue
        keys = (tuple(k.strip() for k in select_by.split(",") if k.strip()) if select_by
                else DEFAULT_SELECTION.get(run.kind, ("fid",)))
        for key in keys:
            spec = get_metric(key)
            if not spec.ranked:
                raise ConfigError(f"metric {key!r} has no better direction and cannot select "
                                  "an epoch")
            groups: dict[tuple, list] = {}
            for e in run.evaluations:
                c = spec.extract(e.metrics)
                if c is not None and c.available:
                    groups.setdefault(comparison_conditions(e), []).append(
                        (spec.rank_key(c.value), e.epoch if e.epoch is not None else 0, e))
            if groups:
                cond, scored = max(groups.items(), key=lambda kv: (
                    len(kv[1]), kv[0][0] if isinstance(kv[0][0], int) else -1))
                best = min(scored, key=lambda t: (t[0], t[1]))
                run.selected = best[2]
                word = {"lower": "lowest", "higher": "highest"}.get(spec.better,
                                                                    "closest to 1")
                n = len(scored)
                run.selection_rule = (f"{word} {spec.label} among {n} evaluations"
                                      if n > 1 else f"only one evaluation; rule: {word} "
                                      f"{spec.label}")
                if len(groups) > 1:
                    left = sum(len(v) for k, v in groups.items() if k != cond)
                    run.selection_rule += (
                        f" at {_describe_conditions(cond)}; {left} evaluation(s) under other "
                        "conditions (sample size or feature extractor) not compared")
                break
        else:
            names = " / ".join(get_metric(k).label for k in keys)
            run.selection_rule = f"no epoch selected: {names} unavailable in every evaluation"


# ---------------------------------------------------------------- sections


def _cells(evaluation: Evaluation, specs: Iterable[MetricSpec]) -> dict[str, Cell | None]:
    return {s.key: s.extract(evaluation.metrics) for s in specs}


def _run_conditions(evals: list[tuple[Run, Evaluation]]) -> dict[str, set]:
    """The values of every comparability condition among the runs of a section."""
    conditions: dict[str, set] = {k: set() for k in (
        "dataset", "image_size", "n_classes", "n_fake", "extractor", "classifier", "recipe",
        "n_test", "scale", "crop_border", "y_channel")}
    for run, e in evals:
        m = e.metrics
        conditions["dataset"].add(dataset_name(e, run.config))
        conditions["image_size"].add(image_size(e, run.config))
        names = class_names(e)
        if names:
            conditions["n_classes"].add(len(names))
        sample_key = "psnr_y" if e.kind == "super-resolution" else "fid"
        if isinstance(m.get(sample_key), Mapping):
            conditions["n_fake"].add(m[sample_key].get("n_fake"))
        for key in ("fid", "kid", "is", "intra_fid"):
            if isinstance(m.get(key), Mapping):
                conditions["extractor"].add(m[key].get("extractor"))
        for key in ("psnr_y", "ssim_y"):
            if isinstance(m.get(key), Mapping):
                for cond in ("scale", "crop_border", "y_channel"):
                    conditions[cond].add(m[key].get(cond))
        utility = m.get("utility")
        if isinstance(utility, Mapping):
            recipe = utility.get("recipe") if isinstance(utility.get("recipe"), Mapping) else {}
            model = recipe.get("model", recipe.get("arch", recipe.get("classifier")))
            conditions["classifier"].add(str(model).lower() if model else None)
            conditions["recipe"].add(recipe.get("name"))
            n = utility.get("n") if isinstance(utility.get("n"), Mapping) else {}
            conditions["n_test"].add(n.get("test"))
        config = run.config or {}
        for cond in ("scale", "crop_border"):
            conditions[cond].add(config.get(cond))
    return {k: {v for v in vals if v is not None} for k, vals in conditions.items()}


def _section_key(run: Run, e: Evaluation) -> tuple:
    return (e.kind, dataset_name(e, run.config) or "", image_size(e, run.config) or 0)


def build_sections(runs: list[Run], baselines: list[Baseline], best_only: bool = False,
                   ) -> list[Section]:
    """One section per (kind, dataset, image size), each with its tables and baseline rows."""
    groups: dict[tuple, list[tuple[Run, Evaluation]]] = {}
    for run in runs:
        for e in run.evaluations:
            if best_only and run.selected is not None and e is not run.selected:
                continue
            groups.setdefault(_section_key(run, e), []).append((run, e))
    refs = {b.id: i for i, b in enumerate(baselines, 1)}
    sections = []
    for (kind, dataset, size), evals in sorted(groups.items(), key=lambda kv: kv[0]):
        title = f"{dataset or 'unknown dataset'}" + (f" at {size} px" if size else "") + \
            (" - super-resolution" if kind == "super-resolution" else "")
        section = Section(title=title, kind=kind, dataset=dataset or None,
                          image_size=size or None)
        conditions = _run_conditions(evals)
        if len(conditions["n_fake"]) > 1:
            section.notes.append(
                "The runs of this section were scored with different sample sizes (n = "
                + ", ".join(map(str, sorted(conditions["n_fake"]))) + "); FID and IS are "
                "biased by n, so compare such rows with care.")
        if len(conditions["extractor"]) > 1:
            section.notes.append("Different feature extractors in one table ("
                                 + ", ".join(sorted(conditions["extractor"])) + "): their "
                                 "FID/KID values are on different scales.")
        for table_key in tables_for_kind(kind):
            table = _table(table_key, kind, evals, baselines, refs, conditions)
            if table is not None:
                section.tables.append(table)
        if kind != "super-resolution":
            section.agreement = ranking_agreement([(e.label, e.metrics) for _, e in evals])
        sections.append(section)
    return sections


def _baseline_kinds(kind: str, table_key: str) -> tuple[str, ...]:
    if kind == "super-resolution":
        return ("super-resolution",)
    return GENERATION_BASELINE_KINDS.get(table_key, ())


def _table(table_key: str, kind: str, evals: list[tuple[Run, Evaluation]],
           baselines: list[Baseline], refs: Mapping[str, int],
           conditions: Mapping[str, set]) -> Table | None:
    specs = metrics_for_table(table_key)
    rows = [Row(kind="run", label=e.label, cells=_cells(e, specs), evaluation=e, run=run,
                selected=e is run.selected) for run, e in evals]
    run_columns = {s.key for s in specs if any(r.cells[s.key] is not None for r in rows)}
    if not run_columns:
        return None
    for b in baselines:
        if b.kind not in _baseline_kinds(kind, table_key):
            continue
        cells = {s.key: b.cell(s.key) for s in specs}
        if not any(c is not None for c in cells.values()):
            continue
        rows.append(Row(kind="baseline", label=b.short, cells=cells, baseline=b,
                        ref=refs[b.id], comparability=compare(b, conditions)))
    columns = [s for s in specs
               if s.key in run_columns or any(r.cells[s.key] is not None for r in rows)]
    for spec in columns:
        contenders = [r.cells[spec.key] for r in rows
                      if r.kind == "run" or (r.comparability and r.comparability.comparable)]
        mark_best(contenders, spec)
    title = TABLES[table_key]
    extractors = sorted({c.extractor for r in rows if r.kind == "run" for c in r.cells.values()
                         if c is not None and c.extractor})
    if extractors and table_key == "fidelity":
        title += f" (features: {', '.join(extractors)})"
    table = Table(key=table_key, title=title, columns=columns, rows=rows)
    table.number_footnotes()
    return table


def baseline_label(b: Baseline) -> str:
    return f"{b.short}: {b.method}"


def baseline_only_sections(baselines: list[Baseline]) -> list[Section]:
    """With no runs, the baselines alone, so the report still shows the published reference."""
    refs = {b.id: i for i, b in enumerate(baselines, 1)}
    sections = []
    for kind, title, table_keys in (("generation", "Published generation baselines",
                                     ("fidelity", "utility")),
                                    ("super-resolution", "Published super-resolution baselines",
                                     ("sr",))):
        section = Section(title=title, kind=kind, dataset=None, image_size=None)
        for table_key in table_keys:
            specs = metrics_for_table(table_key)
            rows = []
            for b in baselines:
                if b.kind not in _baseline_kinds(kind, table_key):
                    continue
                cells = {s.key: b.cell(s.key) for s in specs}
                if any(c is not None for c in cells.values()):
                    rows.append(Row(kind="baseline", label=b.short, cells=cells,
                                    baseline=b, ref=refs[b.id], comparability=compare(b, {})))
            columns = [s for s in specs if any(r.cells[s.key] is not None for r in rows)]
            if rows:
                table = Table(table_key, TABLES[table_key], columns, rows)
                table.number_footnotes()
                section.tables.append(table)
        if section.tables:
            sections.append(section)
    return sections


# ---------------------------------------------------------------- per-run pages


class Assets:
    """Copies and draws the report's images under OUT/assets, returning relative paths."""

    def __init__(self, out_dir: Path, problems: list[Problem]):
        self.out_dir = out_dir
        self.root = out_dir / ASSETS
        self.problems = problems
        if self.root.exists():
            if not (self.root / MARKER).exists() and any(self.root.iterdir()):
                raise ConfigError(f"{self.root} exists and was not written by `medsyn report`; "
                                  "choose another --out folder or remove it")
            shutil.rmtree(self.root)
        self.root.mkdir(parents=True)
        (self.root / MARKER).write_text("written by medsyn report; replaced on each run\n")

    def path(self, *parts: str) -> Path:
        path = self.root.joinpath(*parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def rel(self, path: Path) -> str:
        return path.relative_to(self.out_dir).as_posix()

    def copy(self, source: Path, *parts: str) -> str:
        target = self.path(*parts)
        shutil.copyfile(source, target)
        return self.rel(target)

    def figure(self, evaluation: Evaluation, key: str, title: str, folder: str) -> Figure | None:
        """A figure named in results.json 'figures', copied next to the report."""
        figures = evaluation.data.get("figures")
        if not isinstance(figures, Mapping) or key not in figures:
            return None
        name = figures[key]
        if not isinstance(name, str) or not name:
            self.problems.append(Problem(str(evaluation.path),
                                         f"figure {key!r} has no file name"))
            return Figure(title, None, missing=f"figure {key!r} has no file name")
        source = Path(name) if Path(name).is_absolute() else evaluation.dir / name
        if not source.is_file():
            message = (f"figure {key!r} is listed as {name!r} but {source} does not exist "
                       "(moved or deleted? re-run `medsyn evaluate` to regenerate it)")
            self.problems.append(Problem(str(evaluation.path), message))
            return Figure(title, None, missing=message)
        if source.suffix.lower() not in IMAGE_SUFFIXES:
            message = f"figure {key!r} ({source.name}) is not an image this report can show"
            self.problems.append(Problem(str(evaluation.path), message))
            return Figure(title, None, missing=message)
        return Figure(title, self.copy(source, folder, f"{slug(key)}{source.suffix.lower()}"),
                      width=display_width(source))


def _flatten(obj: Any, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(obj, Mapping):
        items = []
        for k, v in obj.items():
            items.extend(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return items
    text = obj if isinstance(obj, str) else json.dumps(obj, default=str)
    if len(text) > 160:
        text = text[:157] + "..."
    return [(prefix, text)]


def _provenance_items(e: Evaluation) -> list[tuple[str, str]]:
    prov = e.provenance
    items = []
    for key in ("checkpoint", "checkpoint_sha256", "dataset", "reference", "versions", "device",
                "seed", "resize", "date"):
        if key in prov:
            items.extend(_flatten(prov[key], key))
    extras = [k for k in prov if k not in {i.split(".")[0] for i, _ in items}]
    for key in extras:
        items.extend(_flatten(prov[key], key))
    return items


def _fmt(x: Any, digits: int = 3) -> str:
    value = finite(x)
    return f"{value:.{digits}f}" if value is not None else "n/a"


def _mean_std(stat: Mapping[str, Any], digits: int = 3, sign: str = "") -> str:
    """'mean ± std' over seeds; the mean alone (with '1 seed') when one seed gives no spread."""
    mean = finite(stat.get("mean"))
    text = f"{mean:{sign}.{digits}f}" if mean is not None else "n/a"
    values = [v for v in stat.get("values") or [] if finite(v) is not None]
    if len(values) < 2:
        return f"{text} (1 seed)" if len(values) == 1 else text
    return f"{text} ± {_fmt(stat.get('std'), digits)}"


def _per_class_rows(e: Evaluation) -> list[dict]:
    intra = e.metrics.get("intra_fid")
    per_class = intra.get("per_class") if isinstance(intra, Mapping) else None
    if not isinstance(per_class, Mapping):
        return []
    rows = []
    for name, entry in per_class.items():
        if not isinstance(entry, Mapping):
            continue
        fid = METRICS["fid"].extract({"fid": entry})
        kid = METRICS["kid"].extract({"kid": entry.get("kid")}) if entry.get("kid") else None
        rows.append({"name": name, "fid": fid, "kid": kid,
                     "warning": entry.get("warning") or (kid.warnings[0] if kid and kid.warnings
                                                         else None)})
    return rows


def _space_rows(e: Evaluation) -> dict | None:
    """Every metric in every feature space of a multi-space evaluation (results.json
    ``metrics.spaces.<space>.<key>``): one row per metric, one column per space, with the
    real-vs-real floor as rows of their own. None for a one-space evaluation."""
    spaces = e.metrics.get("spaces")
    if not isinstance(spaces, Mapping) or not spaces:
        return None
    names = [n for n, m in spaces.items() if isinstance(m, Mapping)]
    specs = [s for s in (*metrics_for_table("fidelity"), *metrics_for_table("distribution"))
             if s.key != "fid_floor"]
    rows = []
    for spec in specs:
        cells = [spec.extract(spaces[n]) for n in names]
        if any(c is not None for c in cells):
            rows.append({"label": spec.label, "spec": spec, "cells": cells})
    for key, label in (("fid_halves", "FD floor: two real halves"),
                       ("fid_train_vs_test", "FD floor: real train vs test")):
        spec = METRICS["fid"]
        cells = [spec.extract({"fid": (spaces[n].get("real_floor") or {}).get(key)})
                 if isinstance(spaces[n].get("real_floor"), Mapping) else None for n in names]
        if any(c is not None for c in cells):
            rows.append({"label": label, "spec": spec, "cells": cells})
    return {"spaces": names, "rows": rows}


def _floor_rows(e: Evaluation) -> list[dict]:
    floor = e.metrics.get("real_floor")
    if not isinstance(floor, Mapping):
        return []
    labels = {"fid_halves": "FID, two halves of the real reference",
              "kid_halves": "KID, two halves of the real reference",
              "fid_train_vs_test": "FID, real train vs real test",
              "kid_train_vs_test": "KID, real train vs real test"}
    rows = []
    for key, label in labels.items():
        if key in floor:
            spec = METRICS["kid" if key.startswith("kid") else "fid"]
            rows.append({"label": label, "spec": spec, "cell": spec.extract(
                {spec.key: floor[key]})})
    return rows


def _utility_view(e: Evaluation) -> dict | None:
    utility = e.metrics.get("utility")
    if utility is None:
        return None
    if not isinstance(utility, Mapping) or "arms" not in utility:
        reason = utility.get("unavailable") if isinstance(utility, Mapping) else None
        return {"unavailable": reason or "metrics.utility has no arms"}
    arm_names = {"trtr": "TRTR (real train)", "tstr": "TSTR (synthetic only)",
                 "trtr_s": "TRTR+S (real + synthetic)",
                 "class_fidelity": "Class fidelity (real-trained model on synthetic)"}
    stats = [("accuracy", "accuracy"), ("balanced_accuracy", "balanced acc."),
             ("auc_macro", "macro AUC"), ("f1_macro", "macro F1")]
    arms = utility.get("arms") if isinstance(utility.get("arms"), Mapping) else {}
    rows = []
    classes: list[str] = []
    for key, label in arm_names.items():
        arm = arms.get(key)
        if not isinstance(arm, Mapping):
            continue
        cells = []
        for stat, _ in stats:
            s = arm.get(stat)
            if isinstance(s, Mapping) and finite(s.get("mean")) is not None:
                cells.append(_mean_std(s))
            elif isinstance(s, Mapping) and (s.get("note") or s.get("unavailable")):
                cells.append(f"n/a ({s.get('note') or s['unavailable']})")
            else:
                cells.append("-")
        recall = arm.get("per_class_recall") if isinstance(arm.get("per_class_recall"),
                                                           Mapping) else {}
        for c in recall:
            if c not in classes:
                classes.append(c)
        rows.append({"label": label, "cells": cells, "recall": recall})
    for row in rows:
        row["recall_cells"] = [
            _mean_std(row["recall"][c]) if isinstance(row["recall"].get(c), Mapping) else "-"
            for c in classes]
    gain = utility.get("gain") if isinstance(utility.get("gain"), Mapping) else {}
    gains = []
    for stat, label in stats:
        g = gain.get(stat)
        if isinstance(g, Mapping) and finite(g.get("mean")) is not None:
            ci = g.get("ci95")
            ci_text = (f" [{_fmt(ci[0])}, {_fmt(ci[1])}]" if isinstance(ci, list) and len(ci) == 2
                       else "")
            gains.append((label, f"{_mean_std(g, sign='+')}{ci_text}"))
    ratio = utility.get("tstr_over_trtr") if isinstance(utility.get("tstr_over_trtr"),
                                                        Mapping) else {}
    ratios = [(label, _mean_std(r, 2))
              for stat, label in stats if isinstance(r := ratio.get(stat), Mapping)
              and finite(r.get("mean")) is not None]
    return {"headers": [label for _, label in stats], "rows": rows, "classes": classes,
            "gains": gains, "ratios": ratios,
            "recipe": _flatten(utility.get("recipe") or {}),
            "seeds": ", ".join(map(str, utility.get("seeds") or [])) or "not recorded",
            "n": ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in (
                utility.get("n") or {}).items()) if isinstance(utility.get("n"), Mapping)
            else "not recorded"}


def _memorization_view(e: Evaluation) -> dict | None:
    mem = e.metrics.get("memorization")
    if not isinstance(mem, Mapping):
        return None
    cell = METRICS["memorization"].extract(e.metrics)
    details = memorization_details(mem)
    return {"cell": cell, "raw": {k: v for k, v in mem.items() if k != "fraction"},
            "facts": details["facts"], "pairs": details["pairs"]}


def _discriminator_items(e: Evaluation) -> list[tuple[str, str]]:
    disc = e.metrics.get("discriminator")
    if not isinstance(disc, Mapping):
        return []
    labels = {"acc_real_test": "D accuracy on real test images",
              "acc_fake": "D accuracy on generated images",
              "aux_acc_real_test": "auxiliary classifier accuracy on real test images"}
    items = []
    for key, value in disc.items():
        shown = plain_number(value.get("value") if isinstance(value, Mapping) else value)
        items.append((labels.get(key, key), shown))
    return items


def _epoch_list(evaluations: list[Evaluation]) -> str:
    """'2, 3, 5 (2 evaluations: eval-a, eval-b)': each epoch once, repeats named by folder."""
    by_epoch: dict[int, list[Evaluation]] = {}
    for e in evaluations:
        if e.epoch is not None:
            by_epoch.setdefault(e.epoch, []).append(e)
    parts = []
    for epoch in sorted(by_epoch):
        evs = by_epoch[epoch]
        if len(evs) == 1:
            parts.append(str(epoch))
        else:
            names = ", ".join(e.tag or e.dir.name for e in evs)
            parts.append(f"{epoch} ({len(evs)} evaluations: {names})")
    return ", ".join(parts)


def build_run_view(run: Run, assets: Assets) -> RunView:
    anchor = f"run-{slug(run.name, run.key)}"
    folder = slug(run.name, run.key)
    facts: list[tuple[str, str]] = []
    latest = run.evaluations[-1] if run.evaluations else None
    if run.run_dir is not None:
        facts.append(("run folder", str(run.run_dir)))
    if latest is not None:
        model = (latest.data.get("run") or {}).get("model_kind") \
            if isinstance(latest.data.get("run"), dict) else None
        facts += [("kind", latest.kind), ("model", str(model or (run.config or {}).get(
            "kind", "n/a"))), ("dataset", str(dataset_name(latest, run.config) or "n/a")),
            ("image size", f"{image_size(latest, run.config)} px"
             if image_size(latest, run.config) else "n/a")]
        fingerprint = latest.dataset.get("fingerprint")
        if fingerprint:
            facts.append(("dataset fingerprint", str(fingerprint)))
    facts.append(("evaluated epochs", _epoch_list(run.evaluations) or
                  (str(len(run.evaluations)) if run.evaluations else "none yet")))
    if run.selection_rule:
        chosen = f"epoch {run.selected.epoch}" if run.selected and run.selected.epoch \
            is not None else (run.selected.label if run.selected else "none")
        facts.append(("selected", f"{chosen} ({run.selection_rule})"))

    figures: list[Figure] = []
    selected_epoch = run.selected.epoch if run.selected is not None else None
    if run.log:
        path = plots.plot_training_log(run.log, assets.path(folder, "training.png"),
                                       selected_epoch)
        if path is not None:
            figures.append(Figure("Training curves", assets.rel(path),
                                  "Thin lines: every logged step; thick: epoch means."))
    elif run.run_dir is not None:
        figures.append(Figure("Training curves", None,
                              missing=f"no log.jsonl in {run.run_dir} (not a medsyn run folder, "
                                      "or the log was deleted)"))
    curves = plots.plot_metric_curves(run, assets.path(folder, "metrics.png"),
                                      run.selection_rule)
    if curves is not None:
        figures.append(Figure("Metrics against epoch", assets.rel(curves),
                              "Shaded: 95% intervals. Dashed vertical line: the selected epoch."))
    if run.samples:
        last = run.samples[-1]
        figures.append(Figure(f"Last sample grid ({last.name})",
                              assets.copy(last, folder, f"samples-{last.name}"),
                              "From the run's samples/ folder (generators: fixed noise, one row "
                              "per class).", width=display_width(last)))
        if selected_epoch is not None:
            chosen = [p for p in run.samples if re.search(rf"epoch0*{selected_epoch}\b", p.stem)]
            if chosen and chosen[0] != last:
                figures.append(Figure(f"Sample grid at the selected epoch ({chosen[0].name})",
                                      assets.copy(chosen[0], folder,
                                                  f"samples-{chosen[0].name}"),
                                      width=display_width(chosen[0])))

    at_selected = []
    if selected_epoch is not None and run.log:
        for key, label in (("loss_g", "generator loss (epoch mean)"),
                           ("loss_d", "discriminator loss (epoch mean)"),
                           ("d_acc_fake", "discriminator accuracy on fakes (epoch mean)"),
                           ("d_x", "D(x) (epoch mean)"), ("d_g_z2", "D(G(z)) (epoch mean)")):
            means = plots.epoch_means(run.log, key)
            if selected_epoch in means:
                at_selected.append((label, f"{means[selected_epoch]:.3f}"))

    per_eval = []
    shown = [run.selected] if run.selected is not None else run.evaluations[-1:]
    for e in shown:
        sub = f"{folder}/{slug(e.path.parent.name)}"
        view: dict[str, Any] = {"evaluation": e, "figures": []}
        per_class = _per_class_rows(e)
        view["per_class"] = per_class
        if per_class:
            intra = e.metrics.get("intra_fid")
            bars = plots.plot_per_class(intra.get("per_class"), assets.path(sub,
                                                                            "per_class.png"))
            if bars is not None:
                view["figures"].append(Figure("Per-class intra-FID and KID", assets.rel(bars),
                                              "Error bars: 95% intervals."))
        consumed = set()
        for key, title in (("tsne", "t-SNE of real and synthetic features"),
                           ("memorization", "Memorization: closest synthetic / training pairs")):
            fig = assets.figure(e, key, title, sub)
            if fig is not None:
                view["figures"].append(fig)
                consumed.add(key)
        figs = e.data.get("figures")
        privacy = privacy_view(e.metrics)
        if isinstance(figs, Mapping) and privacy is not None and "unavailable" not in privacy:
            for key in figs:
                if key.startswith("privacy_"):
                    kind, _, space = key[len("privacy_"):].partition("_")
                    title = (f"Privacy, {space}: closest synthetic / training pairs"
                             if kind == "pairs" else
                             f"Privacy, {space}: distance to the nearest training image, "
                             "synthetic vs held-out baseline")
                    fig = assets.figure(e, key, title, sub)
                    if fig is not None:
                        privacy["figures"].append(fig)
                        consumed.add(key)
        if isinstance(figs, Mapping):
            for key in figs:
                if key in consumed:
                    continue
                fig = assets.figure(e, key, key.replace("_", " "), sub)
                if fig is not None:
                    view["figures"].append(fig)
        view["floor"] = _floor_rows(e)
        view["spaces"] = _space_rows(e)
        view["memorization"] = _memorization_view(e)
        view["privacy"] = privacy
        view["utility"] = _utility_view(e)
        view["discriminator"] = _discriminator_items(e)
        view["provenance"] = _provenance_items(e)
        per_eval.append(view)
    config_items = _flatten(run.config) if run.config else []
    verdict, verdict_of = None, ""
    judged = run.selected if run.selected is not None else (
        run.evaluations[-1] if run.evaluations else None)
    if judged is not None and judged.kind == "generation":
        verdict = evaluation_verdict(judged.metrics)
        verdict_of = judged.label
    return RunView(run=run, anchor=anchor, facts=facts, figures=figures, per_eval=per_eval,
                   config_items=config_items, at_selected=at_selected, verdict=verdict,
                   verdict_of=verdict_of)


# ---------------------------------------------------------------- text outputs


def cell_text(cell: Cell | None, spec: MetricSpec, *, with_n: bool = True) -> str:
    """One line for text outputs (Markdown): value, interval, n, or why it is missing."""
    if cell is None:
        return "-"
    if not cell.available:
        return f"n/a (note {cell.footnote})" if cell.footnote else f"n/a ({cell.unavailable})"
    text = spec.format_number(cell.value)
    if cell.lo is not None and cell.hi is not None:
        text += f" [{spec.format_number(cell.lo)}, {spec.format_number(cell.hi)}]"
    elif cell.spread is not None:
        text += f" ± {spec.format_number(cell.spread).lstrip('+')}†"
    elif cell.std is not None:
        text += f" ± {spec.format_number(cell.std).lstrip('+')} (std)"
    if with_n and cell.n:
        text += f" ({cell.n})"
    return text


def md_text(text: object) -> str:
    """``text`` safe inside a Markdown table: HTML escaped (a run or class named
    ``<script>...`` stays text, as in the HTML report) and ``|`` escaped."""
    return html.escape(str(text), quote=False).replace("|", "\\|").replace("\n", " ")


def write_markdown(path: Path, sections: list[Section], baselines: list[Baseline],
                   runs: list[Run]) -> None:
    lines = ["# medsyn report - summary", "",
             "Values: estimate [95% interval] (n = fake / real images, or real test images and "
             "training seeds). Published rows: value ± spread as published (not a 95% "
             "interval), marked †; **bold** = best in the column among our runs and directly "
             "comparable published rows; n/a = could not be computed (reason in the notes).",
             ""]
    used: dict[int, Baseline] = {}
    for section in sections:
        lines += [f"## {md_text(section.title)}", ""]
        lines += [f"> {md_text(note)}" for note in section.notes] + \
            ([""] if section.notes else [])
        for table in section.tables:
            lines += [f"### {md_text(table.title)}", ""]
            header = ["Row"] + [md_text(f"{s.label} {s.arrow}".strip()) for s in table.columns]
            lines.append("| " + " | ".join(header) + " |")
            lines.append("|" + "|".join(["---"] * len(header)) + "|")
            for row in table.rows:
                label = md_text(row.full_label) + (" ★" if row.selected else "")
                if row.baseline is not None:
                    label += f" [{row.ref}]†"
                    used[row.ref] = row.baseline
                cells = []
                for spec in table.columns:
                    text = md_text(cell_text(row.cells.get(spec.key), spec))
                    cells.append(f"**{text}**" if row.cells.get(spec.key) and
                                 row.cells[spec.key].best else text)
                lines.append("| " + " | ".join([label] + cells).replace("\n", " ") + " |")
            lines.append("")
            notes = [f"Note {n}: {text}" for n, text in table.footnotes]
            notes += [f"[{r.ref}] {r.comparability.note}" for r in table.rows
                      if r.comparability is not None]
            lines += [f"- {md_text(n)}" for n in dict.fromkeys(notes)] + ([""] if notes else [])
        if section.agreement is not None:
            lines += ["### Ranking agreement (Kendall tau-b)", "",
                      f"Between the orders in which each metric [feature space] ranks the "
                      f"{section.agreement.n_evaluations} evaluations above (+1 same order, "
                      "-1 reversed; directions aligned so that + means agreement; - = fewer "
                      "than 3 shared evaluations or no spread).", ""]
            lines += markdown_lines(section.agreement) + [""]
    selected = [r for r in runs if r.selected is not None]
    if selected:
        lines += ["★ = selected epoch of the run: " + "; ".join(
            f"{md_text(r.name)}: epoch {r.selected.epoch} ({md_text(r.selection_rule)})"
            for r in selected), ""]
    privacy = [f"- {md_text(r.name)} / {md_text(e.path.parent.name)}: {line}" for r in runs
               for e in r.evaluations if (line := privacy_markdown_line(e.metrics))]
    if privacy:
        lines += ["## Privacy", ""] + privacy + [""]
    if used:
        lines += ["## References", ""]
        by_citation: dict[str, list[int]] = {}
        for ref in sorted(used):
            by_citation.setdefault(f"{used[ref].citation} {used[ref].link}", []).append(ref)
        for citation, numbers in by_citation.items():
            lines.append(", ".join(f"[{n}]" for n in numbers) + f" {citation}")
            lines.append("")
    with atomic_write(path, "w") as f:
        f.write("\n".join(lines))


def write_csv(path: Path, sections: list[Section]) -> None:
    fixed = ["section", "table", "row_type", "label", "run", "epoch", "selected", "kind",
             "dataset", "image_size", "results_json", "baseline_id", "citation", "link",
             "comparability"]
    metric_fields = []
    for key in METRICS:
        metric_fields += [key, f"{key}_ci_low", f"{key}_ci_high", f"{key}_interval", f"{key}_n",
                          f"{key}_published_spread", f"{key}_unavailable"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fixed + metric_fields, lineterminator="\n")
    writer.writeheader()
    for section in sections:
        for table in section.tables:
            for row in table.rows:
                record: dict[str, Any] = {
                    "section": section.title, "table": table.key, "row_type": row.kind,
                    "label": row.full_label, "kind": section.kind,
                    "dataset": section.dataset or "", "image_size": section.image_size or ""}
                if row.evaluation is not None:
                    record.update(run=row.run.name if row.run else "",
                                  epoch=row.evaluation.epoch if row.evaluation.epoch is not None
                                  else "", selected=int(row.selected),
                                  results_json=str(row.evaluation.path))
                if row.baseline is not None:
                    record.update(baseline_id=row.baseline.id, citation=row.baseline.citation,
                                  link=row.baseline.link,
                                  comparability=row.comparability.note
                                  if row.comparability else "")
                for key, cell in row.cells.items():
                    if cell is None:
                        continue
                    record[key] = cell.value if cell.available else ""
                    record[f"{key}_ci_low"] = "" if cell.lo is None else cell.lo
                    record[f"{key}_ci_high"] = "" if cell.hi is None else cell.hi
                    record[f"{key}_interval"] = cell.interval_kind if cell.lo is not None else ""
                    record[f"{key}_n"] = cell.n or ""
                    record[f"{key}_published_spread"] = "" if cell.spread is None \
                        else cell.spread
                    record[f"{key}_unavailable"] = cell.unavailable or ""
                writer.writerow(record)
    with atomic_write(path, "w") as f:
        f.write(buffer.getvalue())


# ---------------------------------------------------------------- HTML


def _code_spans(text: str):
    """Escape ``text`` and show its `backticked` parts as code."""
    from markupsafe import Markup, escape

    return Markup(re.sub(r"`([^`]+)`", r"<code>\1</code>", str(escape(text))))


def _render_html(context: dict) -> str:
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    env = Environment(loader=PackageLoader("medsyn.reports", "templates"),
                      autoescape=select_autoescape(["html", "j2"]), undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    env.globals["cell_text"] = cell_text
    env.filters["code_spans"] = _code_spans
    css = resources.files("medsyn.reports").joinpath("static").joinpath("report.css").read_text(
        "utf-8")
    css += audit_cards.CARD_CSS      # trust cards: the same rules as a standalone card.html
    return env.get_template("index.html.j2").render(css=css, **context)


REPORT_FILES = ("index.html", "summary.csv", "summary.md", ASSETS)


def check_report_folder(out_dir: Path, overwrite: bool) -> None:
    """Refuse to replace a report's files (or a user's files of the same names) unless
    ``overwrite``."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"--out {out_dir} is a file, not a folder; nothing was written.")
    assets = out_dir / ASSETS
    if assets.is_dir() and not (assets / MARKER).exists() and any(assets.iterdir()):
        raise ConfigError(f"{assets} exists and was not written by `medsyn report`; "
                          "choose another --out folder or remove it")
    existing = [name for name in REPORT_FILES if (out_dir / name).exists()]
    if existing and not overwrite:
        raise ConfigError(
            f"{out_dir} already holds {', '.join(existing)}; nothing was overwritten. Pass "
            "--overwrite to replace them, or choose another --out folder.")


def build_report(inputs: Iterable[str | Path] | None = None, out_dir: str | Path = "reports",
                 *, runs_root: str | Path = "runs", select_by: str | None = None,
                 best_only: bool = False, title: str | None = None,
                 baselines_path: str | Path | None = None,
                 overwrite: bool = False) -> ReportResult:
    """Write OUT/index.html (+ assets), OUT/summary.csv and OUT/summary.md.

    ``inputs`` are results.json files, eval folders or run folders (default: everything under
    ``runs_root``). Problems with individual inputs do not stop the report; they are listed in
    ``ReportResult.problems`` and at the top of the page. An existing report (or any file of
    the same name) in ``out_dir`` is replaced only with ``overwrite``.
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
    out_dir.mkdir(parents=True, exist_ok=True)
    assets = Assets(out_dir, problems)
    unplaced_cards = audit_cards.attach(sections, cards, assets)
    run_views = [build_run_view(run, assets) for run in progress(runs, desc="report runs")]
    index = out_dir / "index.html"
    csv_path = out_dir / "summary.csv"
    md_path = out_dir / "summary.md"
    write_csv(csv_path, sections)
    write_markdown(md_path, sections, baselines, runs)
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
    html = _render_html(context)
    with atomic_write(index, "w") as f:
        f.write(html)
    return ReportResult(out_dir=out_dir, index_html=index, summary_csv=csv_path,
                        summary_md=md_path, problems=problems, n_runs=len(runs),
                        n_evaluations=n_evaluations)
