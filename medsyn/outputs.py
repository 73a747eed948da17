"""Output folders that medsyn writes as one unit, with a manifest of what it wrote.

``medsyn evaluate``, ``report`` and ``audit`` each write a folder of files. Three rules keep
those folders safe (docs/reliability.md):

1. **Only what medsyn wrote is ever deleted.** Every such folder carries a manifest,
   ``.medsyn-manifest.json``, listing each file and sub-folder medsyn wrote there (and which
   command wrote them). A folder is replaced (``overwrite``) only when its manifest, of the
   same command, lists everything in it; a folder holding anything else, or no manifest, is
   refused even with ``overwrite``. A command may recognise its own folders written before
   manifests existed (:attr:`OutputKind.legacy`), from files only medsyn writes.
2. **One unit.** Everything is written into a hidden sibling ``.NAME.PID.staging``; its
   manifest is written last; then two renames swap it in. A kill before the swap leaves the
   previous folder untouched, a kill between the renames is completed by the next write of
   that folder (:func:`recover_output_folder`), and no file of the previous folder survives
   next to the new ones.
3. **The folder named is the folder written.** A symlinked ``--out`` stays a link: the folder
   it points to is replaced. Staging names stay within the file-name limit for any name.

``medsyn sample`` writes the same manifest with ``"complete": false`` before its first image
and completes it after the last: a folder whose manifest is incomplete is an interrupted
sample, which data loading refuses (:func:`incomplete_output`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from medsyn.errors import ConfigError
from medsyn.utils import display_path, write_json

MANIFEST = ".medsyn-manifest.json"
# a sibling name longer than this gets a shortened, hashed stem (the limit is 255 bytes)
_LONGEST_STEM = 200
_SIBLING = re.compile(r"^\.(?P<stem>.+)\.(?P<pid>\d+)\.(?P<what>staging|replaced)$")
_SHOWN = 4


@dataclass(frozen=True)
class OutputKind:
    """What one command writes: ``command`` ("medsyn evaluate"), ``noun`` ("evaluation"),
    ``marker`` (the file that says a folder holds one, e.g. results.json) and ``legacy``: for
    a folder without a manifest, the relative paths this command wrote there before manifests
    existed (None: not such a folder)."""

    command: str
    noun: str
    marker: str
    legacy: Callable[[Path], set[str] | None] | None = None


def read_manifest(folder: str | os.PathLike) -> dict | None:
    """The manifest of ``folder``, or None when it has none (or an unreadable one)."""
    try:
        data = json.loads((Path(folder) / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("entries", []), list):
        return None
    return data


def incomplete_output(folder: str | os.PathLike) -> dict | None:
    """The manifest of ``folder`` when it says its writer never finished (a killed
    ``medsyn sample``), else None."""
    manifest = read_manifest(folder)
    return manifest if manifest is not None and manifest.get("complete") is False else None


def _entries(folder: Path) -> set[str]:
    """Every file, link and sub-folder under ``folder`` (relative, '/' separators; links are
    not followed), the manifest left out."""
    found = set()
    for root, dirs, files in os.walk(folder):
        rel = Path(root).relative_to(folder)
        for name in dirs + files:
            found.add((rel / name).as_posix())
    found.discard(MANIFEST)
    return found


def write_manifest(folder: str | os.PathLike, command: str, *, complete: bool = True,
                   extra: dict | None = None) -> None:
    """List everything now in ``folder`` as written by ``command``."""
    from medsyn import __version__

    folder = Path(folder)
    write_json(folder / MANIFEST, {
        "written_by": command, "medsyn_version": __version__, "complete": complete,
        "pid": os.getpid(), **(extra or {}),
        "entries": sorted(_entries(folder)) if complete else []})


def add_to_manifest(folder: str | os.PathLike, paths) -> None:
    """Record more files written into a manifest folder (e.g. figures added to an evaluation
    later); files outside ``folder`` are ignored."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    if manifest is None:
        return
    entries = set(manifest.get("entries", []))
    root = folder.resolve()
    for p in paths:
        try:
            rel = (folder / p).resolve().relative_to(root)
        except ValueError:
            continue
        for i in range(1, len(rel.parts) + 1):
            entries.add(Path(*rel.parts[:i]).as_posix())
    write_json(folder / MANIFEST, {**manifest, "entries": sorted(entries)})


def owned_entries(folder: Path, kind: OutputKind) -> set[str]:
    """The paths under ``folder`` that ``kind.command`` wrote, by its manifest (or its legacy
    rule for a folder without one)."""
    manifest = read_manifest(folder)
    if manifest is None:
        if (folder / MANIFEST).exists() or kind.legacy is None:
            return set()
        return set(kind.legacy(folder) or ())
    if manifest.get("written_by") != kind.command or manifest.get("complete") is False:
        return set()
    return set(manifest.get("entries", []))


def foreign_entries(folder: Path, kind: OutputKind) -> list[str]:
    """Top-level names under ``folder`` holding anything ``kind.command`` did not write."""
    owned = owned_entries(folder, kind)
    foreign = {p.split("/")[0] for p in _entries(folder) if p not in owned}
    if (folder / MANIFEST).exists() and read_manifest(folder) is None:
        foreign.add(MANIFEST)
    return sorted(foreign)


def _names(items: list[str]) -> str:
    shown = ", ".join(display_path(n) for n in items[:_SHOWN])
    return shown + (f", and {len(items) - _SHOWN} more" if len(items) > _SHOWN else "")


def resolve_output(out: str | os.PathLike) -> Path:
    """``out`` with a symlink at its end followed: writing replaces the folder it points to and
    leaves the link as it is."""
    out = Path(out).expanduser()
    return Path(os.path.realpath(out)) if out.is_symlink() else out


def check_output_folder(out: str | os.PathLike, kind: OutputKind,
                        overwrite: bool = False) -> None:
    """Refuse (:class:`ConfigError`) to write ``kind`` into ``out`` when that would replace
    anything medsyn did not write there (even with ``overwrite``), or an earlier output of the
    same kind without ``overwrite``."""
    out = resolve_output(out)
    if not out.exists():
        return
    shown = display_path(out)
    if not out.is_dir():
        raise ConfigError(f"output {shown} is a file, not a folder; nothing was written. Choose "
                          "another --out.")
    if not any(out.iterdir()):
        return
    foreign = foreign_entries(out, kind)
    if foreign:
        manifest = read_manifest(out)
        other = manifest.get("written_by") if manifest else None
        whose = (f"the output of `{other}`" if other and other != kind.command else
                 "files medsyn did not write")
        if manifest and manifest.get("complete") is False:
            whose = f"an interrupted `{other}`"
        raise ConfigError(
            f"output folder {shown} holds {whose} ({_names(foreign)}), so it is not a medsyn "
            f"{kind.noun} that could be replaced; nothing was written or deleted. Choose a new "
            "or empty folder (--out), or move those files away.")
    if not overwrite:
        article = "an" if kind.noun[:1] in "aeiou" else "a"
        raise ConfigError(
            f"{shown} already holds {article} {kind.noun} ({kind.marker}); nothing was "
            "overwritten. Pass --overwrite to replace it (all its files), or choose another "
            "--out.")


def _stem(name: str) -> str:
    if len(os.fsencode(name)) <= _LONGEST_STEM:
        return name
    digest = hashlib.sha256(os.fsencode(name)).hexdigest()[:16]
    return f"{name[:64]}~{digest}"


def sibling(out: Path, what: str, pid: int | None = None) -> Path:
    """The hidden ``.NAME.PID.staging`` / ``.replaced`` sibling of ``out``."""
    return out.parent / f".{_stem(out.name)}.{pid or os.getpid()}.{what}"


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (one of another user counts as running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _complete(folder: Path) -> bool:
    manifest = read_manifest(folder)
    return manifest is not None and manifest.get("complete", True) is not False


def recover_output_folder(out: str | os.PathLike) -> None:
    """Tidy the hidden siblings that a killed write of ``out`` left behind.

    A kill between the two renames of a replacement leaves ``out`` missing, the old folder in
    ``.NAME.PID.replaced`` and the new, complete one (its manifest written) in
    ``.NAME.PID.staging``: the new one is put in place. Any other leftover of a dead process is
    removed.
    """
    out = resolve_output(out)
    if not out.parent.is_dir():
        return
    stem = _stem(out.name)
    leftovers = []
    for p in out.parent.iterdir():
        m = _SIBLING.match(p.name)
        if m and m.group("stem") == stem and p.is_dir() and not p.is_symlink() and \
                not pid_alive(int(m.group("pid"))):
            leftovers.append((m.group("what"), p))
    if not out.exists():
        complete = [p for what, p in leftovers if what == "staging" and _complete(p)]
        previous = [p for what, p in leftovers if what == "replaced"]
        if complete and previous:            # killed while swapping: finish the swap
            os.rename(complete[0], out)
        elif previous:
            os.rename(previous[0], out)
    for _, p in leftovers:
        if p.exists():
            shutil.rmtree(p, ignore_errors=True)


def _in_out(exc: OSError, stage: Path, out: Path) -> None:
    """Name the paths inside the staging folder in ``exc`` as they will be in ``out``."""
    prefix, target = str(stage), str(out)
    for attr in ("filename", "filename2"):
        value = getattr(exc, attr, None)
        if isinstance(value, str) and value.startswith(prefix):
            setattr(exc, attr, target + value[len(prefix):])
    if isinstance(exc.strerror, str):
        exc.strerror = exc.strerror.replace(prefix, target).replace(
            f".{_stem(out.name)}.{os.getpid()}.staging", out.name)


@contextmanager
def staged_output(out: str | os.PathLike, kind: OutputKind, overwrite: bool = False
                  ) -> Iterator[Path]:
    """Yield an empty hidden folder next to ``out``; when the block succeeds, a manifest of
    everything in it is written and it replaces ``out`` as one unit (two renames); when it
    fails it is deleted and ``out`` is left as it was. :func:`check_output_folder` is applied
    before and again just before the swap."""
    out = resolve_output(out)
    recover_output_folder(out)
    check_output_folder(out, kind, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = sibling(out, "staging")
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir()
    try:
        try:
            yield stage
        except OSError as exc:
            _in_out(exc, stage, out)
            raise
        write_manifest(stage, kind.command)
        check_output_folder(out, kind, overwrite)     # written meanwhile by someone else?
        if out.exists() and any(out.iterdir()):
            old = sibling(out, "replaced")
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
