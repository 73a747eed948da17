"""Trust cards (``medsyn audit``'s audit.json) in the report: found among the inputs or under
the runs folder, shown in the summary section of the same dataset and image size, and linked
from every run row of that section (to the table of the row's feature space when the audit
has it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from medsyn.evaluators.audit.card import AUDIT_NAME, CARD_CSS, card_html, load_audit
from medsyn.reports.content.inputs import Problem
from medsyn.reports.content.reference_spread import generator_gap, reference_spread
from medsyn.utils import is_inside

__all__ = ["CARD_CSS", "AuditCard", "attach", "find_audits", "split_inputs"]


@dataclass
class AuditCard:
    path: Path
    data: dict
    anchor: str
    html: str = ""
    spaces: list[str] = field(default_factory=list)

    @property
    def dataset(self) -> str:
        return str(self.data["dataset"]["name"])

    @property
    def image_size(self) -> int:
        return int(self.data["dataset"]["image_size"][0])

    @property
    def title(self) -> str:
        return f"{self.dataset} at {self.image_size} px"


def _is_audit(path: Path) -> bool:
    return (path.is_file() and path.name == AUDIT_NAME) or (
        path.is_dir() and (path / AUDIT_NAME).is_file() and not (path / "results.json").exists())


def split_inputs(inputs: list[Path]) -> tuple[list[Path], list[Path]]:
    """(inputs for results, audit.json paths) of the command-line inputs."""
    audits = [p if p.is_file() else p / AUDIT_NAME for p in inputs if _is_audit(p)]
    return [p for p in inputs if not _is_audit(p)], audits


def find_audits(explicit: list[Path], runs_root: Path, problems: list[Problem]) -> list[AuditCard]:
    """The audits named on the command line, else every audit.json under ``runs_root``."""
    paths = explicit or (sorted(Path(runs_root).rglob(AUDIT_NAME))
                         if Path(runs_root).is_dir() else [])
    cards = []
    for i, path in enumerate(paths, 1):
        try:
            data = load_audit(path)
            card = AuditCard(path, data, anchor=f"trust-card-{i}", spaces=list(data["spaces"]))
            _ = card.dataset, card.image_size
        except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
            problems.append(Problem(str(path), f"cannot be read as a medsyn audit ({exc}); "
                                               "skipped"))
            continue
        cards.append(card)
    return cards


def attach(sections, cards: list[AuditCard], assets) -> list[AuditCard]:
    """Put each card into the section of its dataset and size, link the section's run rows to
    it, copy its figures into the report; return the cards no section took."""
    for card in cards:
        def figure_src(space, failure, _card=card):
            rel = (_card.data.get("figures") or {}).get(space, {}).get(failure)
            if not rel or not isinstance(rel, str) or not (_card.path.parent / rel).is_file():
                return None
            if not is_inside(_card.path.parent / rel, _card.path.parent):
                assets.problems.append(Problem(str(_card.path), f"figure {rel!r} lies outside "
                                               "the audit folder; not copied"))
                return None
            return assets.copy(_card.path.parent / rel, _card.anchor, Path(rel).name)

        try:
            card.html = card_html(card.data, anchor=card.anchor, figure_src=figure_src,
                                  heading_level=4)
        except (KeyError, TypeError, ValueError, StopIteration) as exc:
            assets.problems.append(Problem(str(card.path), f"trust card cannot be shown ({exc})"))
    cards = [c for c in cards if c.html]
    unplaced = list(cards)
    for section in sections:
        mine = [c for c in cards if c.dataset == section.dataset
                and c.image_size == section.image_size and section.kind == "generation"]
        section.audit_cards = mine
        for card in mine:
            if card in unplaced:
                unplaced.remove(card)
        if not mine:
            continue
        for table in section.tables:
            for row in table.rows:
                if row.kind != "run" or row.evaluation is None:
                    continue
                space = _extractor(row.evaluation)
                card = next((c for c in mine if space in c.spaces), mine[0])
                row.audit_anchor = card.anchor + (f"-{space}" if space in card.spaces else "")
                _reference_spreads(row, table.columns, mine, space)
        shown = [c.reference for t in section.tables for r in t.rows for c in r.cells.values()
                 if c is not None and c.reference is not None]
        if shown:
            within = sum(s.within for s in shown)
            section.notes.append(
                "Under a value, from the trust card of this dataset (medsyn audit "
                "--reference-sensitivity): how much the choice of real reference alone moves "
                "that metric in that space ('ref. range': over random halves of the reference; "
                "'class mix': a reference with one class left out). 'within' marks a run whose "
                "distance to the real-vs-real floor is not larger than that: a difference the "
                "reference choice alone could make, not evidence about the generator "
                f"({within} of {len(shown)} values here). Hover a value for the sentence.")
        gaps = [g.sentence for table in section.tables for g in _generator_gaps(table)]
        if gaps:
            section.notes.append(
                "Is the best run's lead larger than the choice of reference? For each metric "
                "and space, the gap between the two best runs against the same spread (medsyn "
                "audit --reference-sensitivity). " + " ".join(gaps))
    return unplaced


def _generator_gaps(table) -> list:
    """Per ranked column and space: the gap between the two best runs (run rows with a value
    and a reference spread of the same audit; a run with several evaluations counts with its
    best), judged against that spread."""
    out = []
    for spec in table.columns:
        if not spec.ranked:
            continue
        groups: dict[tuple[str, str], dict] = {}
        for row in table.rows:
            cell = row.cells.get(spec.key)
            if row.kind != "run" or cell is None or not cell.available or cell.reference is None:
                continue
            runs = groups.setdefault((cell.reference.space, cell.reference.audit_path), {})
            run = row.run.key if row.run is not None else row.label
            entry = (spec.rank_key(cell.value), row.label, cell)
            if run not in runs or entry[0] < runs[run][0]:
                runs[run] = entry
        for (space, _), runs in groups.items():
            ranked = sorted(runs.values(), key=lambda t: t[0])
            if len(ranked) < 2 or len({c.value for _, _, c in ranked}) == 1:
                continue            # one run, or all tied: no order to question
            (_, first, cell), (_, second, other) = ranked[:2]
            out.append(generator_gap(spec.label, space, (first, cell.value),
                                     (second, other.value), cell.reference))
    return out


def _reference_spreads(row, columns, cards: list[AuditCard], row_space: str | None) -> None:
    """Put, beside each of the row's values, the spread that the choice of real reference
    alone gives that metric in that space (the first card that measured it)."""
    for spec in columns:
        cell = row.cells.get(spec.key)
        if cell is None or not cell.available:
            continue
        space = cell.extractor or row_space
        for card in cards:
            found = reference_spread(card.data, str(card.path), space, spec.key, spec.label,
                                     cell.value, row.evaluation.metrics,
                                     own_space=space == row_space)
            if found is not None:
                cell.reference = found
                break


def _extractor(evaluation) -> str | None:
    ext = evaluation.provenance.get("extractor")
    if isinstance(ext, dict) and ext.get("name"):
        return str(ext["name"])
    fid = evaluation.metrics.get("fid")
    return str(fid.get("extractor")) if isinstance(fid, dict) and fid.get("extractor") else None
