"""results.json / metrics.csv: writing, reading, merging more metric blocks, flat rows.

The layout is docs/architecture.md section 3 (schema_version 1). Other stages add their
families (``metrics.utility``, ``metrics.psnr_y``, ...) to an existing results folder with
:func:`add_metrics`, which rewrites both files atomically.

An evaluation folder is written as one unit (:func:`staged_folder`, :mod:`medsyn.outputs`):
everything goes into a hidden sibling ``.NAME.PID.staging`` that then replaces the folder by
renames, so a kill never leaves results.json, metrics.csv and figures of two evaluations side
by side, and a replaced evaluation leaves no stale figure behind. The folder's manifest
(``.medsyn-manifest.json``) lists what medsyn wrote; an existing evaluation is replaced only
when asked (``overwrite``) and only when it holds nothing else.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from medsyn import outputs
from medsyn.errors import MedsynError
from medsyn.outputs import OutputKind
from medsyn.utils import atomic_write, spreadsheet_safe, write_json

SCHEMA_VERSION = 1
RESULTS_FILE = "results.json"
METRICS_CSV = "metrics.csv"
CSV_COLUMNS = ["metric", "value", "ci95_lo", "ci95_hi", "n_real", "n_fake", "extractor", "note",
               "space"]
SPACES_KEY = "spaces"
FIGURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".svg", ".pdf")


def _check_finite(obj, where="results"):
    """NaN/inf never reach results.json: a metric that cannot be computed says why instead."""
    if isinstance(obj, float) and not math.isfinite(obj):
        raise ValueError(f"non-finite number at {where}; report it as value null with an "
                         "'unavailable' reason")
    if isinstance(obj, dict):
        for k, v in obj.items():
            _check_finite(v, f"{where}.{k}")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _check_finite(v, f"{where}[{i}]")


def metric_spaces(results: dict) -> dict[str, dict]:
    """``{space: {metric name: block}}`` of a results dict, whatever its layout.

    Several spaces: ``metrics.spaces`` (the first one is also at the top level). One space:
    the top-level blocks that carry an ``extractor`` (FID, KID, PRDC, floor, memorization, ...),
    under the name of ``provenance.extractor``. Blocks without a space (utility, discriminator,
    the Inception Score's "unavailable") are not included.
    """
    metrics = results.get("metrics") or {}
    if isinstance(metrics.get(SPACES_KEY), dict):
        return metrics[SPACES_KEY]
    ext = ((results.get("provenance") or {}).get("extractor") or {}).get("name")
    space = {k: v for k, v in metrics.items()
             if isinstance(v, dict) and k not in ("is", "utility", "discriminator")
             and (v.get("extractor") or any(isinstance(x, dict) and x.get("extractor")
                                            for x in v.values()))}
    return {ext: space} if ext and space else {}


def metric_rows(metrics: dict, prefix: str = "", space: str | None = None) -> list[dict]:
    """Flatten metric blocks into CSV rows: every dict with a ``value`` (an entry) or a ``mean``
    (a summary over seeds) becomes a row named by its dotted path.

    ``metrics.spaces.<space>`` blocks become rows named ``spaces.<space>.<metric>`` whose
    ``space`` column names the space; the first space's blocks, also at the top level, are
    written once, as the top-level rows (their ``space`` column names it)."""
    rows = []
    spaces = metrics.get(SPACES_KEY) if not prefix else None
    if isinstance(spaces, dict) and spaces:
        first = next(iter(spaces))
        for key, block in spaces.items():
            rows_of = {k: v for k, v in block.items() if key != first or metrics.get(k) != v}
            rows += metric_rows(rows_of, f"{SPACES_KEY}.{key}.", space=key)
        top = metric_rows({k: v for k, v in metrics.items() if k != SPACES_KEY})
        for row in top:
            if row["metric"].split(".")[0] in spaces[first]:
                row["space"] = first
        return top + rows
    for key, block in metrics.items():
        if not isinstance(block, dict):
            continue
        name = f"{prefix}{key}"
        if "value" in block or "mean" in block or "fraction" in block:
            value = block.get("value", block.get("mean", block.get("fraction")))
            ci = block.get("ci95") or [None, None]
            note = block.get("unavailable") or block.get("note") or block.get("warning") or ""
            rows.append({"metric": name, "value": value, "ci95_lo": ci[0], "ci95_hi": ci[1],
                         "n_real": block.get("n_real"), "n_fake": block.get("n_fake"),
                         "extractor": block.get("extractor", ""), "note": note,
                         "space": space or ""})
        elif key == "discriminator":
            for k, v in block.items():
                if isinstance(v, float):
                    rows.append({"metric": f"{name}.{k}", "value": v, "n_fake": block.get("n_fake"),
                                 "n_real": block.get("n_real_test")})
        rows += metric_rows({k: v for k, v in block.items() if isinstance(v, dict)}, name + ".",
                            space)
    return rows


def write_results(results: dict, out_dir: str | os.PathLike) -> Path:
    """Write ``results.json`` and ``metrics.csv`` into ``out_dir`` (atomically)."""
    out = Path(out_dir)
    results = dict(results)
    results.setdefault("schema_version", SCHEMA_VERSION)
    _check_finite(results)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / RESULTS_FILE, results)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for row in metric_rows(results.get("metrics", {})):
        writer.writerow({k: ("" if v is None else spreadsheet_safe(v)) for k, v in row.items()})
    with atomic_write(out / METRICS_CSV, "w") as f:
        f.write(buf.getvalue())
    return out / RESULTS_FILE


def _legacy_evaluation(folder: Path) -> set[str] | None:
    """What an evaluation written before manifests existed holds: results.json (schema 1),
    metrics.csv and the figures its results.json names, directly in the folder."""
    try:
        results = json.loads((folder / RESULTS_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(results, dict) or results.get("schema_version") != SCHEMA_VERSION or \
            not (folder / METRICS_CSV).is_file():
        return None
    owned = {RESULTS_FILE, METRICS_CSV}
    figures = results.get("figures")
    for name in (figures.values() if isinstance(figures, dict) else ()):
        if isinstance(name, str) and "/" not in name and "\\" not in name and \
                Path(name).suffix.lower() in FIGURE_SUFFIXES and (folder / name).is_file():
            owned.add(name)
    return owned


EVALUATION = OutputKind("medsyn evaluate", "evaluation", RESULTS_FILE, _legacy_evaluation)


def check_output_folder(out_dir: str | os.PathLike, overwrite: bool = False) -> None:
    """Refuse (:class:`ConfigError`) to write an evaluation into ``out_dir`` when that would
    replace an evaluation without ``overwrite``, or anything medsyn did not write at all
    (:mod:`medsyn.outputs`)."""
    outputs.check_output_folder(out_dir, EVALUATION, overwrite)


def recover_output_folder(out_dir: str | os.PathLike) -> None:
    """Tidy what a killed evaluation of ``out_dir`` left (:func:`medsyn.outputs.
    recover_output_folder`)."""
    outputs.recover_output_folder(out_dir)


@contextmanager
def staged_folder(out_dir: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty hidden folder next to ``out_dir``; when the block succeeds it replaces
    ``out_dir`` as one unit, with a manifest of what it holds; when it fails it is deleted
    and ``out_dir`` is left as it was (:func:`medsyn.outputs.staged_output`)."""
    with outputs.staged_output(out_dir, EVALUATION, overwrite) as stage:
        yield stage


def load_results(path: str | os.PathLike) -> dict:
    """Read a results.json (or the one inside a results folder) and check its schema."""
    p = Path(path)
    if p.is_dir():
        p = p / RESULTS_FILE
    try:
        results = json.loads(p.read_text())
    except FileNotFoundError:
        raise MedsynError(f"{p} does not exist; run 'medsyn evaluate' first.") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise MedsynError(f"{p} is not a readable results.json ({exc}).") from None
    if results.get("schema_version") != SCHEMA_VERSION:
        raise MedsynError(f"{p}: schema_version {results.get('schema_version')!r}, expected "
                          f"{SCHEMA_VERSION}; re-run 'medsyn evaluate' with this medsyn.")
    return results


def add_metrics(out_dir: str | os.PathLike, metrics: dict, figures: dict | None = None,
                provenance: dict | None = None) -> dict:
    """Merge metric blocks (e.g. ``{"utility": {...}}``) into the results in ``out_dir``.

    Blocks with the same name are replaced; figures (paths relative to ``out_dir``) and
    provenance entries are added. Returns the updated results.
    """
    results = load_results(out_dir)
    results.setdefault("metrics", {}).update(metrics)
    if figures:
        results.setdefault("figures", {}).update(figures)
        outputs.add_to_manifest(out_dir, figures.values())
    if provenance:
        results.setdefault("provenance", {}).update(provenance)
    write_results(results, out_dir)
    return results


def format_value(v, digits: int = 4) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return str(v)


def summary_rows(results: dict) -> list[tuple[str, str, str, str, str, str]]:
    """(metric, value, ci95, n_real, n_fake, note) for a printed table."""
    out = []
    for r in metric_rows(results.get("metrics", {})):
        ci = "-" if r.get("ci95_lo") is None else \
            f"[{format_value(r['ci95_lo'])}, {format_value(r['ci95_hi'])}]"
        note = str(r.get("note") or "")
        out.append((r["metric"], format_value(r["value"]), ci, format_value(r.get("n_real")),
                    format_value(r.get("n_fake")), note[:90] + ("..." if len(note) > 90 else "")))
    return out
