"""The trust card: one table per feature space, failures x metrics, each cell coloured by its
verdict; written as card.md and card.html beside audit.json, and rendered by ``medsyn report``
from audit.json with :func:`card_html`.

This module imports no torch: the report uses it.
"""

from __future__ import annotations

import json
from pathlib import Path

from markupsafe import escape as _markup_escape

from medsyn.evaluators.audit.card_statistics import statistics_html, statistics_markdown
from medsyn.evaluators.audit.verdict import DETECTED, LATE, MISSED, UNAVAILABLE, WRONG
from medsyn.outputs import OutputKind, check_output_folder, staged_output

AUDIT_NAME = "audit.json"
VERDICT_CLASS = {DETECTED: "detected", LATE: "late", MISSED: "missed", WRONG: "wrong",
                 UNAVAILABLE: "unavailable"}
VERDICT_MARK = {DETECTED: "✔", LATE: "◐", MISSED: "✖", WRONG: "↯", UNAVAILABLE: "–"}
WORSE_ARROW = {"higher": "↑", "lower": "↓", "either": "↕"}
CARD_CSS = """
table.trust-card { border-collapse: collapse; font-size: .8rem; margin: .4rem 0 .8rem; }
table.trust-card th, table.trust-card td { border: 1px solid #d9dee7; padding: .25rem .4rem;
  text-align: center; vertical-align: top; }
table.trust-card th.failure { text-align: left; font-weight: 600; white-space: nowrap; }
table.trust-card thead th { background: #f5f7fa; white-space: nowrap; }
table.trust-card td small { display: block; color: #40485a; font-size: .72rem; }
table.trust-card td.detected { background: #d4f0dc; }
table.trust-card td.late { background: #fff1c2; }
table.trust-card td.missed { background: #f9d3d3; }
table.trust-card td.wrong { background: #e3d4f5; }
table.trust-card td.unavailable { background: #eceff3; color: #6b7280; }
.trust-legend span { display: inline-block; padding: 0 .4rem; margin-right: .3rem;
  border: 1px solid #d9dee7; font-size: .8rem; }
.trust-legend .detected { background: #d4f0dc; } .trust-legend .late { background: #fff1c2; }
.trust-legend .missed { background: #f9d3d3; } .trust-legend .wrong { background: #e3d4f5; }
.badge.card-link { text-decoration: none; }
"""


def escape(value) -> str:
    """HTML-escaped text as a plain str (a Markup would escape what it is concatenated with)."""
    return str(_markup_escape(value))


def load_audit(path: str | Path) -> dict:
    path = Path(path)
    if path.is_dir():
        path = path / AUDIT_NAME
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if not isinstance(data, dict) or data.get("kind") != "audit":
        raise ValueError(f"{path} is not a medsyn audit.json (no \"kind\": \"audit\")")
    return data


def _fmt(x, digits=3) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, list):
        return "(" + ", ".join(_fmt(v, digits) for v in x) + ")"
    if isinstance(x, float):
        if x != 0 and abs(x) < 10 ** -digits:
            return f"{x:.1e}"
        return f"{x:.{digits}g}" if abs(x) >= 1000 else f"{x:.{digits}f}".rstrip("0").rstrip(".")
    return str(x)


def metric_columns(space: dict, directions: dict) -> tuple[list[str], dict[str, str]]:
    """Metric keys with a value somewhere in this space, and the others with their reason."""
    shown, hidden = [], {}
    for key in directions:
        cells = [c[key] for c in space["cells"].values() if key in c]
        if any(c["verdict"] != UNAVAILABLE for c in cells):
            shown.append(key)
        elif cells:
            hidden[key] = cells[0].get("reason") or "unavailable"
    return shown, hidden


def cell_summary(cell: dict, failure: dict) -> str:
    """One line: verdict, the detection threshold (level and parameter) and Spearman's rho."""
    verdict = cell["verdict"]
    if verdict == UNAVAILABLE:
        return f"unavailable: {cell.get('reason', '')}".strip()
    parts = [verdict]
    thr = cell.get("threshold_level")
    if thr is not None:
        parts.append(f"at level {thr} ({failure['parameter']} {_fmt(cell['threshold_parameter'])})")
    if cell.get("spearman") is not None:
        parts.append(f"rho {cell['spearman']:+.2f}")
    return ", ".join(parts)


def _level_trace(cell: dict) -> str:
    out = []
    for lv in cell["levels"]:
        ci = lv.get("ci95")
        ci_text = f" [{_fmt(ci[0])}, {_fmt(ci[1])}]" if ci else ""
        out.append(f"L{lv['level']}: {_fmt(lv.get('value'))}{ci_text}"
                   + (f" ({lv['departure']})" if lv.get("departure") else ""))
    return "; ".join(out)


def card_markdown(audit: dict) -> str:
    """The trust card as Markdown tables (one per space)."""
    ds = audit["dataset"]
    st = audit["settings"]
    lines = [f"# Trust card: {ds['name']} at {ds['image_size'][0]} px", "",
             f"Synthetic sets of n = {st['n']} held-out images ({ds['pool']['split']}), reference "
             f"{ds['reference']['n']} {ds['reference']['split']} images, {st['n_bootstrap']} "
             f"bootstrap resamples, seed {st['seed']}. Legend: "
             + ", ".join(f"{VERDICT_MARK[v]} {v}" for v in (DETECTED, LATE, MISSED, WRONG))
             + f" (detected: leaves the real-vs-real interval on the worse side by level "
             f"{st['early_level']}; late: only above it).", ""]
    for space_name, space in audit["spaces"].items():
        shown, hidden = metric_columns(space, audit["directions"])
        lines += [f"## {space_name}", "",
                  "| failure | " + " | ".join(f"{k} {WORSE_ARROW[audit['directions'][k]]}"
                                             for k in shown) + " |",
                  "|---|" + "---|" * len(shown)]
        for fname, cells in space["cells"].items():
            failure = audit["failures"][fname]
            row = []
            for key in shown:
                c = cells[key]
                text = VERDICT_MARK[c["verdict"]] + " " + c["verdict"]
                if c.get("threshold_level") is not None:
                    text += f" @{c['threshold_level']}"
                if c.get("spearman") is not None:
                    text += f" (ρ {c['spearman']:+.2f})"
                row.append(text)
            lines.append(f"| {failure['title']} | " + " | ".join(row) + " |")
        if hidden:
            lines += ["", "Not scored in this space: " + "; ".join(
                f"{k} ({reason})" for k, reason in hidden.items()) + "."]
        lines.append("")
    lines += statistics_markdown(audit)
    return "\n".join(lines)


def card_html(audit: dict, anchor: str = "trust-card", figure_src=None,
              heading_level: int = 3) -> str:
    """The trust card as HTML tables (one per space). ``figure_src(space, failure)`` gives
    the link target of a failure's curves figure, or None."""
    ds, st = audit["dataset"], audit["settings"]
    h = f"h{heading_level}"
    out = [f'<div class="trust-card-block" id="{escape(anchor)}">',
           f"<{h}>Trust card: {escape(ds['name'])} at {ds['image_size'][0]} px</{h}>",
           f'<p class="muted">Which metric notices which failure on these real images: each '
           f"failure built from n = {st['n']} held-out images ({escape(ds['pool']['split'])}), "
           f"scored against {ds['reference']['n']} {escape(ds['reference']['split'])} images, "
           f"at severity levels 1..{len(next(iter(audit['failures'].values()))['levels']) - 1}"
           f" (level 0: the real images, whose 95% interval is the real-vs-real band). "
           f"Detected: leaves that band on the worse side by level {st['early_level']}; late: "
           f"only above it; missed: never leaves it; wrong direction: leaves it on the better "
           f"side first. Hover a cell for the values.</p>",
           '<p class="trust-legend">'
           + "".join(f'<span class="{VERDICT_CLASS[v]}">{VERDICT_MARK[v]} {v}</span>'
                     for v in (DETECTED, LATE, MISSED, WRONG)) + "</p>"]
    for space_name, space in audit["spaces"].items():
        shown, hidden = metric_columns(space, audit["directions"])
        out.append(f'<{h} id="{escape(anchor)}-{escape(space_name)}" style="font-size:1rem">'
                   f"Space: {escape(space_name)}</{h}>")
        out.append('<div class="scroll"><table class="trust-card"><thead><tr><th>failure</th>')
        for key in shown:
            worse = audit["directions"][key]
            out.append(f'<th title="worse when {worse}">{escape(key)} {WORSE_ARROW[worse]}</th>')
        out.append("</tr></thead><tbody>")
        for fname, cells in space["cells"].items():
            failure = audit["failures"][fname]
            link = figure_src(space_name, fname) if figure_src else None
            title = escape(failure["title"])
            head = f'<a href="{escape(link)}">{title}</a>' if link else title
            out.append(f'<tr><th class="failure" title="{escape(failure["parameter"])}: '
                       f'{escape(_fmt(failure["parameters"][1:]))}">{head}</th>')
            for key in shown:
                c = cells[key]
                small = []
                if c.get("threshold_level") is not None:
                    small.append(f"level {c['threshold_level']}")
                if c.get("spearman") is not None:
                    small.append(f"ρ {c['spearman']:+.2f}")
                tip = cell_summary(c, failure) + " | " + _level_trace(c)
                out.append(f'<td class="{VERDICT_CLASS[c["verdict"]]}" title="{escape(tip)}">'
                           f'{VERDICT_MARK[c["verdict"]]} {escape(c["verdict"])}'
                           + (f"<small>{escape(' · '.join(small))}</small>" if small else "")
                           + "</td>")
            out.append("</tr>")
        out.append("</tbody></table></div>")
        if hidden:
            out.append('<p class="muted">Not scored in this space: ' + escape("; ".join(
                f"{k} ({reason})" for k, reason in hidden.items())) + ".</p>")
    out += statistics_html(audit, h)
    out.append("</div>")
    return "\n".join(out)


def standalone_html(audit: dict, figure_src=None) -> str:
    ds = audit["dataset"]
    return ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>medsyn trust card: {escape(ds['name'])}</title><style>"
            "body{font:15px/1.45 system-ui,sans-serif;margin:1.2rem;color:#1d2433}"
            ".muted{color:#5b6475;font-size:.85rem;max-width:60rem}" + CARD_CSS
            + "</style></head><body>" + card_html(audit, figure_src=figure_src, heading_level=2)
            + "</body></html>\n")


def _legacy_audit(folder: Path) -> set[str] | None:
    """What an audit written before manifests existed holds: audit.json, card.md, card.html
    and the figures its audit.json names under figures/."""
    try:
        audit = json.loads((folder / AUDIT_NAME).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(audit, dict) or not isinstance(audit.get("spaces"), dict) or \
            not isinstance(audit.get("figures"), dict):
        return None
    owned = {AUDIT_NAME, "card.md", "card.html"}
    for by_failure in audit["figures"].values():
        for rel in (by_failure.values() if isinstance(by_failure, dict) else ()):
            parts = str(rel).split("/")
            if len(parts) == 2 and parts[0] == "figures" and parts[1].endswith(".png") and \
                    (folder / rel).is_file():
                owned.update({"figures", rel})
    return owned


AUDIT = OutputKind("medsyn audit", "audit", AUDIT_NAME, _legacy_audit)


def check_audit_folder(out_dir: Path, overwrite: bool = False) -> None:
    """Refuse to write an audit into ``out_dir`` when it holds one and ``overwrite`` is not
    given, or anything medsyn did not write (:mod:`medsyn.outputs`)."""
    check_output_folder(out_dir, AUDIT, overwrite)


def write_audit(audit: dict, out_dir: Path, overwrite: bool = False) -> None:
    """audit.json, card.md, card.html and figures/<space>-<failure>.png into ``out_dir``, as
    one unit: a kill leaves the previous audit whole, and a replaced audit leaves no figure
    behind."""
    with staged_output(out_dir, AUDIT, overwrite) as stage:
        _write_audit_files(audit, stage)


def _write_audit_files(audit: dict, out_dir: Path) -> None:
    from medsyn.evaluators.audit.figures import severity_curves
    from medsyn.utils import atomic_write, write_json

    figures: dict = {}
    for space_name, space in audit["spaces"].items():
        figures[space_name] = {}
        for fname in space["cells"]:
            rel = f"figures/{_safe(space_name)}-{fname}.png"
            severity_curves(out_dir / rel, audit, space_name, fname)
            figures[space_name][fname] = rel
    audit["figures"] = figures
    audit["files"] = {"card_markdown": "card.md", "card_html": "card.html"}

    def src(space_name, fname):
        return figures.get(space_name, {}).get(fname)

    with atomic_write(out_dir / "card.md", "w") as f:
        f.write(card_markdown(audit))
    with atomic_write(out_dir / "card.html", "w") as f:
        f.write(standalone_html(audit, src))
    write_json(out_dir / AUDIT_NAME, audit)


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
