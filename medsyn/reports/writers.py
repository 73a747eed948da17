"""What the report writes into its folder: the folder check, assets/ (copied and drawn images),
summary.md, summary.csv and index.html (jinja2 template, templates/index.html.j2).

The folder is written as one unit with a manifest of what medsyn wrote (:mod:`medsyn.outputs`,
:data:`REPORT`): a kill leaves the previous report whole, and only a folder holding nothing but
a medsyn report is ever replaced."""

from __future__ import annotations

import csv
import html
import io
import re
import shutil
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from medsyn.outputs import OutputKind, check_output_folder
from medsyn.reports.content import audits as audit_cards
from medsyn.reports.content.agreement import markdown_lines
from medsyn.reports.content.baselines import Baseline
from medsyn.reports.content.cells import Cell
from medsyn.reports.content.inputs import Evaluation, Problem, Run
from medsyn.reports.content.metrics import METRICS, MetricSpec
from medsyn.reports.content.privacy import markdown_line as privacy_markdown_line
from medsyn.reports.model import Figure, Section, slug
from medsyn.utils import atomic_write, is_inside, spreadsheet_safe

ASSETS = "assets"
MARKER = ".medsyn-report"
MIN_DISPLAY_WIDTH = 360
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".svg", ".gif", ".webp")
REPORT_FILES = ("index.html", "summary.csv", "summary.md", ASSETS)


def _legacy_report(folder: Path) -> set[str] | None:
    """What a report written before manifests existed holds: index.html, summary.csv,
    summary.md and assets/, recognised by the marker medsyn put in assets/."""
    if not (folder / ASSETS / MARKER).is_file():
        return None
    owned = {name for name in REPORT_FILES if (folder / name).exists()}
    for path in (folder / ASSETS).rglob("*"):
        owned.add(path.relative_to(folder).as_posix())
    return owned


REPORT = OutputKind("medsyn report", "report", "index.html", _legacy_report)


def check_report_folder(out_dir: Path, overwrite: bool) -> None:
    """Refuse to replace a report without ``overwrite``, and anything medsyn did not write
    at all (:mod:`medsyn.outputs`)."""
    check_output_folder(out_dir, REPORT, overwrite)



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


def full_resolution_width(path: Path) -> int | None:
    """The width that shows every pixel of an image: its own, or a whole multiple of it for
    small images (:func:`display_width`); never less."""
    enlarged = display_width(path)
    if enlarged is not None:
        return enlarged
    try:
        from PIL import Image

        with Image.open(path) as image:
            return int(image.size[0])
    except (OSError, ValueError):
        return None


class Assets:
    """Copies and draws the report's images under OUT/assets, returning relative paths.
    ``out_dir`` is the report's new (staging) folder."""

    def __init__(self, out_dir: Path, problems: list[Problem]):
        self.out_dir = out_dir
        self.root = out_dir / ASSETS
        self.problems = problems
        self.root.mkdir(parents=True, exist_ok=True)
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

    def figure(self, evaluation: Evaluation, key: str, title: str, folder: str,
               native: bool = False) -> Figure | None:
        """A figure named in results.json 'figures', copied next to the report; ``native``:
        shown at full resolution (:func:`full_resolution_width`, never shrunk)."""
        figures = evaluation.data.get("figures")
        if not isinstance(figures, Mapping) or key not in figures:
            return None
        name = figures[key]
        if not isinstance(name, str) or not name:
            self.problems.append(Problem(str(evaluation.path),
                                         f"figure {key!r} has no file name"))
            return Figure(title, None, missing=f"figure {key!r} has no file name")
        source = Path(name) if Path(name).is_absolute() else evaluation.dir / name
        if not is_inside(source, evaluation.dir):
            # a results.json names its own figures; anything else could be any image on disk,
            # copied next to a report that may be published
            message = (f"figure {key!r} is listed as {name!r}, which lies outside the "
                       f"evaluation folder {evaluation.dir}; not copied")
            self.problems.append(Problem(str(evaluation.path), message))
            return Figure(title, None, missing=message)
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
                      width=full_resolution_width(source) if native else display_width(source),
                      native=native)


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
    if cell.reference is not None:
        text += f" ({cell.reference.short})"
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
             "comparable published rows; n/a = could not be computed (reason in the notes). "
             "'ref. range a, class mix b' (from a trust card of the same dataset): how much "
             "random halves of the real reference / a reference with one class left out move "
             "the metric; 'within' when the run's distance to the real-vs-real floor is not "
             "larger.",
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
                writer.writerow({k: spreadsheet_safe(v) for k, v in record.items()})
    with atomic_write(path, "w") as f:
        f.write(buffer.getvalue())


# ---------------------------------------------------------------- HTML


def _code_spans(text: str):
    """Escape ``text`` and show its `backticked` parts as code."""
    from markupsafe import Markup, escape

    return Markup(re.sub(r"`([^`]+)`", r"<code>\1</code>", str(escape(text))))


def render_html(context: dict) -> str:
    """index.html from templates/index.html.j2; ``context`` is what build_report gathers."""
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


def write_html(path: Path, context: dict) -> None:
    with atomic_write(path, "w") as f:
        f.write(render_html(context))
