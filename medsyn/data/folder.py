"""Image-folder datasets: any folder of images (PNG/JPEG/TIFF/..., 12/16-bit, DICOM).

Three layouts (:func:`scan_folder`):

- ``splits``: ``<root>/<split>/<class>/*`` (split = train / val / test), or ``<root>/<split>/*``
  without classes;
- ``classes``: ``<root>/<class>/*``;
- ``flat``: ``<root>/*`` (one class, ``UNLABELLED``).

Split ``"all"`` is every image of the folder. Without split folders, ``train`` / ``val`` /
``test`` are the automatic split: the files of each class divided deterministically (sorted
paths, seed 0) into 70 % train, 10 % val and 20 % test; ``ds.source["split"]`` says which.

Files that cannot be used (other formats, unreadable files, folders nested too deep) are
never dropped silently: they are listed in ``ds.source["skipped"]`` and in a warning
(``ds.source["warnings"]``, also logged). Hidden files and Thumbs.db/desktop.ini are ignored.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from medsyn.data.cache import (
    array_cache_key,
    load_cached_arrays,
    load_cached_json,
    store_cached_arrays,
    store_cached_json,
)
from medsyn.data.dataset import ImageDataset, fingerprint_arrays
from medsyn.data.formats.dicom import DEFAULT_DICOM_WINDOW, parse_dicom_window
from medsyn.data.formats.imageio import (
    NOT_AN_IMAGE,
    decode_many,
    is_ignored,
    stack_images,
    unsupported_reason,
)
from medsyn.data.formats.intensity import (
    DepthStats,
    choose_rule,
    describe_intensity,
    parse_bit_depth,
    probe,
)
from medsyn.data.manifest import apply_manifest
from medsyn.data.transforms.resize import RESIZE_FILTER
from medsyn.errors import DataError
from medsyn.outputs import incomplete_output, pid_alive
from medsyn.utils import display_path, file_digest, format_bytes, is_utf8_name

log = logging.getLogger(__name__)

SPLIT_NAMES = ("train", "val", "test")
ALL_SPLIT = "all"
AUTO_SPLIT_FRACTIONS = {"train": 0.7, "val": 0.1, "test": 0.2}
AUTO_SPLIT_SEED = 0
UNLABELLED = "unlabelled"
# bump when decoding or the intensity rules change what pixels a file gives
DECODER_VERSION = 2
SKIPPED_SHOWN = 5
# an image file larger than this is not read (nor hashed): no 2-D image of a data set is that
# large, while a huge file by mistake (a volume, a disk image) would stall the listing
MAX_FILE_BYTES = 1 << 30
NOT_UTF8 = ("its name is not valid UTF-8, so it cannot be named in results and reports; not "
            "read (rename it)")
NOT_REGULAR = ("not a regular file (a FIFO, device, socket or broken link); not read, since "
               "reading one may never end")


@dataclass
class FolderListing:
    """What a folder holds, before anything is decoded."""

    root: Path
    layout: str                                   # "splits" | "classes" | "flat"
    class_names: list[str]
    # split folder ("train"/"val"/"test"; None without split folders) -> class -> files
    files: dict[str | None, dict[str, list[Path]]]
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def splits(self) -> list[str]:
        """Splits that can be asked for: the split folders, or the automatic ones; and all."""
        names = [s for s in self.files if s is not None] or list(SPLIT_NAMES)
        return names + [ALL_SPLIT]

    def all_files(self) -> list[Path]:
        return [p for by_class in self.files.values() for f in by_class.values() for p in f]

    def select(self, split: str) -> tuple[list[Path], list[int], str]:
        """Files and labels of ``split`` and how they were chosen."""
        if split not in self.splits:
            raise DataError(f"image folder {self.root} has no split {split!r}; its splits are "
                            f"{self.splits}.")
        if split == ALL_SPLIT:
            chosen = [(s, self.files[s]) for s in self.files]
            how = "all images of the folder"
        elif self.layout == "splits":
            chosen = [(split, self.files[split])]
            how = "split folders"
        else:
            chosen = None
            how = (f"automatic stratified 70/10/20 split, seed {AUTO_SPLIT_SEED} (the folder "
                   "has no split folders)")
        files, labels = [], []
        if chosen is not None:
            for _, by_class in chosen:
                for label, name in enumerate(self.class_names):
                    found = by_class.get(name, [])
                    files += found
                    labels += [label] * len(found)
        else:
            by_class = self.files[None]
            for label, name in enumerate(self.class_names):
                found = by_class[name]
                idx = _auto_split_indices(len(found), split, seed=AUTO_SPLIT_SEED + label)
                files += [found[i] for i in idx]
                labels += [label] * len(idx)
        if not files:
            if chosen is None:
                raise DataError(
                    f"image folder {self.root} has too few images for an automatic {split} "
                    f"split (the 70/10/20 split per class gives {split} no images). Add "
                    f"images, or lay the folder out as {self.root}/<split>/<class>/<image> to "
                    "choose the splits yourself.")
            others = [s for s in self.files if s != split and self.files[s]]
            raise DataError(
                f"no class folders / no images in {self.root / split}: the split folder is "
                f"empty (expected {self.root / split}/<class>/<image>, classes "
                f"{self.class_names} as in the other splits). Put the {split} images there, "
                "or choose another split" + (f" ({', '.join(others)})." if others else "."))
        return files, labels, how


def _file_kind(entry: os.DirEntry) -> str:
    """"dir", "file" (a regular file, or a link to one) or "other" (a FIFO, a device, a socket,
    a broken link): only the first two are ever opened, since reading a FIFO or /dev/zero
    never ends."""
    try:
        if entry.is_dir():
            return "dir"
        return "file" if entry.is_file() else "other"
    except OSError:
        return "other"


def _entries(folder: Path) -> tuple[list[Path], list[Path], list[tuple[Path, str]]]:
    """Candidate image files, sub-folders and unusable files directly in ``folder``."""
    files, dirs, skipped = [], [], []
    with os.scandir(folder) as listing:         # DirEntry.is_dir() needs no stat call
        entries = sorted((e.name, _file_kind(e)) for e in listing)
    for name, kind in entries:
        p = folder / name
        if is_ignored(p):
            continue
        if not is_utf8_name(name):
            skipped.append((p, NOT_UTF8))
            continue
        if kind == "dir":
            dirs.append(p)
            continue
        if kind == "other":
            skipped.append((p, NOT_REGULAR))
            continue
        reason = unsupported_reason(p)
        if reason is None:
            reason = _too_large(p)
        if reason is None:
            files.append(p)
        else:
            skipped.append((p, reason))
    return files, dirs, skipped


def _too_large(path: Path) -> str | None:
    try:
        size = path.stat().st_size
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    if size > MAX_FILE_BYTES:
        return (f"file of {format_bytes(size)}, more than an image file medsyn reads "
                f"({format_bytes(MAX_FILE_BYTES)}); not read")
    return None


def _is_metadata(path: Path) -> bool:
    """A file of no image or volume format beside class or split folders (a README, a CSV of
    metadata): not data, so it is neither read nor reported as skipped."""
    return path.is_file() and (unsupported_reason(path) or "").startswith(NOT_AN_IMAGE)


def _read_level(folder: Path) -> tuple[dict[str, list[Path]], list[tuple[Path, str]]]:
    """``{class: files}`` of a folder holding class sub-folders, or ``{UNLABELLED: files}`` of
    one holding images directly."""
    files, dirs, skipped = _entries(folder)
    if files:
        with_images = [d for d in dirs if _entries(d)[0]]
        if with_images:
            raise DataError(
                f"{folder} holds images both directly ({len(files)}) and in sub-folders "
                f"({', '.join(d.name for d in with_images[:3])}); put all images in class "
                "sub-folders or all directly in the folder.")
        skipped += [(d, "folder inside a folder of images (not read)") for d in dirs]
        return {UNLABELLED: files}, skipped
    skipped = [(p, why) for p, why in skipped if not _is_metadata(p)]
    classes = {}
    for d in dirs:
        found, nested, unusable = _entries(d)
        skipped += unusable + [(n, "folder inside a class folder (not read; medsyn reads the "
                                   "images directly in each class folder)") for n in nested]
        if not found:
            raise DataError(
                f"class folder {d} contains no images"
                + (f" it can read ({len(unusable)} other file(s), e.g. {unusable[0][0].name}: "
                   f"{unusable[0][1]})" if unusable else "")
                + ". Add images or remove the folder.")
        classes[d.name] = found
    return classes, skipped


def scan_folder(root: Path) -> FolderListing:
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"image folder {display_path(root)} does not exist or is not a folder.")
    if not is_utf8_name(root):
        raise DataError(f"image folder {display_path(root)}: its path is not valid UTF-8, so "
                        "it cannot be named in results and reports; rename it (or link to it "
                        "under a UTF-8 name) and pass that.")
    unfinished = incomplete_output(root)
    if unfinished is not None:
        writer, pid = unfinished.get("written_by", "medsyn"), unfinished.get("pid")
        if isinstance(pid, int) and pid_alive(pid):
            raise DataError(f"image folder {display_path(root)} is being written by `{writer}` "
                            f"(process {pid}, still running); wait until it has finished.")
        raise DataError(
            f"image folder {display_path(root)} is the output of an interrupted `{writer}` (it "
            "stopped before it finished: its images are incomplete and may be truncated); it is "
            "not read. Run it again into a new folder.")
    split_dirs = [s for s in SPLIT_NAMES if (root / s).is_dir()]
    if split_dirs:
        skipped = [(p, "not inside a split folder (train/val/test) of a split-layout folder")
                   for p in sorted(root.iterdir())
                   if p.name not in SPLIT_NAMES and not is_ignored(p) and not _is_metadata(p)]
        files = {}
        for s in split_dirs:
            by_class, unusable = _read_level(root / s)
            files[s] = by_class
            skipped += unusable
        kinds = {UNLABELLED in by_class for by_class in files.values() if by_class}
        if len(kinds) > 1:
            raise DataError(f"{root}: some split folders hold class sub-folders and others "
                            "hold images directly; use the same layout in every split.")
        class_names = sorted({c for by_class in files.values() for c in by_class})
        if not class_names:
            raise DataError(f"{root} has split folders but no images in them "
                            "(<split>/<class>/<image> or <split>/<image>).")
        return FolderListing(root, "splits", class_names, files, skipped)
    by_class, skipped = _read_level(root)
    if not by_class:
        raise DataError(
            f"image folder {root} contains no images it can read, neither directly nor in "
            "class sub-folders (<root>/<image>, <root>/<class>/<image> or "
            "<root>/<split>/<class>/<image>)"
            + (f"; not readable: {_name_skipped(skipped, root)}" if skipped else "."))
    layout = "flat" if UNLABELLED in by_class and len(by_class) == 1 and \
        not (root / UNLABELLED).is_dir() else "classes"
    return FolderListing(root, layout, sorted(by_class), {None: by_class}, skipped)


def _name_skipped(skipped: list[tuple[Path, str]], root: Path) -> str:
    def rel(p):
        try:
            return display_path(p.relative_to(root))
        except ValueError:
            return display_path(p)
    shown = "; ".join(f"{rel(p)} ({why})" for p, why in skipped[:SKIPPED_SHOWN])
    more = len(skipped) - SKIPPED_SHOWN
    return shown + (f"; and {more} more (ds.source['skipped'] lists all)" if more > 0 else "")


def has_split_layout(root: Path) -> bool:
    return any((root / s).is_dir() for s in SPLIT_NAMES)


def available_splits(root: Path) -> list[str]:
    """The splits of a folder: its split folders, or the automatic train/val/test; plus all."""
    return scan_folder(root).splits


def list_folder_split(root: Path, split: str) -> tuple[list[Path], list[int], list[str]]:
    """Files, labels and class names of one split, without decoding anything."""
    listing = scan_folder(root)
    files, labels, _ = listing.select(split)
    return files, labels, listing.class_names


def _auto_split_indices(n: int, split: str, seed: int) -> list[int]:
    """Indices of one split when a class's ``n`` sorted files are divided 70/10/20."""
    order = np.random.default_rng(seed).permutation(n)
    n_test = int(round(n * AUTO_SPLIT_FRACTIONS["test"]))
    n_val = int(round(n * AUTO_SPLIT_FRACTIONS["val"]))
    if n >= 3:
        n_test, n_val = max(n_test, 1), max(n_val, 1)
    bounds = {"test": (0, n_test), "val": (n_test, n_test + n_val), "train": (n_test + n_val, n)}
    lo, hi = bounds[split]
    return sorted(order[lo:hi].tolist())


def _dataset_depth_stats(listing: FolderListing, bit_depth) -> list[DepthStats | None]:
    """Bit-depth statistics of every file of the folder, so that all its splits share one
    intensity rule. Cached under the files' names, sizes and modification times."""
    files = listing.all_files()
    stamp = hashlib.sha256()
    for p in files:
        st = os.stat(p)
        stamp.update(f"{p}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    key = array_cache_key(kind="depth-stats", root=str(listing.root.resolve()),
                          files=stamp.hexdigest(), decoder=DECODER_VERSION)
    cached = load_cached_json("depth-stats", key)
    if cached is not None:
        return [DepthStats(**s) for s in cached]
    stats = [s for s in (probe(p) for p in files) if s is not None]
    store_cached_json("depth-stats", key, [s.__dict__ for s in stats])
    return stats


def load_image_folder(root: Path, split: str, image_size: int | None, name: str,
                      use_cache: bool = True, bit_depth=None,
                      dicom_window: str | None = None) -> ImageDataset:
    """One split of an image folder as uint8 tensors (``split="all"``: every image).

    ``bit_depth``: the intensity rule for files stored with more than 8 bits
    (:mod:`medsyn.data.formats.intensity`): ``"auto"``/None, 8..16, or ``"minmax"``.
    ``dicom_window``: the window rule of DICOM files (:mod:`medsyn.data.formats.dicom`): ``"file"``/
    None (the file's VOI), ``"full"`` or ``"percentile"``.
    """
    root = Path(root)
    option = parse_bit_depth(bit_depth)
    window = parse_dicom_window(dicom_window)
    # the default window leaves the cache key as it always was
    window_key = {} if window == DEFAULT_DICOM_WINDOW else {"dicom_window": window}
    listing = scan_folder(root)
    files, labels, how = listing.select(split)
    class_names = listing.class_names
    rule = choose_rule(_dataset_depth_stats(listing, option), option)
    files, labels, patients = apply_manifest(root, split, files, labels, class_names,
                                             listing.layout == "splits", list_folder_split,
                                             all_files=listing.all_files())
    digests = [file_digest(p) for p in files]
    # the files were listed as root / ...; slicing is much faster than Path.relative_to, and
    # root / "x" - "x" is the prefix even for root "." (where it is empty)
    prefix = len(str(root / "x")) - 1
    relpaths = [str(p)[prefix:] for p in files]
    files_digest = hashlib.sha256(
        "\n".join(f"{r}\t{d}" for r, d in zip(relpaths, digests, strict=True)).encode()
    ).hexdigest()
    key = array_cache_key(kind="image-folder", files=files_digest, split=split,
                          image_size=image_size, class_names=class_names,
                          intensity=rule.key(), decoder=DECODER_VERSION, **window_key)
    cached = load_cached_arrays(key) if use_cache else None
    if cached is not None:
        images, label_arr, meta = cached
        fingerprint, intensity = meta.get("fingerprint"), meta.get("intensity")
        unreadable = [(root / p, why) for p, why in meta.get("unreadable", [])]
    else:
        raws, unreadable = decode_many(files, desc=f"{name}/{split}", dicom_window=window)
        keep = [i for i, raw in enumerate(raws) if raw is not None]
        if not keep:
            raise DataError(f"none of the {len(files)} image files of {root} ({split}) could "
                            f"be read: {_name_skipped(unreadable, root)}")
        raws = [raws[i] for i in keep]
        kept_files = [files[i] for i in keep]
        images = stack_images([rule.to_uint8(r) for r in raws], kept_files, image_size)
        label_arr = np.asarray([labels[i] for i in keep], dtype=np.int64)
        fingerprint = fingerprint_arrays(images, label_arr)
        intensity = describe_intensity(raws, [relpaths[i] for i in keep], rule)
        if window_key:
            intensity["dicom_window_rule"] = window
        if use_cache:
            store_cached_arrays(key, images, label_arr, {
                "fingerprint": fingerprint, "intensity": intensity,
                "unreadable": [[str(p.relative_to(root)), why] for p, why in unreadable]})
    skipped = listing.skipped + unreadable
    warnings = list(rule.warnings) + (patients.warnings if patients is not None else [])
    if skipped:
        warnings.append(f"{root}: {len(skipped)} file(s) not used: {_name_skipped(skipped, root)}")
    if listing.layout != "splits" and split != ALL_SPLIT:
        warnings.append(f"{root} has no split folders: {name}/{split} is the automatic 70/10/20 "
                        f"split's {split} part ({len(label_arr)} of "
                        f"{len(listing.all_files())} images).")
    for message in warnings:
        log.warning(message)
    source = {
        "kind": "image-folder",
        "root": str(root.resolve()),
        "layout": listing.layout,
        "split_layout": how,
        "n_files": int(len(label_arr)),
        "files_sha256": files_digest,
        "checksum_rule": "sha256 over sorted lines '<relative path>\\t<sha256 of file>'",
        "intensity": intensity,
    }
    if skipped:
        source["skipped"] = [{"path": display_path(p), "reason": why} for p, why in skipped]
    patient_ids = None
    if patients is not None:
        source["manifest"] = patients.info
        unread = {str(p) for p, _ in unreadable}
        patient_ids = patients.ids[[i for i, f in enumerate(files) if str(f) not in unread]]
    if warnings:
        source["warnings"] = warnings
    if image_size is not None:
        source["resized_to"] = image_size
        source["resize_filter"] = RESIZE_FILTER
    return ImageDataset(
        name=name,
        split=split,
        images=torch.from_numpy(images),
        labels=torch.from_numpy(label_arr.astype(np.int64, copy=False)),
        class_names=class_names,
        source=source,
        _fingerprint=fingerprint,
        patient_ids=patient_ids,
    )


__all__ = ["FolderListing", "scan_folder", "load_image_folder", "list_folder_split",
           "available_splits", "has_split_layout", "SPLIT_NAMES", "ALL_SPLIT", "UNLABELLED"]
