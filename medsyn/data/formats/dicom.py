"""DICOM files -> uint8 display images, the way a viewer shows them (pydicom).

The pipeline is the one of DICOM PS3.3 C.11 (grayscale):

1. stored values, masked to *Bits Stored* and sign-extended by pydicom;
2. the Modality LUT: *Rescale Slope/Intercept* (or a Modality LUT Sequence);
3. the VOI transform: the file's first *VOI LUT Sequence* item, else its first *Window
   Center/Width* (with its *VOI LUT Function*); a file with neither gets the full range its
   stored bits can represent after step 2 (``FULL_RANGE_WINDOW``), never a per-image guess;
4. the VOI output range mapped linearly to 0..255 (round half up); *MONOCHROME1* (white =
   low values) inverted to 255 - y so that every image reads "bright = dense" as MONOCHROME2.

Step 3 is the default window rule, ``"file"``. Two alternatives replace it (``window``, for
measuring how much the window alone moves a metric: ``medsyn audit --preprocessing``):

- ``"full"``: the image's own minimum .. maximum after step 2 (the full range of the values
  present, per image);
- ``"percentile"``: the image's 0.5th .. 99.5th percentile after step 2 (numpy's linear
  interpolation), which clips isolated extreme pixels (markers, burnt-in text, dead pixels).

Both then map linearly to 0..255 with the same rounding and MONOCHROME1 inversion.

8-bit colour files (RGB, or YBR converted to RGB by pydicom) are used as they are.
Multi-frame files and files without pixel data are refused. Compressed transfer syntaxes are
decoded by pydicom's plugins (RLE natively; JPEG / JPEG 2000 / JPEG-LS need the packages of
``CODEC_PACKAGES``); a missing plugin is an error that names what to install.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medsyn.errors import DataError

DICOM_EXTENSIONS = (".dcm", ".dicom")
FULL_RANGE_WINDOW = "full range of the stored bits after rescale (no window in the file)"
# window rules: the file's VOI (default), the image's own min..max, its percentiles
DICOM_WINDOWS = ("file", "full", "percentile")
DEFAULT_DICOM_WINDOW = "file"
PERCENTILE_WINDOW = (0.5, 99.5)
# pip packages that give pydicom a decoder for each family of compressed transfer syntaxes
CODEC_PACKAGES = {
    "JPEG Baseline/Extended": "pylibjpeg pylibjpeg-libjpeg (or Pillow)",
    "JPEG Lossless": "pylibjpeg pylibjpeg-libjpeg",
    "JPEG-LS": "pyjpegls",
    "JPEG 2000": "pylibjpeg pylibjpeg-openjpeg",
    "HTJ2K": "pylibjpeg pylibjpeg-openjpeg",
}
_PREFIX_FAMILY = (
    ("1.2.840.10008.1.2.4.50", "JPEG Baseline/Extended"),
    ("1.2.840.10008.1.2.4.51", "JPEG Baseline/Extended"),
    ("1.2.840.10008.1.2.4.57", "JPEG Lossless"),
    ("1.2.840.10008.1.2.4.70", "JPEG Lossless"),
    ("1.2.840.10008.1.2.4.80", "JPEG-LS"),
    ("1.2.840.10008.1.2.4.81", "JPEG-LS"),
    ("1.2.840.10008.1.2.4.90", "JPEG 2000"),
    ("1.2.840.10008.1.2.4.91", "JPEG 2000"),
    ("1.2.840.10008.1.2.4.20", "HTJ2K"),
)


@dataclass
class DicomImage:
    pixels: np.ndarray          # uint8 [H, W] or [H, W, 3]
    window: str                 # which VOI transform was applied, in words
    bits_stored: int
    photometric: str


def looks_like_dicom(path: Path) -> bool:
    """A ``.dcm``/``.dicom`` name, or the 'DICM' marker of a Part 10 file (exports from PACS
    often have no extension)."""
    if path.suffix.lower() in DICOM_EXTENSIONS:
        return True
    try:
        with open(path, "rb") as f:
            f.seek(128)
            return f.read(4) == b"DICM"
    except OSError:
        return False


def _codec_hint(ds) -> str:
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    uid, name = str(syntax or ""), getattr(syntax, "name", str(syntax or "unknown"))
    family = next((fam for prefix, fam in _PREFIX_FAMILY if uid.startswith(prefix)), None)
    if family is None:
        return (f"its transfer syntax {name} ({uid}) has no decoder installed; pydicom's "
                "plugins cover JPEG, JPEG-LS, JPEG 2000 and RLE. Convert the file to an "
                "uncompressed transfer syntax (e.g. 'gdcmconv --raw' or 'dcmdjpeg').")
    return (f"it is compressed ({name}, {uid}) and no installed pydicom plugin decodes it: "
            f"pip install {CODEC_PACKAGES[family]}  (or pip install 'medsyn[dicom]').")


def parse_dicom_window(value) -> str:
    """``None`` -> ``"file"``; one of :data:`DICOM_WINDOWS`; else a DataError."""
    if value is None:
        return DEFAULT_DICOM_WINDOW
    if value not in DICOM_WINDOWS:
        raise DataError(f"DICOM window must be one of {', '.join(DICOM_WINDOWS)} (default "
                        f"{DEFAULT_DICOM_WINDOW}), got {value!r}.")
    return value


def read_dicom(path: Path, window: str | None = None) -> DicomImage:
    """Decode one DICOM file to a uint8 display image; errors name the file and the fix.
    ``window``: the VOI rule, one of :data:`DICOM_WINDOWS` (None: ``"file"``)."""
    rule = parse_dicom_window(window)
    import pydicom
    from pydicom.errors import InvalidDicomError
    from pydicom.pixels import apply_modality_lut

    try:
        ds = pydicom.dcmread(path, force=path.suffix.lower() in DICOM_EXTENSIONS)
    except (InvalidDicomError, OSError, EOFError, ValueError, KeyError) as exc:
        raise DataError(f"{path}: cannot be read as DICOM ({exc}).") from None
    if "PixelData" not in ds:
        raise DataError(f"{path}: DICOM file without (integer) pixel data (e.g. a report, a "
                        "DICOMDIR, or float pixel data); it holds no image medsyn can read.")
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        raise DataError(f"{path}: multi-frame DICOM ({frames} frames); medsyn reads 2-D "
                        "single-frame images. Export the frames you want as separate files.")
    photometric = str(ds.get("PhotometricInterpretation", "")).upper()
    try:
        stored = ds.pixel_array
    except (NotImplementedError, RuntimeError) as exc:
        # no decoder for the syntax, or every plugin for it lacks its package: say what to
        # install; a plugin that is there but fails means damaged data
        if isinstance(exc, NotImplementedError) or "missing dependencies" in str(exc):
            raise DataError(f"{path}: {_codec_hint(ds)}") from None
        raise DataError(f"{path}: pixel data cannot be decoded ({exc}).") from None
    except (ValueError, AttributeError, KeyError, TypeError) as exc:
        raise DataError(f"{path}: pixel data are damaged or incomplete ({exc}).") from None
    bits_stored = int(ds.get("BitsStored", 8))
    if int(ds.get("SamplesPerPixel", 1)) == 3:
        if stored.dtype != np.uint8 or stored.ndim != 3:
            raise DataError(f"{path}: colour DICOM with {bits_stored} bits per sample; medsyn "
                            "reads 8-bit colour only. Convert it to 8-bit RGB.")
        return DicomImage(np.ascontiguousarray(stored), "none (8-bit colour)", bits_stored,
                          photometric)
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise DataError(f"{path}: photometric interpretation {photometric or 'missing'!r} is "
                        "not supported (medsyn reads MONOCHROME1/2 and 8-bit RGB/YBR).")
    if stored.ndim != 2:
        raise DataError(f"{path}: expected one 2-D image, got pixel data of shape "
                        f"{stored.shape}.")
    values = apply_modality_lut(stored, ds)
    if rule == "file":
        display, lo, hi, applied = _voi(values, ds)
    else:
        display, (lo, hi), applied = values, *_image_window(values, rule)
    if hi > lo:
        unit = (np.asarray(display, dtype=np.float64) - lo) / (hi - lo)
        out = np.floor(np.clip(unit, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    else:                       # a constant image under a per-image rule: one grey, black
        out = np.zeros(values.shape, dtype=np.uint8)
    if photometric == "MONOCHROME1":
        out = 255 - out
        applied += ", MONOCHROME1 inverted"
    return DicomImage(out, applied, bits_stored, photometric)


def _image_window(values: np.ndarray, rule: str) -> tuple[tuple[float, float], str]:
    """The range [lo, hi] that a per-image rule maps to 0..255, and its description."""
    v = np.asarray(values, dtype=np.float64)
    if rule == "full":
        lo, hi = float(v.min()), float(v.max())
        return (lo, hi), "full range of each image after rescale (its own min..max)"
    low, high = PERCENTILE_WINDOW
    lo, hi = (float(x) for x in np.percentile(v, [low, high]))
    return (lo, hi), (f"{low:g}th..{high:g}th percentile of each image after rescale (linear "
                      "interpolation)")


def _voi(values: np.ndarray, ds) -> tuple[np.ndarray, float, float, str]:
    """VOI-transformed values, the transform's output range (lo maps to 0, hi to 255) and a
    description of what was applied."""
    from pydicom.multival import MultiValue
    from pydicom.pixels import apply_modality_lut, apply_voi_lut, apply_windowing

    has_lut = bool(ds.get("VOILUTSequence")) and ds.VOILUTSequence[0].get("LUTData") is not None
    has_window = ds.get("WindowCenter") is not None and ds.get("WindowWidth") is not None
    if has_lut:
        descriptor = ds.VOILUTSequence[0].LUTDescriptor
        bits = int(descriptor[2])
        n = len(ds.VOILUTSequence)
        explanation = ds.VOILUTSequence[0].get("LUTExplanation")
        return (apply_voi_lut(values, ds, index=0), 0.0, float(2 ** bits - 1),
                f"VOI LUT Sequence from the file (item 1 of {n}, {bits}-bit output"
                + (f", '{explanation}'" if explanation else "") + ")")
    if has_window:
        try:
            display = apply_windowing(values, ds, index=0)
            # pydicom maps below-window to y_min and above-window to y_max: the output range
            ends = apply_windowing(np.array([-np.inf, np.inf]), ds, index=0)
        except ValueError as exc:
            raise DataError(f"{ds.filename}: invalid window in the file ({exc}).") from None
        center, width = ds.WindowCenter, ds.WindowWidth
        n = len(center) if isinstance(center, MultiValue) else 1
        if n > 1:
            center, width = center[0], width[0]
        function = str(ds.get("VOILUTFunction", "LINEAR")).upper()
        return (display, float(ends[0]), float(ends[1]),
                f"window center {float(center):g} width {float(width):g} from the file "
                f"({function}" + (f", first of {n}" if n > 1 else "") + ")")
    # every value the stored bits can hold, through the modality LUT: the file's full range
    bits = int(ds.BitsStored)
    signed = int(ds.get("PixelRepresentation", 0)) == 1
    first = -(2 ** (bits - 1)) if signed else 0
    every = np.arange(first, first + 2 ** bits, dtype=np.int64)
    mapped = np.asarray(apply_modality_lut(every, ds), dtype=np.float64)
    if mapped.min() == mapped.max():
        raise DataError(f"{ds.filename}: its modality LUT maps every stored value to "
                        f"{mapped.min():g}; the image would be blank.")
    return values, float(mapped.min()), float(mapped.max()), FULL_RANGE_WINDOW
