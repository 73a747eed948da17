"""One page per run: facts, training curves, metric curves, sample grids, and the details of
its selected (or latest) evaluation (per class, every feature space, real-vs-real floor,
memorization, privacy, utility arms, discriminator, provenance, verdict)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from medsyn.reports.content import plots
from medsyn.reports.content.agreement import metric_blocks
from medsyn.reports.content.inputs import Evaluation, Run, dataset_name, finite, image_size
from medsyn.reports.content.metrics import METRICS, metrics_for_table
from medsyn.reports.content.privacy import privacy_view
from medsyn.reports.content.translation import translation_verdict
from medsyn.reports.content.verdict import evaluation_verdict, memorization_details, plain_number
from medsyn.reports.model import Figure, RunView, slug
from medsyn.reports.writers import Assets, display_width, full_resolution_width

TRAINING_STRIPS = ("From the run's samples/ folder, at full resolution: one row per fixed "
                   "training image, input | output | target (CycleGAN: A | G_AB(A) | "
                   "G_BA(G_AB(A)) rows, then B | G_BA(B) | G_AB(G_BA(B)) rows).")


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


def _tests_items(e: Evaluation) -> list[tuple[str, str]]:
    """(space, sentence) of the two-sample tests (``--metrics tests``): "distinguishable at n =
    ... (p = ...)", the effect sizes, and the real-vs-real halves' p-value; each space once."""
    items, seen = [], set()
    for space, block in metric_blocks(e.metrics):
        test = block.get("tests")
        if not isinstance(test, Mapping):
            continue
        name = space or str(test.get("extractor") or "features")
        key = (test.get("extractor"), test.get("p_value"), test.get("unavailable"))
        if key in seen:                 # the top-level copy of the first space
            continue
        seen.add(key)
        if test.get("unavailable"):
            items.append((name, f"unavailable: {test['unavailable']}"))
            continue
        parts = [str(test.get("statement", ""))]
        effects = [f"{label} {plain_number(test[k].get('effect_size'))}"
                   for k, label in (("fd", "FD"), ("mmd", "MMD")) if isinstance(test.get(k),
                                                                                 Mapping)]
        if effects:
            parts.append("effect size (null SDs): " + ", ".join(effects))
        null = test.get("real_vs_real")
        if isinstance(null, Mapping) and null.get("p_value") is not None:
            parts.append(f"real vs real ({null.get('halves', 'halves')}): p = "
                         f"{null['p_value']:.3g}")
        items.append((name, "; ".join(parts)))
    return items


def _translation_view(e: Evaluation, assets: Assets, folder: str) -> dict | None:
    """A translation evaluation's verdict in words and its test strips at full resolution."""
    if e.kind != "translation":
        return None
    info = e.provenance.get("translation")
    info = info if isinstance(info, Mapping) else {}
    paired = info.get("paired", isinstance(e.metrics.get("psnr_y"), Mapping))
    columns = str(info.get("examples") or ("input | output | target" if paired
                                           else "input | output | reconstruction"))
    strips = []
    fig = assets.figure(e, "translation_examples", f"Test images: {columns}", folder,
                        native=True)
    if fig is not None:
        fig.caption = ("One row per test image, shown at full resolution (each pixel a whole "
                       "number of screen pixels, never smoothed)."
                       + ("" if paired else " The reconstruction is G_BA(G_AB(input))."))
        strips.append(fig)
    return {"verdict": translation_verdict(e.metrics), "strips": strips,
            "protocol": "paired: against the targets and the simple baselines" if paired
            else "unpaired: against the target domain, the inputs and the classifier"}


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
        # translation strips (input | output | target) are shown at full resolution
        strips = run.kind == "translation"
        width = full_resolution_width if strips else display_width
        figures.append(Figure(f"Last sample {'strip' if strips else 'grid'} ({last.name})",
                              assets.copy(last, folder, f"samples-{last.name}"),
                              TRAINING_STRIPS if strips else
                              "From the run's samples/ folder (generators: fixed noise, one row "
                              "per class).", width=width(last), native=strips))
        if selected_epoch is not None:
            chosen = [p for p in run.samples if re.search(rf"epoch0*{selected_epoch}\b", p.stem)]
            if chosen and chosen[0] != last:
                figures.append(Figure(f"Sample {'strip' if strips else 'grid'} at the selected "
                                      f"epoch ({chosen[0].name})",
                                      assets.copy(chosen[0], folder,
                                                  f"samples-{chosen[0].name}"),
                                      width=width(chosen[0]), native=strips))

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
        view["translation"] = _translation_view(e, assets, sub)
        consumed = {"translation_examples"} if view["translation"] else set()
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
        view["tests"] = _tests_items(e)
        view["provenance"] = _provenance_items(e)
        per_eval.append(view)
    config_items = _flatten(run.config) if run.config else []
    verdict, verdict_of = None, ""
    judged = run.selected if run.selected is not None else (
        run.evaluations[-1] if run.evaluations else None)
    if judged is not None and judged.kind in ("generation", "translation"):
        verdict = (evaluation_verdict if judged.kind == "generation"
                   else translation_verdict)(judged.metrics)
        verdict_of = judged.label
    return RunView(run=run, anchor=anchor, facts=facts, figures=figures, per_eval=per_eval,
                   config_items=config_items, at_selected=at_selected, verdict=verdict,
                   verdict_of=verdict_of)
