"""A synthetic DICOM folder for ``medsyn audit --preprocessing``'s window rows
(docs/statistics.md section 4). Not medical images: it shows what the window rules do when a
burnt-in marker sits far above the anatomy.

2 classes ("low", "high") x (100 train + 100 test) files of 64 x 64, 12-bit MONOCHROME2,
Window Center/Width 2048/2048 in every file. The "anatomy" is Gaussian-filtered noise
(sigma 4) scaled to 1000..3000 (low) or 1200..3200 (high); every image has one 3 x 3 marker
at 4095 in a random corner (9 of 4,096 pixels: under the 0.5 % the percentile window clips).

    python bench/synthetic_dicom.py /tmp/dcm
    medsyn audit --dataset folder:/tmp/dcm:test --quick --extractor pixels \\
        --metrics fid,kid,mmd,prdc --failures blur --preprocessing
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid
from scipy.ndimage import gaussian_filter

SIZE, PER_CLASS, MARKER = 64, 100, 3


def write_file(path: Path, values: np.ndarray, window: tuple[float, float]) -> None:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.Rows, ds.Columns = values.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.WindowCenter, ds.WindowWidth = window
    ds.PixelData = values.astype("<u2").tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder to write (train/<class>/, test/<class>/)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    corners = (0, SIZE - MARKER)
    for split in ("train", "test"):
        for c, name in enumerate(("low", "high")):
            for i in range(PER_CLASS):
                x = gaussian_filter(rng.normal(size=(SIZE, SIZE)), 4)
                x = (x - x.min()) / (x.max() - x.min())
                values = np.round(1000 + 200 * c + 2000 * x).astype(np.uint16)
                r, k = corners[rng.integers(2)], corners[rng.integers(2)]
                values[r:r + MARKER, k:k + MARKER] = 4095
                write_file(args.out / split / name / f"{i:03d}.dcm", values, (2048.0, 2048.0))
    print(f"{4 * PER_CLASS} files under {args.out}")


if __name__ == "__main__":
    main()
