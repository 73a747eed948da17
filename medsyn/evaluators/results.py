"""results.json / metrics.csv: writing, reading, merging more metric blocks, flat rows.

The layout is docs/architecture.md section 3 (schema_version 1). Other stages add their
families (``metrics.utility``, ``metrics.psnr_y``, ...) to an existing results folder with
:func:`add_metrics`, which rewrites both files atomically.

An evaluation folder is written as one unit (:func:`staged_folder`): everything goes into a
hidden sibling ``.NAME.PID.staging`` that then replaces the folder by renames, so a kill never
leaves results.json, metrics.csv and figures of two evaluations side by side, and a replaced
evaluation leaves no stale figure behind. An existing evaluation is replaced only when asked
(``overwrite``); a folder holding anything else is never replaced.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from medsyn.errors import ConfigError, MedsynError
from medsyn.utils import atomic_write, write_json

SCHEMA_VERSION = 1
RESULTS_FILE = "results.json"
METRICS_CSV = "metrics.csv"
CSV_COLUMNS = ["metric", "value", "ci95_lo", "ci95_hi", "n_real", "n_fake", "extractor", "note",
               "space"]
SPACES_KEY = "spaces"


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
        writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    with atomic_write(out / METRICS_CSV, "w") as f:
        f.write(buf.getvalue())
    return out / RESULTS_FILE


def check_output_folder(out_dir: str | os.PathLike, overwrite: bool = False) -> None:
    """Refuse (:class:`ConfigError`) to write an evaluation into ``out_dir`` when that would
    replace an evaluation without ``overwrite``, or a folder of other files at all."""
    out = Path(out_dir)
    if not out.exists():
        return
    if not out.is_dir():
        raise ConfigError(f"output {out} is a file, not a folder; nothing was written. Choose "
                          "another --out.")
    entries = sorted(p.name for p in out.iterdir())
    if not entries:
        return
    if not (out / RESULTS_FILE).exists():
        raise ConfigError(
            f"output folder {out} already holds files that are not a medsyn evaluation "
            f"({', '.join(entries[:4])}{', ...' if len(entries) > 4 else ''}); nothing was "
            "written. Choose a new or empty folder (--out).")
    if not overwrite:
        raise ConfigError(
            f"{out} already holds an evaluation ({RESULTS_FILE}); nothing was overwritten. Pass "
            "--overwrite to replace it (all its files and figures), or choose another --out.")


_SIBLING = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.(?P<what>staging|replaced)$")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def recover_output_folder(out_dir: str | os.PathLike) -> None:
    """Tidy the hidden siblings that a killed evaluation of ``out_dir`` left behind.

    A kill between the two renames of a replacement leaves ``out_dir`` missing, the old
    evaluation in ``.NAME.PID.replaced`` and the new, complete one in ``.NAME.PID.staging``:
    the new one is put in place. Any other leftover of a dead process is removed.
    """
    out = Path(out_dir)
    if not out.parent.is_dir():
        return
    leftovers = []
    for p in out.parent.iterdir():
        m = _SIBLING.match(p.name)
        if m and m.group("name") == out.name and p.is_dir() and \
                not _pid_alive(int(m.group("pid"))):
            leftovers.append((m.group("what"), p))
    if not out.exists():
        complete = [p for what, p in leftovers if what == "staging"
                    and (p / RESULTS_FILE).is_file() and (p / METRICS_CSV).is_file()]
        previous = [p for what, p in leftovers if what == "replaced"]
        if complete and previous:            # killed while swapping: finish the swap
            os.rename(complete[0], out)
        elif previous:
            os.rename(previous[0], out)
    for _, p in leftovers:
        if p.exists():
            shutil.rmtree(p, ignore_errors=True)


@contextmanager
def staged_folder(out_dir: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty hidden folder next to ``out_dir``; when the block succeeds it replaces
    ``out_dir`` as one unit (two renames), when it fails it is deleted and ``out_dir`` is left
    as it was. Checks :func:`check_output_folder` first."""
    out = Path(out_dir)
    recover_output_folder(out)
    check_output_folder(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = out.parent / f".{out.name}.{os.getpid()}.staging"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir()
    try:
        yield stage
        check_output_folder(out, overwrite)     # written meanwhile by someone else?
        if out.exists() and any(out.iterdir()):
            old = out.parent / f".{out.name}.{os.getpid()}.replaced"
            os.rename(out, old)
            os.rename(stage, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            if out.exists():
                out.rmdir()
            os.rename(stage, out)
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)


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
