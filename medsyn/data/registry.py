"""Dataset names, where their files are looked for, and ``load_dataset``."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from medsyn.data.dataset import ImageDataset
from medsyn.data.folder import SPLIT_NAMES, available_splits, load_image_folder
from medsyn.data.formats.dicom import parse_dicom_window
from medsyn.data.npz import (
    MEDMNIST_SIZES,
    MNIST_SPLITS,
    load_medmnist,
    load_mnist,
    medmnist_2d_names,
    medmnist_candidates,
    medmnist_info,
    medmnist_splits,
)
from medsyn.errors import DataError
from medsyn.settings import ENV_DATA_ROOT, data_roots

FOLDER_PREFIX = "folder:"
CXR3_CLASSES = ["COVID", "Normal", "Viral Pneumonia"]

CXR3_HOWTO = (
    "cxr3 is the 3-class chest X-ray set (COVID / Normal / Viral Pneumonia) of the Kaggle "
    "'COVID-19 Radiography Database' (Chowdhury et al. 2020; Rahman et al. 2021). It needs a "
    "Kaggle login, so medsyn cannot download it: download it from Kaggle, arrange it as "
    "<data root>/cxr3/{train,val,test}/{COVID,Normal,Viral Pneumonia}/*.png and set "
    f"{ENV_DATA_ROOT} (or --data-root) to the data root."
)


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    kind: str          # "image-folder", "medmnist", "mnist"
    splits: tuple[str, ...]
    description: str


def known_datasets() -> list[DatasetSpec]:
    specs = [
        DatasetSpec("cxr3", "image-folder", ("train", "val", "test"),
                    "3-class chest X-rays, 256 px PNG folders"),
        DatasetSpec("mnist", "mnist", MNIST_SPLITS, "MNIST digits, Keras npz"),
    ]
    info = medmnist_info()
    for flag in medmnist_2d_names():
        n = info[flag]["n_samples"]
        specs.append(DatasetSpec(
            flag, "medmnist", medmnist_splits(flag),
            f"MedMNIST {info[flag]['python_class']}, {sum(n.values())} images, "
            f"{info[flag]['task']}"))
    return specs


def _spec(name: str) -> DatasetSpec:
    for spec in known_datasets():
        if spec.name == name:
            return spec
    if name.endswith("3d") and name in medmnist_info():
        raise DataError(f"{name} is a 3D MedMNIST volume set; medsyn handles 2D images only.")
    known = ", ".join(s.name for s in known_datasets())
    raise DataError(
        f"unknown dataset {name!r}. Known datasets: {known}; or 'folder:<path>' for any "
        "image-folder tree."
    )


def _root_label(root: Path, explicit: bool) -> str:
    if explicit:
        return "given root"
    if os.environ.get(ENV_DATA_ROOT) and Path(os.environ[ENV_DATA_ROOT]).expanduser() == root:
        return ENV_DATA_ROOT
    return "default cache"


def locate(name: str, root: str | os.PathLike | None = None, image_size: int | None = None):
    """Find a dataset's files. Returns ``(path, detail)`` or raises a DataError naming every
    path tried and how to get the data."""
    spec = _spec(name)
    roots = data_roots(root)
    tried: list[str] = []
    if spec.kind == "image-folder":
        for r in roots:
            p = r / name
            tried.append(f"{p} ({_root_label(r, root is not None)})")
            if p.is_dir():
                return p, None
        howto = CXR3_HOWTO
    elif spec.kind == "mnist":
        for r in roots:
            for p in (r / "mnist" / "mnist.npz", r / "mnist.npz"):
                tried.append(f"{p} ({_root_label(r, root is not None)})")
                if p.is_file():
                    return p, None
        howto = "Get it with: medsyn data fetch mnist (needs internet)."
    else:
        found: dict[int, Path] = {}
        for r in roots:
            for size, paths in medmnist_candidates(r, name).items():
                for p in paths:
                    tried.append(f"{p} ({_root_label(r, root is not None)})")
                    if p.is_file() and size not in found:
                        found[size] = p
        if found:
            size = _choose_medmnist_size(sorted(found), image_size)
            return found[size], size
        howto = (f"Get it with: medsyn data fetch {name} [--size 28|64|128|224] (needs internet), "
                 "or copy the MedMNIST npz there.")
    raise DataError(
        f"dataset {name!r} not found. Paths tried:\n  " + "\n  ".join(tried) + f"\n{howto}"
    )


def _choose_medmnist_size(present: list[int], image_size: int | None) -> int:
    """The native file to read: the requested size if present, else the smallest file at least
    that large (downscaling loses less than upscaling), else the largest present."""
    if image_size is None:
        return present[0]
    if image_size in present:
        return image_size
    larger = [s for s in present if s >= image_size]
    return larger[0] if larger else present[-1]


def _check_image_size(image_size) -> int | None:
    if image_size is None:
        return None
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 8:
        raise DataError(f"image_size must be an integer >= 8 (pixels), got {image_size!r}.")
    return image_size


def folder_path(name: str) -> Path | None:
    """The folder a dataset name stands for: ``folder:<path>``, or a path to an existing folder
    that is not a known dataset name (known names win: write ``./cxr3`` for a folder of that
    name). None for a named dataset."""
    if name.startswith(FOLDER_PREFIX):
        return Path(name[len(FOLDER_PREFIX):]).expanduser()
    if name in {s.name for s in known_datasets()}:
        return None
    path = Path(name).expanduser()
    looks_like_a_path = "/" in name or os.sep in name or name.startswith((".", "~"))
    return path if path.is_dir() or looks_like_a_path else None


def load_dataset(name: str, split: str | None = None, image_size: int | None = None,
                 root: str | os.PathLike | None = None, bit_depth=None,
                 dicom_window: str | None = None) -> ImageDataset:
    """Load one split of a dataset as uint8 tensors.

    ``name``: ``cxr3``, ``mnist``, a 2D MedMNIST flag (``pneumoniamnist``, ``breastmnist``, ...)
    or a folder of images (``folder:<path>``, or the path itself). ``split``: ``train`` by
    default; for a folder also ``all`` (every image). ``image_size`` resizes to a square of that
    many pixels (bicubic, antialiased); ``None`` keeps the stored size. ``root`` overrides
    ``MEDSYN_DATA_ROOT``. ``bit_depth``: the intensity rule for files stored with more than 8
    bits (``"auto"``/None, 8..16 or ``"minmax"``, see :mod:`medsyn.data.formats.intensity`).
    ``dicom_window``: the window rule of DICOM files in a folder (``"file"``/None, ``"full"``,
    ``"percentile"``, see :mod:`medsyn.data.formats.dicom`); the built-in npz datasets hold no
    DICOM.
    """
    image_size = _check_image_size(image_size)
    parse_dicom_window(dicom_window)
    split = split or "train"
    path = folder_path(name)
    if path is not None:
        if not path.is_dir():
            raise DataError(f"image folder {path} (from dataset name {name!r}) does not exist.")
        label = name if name.startswith(FOLDER_PREFIX) else f"{FOLDER_PREFIX}{name}"
        return load_image_folder(path, split, image_size, name=label, bit_depth=bit_depth,
                                 dicom_window=dicom_window)
    spec = _spec(name)
    if spec.kind != "image-folder" and split not in spec.splits:
        raise DataError(f"{name} has no split {split!r}; its splits are {list(spec.splits)}.")
    path, detail = locate(name, root, image_size)
    if spec.kind == "image-folder":
        if name == "cxr3":
            _check_cxr3_layout(path)
        return load_image_folder(path, split, image_size, name=name, bit_depth=bit_depth,
                                 dicom_window=dicom_window)
    if spec.kind == "mnist":
        return load_mnist(path, split, image_size)
    return load_medmnist(name, path, detail, split, image_size)


def _check_cxr3_layout(path: Path) -> None:
    missing = [f"{s}/{c}" for s in ("train", "val", "test") for c in CXR3_CLASSES
               if not (path / s / c).is_dir()]
    if missing:
        raise DataError(
            f"{path} is not laid out as cxr3: missing folders {', '.join(missing)}. {CXR3_HOWTO}"
        )


def dataset_status(name: str, root: str | os.PathLike | None = None) -> dict:
    """Whether a dataset's files are present and where (for ``medsyn data list``)."""
    try:
        path, detail = locate(name, root)
    except DataError:
        return {"present": False, "path": None}
    status = {"present": True, "path": str(path)}
    if _spec(name).kind == "medmnist":
        sizes = []
        for r in data_roots(root):
            for size, paths in medmnist_candidates(r, name).items():
                if any(p.is_file() for p in paths) and size not in sizes:
                    sizes.append(size)
        status["sizes"] = sorted(sizes)
    if _spec(name).kind == "image-folder":
        status["splits"] = [s for s in available_splits(path) if s in SPLIT_NAMES]
    return status


__all__ = ["DatasetSpec", "known_datasets", "load_dataset", "locate", "dataset_status",
           "folder_path", "MEDMNIST_SIZES"]
