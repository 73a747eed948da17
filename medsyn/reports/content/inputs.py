"""Finding and reading the report's inputs: results.json files and the run folders behind them.

A problem with one input (unreadable JSON, an unknown schema version, a missing figure, a torn
log line) never stops the report: it becomes a :class:`Problem`, shown at the top of the report
and on stderr, and the rest is still produced.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medsyn.generators.interface import task_of_kind

SUPPORTED_SCHEMA_VERSIONS = (1,)
RESULTS_NAME = "results.json"
KINDS = ("generation", "super-resolution", "translation")
_EPOCH_RE = re.compile(r"epoch[_-]?(\d+)", re.IGNORECASE)


@dataclass(frozen=True)
class Problem:
    """Something wrong with an input that the report worked around."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass
class Evaluation:
    """One results.json: one evaluated checkpoint (or image folder)."""

    path: Path
    data: dict
    kind: str
    run_name: str
    epoch: int | None
    run_dir: Path | None
    tag: str | None = None        # tells apart two evaluations of one epoch (eval folder name)

    @property
    def dir(self) -> Path:
        return self.path.parent

    @property
    def metrics(self) -> dict:
        return self.data.get("metrics") or {}

    @property
    def provenance(self) -> dict:
        value = self.data.get("provenance")
        return value if isinstance(value, dict) else {}

    @property
    def label(self) -> str:
        label = f"{self.run_name} @ epoch {self.epoch}" if self.epoch is not None \
            else self.run_name
        return f"{label} ({self.tag})" if self.tag else label

    @property
    def dataset(self) -> dict:
        value = self.provenance.get("dataset")
        return value if isinstance(value, dict) else {}


@dataclass
class Run:
    """A training run (or a lone evaluation) and all its evaluations, oldest epoch first."""

    key: str
    name: str
    run_dir: Path | None
    evaluations: list[Evaluation] = field(default_factory=list)
    config: dict | None = None
    log: list[dict] = field(default_factory=list)
    samples: list[Path] = field(default_factory=list)
    selected: Evaluation | None = None
    selection_rule: str = ""

    @property
    def kind(self) -> str:
        if self.evaluations:
            return self.evaluations[-1].kind
        model = (self.config or {}).get("kind", (self.config or {}).get("model"))
        task = task_of_kind(model)
        return task.results_kind if task is not None else "generation"


# ---------------------------------------------------------------- reading files


def read_json(path: Path) -> tuple[Any, list[str]]:
    """Parsed JSON and the non-finite constants (NaN, Infinity) it contained.

    medsyn's contracts forbid NaN (a metric that cannot be computed is null with a reason);
    such values are read as non-finite floats, which the report shows as unavailable.
    """
    seen: list[str] = []

    def constant(name: str) -> float:
        seen.append(name)
        return float(name)

    with open(path, encoding="utf-8") as f:
        return json.load(f, parse_constant=constant), seen


def load_evaluation(path: Path, problems: list[Problem],
                    run_dir_hint: Path | None = None) -> Evaluation | None:
    """Read one results.json, or record why it cannot be used and return None."""
    where = str(path)
    try:
        data, non_finite = read_json(path)
    except FileNotFoundError:
        problems.append(Problem(where, "no such file"))
        return None
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(Problem(where, f"cannot be read ({exc}); skipped"))
        return None
    except json.JSONDecodeError as exc:
        problems.append(Problem(where, f"is not valid JSON (line {exc.lineno}, column "
                                       f"{exc.colno}: {exc.msg}); a crash while writing? "
                                       "Re-run `medsyn evaluate`. Skipped."))
        return None
    except ValueError as exc:
        problems.append(Problem(where, f"{exc}; skipped"))
        return None
    if not isinstance(data, dict):
        problems.append(Problem(where, "is not a JSON object; not a medsyn results.json. "
                                       "Skipped."))
        return None
    version = data.get("schema_version")
    if version is None:
        problems.append(Problem(where, "has no schema_version; not a medsyn results.json? "
                                       "Skipped."))
        return None
    if version not in SUPPORTED_SCHEMA_VERSIONS:
        supported = ", ".join(map(str, SUPPORTED_SCHEMA_VERSIONS))
        newer = isinstance(version, int) and version > max(SUPPORTED_SCHEMA_VERSIONS)
        advice = ("upgrade medsyn to read it" if newer else
                  "re-run `medsyn evaluate` with this medsyn to regenerate it")
        problems.append(Problem(where, f"schema_version {version!r} is not supported (this "
                                       f"medsyn reads version {supported}): {advice}. Skipped."))
        return None
    if not isinstance(data.get("metrics"), dict):
        problems.append(Problem(where, "has no 'metrics' object; skipped"))
        return None
    if non_finite:
        problems.append(Problem(where, f"contains {', '.join(sorted(set(non_finite)))} (not "
                                       "allowed: a metric that cannot be computed must be null "
                                       "with an 'unavailable' reason); shown as unavailable"))

    kind = data.get("kind")
    if kind not in KINDS:
        inferred = "super-resolution" if "psnr_y" in data["metrics"] else "generation"
        if kind is not None:
            problems.append(Problem(where, f"unknown kind {kind!r}; read as {inferred!r}"))
        kind = inferred
    run = data.get("run") if isinstance(data.get("run"), dict) else {}
    epoch = run.get("epoch")
    if not isinstance(epoch, int) or isinstance(epoch, bool):
        epoch = _epoch_from_names(run.get("checkpoint"), path.parent.name)
    run_dir = run_dir_hint or _resolve_run_dir(path, run.get("run_dir"))
    name = run.get("name") or (run_dir.name if run_dir else None) or _fallback_name(path)
    return Evaluation(path=path, data=data, kind=kind, run_name=str(name), epoch=epoch,
                      run_dir=run_dir)


def _epoch_from_names(*names: Any) -> int | None:
    for name in names:
        if isinstance(name, str):
            match = _EPOCH_RE.search(Path(name).name)
            if match:
                return int(match.group(1))
    return None


def _fallback_name(path: Path) -> str:
    """A name for a results.json without run info (an evaluation of an image folder)."""
    parent = path.parent
    return parent.name if parent.name not in ("", ".") else str(path)


def _is_run_dir(path: Path) -> bool:
    return path.is_dir() and any((path / name).exists()
                                 for name in ("log.jsonl", "config.json", "last.pt"))


def _resolve_run_dir(results_path: Path, recorded: Any) -> Path | None:
    """The run folder of an evaluation: as recorded, relative to here, or by the layout."""
    if isinstance(recorded, str) and recorded:
        candidate = Path(recorded).expanduser()
        if candidate.is_absolute() and candidate.is_dir():
            return candidate
        if not candidate.is_absolute():
            if candidate.is_dir():
                return candidate
            # the recorded path is relative to where `medsyn evaluate` ran: find the ancestor
            # of this results.json whose trailing parts equal it
            parts = candidate.parts
            for ancestor in results_path.resolve().parents:
                if ancestor.parts[-len(parts):] == parts and ancestor.is_dir():
                    return ancestor
    # the default layout runs/NAME/eval/epochNNN/results.json
    parents = results_path.parents
    if len(parents) >= 3 and parents[1].name == "eval" and _is_run_dir(parents[2]):
        return parents[2]
    return None


def read_log(path: Path, problems: list[Problem]) -> list[dict]:
    """The rows of a log.jsonl; torn or malformed lines are skipped and reported."""
    rows: list[dict] = []
    bad: list[int] = []
    try:
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    bad.append(number)
                    continue
                if isinstance(row, dict):
                    rows.append(row)
                else:
                    bad.append(number)
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(Problem(str(path), f"cannot be read ({exc}); no training curves"))
        return []
    if bad:
        shown = ", ".join(map(str, bad[:5])) + (" ..." if len(bad) > 5 else "")
        problems.append(Problem(str(path), f"{len(bad)} malformed line(s) skipped (line "
                                           f"{shown}); the last one may be torn by a crash"))
    return rows


def _sample_epoch(path: Path) -> tuple[int, str]:
    match = _EPOCH_RE.search(path.stem)
    return (int(match.group(1)) if match else -1, path.name)


def find_samples(run_dir: Path) -> list[Path]:
    """Sample grids (or SR strips) of a run, oldest epoch first."""
    folder = run_dir / "samples"
    if not folder.is_dir():
        return []
    images = [p for p in folder.iterdir()
              if p.suffix.lower() in (".png", ".jpg", ".jpeg") and p.is_file()]
    return sorted(images, key=_sample_epoch)


# ---------------------------------------------------------------- finding inputs


def _collect_folder(folder: Path, problems: list[Problem]) -> tuple[list[Path], list[Path]]:
    """(results.json files, run folders) in a folder given on the command line."""
    if (folder / RESULTS_NAME).is_file():
        return [folder / RESULTS_NAME], []
    if _is_run_dir(folder):
        return sorted(folder.glob(f"eval/**/{RESULTS_NAME}")), [folder]
    results = sorted(folder.rglob(RESULTS_NAME))
    run_dirs = sorted({p.parent for p in folder.rglob("log.jsonl")})
    return results, run_dirs


def collect_inputs(inputs: Iterable[str | Path] | None, runs_root: str | Path = "runs",
                   ) -> tuple[list[Path], list[Path], list[Problem]]:
    """Resolve the command-line inputs to results.json files and run folders.

    With no inputs, everything under ``runs_root`` is used.
    """
    problems: list[Problem] = []
    results: list[Path] = []
    run_dirs: list[Path] = []
    items = [Path(p) for p in inputs] if inputs else []
    if not items:
        root = Path(runs_root)
        if not root.is_dir():
            problems.append(Problem(str(root), "no such folder, so there are no results to "
                                               "report. Train and evaluate first (`medsyn "
                                               "train`, `medsyn evaluate`) or name results.json "
                                               "files, eval folders or run folders."))
            return [], [], problems
        items = [root]
    for item in items:
        if item.is_file():
            if item.suffix.lower() != ".json":
                problems.append(Problem(str(item), "is not a results.json, an eval folder or a "
                                                   "run folder; skipped"))
                continue
            results.append(item)
        elif item.is_dir():
            found, runs = _collect_folder(item, problems)
            if not found and not runs:
                problems.append(Problem(str(item), "contains no results.json and no run folder "
                                                   "(nothing evaluated yet? run `medsyn evaluate "
                                                   "--checkpoint RUN/epochNNN.pt`)"))
            results.extend(found)
            run_dirs.extend(runs)
        else:
            problems.append(Problem(str(item), "no such file or folder; skipped"))
    return _unique(results), _unique(run_dirs), problems


def _unique(paths: list[Path]) -> list[Path]:
    seen: set[Path] = set()
    out = []
    for p in paths:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


# ---------------------------------------------------------------- grouping


def _run_key(run_dir: Path | None, evaluation: Evaluation | None) -> str:
    if run_dir is not None:
        return str(run_dir.resolve())
    assert evaluation is not None
    return f"results:{evaluation.path.resolve()}"


def gather_runs(results: list[Path], run_dirs: list[Path],
                problems: list[Problem]) -> list[Run]:
    """Load every results.json and group them with their run folders."""
    runs: dict[str, Run] = {}
    hints = {}
    for run_dir in run_dirs:
        for path in run_dir.glob(f"eval/**/{RESULTS_NAME}"):
            hints[path.resolve()] = run_dir
    for path in results:
        evaluation = load_evaluation(path, problems, hints.get(path.resolve()))
        if evaluation is None:
            continue
        key = _run_key(evaluation.run_dir, evaluation)
        run = runs.get(key)
        if run is None:
            run = runs[key] = Run(key=key, name=evaluation.run_name, run_dir=evaluation.run_dir)
        run.evaluations.append(evaluation)
    for run_dir in run_dirs:
        key = _run_key(run_dir, None)
        if key not in runs:
            runs[key] = Run(key=key, name=run_dir.name, run_dir=run_dir)
    for run in runs.values():
        run.evaluations.sort(key=lambda e: (e.epoch is None, e.epoch or 0, e.path.parent.name,
                                            str(e.path)))
        labels = [e.label for e in run.evaluations]
        for e in run.evaluations:
            if labels.count(e.label) > 1:
                e.tag = e.path.parent.name
        if run.run_dir is not None:
            _load_run_folder(run, problems)
    return sorted(runs.values(), key=lambda r: r.name)


def _load_run_folder(run: Run, problems: list[Problem]) -> None:
    assert run.run_dir is not None
    config_path = run.run_dir / "config.json"
    if config_path.is_file():
        try:
            config, _ = read_json(config_path)
            run.config = config if isinstance(config, dict) else None
        except (OSError, ValueError) as exc:
            problems.append(Problem(str(config_path), f"cannot be read ({exc}); the run's "
                                                      "configuration is not shown"))
    run.log = read_log(run.run_dir / "log.jsonl", problems)
    run.samples = find_samples(run.run_dir)


# ---------------------------------------------------------------- facts about an evaluation


def _first(*values: Any) -> Any:
    for v in values:
        if v is not None:
            return v
    return None


def image_size(evaluation: Evaluation, config: Mapping[str, Any] | None) -> int | None:
    """The evaluated image size in px (provenance first, then the run's config)."""
    prov = evaluation.provenance
    config = config or {}
    size = _first(evaluation.dataset.get("image_size"),
                  (prov.get("reference") or {}).get("image_size")
                  if isinstance(prov.get("reference"), dict) else None,
                  prov.get("image_size"),
                  config.get("hr_size") if evaluation.kind == "super-resolution" else None,
                  config.get("image_size"),
                  (config.get("dataset") or {}).get("image_size")
                  if isinstance(config.get("dataset"), dict) else None)
    if isinstance(size, (list, tuple)) and size:
        size = size[0]
    return int(size) if isinstance(size, (int, float)) and not isinstance(size, bool) else None


def dataset_name(evaluation: Evaluation, config: Mapping[str, Any] | None) -> str | None:
    config = config or {}
    cfg_dataset = config.get("dataset")
    if isinstance(cfg_dataset, dict):
        cfg_dataset = cfg_dataset.get("name")
    name = _first(evaluation.dataset.get("name"), cfg_dataset)
    return str(name) if name is not None else None


def class_names(evaluation: Evaluation) -> list[str]:
    names = evaluation.dataset.get("class_names")
    if isinstance(names, list):
        return [str(n) for n in names]
    per_class = (evaluation.metrics.get("intra_fid") or {}).get("per_class") \
        if isinstance(evaluation.metrics.get("intra_fid"), dict) else None
    return list(per_class) if isinstance(per_class, dict) else []


def finite(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    return float(x) if math.isfinite(x) else None
