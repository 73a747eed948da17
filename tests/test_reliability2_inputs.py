"""Faults and attacks, round 2 (issue 26; docs/reliability.md): inputs that are damaged,
hostile or merely odd. Damaged decoded-array and classifier caches, FIFOs and device links
named *.png, decompression bombs, non-UTF-8 names, oversized manifest fields, object arrays,
manifest rows naming no image, bit flips in a checkpoint's pickle header, classifier weights
of another network, and alpha-precision in dimensions constant on the reference.

Everything runs on tiny synthetic image folders through the public interfaces (the ``medsyn``
CLI, ``medsyn.data``, ``medsyn.generators``, ``medsyn.evaluators``).
"""

from __future__ import annotations

import json
import logging
import os
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from faults import TINY, make_image_folder, medsyn_subprocess, one_line_error
from PIL import Image
from typer.testing import CliRunner

from medsyn.cli import app
from medsyn.data import ImageDataset, load_dataset
from medsyn.errors import CheckpointError

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory) -> Path:
    return make_image_folder(tmp_path_factory.mktemp("images"))


@pytest.fixture
def small_folder(tmp_path) -> Path:
    """A fresh folder of 2 x 6 images the test may add odd files to."""
    return make_image_folder(tmp_path / "data", per_class=6)


class _Payload:
    """Unpickling this creates ``marker``: proof that a file ran code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _data_info(folder: Path) -> list[dict]:
    result = runner.invoke(app, ["data", "info", f"folder:{folder}", "--json"])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    return json.loads(result.stdout[result.stdout.index("["):])


def _skipped(info: dict) -> dict[str, str]:
    return {Path(s["path"]).name: s["reason"] for s in info["source"].get("skipped", [])}


# ---------------------------------------------------------------- 8. decoded-array cache


def test_damaged_decoded_array_cache_entry_is_discarded_and_decoded_again(
        tmp_path, monkeypatch, caplog, image_folder):
    monkeypatch.setenv("MEDSYN_CACHE_DIR", str(tmp_path / "cache"))
    name = f"folder:{image_folder}"
    fresh = load_dataset(name, "train")
    [pixels] = (tmp_path / "cache" / "arrays").glob("*.images.npy")
    blob = bytearray(pixels.read_bytes())
    blob[-100] ^= 0x04                          # one flipped bit: one pixel changes
    pixels.write_bytes(bytes(blob))
    with caplog.at_level(logging.WARNING):
        again = load_dataset(name, "train")
    assert torch.equal(again.images, fresh.images)
    recomputed = ImageDataset(again.name, again.split, again.images, again.labels,
                              again.class_names).fingerprint
    assert again.fingerprint == recomputed == fresh.fingerprint
    assert any("damaged array cache entry" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING):        # stored again, valid again
        third = load_dataset(name, "train")
    assert torch.equal(third.images, fresh.images)
    assert not any("damaged" in r.getMessage() for r in caplog.records)


# ---------------------------------------------------------------- 11. inputs that hang or crash


def test_fifo_and_device_link_named_png_are_skipped_without_being_read(small_folder):
    os.mkfifo(small_folder / "calm" / "pipe.png")
    os.symlink("/dev/zero", small_folder / "busy" / "zeros.png")
    os.symlink(small_folder / "calm" / "0.png", small_folder / "busy" / "linked.png")
    # a FIFO or /dev/zero read as an image never ends: a separate process, with a timeout
    done = medsyn_subprocess("data", "info", f"folder:{small_folder}", "--split", "all",
                             "--json", timeout=90)
    assert done.returncode == 0, done.stderr
    [info] = json.loads(done.stdout)
    skipped = _skipped(info)
    assert "not a regular file" in skipped["pipe.png"]
    assert "not a regular file" in skipped["zeros.png"]
    assert info["n_images"] == 13                # a link to a regular image is read
    # named explicitly, as --fake or as a checkpoint, a FIFO is refused before it is opened
    fifo = small_folder.parent / "pipe.pt"
    os.mkfifo(fifo)
    done = medsyn_subprocess("sample", "--checkpoint", fifo, "-n", "2", "--out",
                             small_folder.parent / "s", timeout=90)
    assert done.returncode == 1 and "not a regular file" in done.stderr, done.stderr


def _png_declaring(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width`` x ``height`` 8-bit gray pixels (a few bytes on
    disk: what a decompression bomb looks like to PIL before it decodes)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + \
            struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def test_decompression_bomb_is_skipped_with_a_reason(small_folder):
    (small_folder / "calm" / "bomb.png").write_bytes(_png_declaring(30000, 30000))
    [info] = _data_info(small_folder)
    assert "decompression bomb" in _skipped(info)["bomb.png"]
    assert info["n_images"] == 12


def test_an_image_file_over_the_size_limit_is_skipped_without_being_read(small_folder):
    huge = small_folder / "calm" / "volume.png"
    with huge.open("wb") as f:        # sparse: no disk space, but over the 1 GiB limit to read
        f.truncate((1 << 30) + 1)
    [info] = _data_info(small_folder)
    assert "more than an image file medsyn reads" in _skipped(info)["volume.png"]
    assert info["n_images"] == 12


def test_non_utf8_file_and_folder_names_are_skipped_with_a_reason(small_folder):
    bad_file = os.fsdecode(os.fsencode(small_folder / "calm") + b"/scan\xff.png")
    bad_class = os.fsdecode(os.fsencode(small_folder) + b"/caf\xe9")
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(bad_file, format="PNG")
    os.mkdir(bad_class)
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(Path(bad_class) / "0.png")
    [info] = _data_info(small_folder)
    skipped = _skipped(info)
    assert "not valid UTF-8" in skipped["scan\\xff.png"]
    assert "not valid UTF-8" in skipped["caf\\xe9"]
    assert info["class_names"] == ["busy", "calm"] and info["n_images"] == 12
    json.dumps(info).encode("utf-8")          # everything recorded is printable text


def test_manifest_field_over_the_csv_limit_is_a_one_line_error(small_folder):
    rows = ["path,label,patient_id"]
    for cls in ("busy", "calm"):
        rows += [f"{cls}/{i}.png,{cls},P{i}" for i in range(6)]
    rows[1] = rows[1].rsplit(",", 1)[0] + "," + "x" * 200_000
    (small_folder / "manifest.csv").write_text("\n".join(rows) + "\n")
    result = runner.invoke(app, ["data", "info", f"folder:{small_folder}"])
    one_line_error(result, "manifest.csv", "line 2")


def test_manifest_rows_naming_no_image_are_counted_in_a_warning(small_folder, caplog):
    rows = ["path,label,patient_id"]
    for cls in ("busy", "calm"):
        rows += [f"{cls}/{i}.png,{cls},P{cls}{i // 2}" for i in range(6)]
    rows += ["calm/missing.png,calm,P9", "busy\\typo.png,busy,P9", "elsewhere/x.png,calm,P9"]
    (small_folder / "manifest.csv").write_text("\n".join(rows) + "\n")
    with caplog.at_level(logging.WARNING):
        ds = load_dataset(f"folder:{small_folder}", "all")
    assert len(ds) == 12
    [warning] = [w for w in ds.source["warnings"] if "name no image" in w]
    assert "3 row(s)" in warning and "manifest.csv" in warning
    assert ds.source["manifest"]["rows_naming_no_image"] == 3
    assert any("name no image" in r.getMessage() for r in caplog.records)


def test_object_array_npz_as_fake_is_a_one_line_error(tmp_path, image_folder):
    marker = tmp_path / "code-ran"
    fake = tmp_path / "fake.npz"
    images = np.empty(2, dtype=object)
    images[0], images[1] = np.zeros((28, 28), np.uint8), _Payload(marker)
    np.savez(fake, images=images)
    result = runner.invoke(app, ["evaluate", "--fake", str(fake), "--real",
                                 f"folder:{image_folder}:train", "--extractor", "pixels",
                                 "--metrics", "fid", "--bootstrap", "0", "--device", "cpu",
                                 "--out", str(tmp_path / "eval")])
    one_line_error(result, str(fake), "object")
    assert not marker.exists()


# ---------------------------------------------------------------- 12. checkpoint header flips


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory, image_folder) -> Path:
    from medsyn.generators import train

    out = tmp_path_factory.mktemp("runs") / "cgan"
    train("cgan", dataset=f"folder:{image_folder}", out=str(out), epochs=1, max_steps=1,
          **TINY)
    return out / "last.pt"


def _pickle_record(path: Path) -> tuple[int, int]:
    """Offset and size of the checkpoint's pickle (``data.pkl``) inside the zip."""
    with zipfile.ZipFile(path) as z:
        info = next(i for i in z.infolist() if i.filename.endswith("/data.pkl"))
    with open(path, "rb") as f:
        f.seek(info.header_offset + 26)
        name_len, extra_len = struct.unpack("<HH", f.read(4))
    return info.header_offset + 30 + name_len + extra_len, info.file_size


def test_bit_flips_in_the_checkpoint_pickle_are_checkpoint_errors(tiny_checkpoint, tmp_path):
    from medsyn.generators import load_checkpoint

    blob = tiny_checkpoint.read_bytes()
    start, size = _pickle_record(tiny_checkpoint)
    rng = np.random.default_rng(1)
    flipped = tmp_path / "flipped.pt"
    other = {}
    for _ in range(300):
        at, bit = start + int(rng.integers(size)), int(rng.integers(8))
        damaged = bytearray(blob)
        damaged[at] ^= 1 << bit
        flipped.write_bytes(bytes(damaged))
        try:
            load_checkpoint(flipped)      # a harmless flip loads what was saved (digest holds)
        except CheckpointError as exc:
            assert str(flipped) in str(exc)
        except Exception as exc:  # noqa: BLE001 - any other exception is the defect
            other[(at, bit)] = f"{type(exc).__name__}: {exc}"
    assert not other, f"{len(other)} of 300 flips escaped as tracebacks: {other}"


# ---------------------------------------------------------------- 9. classifier cache


def test_empty_or_code_carrying_classifier_cache_entry_is_discarded_and_retrained(
        tmp_path, monkeypatch, image_folder):
    monkeypatch.setenv("MEDSYN_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "eval"
    args = ["evaluate", "--fake", str(image_folder / "calm"), "--real",
            f"folder:{image_folder}:train", "--extractor", "classifier", "--metrics", "fid",
            "--utility-epochs", "1", "--bootstrap", "0", "--device", "cpu", "--out", str(out)]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    [weights] = (tmp_path / "cache" / "classifiers").glob("*.pt")
    marker = tmp_path / "code-ran"
    for damage in ("empty", "code"):
        if damage == "empty":
            weights.write_bytes(b"")
        else:
            torch.save({"conv1.weight": torch.zeros(1), "x": _Payload(marker)}, weights)
        result = runner.invoke(app, args + ["--overwrite"])
        assert result.exit_code == 0, f"{damage}: {result.output}"
        assert "Traceback" not in result.output and "Aborted" not in result.output
        assert not marker.exists()
        assert torch.load(weights, weights_only=True)      # retrained and stored again


# ---------------------------------------------------------------- 7. classifier weights


@pytest.mark.parametrize("network", ["a small conv net", "resnet34"])
def test_classifier_weights_of_another_network_are_refused(tmp_path, image_folder, network):
    import timm

    wrong = tmp_path / "weights.pth"
    if network == "resnet34":        # the shared layers fit; its extra blocks would be dropped
        state = timm.create_model("resnet34", pretrained=False).state_dict()
    else:                            # nothing fits: resnet18 would train from random weights
        state = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(),
                                    torch.nn.Conv2d(8, 8, 3)).state_dict()
    torch.save(state, wrong)
    result = runner.invoke(app, [
        "evaluate", "--fake", str(image_folder / "calm"), "--real",
        f"folder:{image_folder}:train", "--extractor", "classifier", "--metrics", "fid",
        "--utility-epochs", "1", "--bootstrap", "0", "--device", "cpu", "--no-cache",
        "--classifier-weights", str(wrong), "--out", str(tmp_path / "eval")])
    line = one_line_error(result, str(wrong), "resnet18")
    assert ("missing" if network != "resnet34" else "unexpected") in line
    assert not (tmp_path / "eval" / "results.json").exists()


# ---------------------------------------------------------------- 14. alpha-precision


def _synthcity_naive(real: np.ndarray, fake: np.ndarray) -> dict:
    """synthcity's AlphaPrecision "naive" scores, transcribed from
    vanderschaarlab/synthcity src/synthcity/metrics/eval_statistical.py (commit 23f322f,
    ``AlphaPrecision._normalize_covariates`` and ``metrics``): scikit-learn's MinMaxScaler
    fitted on the reals, centre = real mean, 30 levels, NearestNeighbors for the rest."""
    from sklearn.neighbors import NearestNeighbors
    from sklearn.preprocessing import MinMaxScaler

    scaler = MinMaxScaler().fit(real)
    x, x_syn = scaler.transform(real), scaler.transform(fake)
    alphas = np.linspace(0, 1, 30)
    centre = x.mean(0)
    radii = np.quantile(np.sqrt(((x - centre) ** 2).sum(1)), alphas)
    synth_centre = x_syn.mean(0)
    synth_to_centre = np.sqrt(((x_syn - centre) ** 2).sum(1))
    real_to_real = NearestNeighbors(n_neighbors=2).fit(x).kneighbors(x)[0][:, 1]
    real_to_synth, args = NearestNeighbors(n_neighbors=1).fit(x_syn).kneighbors(x)
    real_to_synth, args = real_to_synth[:, 0], args[:, 0]
    closest_d = np.sqrt(((x_syn[args] - synth_centre) ** 2).sum(1))
    closest_radii = np.quantile(closest_d, alphas)
    precision = np.array([np.mean(synth_to_centre <= r) for r in radii])
    recall = np.array([np.mean((real_to_synth <= real_to_real) * (closest_d <= b))
                       for b in closest_radii])
    return {"alpha_precision_curve": precision, "beta_recall_curve": recall,
            "alpha_precision": 1 - np.abs(alphas - precision).sum() / alphas.sum(),
            "beta_recall": 1 - np.abs(alphas - recall).sum() / alphas.sum()}


def test_alpha_precision_keeps_dimensions_constant_on_the_reference_as_synthcity():
    from medsyn.evaluators.metrics.distribution.alpha_precision import alpha_precision_beta_recall

    rng = np.random.default_rng(0)
    real = np.hstack([rng.normal(size=(300, 8)), np.zeros((300, 1))])
    faithful = np.hstack([rng.normal(size=(300, 8)), np.zeros((300, 1))])
    off = faithful.copy()
    off[:, -1] = 1000.0                  # off the reference's support in one dimension only
    good = alpha_precision_beta_recall(real, faithful)
    bad = alpha_precision_beta_recall(real, off)
    assert good["alpha_precision"] > 0.9
    assert bad["alpha_precision"] == pytest.approx(0.0) and bad["beta_recall"] == 0.0
    for fake in (faithful, off):
        ours = alpha_precision_beta_recall(real, fake, recall_rule="synthcity")
        theirs = _synthcity_naive(real, fake)
        np.testing.assert_allclose(ours["alpha_precision_curve"],
                                   theirs["alpha_precision_curve"], atol=1e-12)
        np.testing.assert_allclose(ours["beta_recall_curve"], theirs["beta_recall_curve"],
                                   atol=1e-12)
        assert ours["alpha_precision"] == pytest.approx(theirs["alpha_precision"], abs=0.02)
    assert _synthcity_naive(real, off)["alpha_precision"] == pytest.approx(0.0)


def test_alpha_precision_in_pixel_space_sees_fakes_white_where_the_reference_is_black():
    """MNIST-like: digits never touch the border, so those pixels are constant (0) on the
    reference; fakes that are white there are off its support."""
    from medsyn.evaluators.metrics.distribution.alpha_precision import alpha_precision_beta_recall

    rng = np.random.default_rng(1)
    real = np.zeros((200, 16, 16))
    real[:, 4:12, 4:12] = rng.random((200, 8, 8))
    fake = np.zeros((200, 16, 16))
    fake[:, 4:12, 4:12] = rng.random((200, 8, 8))
    white_border = fake.copy()
    white_border[:, 0, :] = 1.0
    ok = alpha_precision_beta_recall(real.reshape(200, -1), fake.reshape(200, -1))
    off = alpha_precision_beta_recall(real.reshape(200, -1), white_border.reshape(200, -1))
    assert ok["alpha_precision"] > 0.8
    assert off["alpha_precision"] < 0.1
