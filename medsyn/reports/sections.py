"""The summary of the report: each run's selected epoch, and one section per (kind, dataset,
image size) with its tables (one per group of metric columns), published baselines placed
beside the runs they can be compared with, and the best value of each column marked."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from medsyn.errors import ConfigError
from medsyn.reports.content.agreement import ranking_agreement
from medsyn.reports.content.baselines import Baseline, compare
from medsyn.reports.content.cells import Cell
from medsyn.reports.content.inputs import Evaluation, Run, class_names, dataset_name, image_size
from medsyn.reports.content.metrics import (
    DEFAULT_SELECTION,
    TABLES,
    MetricSpec,
    get_metric,
    mark_best,
    metrics_for_table,
    tables_for_kind,
)
from medsyn.reports.model import Row, Section, Table

# result blocks written by a leaderboard protocol's family (they name their protocol)
PROTOCOL_BLOCKS = ("cmmd", "chexgenbench", "dgm_eval")
GENERATION_BASELINE_KINDS = {"fidelity": ("generation",), "protocols": ("generation",),
                             "utility": ("generation", "classification")}


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
                word = spec.best_word
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
        "n_test", "scale", "crop_border", "y_channel", "protocol")}
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
        conditions["protocol"].add(run_protocol(m))
        config = run.config or {}
        for cond in ("scale", "crop_border"):
            conditions[cond].add(config.get(cond))
    return {k: {v for v in vals if v is not None} for k, vals in conditions.items()}


def run_protocol(metrics: Mapping) -> str:
    """The leaderboard protocol whose code computed a run's numbers (the ``protocol`` of its
    cmmd / chexgenbench / dgm_eval blocks): ``"medsyn"`` when none did, ``"several"`` when
    more than one."""
    found = {str(metrics[k]["protocol"]) for k in PROTOCOL_BLOCKS
             if isinstance(metrics.get(k), Mapping) and metrics[k].get("protocol")}
    return found.pop() if len(found) == 1 else "several" if found else "medsyn"


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
            (f" - {kind}" if kind in ("super-resolution", "translation") else "")
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
        if kind not in ("super-resolution", "translation"):
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
    if extractors and table_key in ("fidelity", "protocols"):
        title += f" (features: {', '.join(extractors)})"
    if table_key == "protocols":
        title += f"; protocol: {', '.join(sorted(conditions.get('protocol', ())))}"
    table = Table(key=table_key, title=title, columns=columns, rows=rows)
    table.number_footnotes()
    return table



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
