"""DICOM Part 10 files for the tests, written with pydicom: what a scanner or PACS export
would hand medsyn, with every attribute the decoding reads set explicitly."""

from __future__ import annotations

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid


def write_dicom(path, stored, *, bits_stored=12, signed=False, photometric="MONOCHROME2",
           slope=None, intercept=None, window=None, voi_lut=None, frames=1,
           syntax=ExplicitVRLittleEndian, raw_bytes=None):
    """Write a Part 10 file with pydicom; ``stored`` is what goes into Pixel Data as is."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = syntax
    ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality = "OT"
    ds.Rows, ds.Columns = stored.shape[-2:]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = 16
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = int(signed)
    if frames > 1:
        ds.NumberOfFrames = frames
    if slope is not None:
        ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    if voi_lut is not None:
        item = Dataset()
        item.LUTDescriptor = [len(voi_lut), 0, 12]
        item.add_new(0x00283006, "US", [int(v) for v in voi_lut])   # LUT Data
        ds.VOILUTSequence = [item]
    ds.PixelData = raw_bytes if raw_bytes is not None else \
        stored.astype("<i2" if signed else "<u2").tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return ds
