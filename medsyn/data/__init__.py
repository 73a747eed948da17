"""Datasets as uint8 tensors with labels, class names, provenance and a fingerprint.

    ds = medsyn.data.load_dataset("cxr3", split="train", image_size=112)
    ds.images, ds.labels, ds.class_names, ds.fingerprint, ds.source
"""

from medsyn.data.dataset import ImageDataset, fingerprint_arrays
from medsyn.data.fetch import fetch_dataset
from medsyn.data.registry import (
    DatasetSpec,
    dataset_status,
    known_datasets,
    load_dataset,
    locate,
)
from medsyn.data.transforms.resize import RESIZE_FILTER, resize_uint8

__all__ = [
    "ImageDataset",
    "DatasetSpec",
    "load_dataset",
    "known_datasets",
    "dataset_status",
    "locate",
    "fetch_dataset",
    "fingerprint_arrays",
    "resize_uint8",
    "RESIZE_FILTER",
]
