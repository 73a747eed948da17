"""Clinical inputs: DICOM, 12/16-bit PNGs and plain folders, checked pixel for pixel.

Expected uint8 values are written from the formulas of the DICOM standard (PS3.3 C.11.2.1.2,
the LINEAR window; C.11.1, rescale; C.7.6.3.1.2, MONOCHROME1) and from integer arithmetic for
the bit-depth rules, not by calling medsyn's helpers.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pydicom
import pytest
import torch
from dicom_files import write_dicom
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from typer.testing import CliRunner

from medsyn.cli import app
from medsyn.data import load_dataset
from medsyn.errors import DataError
from medsyn.evaluators.inputs import parse_real

runner = CliRunner()
H, W = 12, 10


def _rng_values(seed, lo, hi):
    return np.random.default_rng(seed).integers(lo, hi, (H, W))


def _round_half_up(x):
    return np.floor(np.asarray(x, dtype=np.float64) + 0.5)


def _only_image(root):
    ds = load_dataset(f"folder:{root}", split="all")
    assert len(ds) == 1
    return ds, ds.images[0, 0].numpy()


# ------------------------------------------------------------------ DICOM


def test_dicom_12_bits_in_16_rescale_and_window(tmp_path):
    values = _rng_values(0, 0, 4096)
    garbage = np.random.default_rng(1).integers(0, 16, (H, W)) << 12   # bits above BitsStored
    c, w, slope, intercept = 500.0, 1200.0, 2.0, -1024.0
    write_dicom(tmp_path / "d" / "a.dcm", values | garbage, slope=slope, intercept=intercept,
                window=(c, w))
    ds, got = _only_image(tmp_path / "d")
    # PS3.3 C.11.1: modality value; C.11.2.1.2.1: LINEAR window into 0..255
    v = values * slope + intercept
    expected = np.where(v <= c - 0.5 - (w - 1) / 2, 0,
                        np.where(v > c - 0.5 + (w - 1) / 2, 255,
                                 _round_half_up(((v - (c - 0.5)) / (w - 1) + 0.5) * 255)))
    assert (expected == 0).any() and (expected == 255).any()       # both clips exercised
    np.testing.assert_array_equal(got, expected.astype(np.uint8))
    windows = ds.source["intensity"]["dicom_window_per_file"]
    assert windows == {"a.dcm": "window center 500 width 1200 from the file (LINEAR)"}
    assert ds.source["intensity"]["bit_depths"] == {"DICOM, 12 bits stored": 1}


def test_dicom_monochrome1_without_window_uses_the_full_stored_range(tmp_path):
    values = _rng_values(2, 0, 4096)
    write_dicom(tmp_path / "d" / "b.dcm", values, photometric="MONOCHROME1")
    ds, got = _only_image(tmp_path / "d")
    # no window: 0..4095 -> 0..255, then MONOCHROME1 (0 = white) inverted
    expected = 255 - (values * 510 + 4095) // 8190            # integer round half up
    np.testing.assert_array_equal(got, expected.astype(np.uint8))
    window = ds.source["intensity"]["dicom_window_per_file"]["b.dcm"]
    assert window.startswith("full range of the stored bits") and "MONOCHROME1 inverted" in window


def test_dicom_signed_with_rescale_and_no_window(tmp_path):
    values = _rng_values(3, -2048, 2048)
    write_dicom(tmp_path / "d" / "c.dcm", values, signed=True, slope=1.0, intercept=-1024.0)
    _, got = _only_image(tmp_path / "d")
    # stored range -2048..2047 -> modality range -3072..1023 (4095 wide)
    expected = ((values + 2048) * 510 + 4095) // 8190
    np.testing.assert_array_equal(got, expected.astype(np.uint8))


def test_dicom_voi_lut_sequence_wins_and_monochrome1_window(tmp_path):
    values = _rng_values(4, 0, 4096)
    lut = np.round(np.sqrt(np.arange(4096) / 4095) * 4095).astype(int)
    write_dicom(tmp_path / "lut" / "e.dcm", values, voi_lut=lut, window=(2000.0, 100.0))
    ds, got = _only_image(tmp_path / "lut")
    np.testing.assert_array_equal(got, ((lut[values] * 510 + 4095) // 8190).astype(np.uint8))
    assert "VOI LUT Sequence" in ds.source["intensity"]["dicom_window_per_file"]["e.dcm"]

    c, w = 2048.0, 4096.0
    write_dicom(tmp_path / "m1" / "f.dcm", values, photometric="MONOCHROME1", window=(c, w))
    _, got = _only_image(tmp_path / "m1")
    linear = _round_half_up(np.clip((values - (c - 0.5)) / (w - 1) + 0.5, 0, 1) * 255)
    np.testing.assert_array_equal(got, (255 - linear).astype(np.uint8))


def _percentile_by_hand(values, q):
    """numpy's default (linear) percentile, written out: rank q/100 * (N - 1) in the sorted
    values, interpolated between its two neighbours."""
    s = np.sort(np.asarray(values, dtype=np.float64).ravel())
    rank = q / 100 * (len(s) - 1)
    below = int(np.floor(rank))
    above = min(below + 1, len(s) - 1)
    return s[below] + (rank - below) * (s[above] - s[below])


def test_dicom_window_alternatives_by_hand(tmp_path, monkeypatch):
    """The three window rules on a 12-bit file with rescale, a VOI window and one burnt-in
    marker pixel (4095): 'file' is PS3.3 C.11.2.1.2.1's LINEAR window (the default, unchanged),
    'full' the image's own min..max after rescale, 'percentile' its 0.5..99.5 percentiles."""
    import medsyn.data.folder as folder

    values = np.random.default_rng(21).integers(1000, 2000, (H, W))
    values[0, 0] = 4095                                     # a marker far above the anatomy
    c, w, slope, intercept = 400.0, 800.0, 1.0, -1024.0
    root = tmp_path / "d"
    write_dicom(root / "a.dcm", values, slope=slope, intercept=intercept, window=(c, w))
    write_dicom(tmp_path / "m1" / "b.dcm", values, photometric="MONOCHROME1", slope=slope,
                intercept=intercept, window=(c, w))
    v = values * slope + intercept                          # C.11.1 modality values
    by_rule = {
        "file": np.where(v <= c - 0.5 - (w - 1) / 2, 0,
                         np.where(v > c - 0.5 + (w - 1) / 2, 255,
                                  _round_half_up(((v - (c - 0.5)) / (w - 1) + 0.5) * 255))),
        "full": _round_half_up((v - v.min()) / (v.max() - v.min()) * 255),
    }
    lo, hi = _percentile_by_hand(v, 0.5), _percentile_by_hand(v, 99.5)
    assert lo > v.min() and hi < v.max() == 3071             # the marker is clipped away
    by_rule["percentile"] = _round_half_up(np.clip((v - lo) / (hi - lo), 0, 1) * 255)

    keys = []
    real_key = folder.array_cache_key
    monkeypatch.setattr(folder, "array_cache_key", lambda **kw: keys.append(kw) or real_key(**kw))
    default = load_dataset(f"folder:{root}", split="all")
    for rule, expected in by_rule.items():
        ds = load_dataset(f"folder:{root}", split="all", dicom_window=rule)
        got = ds.images[0, 0].numpy()
        np.testing.assert_array_equal(got, expected.astype(np.uint8), err_msg=rule)
        inverted = load_dataset(f"folder:{tmp_path / 'm1'}", split="all", dicom_window=rule)
        np.testing.assert_array_equal(inverted.images[0, 0].numpy(),
                                      (255 - expected).astype(np.uint8), err_msg=rule)
    # the three rules differ on this image, and the default is the file's window, bit for bit
    assert len({by_rule[r].tobytes() for r in by_rule}) == 3
    assert torch.equal(default.images, load_dataset(f"folder:{root}", split="all",
                                                    dicom_window="file").images)
    # the default's cache key has the parts it always had; another window adds one
    folder_keys = [k for k in keys if k.get("kind") == "image-folder"]
    assert "dicom_window" not in folder_keys[0] and "dicom_window" not in folder_keys[1]
    assert {k.get("dicom_window") for k in folder_keys} == {None, "full", "percentile"}
    full = load_dataset(f"folder:{root}", split="all", dicom_window="full")
    assert full.source["intensity"]["dicom_window_rule"] == "full"
    assert full.source["intensity"]["dicom_window_per_file"]["a.dcm"].startswith(
        "full range of each image after rescale")
    assert "dicom_window_rule" not in default.source["intensity"]
    with pytest.raises(DataError, match="DICOM window must be one of file, full, percentile"):
        load_dataset(f"folder:{root}", split="all", dicom_window="soft tissue")


def test_dicom_window_alternatives_by_hand_16_bit_signed(tmp_path):
    """The same three rules on a signed 16-bit CT-like file (Bits Stored 16, slope 0.5,
    intercept -1024, a soft-tissue window 40/400), 40 x 40 pixels with one pixel of padding far
    below the anatomy and one marker far above it (each under 0.5 % of the pixels); MONOCHROME2."""
    values = np.random.default_rng(22).integers(1800, 2400, (40, 40))    # -124 .. 175.5 HU
    values[0, 0], values[-1, -1] = -32768, 32767
    c, w, slope, intercept = 40.0, 400.0, 0.5, -1024.0
    write_dicom(tmp_path / "ct" / "a.dcm", values, bits_stored=16, signed=True, slope=slope,
                intercept=intercept, window=(c, w))
    v = values * slope + intercept                                       # C.11.1
    lo, hi = _percentile_by_hand(v, 0.5), _percentile_by_hand(v, 99.5)
    by_rule = {
        "file": np.where(v <= c - 0.5 - (w - 1) / 2, 0,
                         np.where(v > c - 0.5 + (w - 1) / 2, 255,
                                  _round_half_up(((v - (c - 0.5)) / (w - 1) + 0.5) * 255))),
        "full": _round_half_up((v - v.min()) / (v.max() - v.min()) * 255),
        "percentile": _round_half_up(np.clip((v - lo) / (hi - lo), 0, 1) * 255),
    }
    assert v.min() == -17408 and v.max() == 15359.5
    for rule, expected in by_rule.items():
        ds = load_dataset(f"folder:{tmp_path / 'ct'}", split="all", dicom_window=rule)
        np.testing.assert_array_equal(ds.images[0, 0].numpy(), expected.astype(np.uint8),
                                      err_msg=rule)
        assert ds.source["intensity"]["bit_depths"] == {"DICOM, 16 bits stored": 1}
    # the full range squeezes the anatomy (300 HU of 32768) into a few grey levels; the
    # percentile window spreads it over most of 0..255, as the file's window does
    inside = np.s_[1:-1, :]
    assert np.ptp(by_rule["full"][inside]) <= 3
    assert np.ptp(by_rule["percentile"][inside]) > 100 and np.ptp(by_rule["file"][inside]) > 100


def test_dicom_compressed_rle_and_jpeg_ls_decode_like_uncompressed(tmp_path):
    from pydicom.uid import JPEGLSLossless, RLELossless

    values = _rng_values(5, 0, 4096).astype(np.uint16)
    plain = write_dicom(tmp_path / "d" / "0plain.dcm", values)
    codecs = [RLELossless]
    try:
        import jpeg_ls  # noqa: F401  (pyjpegls)
        codecs.append(JPEGLSLossless)
    except ImportError:
        pass
    for i, uid in enumerate(codecs):
        copy = pydicom.dcmread(tmp_path / "d" / "0plain.dcm")
        copy.compress(uid, values)
        copy.save_as(tmp_path / "d" / f"{i + 1}compressed.dcm", enforce_file_format=True)
    ds = load_dataset(f"folder:{tmp_path / 'd'}", split="all")
    assert len(ds) == 1 + len(codecs) and "skipped" not in ds.source
    for i in range(1, len(ds)):
        assert np.array_equal(ds.images[i].numpy(), ds.images[0].numpy())
    assert plain.BitsStored == 12


def test_dicom_refusals_name_the_file_and_the_fix(tmp_path):
    from medsyn.data.formats.dicom import _codec_hint, read_dicom

    values = _rng_values(6, 0, 4096)
    multi = tmp_path / "multi.dcm"
    write_dicom(multi, np.stack([values, values]), frames=2)
    with pytest.raises(DataError, match=r"multi.dcm: multi-frame DICOM \(2 frames\)"):
        read_dicom(multi)
    mpeg = tmp_path / "video.dcm"
    write_dicom(mpeg, values, bits_stored=8, syntax="1.2.840.10008.1.2.4.100",
                raw_bytes=encapsulate([b"\0" * 16]))
    with pytest.raises(DataError, match=r"video.dcm: .*MPEG2.* no decoder installed"):
        read_dicom(mpeg)
    j2k = Dataset()
    j2k.file_meta = FileMetaDataset()
    j2k.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.90"
    assert "pip install pylibjpeg pylibjpeg-openjpeg" in _codec_hint(j2k)


def test_compressed_dicom_without_its_plugin_names_what_to_install(tmp_path, monkeypatch):
    from pydicom.uid import JPEG2000Lossless

    from medsyn.data.formats.dicom import read_dicom

    path = tmp_path / "j2k.dcm"
    write_dicom(path, _rng_values(12, 0, 4096), syntax=JPEG2000Lossless,
                raw_bytes=encapsulate([b"\0" * 16]))

    def missing(self):          # what pydicom raises when no plugin's package is installed
        raise RuntimeError("Unable to decompress 'JPEG 2000 Image Compression (Lossless Only)' "
                           "pixel data because all plugins are missing dependencies:\n\tgdcm")

    monkeypatch.setattr(pydicom.dataset.Dataset, "pixel_array", property(missing))
    with pytest.raises(DataError, match=r"j2k.dcm: it is compressed \(JPEG 2000 .*1\.2\.840"
                                        r"\.10008\.1\.2\.4\.90\) .*pip install pylibjpeg "
                                        r"pylibjpeg-openjpeg"):
        read_dicom(path)


# ------------------------------------------------------------------ 12/16-bit PNG


def _png16(path, values, sbit=None):
    """A 16-bit grayscale PNG; ``sbit`` inserts an sBIT chunk (significant bits) after IHDR."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(values.astype(np.uint16)).save(path)
    if sbit is not None:
        data = path.read_bytes()
        ihdr_end = 8 + 8 + 13 + 4
        body = b"sBIT" + bytes([sbit])
        chunk = struct.pack(">I", 1) + body + struct.pack(">I", zlib.crc32(body))
        path.write_bytes(data[:ihdr_end] + chunk + data[ihdr_end:])


def _twelve_bit_copies(root, n=6, seed=7, sbit=None):
    """8-bit originals and their 12-bit copies round(v * 4095 / 255) as 16-bit PNGs."""
    rng = np.random.default_rng(seed)
    originals = rng.integers(0, 256, (n, H, W))
    originals[0, 0, 0], originals[0, 0, 1] = 0, 255
    for i, img in enumerate(originals):
        _png16(root / f"{i}.png", (img * 8190 + 255) // 510, sbit=sbit)
    return originals


def test_12_bit_png_loads_as_the_8_bit_original(tmp_path):
    originals = _twelve_bit_copies(tmp_path / "p12")
    ds = load_dataset(f"folder:{tmp_path / 'p12'}", split="all")
    np.testing.assert_array_equal(ds.images[:, 0].numpy(), originals)
    rule = ds.source["intensity"]["bit_depth_rule"]
    assert rule.startswith("12 bits: the smallest of 8/10/12/14/16 bits") and "4095" in rule
    assert ds.source["intensity"]["bit_depths"] == {"PNG 16-bit": 6}
    assert "warnings" not in ds.source


def test_declared_sbit_and_explicit_bit_depth_and_minmax(tmp_path, caplog):
    _twelve_bit_copies(tmp_path / "sbit", sbit=12)
    ds = load_dataset(f"folder:{tmp_path / 'sbit'}", split="all")
    assert ds.source["intensity"]["bit_depth_rule"].startswith("12 bits, declared by the files")
    assert ds.source["intensity"]["bit_depths"] == {"PNG 16-bit, 12 significant (sBIT)": 6}

    root = tmp_path / "p"
    _twelve_bit_copies(root)
    raw = np.stack([np.asarray(Image.open(root / f"{i}.png")).astype(np.int64)
                    for i in range(6)])
    as16 = load_dataset(f"folder:{root}", split="all", bit_depth=16)
    np.testing.assert_array_equal(as16.images[:, 0].numpy(), (raw * 510 + 65535) // 131070)
    assert any("use only 6.2 % of the 16-bit range" in w for w in as16.source["warnings"])
    assert "6.2 %" in caplog.text
    lo, hi = raw.min(), raw.max()
    minmax = load_dataset(f"folder:{root}", split="all", bit_depth="minmax")
    expected = ((raw - lo) * 510 + (hi - lo)) // (2 * (hi - lo))
    np.testing.assert_array_equal(minmax.images[:, 0].numpy(), expected)
    with pytest.raises(DataError, match=r"holds the value 4095, above the 10-bit maximum 1023"):
        load_dataset(f"folder:{root}", split="all", bit_depth=10)
    with pytest.raises(DataError, match="bit depth must be"):
        load_dataset(f"folder:{root}", split="all", bit_depth="17")


def test_one_rule_for_every_split_of_a_dataset(tmp_path):
    """A dark test split (max 1000) is scaled as the 12-bit dataset it belongs to, not as
    10-bit data of its own."""
    rng = np.random.default_rng(8)
    bright = rng.integers(0, 4096, (H, W))
    bright[0, 0] = 4095
    dark = rng.integers(0, 1001, (H, W))
    _png16(tmp_path / "ds" / "train" / "x" / "0.png", bright)
    _png16(tmp_path / "ds" / "test" / "x" / "0.png", dark)
    test = load_dataset(f"folder:{tmp_path / 'ds'}", split="test")
    np.testing.assert_array_equal(test.images[0, 0].numpy(), (dark * 510 + 4095) // 8190)
    assert test.source["intensity"]["bit_depth_rule"].startswith("12 bits")


# ------------------------------------------------------------------ folders


def _png8(path, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((H, W), value, np.uint8)).save(path)


def test_mixed_folder_counts_classes_depths_windows_and_names_every_skipped_file(tmp_path):
    root = tmp_path / "scans"
    for i in range(3):
        _png8(root / "normal" / f"n{i}.png", 10 * i)
    _png16(root / "normal" / "n12bit.png", np.full((H, W), 4095))
    write_dicom(root / "sick" / "s0.dcm", _rng_values(9, 0, 4096), window=(2048.0, 4096.0))
    write_dicom(root / "sick" / "IM0001", _rng_values(10, 0, 4096))      # DICOM without extension
    (root / "sick" / "report.txt").write_text("findings")
    (root / "sick" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    write_dicom(root / "sick" / "cine.dcm", np.stack([_rng_values(11, 0, 4096)] * 3), frames=3)
    (root / "sick" / "deeper").mkdir()
    ds = load_dataset(f"folder:{root}", split="all")
    assert ds.class_counts() == {"normal": 4, "sick": 2}
    assert ds.source["layout"] == "classes"
    intensity = ds.source["intensity"]
    assert intensity["bit_depths"] == {"DICOM, 12 bits stored": 2, "PNG 16-bit": 1,
                                       "PNG 8-bit": 3}
    assert set(intensity["dicom_window_per_file"]) == {"sick/s0.dcm", "sick/IM0001"}
    skipped = {item["path"]: item["reason"] for item in ds.source["skipped"]}
    assert set(skipped) == {str(root / "sick" / n)
                            for n in ("report.txt", "broken.png", "cine.dcm", "deeper")}
    assert "multi-frame" in skipped[str(root / "sick" / "cine.dcm")]
    warning = next(w for w in ds.source["warnings"] if "not used" in w)
    assert warning.startswith(f"{root}: 4 file(s) not used")
    for name in ("report.txt", "broken.png", "cine.dcm", "deeper"):
        assert name in warning

    result = runner.invoke(app, ["data", "info", str(root)])
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    for text in ("normal", "sick", "all", "PNG 16-bit: 1", "DICOM, 12 bits stored: 2",
                 "window center 2048 width 4096", "full range of the stored bits",
                 "intensity rule: 12 bits", "report.txt", "multi-frame"):
        assert text in out, text


def test_flat_folder_uses_all_images_and_the_automatic_split_says_so(tmp_path):
    root = tmp_path / "five"
    for i in range(5):
        _png8(root / f"{i}.png", 40 * i)
    ds = load_dataset(str(root), split="all")
    assert len(ds) == 5 and ds.class_names == ["unlabelled"] and ds.source["layout"] == "flat"
    assert "warnings" not in ds.source
    assert parse_real(str(root)) == (f"folder:{root}", "all")
    assert parse_real(f"folder:{root}") == (f"folder:{root}", "all")
    assert parse_real(f"{root}:test") == (f"folder:{root}", "test")
    assert parse_real("cxr3") == ("cxr3", "train")
    train = load_dataset(f"folder:{root}", split="train")
    assert len(train) == 3
    assert any("automatic 70/10/20 split's train part (3 of 5 images)" in w
               for w in train.source["warnings"])
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(str(tmp_path / "missing" / "dir"))


def test_cache_key_holds_the_intensity_rule(tmp_path):
    root = tmp_path / "p"
    _twelve_bit_copies(root)
    first = load_dataset(f"folder:{root}", split="all")
    as16 = load_dataset(f"folder:{root}", split="all", bit_depth=16)
    again = load_dataset(f"folder:{root}", split="all")
    assert first.fingerprint != as16.fingerprint
    assert first.fingerprint == again.fingerprint
    assert again.source["intensity"] == first.source["intensity"]


def test_single_file_decode_applies_the_rule_to_that_file(tmp_path):
    from medsyn.data.formats.intensity import decode_image

    originals = _twelve_bit_copies(tmp_path / "p", n=1)
    np.testing.assert_array_equal(decode_image(tmp_path / "p" / "0.png"), originals[0])
    values = _rng_values(13, 0, 4096)
    write_dicom(tmp_path / "x.dcm", values)
    np.testing.assert_array_equal(decode_image(tmp_path / "x.dcm"),
                                  ((values * 510 + 4095) // 8190).astype(np.uint8))


def test_metadata_beside_class_or_split_folders_is_not_data_but_stray_images_are_named(tmp_path):
    root = tmp_path / "ds"
    _png8(root / "train" / "a" / "0.png", 1)
    _png8(root / "test" / "a" / "0.png", 2)
    (root / "files.csv").write_text("path,patient\n")
    _png8(root / "stray.png", 3)
    (root / "extra").mkdir()
    ds = load_dataset(str(root), split="all")
    assert len(ds) == 2
    assert {item["path"] for item in ds.source["skipped"]} == {str(root / "stray.png"),
                                                               str(root / "extra")}
    (root / "train" / "a" / "notes.txt").write_text("in a class folder: named")
    flat = tmp_path / "classes"
    _png8(flat / "a" / "0.png", 1)
    (flat / "README.md").write_text("about this set")
    assert "skipped" not in load_dataset(str(flat), split="all").source
    assert str(root / "train" / "a" / "notes.txt") in {
        item["path"] for item in load_dataset(str(root), split="all").source["skipped"]}


def test_dicom_8_bit_rgb_is_used_as_is(tmp_path):
    rgb = np.random.default_rng(14).integers(0, 256, (H, W, 3)).astype(np.uint8)
    for name, pixels in (("colour.dcm", rgb), ("grey.dcm", np.repeat(rgb[..., :1], 3, 2))):
        ds = write_dicom(tmp_path / name, np.zeros((H, W)), bits_stored=8, photometric="RGB",
                         raw_bytes=pixels.tobytes())
        ds.SamplesPerPixel, ds.PlanarConfiguration, ds.BitsAllocated = 3, 0, 8
        ds.save_as(tmp_path / name, enforce_file_format=True)
    from medsyn.data.formats.imageio import decode_raw

    colour, grey = decode_raw(tmp_path / "colour.dcm"), decode_raw(tmp_path / "grey.dcm")
    np.testing.assert_array_equal(colour.pixels, rgb)
    np.testing.assert_array_equal(grey.pixels, rgb[..., 0])
    assert colour.window == "none (8-bit colour)"


def test_12_bit_tiff_follows_the_same_rule(tmp_path):
    originals = np.random.default_rng(15).integers(0, 256, (3, H, W))
    originals[0, 0, 0] = 255
    (tmp_path / "t").mkdir()
    for i, img in enumerate(originals):
        Image.fromarray(((img * 8190 + 255) // 510).astype(np.uint16)).save(
            tmp_path / "t" / f"{i}.tif")
    ds = load_dataset(str(tmp_path / "t"), split="all")
    np.testing.assert_array_equal(ds.images[:, 0].numpy(), originals)
    assert ds.source["intensity"]["bit_depths"] == {"TIFF 16-bit": 3}
