"""Patient (subject) ids of a folder dataset, from a CSV manifest, and patient-disjoint splits.

A folder dataset may carry ``manifest.csv`` at its root::

    path,label,patient_id
    train/COVID/img001.png,COVID,P0001
    train/COVID/img002.png,COVID,P0001
    test/Normal/img107.png,Normal,P0042

``path`` is the image's path relative to the dataset root (``/`` separators), ``label`` its
class folder name and ``patient_id`` any non-empty string; further columns are ignored. Every
image of the folder must be listed. With a manifest:

- a folder laid out as ``<split>/<class>/*`` must already be patient-disjoint (a patient with
  images in two splits is an error, since a held-out image of a training patient is not
  held out);
- a folder without split folders is split by patient: the patients of each class (a patient's
  class is its most frequent label) are shuffled with seed ``AUTO_SPLIT_SEED + class index``
  and divided 70/10/20 as files are without a manifest, so every patient's images land in one
  split;
- the dataset's ``patient_ids`` holds one id per image, which the evaluators use for
  patient-level bootstrap intervals, patient-disjoint real-vs-real floors and nearest-neighbour
  checks that skip same-patient pairs (docs/privacy.md).
"""

from __future__ import annotations

import csv
import hashlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medsyn.errors import DataError

MANIFEST_NAME = "manifest.csv"
COLUMNS = ("path", "label", "patient_id")
SPLITS = ("train", "val", "test")
FRACTIONS = {"train": 0.7, "val": 0.1, "test": 0.2}
SEED = 0


@dataclass
class Manifest:
    path: Path
    sha256: str
    rows: dict[str, tuple[str, str]] = field(default_factory=dict)   # relpath -> (label, pid)

    def lookup(self, root: Path, file: Path) -> tuple[str, str]:
        rel = Path(file).relative_to(root).as_posix()
        if rel not in self.rows:
            raise DataError(
                f"{self.path}: image {rel} is not listed. A manifest must list every image of "
                f"the folder as 'path,label,patient_id' (path relative to {root}); add a row "
                "for it or remove the image.")
        return self.rows[rel]


@dataclass
class PatientIds:
    """What :func:`apply_manifest` attaches to a dataset."""

    ids: np.ndarray
    info: dict
    warnings: list[str] = field(default_factory=list)


def find_manifest(root: Path) -> Path | None:
    path = Path(root) / MANIFEST_NAME
    return path if path.is_file() else None


def read_manifest(path: Path) -> Manifest:
    """Parse and validate a manifest (header ``path,label,patient_id``, one row per image)."""
    path = Path(path)
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc}); save the manifest as UTF-8 CSV.") \
            from None
    lines = text.splitlines()
    limit = csv.field_size_limit()
    long_line = next((i for i, line in enumerate(lines, start=1) if len(line) > limit), None)
    if long_line is not None:
        raise DataError(f"{path}, line {long_line}: a line of {len(lines[long_line - 1])} "
                        f"characters, more than a CSV field may hold ({limit}); a manifest "
                        "holds short 'path,label,patient_id' rows. Correct or delete that line.")
    reader = csv.DictReader(lines)
    try:
        return _parse_rows(path, raw, reader)
    except csv.Error as exc:
        raise DataError(f"{path}: not a readable CSV file ({exc}, near line {reader.line_num});"
                        " a manifest holds 'path,label,patient_id' rows. Correct that line.") \
            from None


def _parse_rows(path: Path, raw: bytes, reader: csv.DictReader) -> Manifest:
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise DataError(f"{path}: the header must name the columns {','.join(COLUMNS)}; "
                        f"missing {', '.join(missing)} (found {','.join(header) or 'no header'}).")
    reader.fieldnames = header
    rows: dict[str, tuple[str, str]] = {}
    for line, row in enumerate(reader, start=2):
        rel = (row.get("path") or "").strip().replace("\\", "/")
        while rel.startswith("./"):
            rel = rel[2:]
        label = (row.get("label") or "").strip()
        pid = (row.get("patient_id") or "").strip()
        if not rel or not label or not pid:
            raise DataError(f"{path}, line {line}: path, label and patient_id must all be "
                            "non-empty; fill in or delete the row.")
        if rel in rows:
            raise DataError(f"{path}, line {line}: {rel} is listed twice; keep one row per image.")
        rows[rel] = (label, pid)
    if not rows:
        raise DataError(f"{path}: the manifest lists no images; add one row per image or delete "
                        "the file.")
    return Manifest(path, hashlib.sha256(raw).hexdigest(), rows)


def _split_counts(n: int) -> dict[str, int]:
    # the rounding rule of the automatic file split (medsyn.data.folder), applied to patients
    n_test = int(round(n * FRACTIONS["test"]))
    n_val = int(round(n * FRACTIONS["val"]))
    if n >= 3:
        n_test, n_val = max(n_test, 1), max(n_val, 1)
    return {"test": n_test, "val": n_val, "train": n - n_test - n_val}


def patient_split(patient_ids, labels, split: str, seed: int = SEED) -> np.ndarray:
    """Indices (sorted) of the images whose patients fall in ``split`` of a 70/10/20 split of
    patients, stratified by each patient's most frequent label."""
    patient_ids = np.asarray(patient_ids, dtype=str)
    labels = np.asarray(labels)
    by_patient: dict[str, Counter] = {}
    for pid, lab in zip(patient_ids, labels, strict=True):
        by_patient.setdefault(pid, Counter())[int(lab)] += 1
    # most frequent label, the smallest on ties
    patient_class = {p: min(c, key=lambda lab: (-c[lab], lab)) for p, c in by_patient.items()}
    chosen: set[str] = set()
    for cls in sorted(set(patient_class.values())):
        members = sorted(p for p, c in patient_class.items() if c == cls)
        order = [members[i] for i in np.random.default_rng(seed + cls).permutation(len(members))]
        counts = _split_counts(len(members))
        lo = {"test": 0, "val": counts["test"], "train": counts["test"] + counts["val"]}[split]
        chosen.update(order[lo:lo + counts[split]])
    return np.flatnonzero(np.isin(patient_ids, sorted(chosen)))


def unmatched_rows(manifest: Manifest, root: Path, all_files: Sequence[Path]) -> list[str]:
    """The manifest's paths that name no image file of the folder (sorted)."""
    listed = {Path(f).relative_to(root).as_posix() for f in all_files}
    return sorted(rel for rel in manifest.rows if rel not in listed)


def apply_manifest(root: Path, split: str, files: list[Path], labels: list[int],
                   class_names: list[str], split_layout: bool,
                   list_split: Callable[[Path, str], tuple[list, list, list]],
                   all_files: Sequence[Path] | None = None):
    """The hook :func:`medsyn.data.folder.load_image_folder` calls after listing a split.

    Returns ``(files, labels, PatientIds | None)``: unchanged files and ``None`` without a
    manifest; with one, the patient ids of the files and, for an automatic split, the files of
    the patient-disjoint split instead of the per-file one. ``all_files``: every image file of
    the folder; rows naming none of them give a warning (``PatientIds.warnings``)."""
    root = Path(root)
    path = find_manifest(root)
    if path is None:
        return files, labels, None
    manifest = read_manifest(path)

    def ids_of(fs, ls):
        out = []
        for f, lab in zip(fs, ls, strict=True):
            m_label, pid = manifest.lookup(root, f)
            # only an image inside a class folder has a folder label to contradict
            in_class_folder = Path(f).parent.name == class_names[lab]
            if in_class_folder and m_label != class_names[lab]:
                rel = Path(f).relative_to(root).as_posix()
                raise DataError(f"{path}: {rel} has label {m_label!r} but lies in the class "
                                f"folder {class_names[lab]!r}; correct the row or move the file.")
            out.append(pid)
        return np.asarray(out, dtype=str)

    if split not in SPLITS:         # e.g. every image of the folder: nothing to split
        ids = ids_of(files, labels)
        rule = f"split {split!r}: every listed image, not split"
    elif split_layout:
        ids = ids_of(files, labels)
        mine = set(ids)
        for other in SPLITS:
            if other == split or not (root / other).is_dir():
                continue
            try:
                o_files, o_labels, _ = list_split(root, other)
            except DataError:
                continue                 # an empty split folder shares no patients
            shared = mine & set(ids_of(o_files, o_labels))
            if shared:
                example = sorted(shared)[0]
                raise DataError(
                    f"{path}: {len(shared)} patient(s) (e.g. {example!r}) have images in both "
                    f"{root / split} and {root / other}; splits must be patient-disjoint, or "
                    "held-out images are not held out. Move each patient's images into one "
                    "split, or remove the split folders to let medsyn split by patient.")
        rule = "split folders, checked patient-disjoint"
    else:
        all_files, all_labels = [], []
        for s in SPLITS:       # the per-file automatic splits partition the folder's files
            try:
                fs, ls, _ = list_split(root, s)
            except DataError:
                continue
            all_files += fs
            all_labels += ls
        order = sorted(range(len(all_files)), key=lambda i: (all_labels[i], str(all_files[i])))
        all_files = [all_files[i] for i in order]
        all_labels = [all_labels[i] for i in order]
        all_ids = ids_of(all_files, all_labels)
        keep = patient_split(all_ids, all_labels, split)
        if len(keep) == 0:
            raise DataError(f"{root}: too few patients for an automatic {split} split by patient "
                            f"({len(set(all_ids))} patients in {path}); add patients or lay the "
                            f"folder out as {root}/<split>/<class>/<image>.")
        files = [all_files[i] for i in keep]
        labels = [all_labels[i] for i in keep]
        ids = all_ids[keep]
        rule = (f"automatic 70/10/20 split of patients per class (a patient's most frequent "
                f"label), seed {SEED} + class index")
    info = {"path": str(path.resolve()), "sha256": manifest.sha256, "split_rule": rule,
            "n_patients": int(len(set(ids))), "n_images": len(ids)}
    warnings = []
    stray = unmatched_rows(manifest, root, all_files) if all_files is not None else []
    if stray:
        info["rows_naming_no_image"] = len(stray)
        warnings.append(
            f"{path}: {len(stray)} row(s) name no image file of {root} (e.g. {stray[0]!r}); "
            "they were ignored. Correct their paths (relative to the folder, '/' separators) "
            "or delete the rows.")
    return files, labels, PatientIds(ids, info, warnings)
