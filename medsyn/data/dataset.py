"""The in-memory dataset every stage of medsyn consumes."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import torch

from medsyn.errors import DataError

FINGERPRINT_VERSION = b"medsyn-dataset-fingerprint-v1"


def fingerprint_arrays(images: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor) -> str:
    """Stable hex digest of images (uint8, any layout) and labels.

    The shape is part of the digest, so the same pixels at another resolution or channel count
    get another fingerprint. Labels are hashed as int64 whatever their stored dtype.
    """
    if isinstance(images, torch.Tensor):
        images = images.cpu().numpy()
    if isinstance(labels, torch.Tensor):
        labels = labels.cpu().numpy()
    images = np.ascontiguousarray(images)
    labels = np.ascontiguousarray(labels.astype(np.int64, copy=False))
    h = hashlib.sha256()
    h.update(FINGERPRINT_VERSION)
    h.update(f"images:{images.dtype.str}:{images.shape};labels:{labels.shape}".encode())
    h.update(memoryview(images).cast("B"))
    h.update(memoryview(labels).cast("B"))
    return h.hexdigest()


def class_indices(values, class_names, where: str, n: int | None = None) -> np.ndarray:
    """Labels given with images from outside a dataset (an npz, a Python caller) as int64
    indices into ``class_names``: class indices or class names. ``n``: the number of images
    they label, one label each. Anything else is a :class:`DataError` that starts with
    ``where``."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    arr = np.asarray(values)
    if n is not None and arr.shape != (n,):
        raise DataError(f"{where}: expected one label per image, shape [{n}], got shape "
                        f"{arr.shape}.")
    arr = arr.reshape(-1)
    names = list(class_names)
    if arr.dtype.kind in "US":
        arr = arr.astype(str)
        unknown = sorted(set(arr) - set(names))
        if unknown:
            raise DataError(f"{where}: class names {unknown} are not classes of the reference "
                            f"dataset ({', '.join(names)}).")
        return np.array([names.index(v) for v in arr], dtype=np.int64)
    if arr.dtype.kind not in "iu":
        raise DataError(f"{where}: labels must be class indices (integers) or class names, got "
                        f"dtype {arr.dtype}.")
    bad = arr[(arr < 0) | (arr >= len(names))]
    if len(bad):
        raise DataError(f"{where}: label {int(bad[0])} is out of range: the reference dataset's "
                        f"class indices are 0..{len(names) - 1} ({', '.join(names)}).")
    return arr.astype(np.int64)


@dataclass(eq=False)
class ImageDataset:
    """Images and labels of one split of one dataset.

    ``images`` is a ``torch.uint8`` tensor ``[N, C, H, W]`` (C = 1 grayscale, 3 RGB), ``labels``
    a ``torch.int64`` tensor ``[N]`` indexing ``class_names``. ``source`` records the files read
    and their checksums; ``fingerprint`` identifies exactly these pixels and labels.
    """

    name: str
    split: str
    images: torch.Tensor
    labels: torch.Tensor
    class_names: list[str]
    source: dict = field(default_factory=dict)
    _fingerprint: str | None = field(default=None, repr=False)
    # (parent fingerprint, row indices) for a subset: lets stages reuse what they computed
    # for the parent (e.g. cached features) instead of recomputing it for the subset
    parent: tuple[str, np.ndarray] | None = field(default=None, repr=False, compare=False)
    # one patient (subject) id per image when the dataset knows them (a folder dataset with a
    # manifest, see medsyn.data.manifest), else None; not part of the fingerprint
    patient_ids: np.ndarray | None = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError(
                f"images must be a uint8 tensor [N, C, H, W], got {self.images.dtype} "
                f"{tuple(self.images.shape)}"
            )
        if self.labels.dtype != torch.int64 or self.labels.shape != (self.images.shape[0],):
            raise ValueError(
                f"labels must be an int64 tensor [N] with N = {self.images.shape[0]}, got "
                f"{self.labels.dtype} {tuple(self.labels.shape)}"
            )
        if self.patient_ids is not None:
            self.patient_ids = np.asarray(self.patient_ids, dtype=str)
            if self.patient_ids.shape != (self.images.shape[0],):
                raise ValueError(f"patient_ids must have one id per image ({self.images.shape[0]}),"
                                 f" got shape {self.patient_ids.shape}")

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = fingerprint_arrays(self.images, self.labels)
        return self._fingerprint

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) in pixels."""
        return int(self.images.shape[2]), int(self.images.shape[3])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def class_counts(self) -> dict[str, int]:
        counts = torch.bincount(self.labels, minlength=self.num_classes).tolist()
        return dict(zip(self.class_names, counts, strict=True))

    def subset(self, indices) -> ImageDataset:
        """A new dataset with the rows ``indices`` (its fingerprint is that of the subset)."""
        idx = torch.as_tensor(indices, dtype=torch.long)
        return ImageDataset(
            name=self.name,
            split=self.split,
            images=self.images[idx],
            labels=self.labels[idx],
            class_names=list(self.class_names),
            source={**self.source, "subset_of": self.fingerprint, "subset_size": len(idx)},
            parent=(self.fingerprint, idx.numpy().copy()),
            patient_ids=None if self.patient_ids is None else self.patient_ids[idx.numpy()],
        )

    def describe(self) -> dict:
        """JSON-ready summary: what ``medsyn data info`` prints and provenance records."""
        h, w = self.image_size
        return {
            "name": self.name,
            "split": self.split,
            "n_images": len(self),
            "image_size": [h, w],
            "channels": self.channels,
            "class_names": list(self.class_names),
            "class_counts": self.class_counts(),
            "fingerprint": self.fingerprint,
            "n_patients": None if self.patient_ids is None else int(len(set(self.patient_ids))),
            "source": self.source,
        }

    def __repr__(self) -> str:
        h, w = self.image_size
        return (
            f"ImageDataset(name={self.name!r}, split={self.split!r}, n={len(self)}, "
            f"size={h}x{w}, channels={self.channels}, classes={self.class_names})"
        )
