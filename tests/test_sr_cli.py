"""``medsyn train srresnet|srgan`` and ``medsyn sr`` from the command line: options, TOML
config, upscaling user images (grayscale, RGB, folders) and one-line errors."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from medsyn.cli import app
from medsyn.generators import load_checkpoint
from medsyn.generators.sr.training import train_sr

TINY = dict(scale=4, n_blocks=1, features=8, batch_size=32, device="cpu", quiet=True,
            max_steps=2)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def gray_model(tmp_path_factory, data_root):
    out = tmp_path_factory.mktemp("sr-gray") / "run"
    return train_sr("srresnet", dataset="breastmnist", hr_size=32, out=str(out), **TINY)


@pytest.fixture(scope="module")
def rgb_model(tmp_path_factory):
    """A tiny srresnet trained on a folder of random RGB images (an RGB dataset)."""
    root = tmp_path_factory.mktemp("rgb-data")
    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (root / "train" / cls).mkdir(parents=True)
        for i in range(20):
            Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(
                root / "train" / cls / f"{i}.png")
    out = tmp_path_factory.mktemp("sr-rgb") / "run"
    return train_sr("srresnet", dataset=f"folder:{root}", out=str(out), **TINY)


def _png(path, array):
    Image.fromarray(array).save(path)
    return path


def test_cli_train_with_config_file(tmp_path, data_root):
    cfg = tmp_path / "sr.toml"
    cfg.write_text('dataset = "breastmnist"\nhr-size = 32\nn_blocks = 1\nfeatures = 8\n'
                   'd_features = 8\nbatch_size = 64\ndevice = "cpu"\nquiet = true\n'
                   "pretrain_epochs = 1\nepochs = 3\n")
    result = CliRunner().invoke(app, ["train", "srgan", "--config", str(cfg), "--patch-size",
                                      "16", "--max-steps", "2", "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (config["kind"], config["patch_size"], config["n_blocks"], config["epochs"]) == \
        ("srgan", 16, 1, 3)
    # adversarial phase = epochs 2-3; lr x 0.1 from the middle of it
    assert config["lr_decay_epoch"] == 3 and config["content_loss"] == "auto"
    assert load_checkpoint(tmp_path / "run" / "last.pt").kind == "srgan"


def test_sr_upscales_gray_images_files_and_folders(tmp_path, gray_model):
    rng = np.random.default_rng(1)
    a = _png(tmp_path / "a.png", rng.integers(0, 256, (10, 12), dtype=np.uint8))
    scans = tmp_path / "scans"
    scans.mkdir()
    gray = rng.integers(0, 256, (9, 7), dtype=np.uint8)
    _png(scans / "b.png", np.repeat(gray[:, :, None], 3, axis=2))     # RGB file, R = G = B
    Image.fromarray(gray).save(scans / "c.jpg", quality=95)
    (scans / "notes.txt").write_text("ignored: not an image extension")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["sr", str(a), str(scans), "--checkpoint",
                                      str(gray_model / "last.pt"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png", "c.png", "sr.json"]
    model = load_checkpoint(gray_model / "last.pt")
    written = np.asarray(Image.open(out / "b.png"))
    assert Image.open(out / "b.png").mode == "L" and written.shape == (36, 28)
    expected = model.upscale(torch.from_numpy(gray)[None, None])[0, 0].numpy()
    assert np.array_equal(written, expected)
    assert Image.open(out / "a.png").size == (48, 40)
    manifest = json.loads((out / "sr.json").read_text())
    assert manifest["checkpoint"]["kind"] == "srresnet" and manifest["checkpoint"]["scale"] == 4
    assert [e["output"] for e in manifest["images"]] == ["a.png", "b.png", "c.png"]
    assert manifest["images"][0]["lr_size"] == [10, 12]
    assert manifest["images"][0]["sr_size"] == [40, 48]

    # nothing is overwritten without --overwrite
    before = (out / "a.png").read_bytes()
    result = CliRunner().invoke(app, ["sr", str(a), "-c", str(gray_model / "last.pt"), "-o",
                                      str(out)])
    assert result.exit_code == 1 and "exist already" in result.stderr
    assert (out / "a.png").read_bytes() == before
    result = CliRunner().invoke(app, ["sr", str(a), "-c", str(gray_model / "last.pt"), "-o",
                                      str(out), "--overwrite"])
    assert result.exit_code == 0, result.output


def test_sr_with_an_rgb_model(tmp_path, rgb_model):
    model = load_checkpoint(rgb_model / "last.pt")
    assert model.channels == 3
    rng = np.random.default_rng(2)
    colour = _png(tmp_path / "colour.png", rng.integers(0, 256, (6, 5, 3), dtype=np.uint8))
    gray = _png(tmp_path / "gray.png", rng.integers(0, 256, (6, 5), dtype=np.uint8))
    result = CliRunner().invoke(app, ["sr", str(colour), str(gray), "-c",
                                      str(rgb_model / "last.pt"), "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    for name in ("colour.png", "gray.png"):
        img = Image.open(tmp_path / "out" / name)
        assert img.mode == "RGB" and img.size == (20, 24)
    # a grayscale image is repeated to three channels for an RGB model
    replicated = np.repeat(np.asarray(Image.open(gray))[None], 3, axis=0)
    expected = model.upscale(torch.from_numpy(replicated)).permute(1, 2, 0).numpy()
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / "gray.png")), expected)


def test_sr_errors_are_one_line_and_write_nothing(tmp_path, gray_model):
    rng = np.random.default_rng(3)
    good = _png(tmp_path / "good.png", rng.integers(0, 256, (8, 8), dtype=np.uint8))
    colour = _png(tmp_path / "colour.png", rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    broken = tmp_path / "broken.png"
    broken.write_bytes(good.read_bytes()[:40])
    dcgan = tmp_path / "dcgan.pt"
    torch.save({"format": "medsyn-checkpoint", "format_version": 1, "kind": "dcgan"}, dcgan)
    empty = tmp_path / "empty"
    empty.mkdir()
    ckpt = str(gray_model / "last.pt")
    out = tmp_path / "out"
    cases = [
        ([str(good), str(colour)], ckpt, "is a colour image"),
        ([str(good), str(broken)], ckpt, "cannot be read as an image"),
        ([str(tmp_path / "missing.png")], ckpt, "no such file or folder"),
        ([str(empty)], ckpt, "folder without image files"),
        ([str(good)], str(dcgan), "not a super-resolution model"),
        ([str(good)], str(tmp_path / "nope.pt"), "does not exist"),
        ([str(good), str(tmp_path / "sub" / "good.png")], ckpt, "would both be written"),
    ]
    (tmp_path / "sub").mkdir()
    _png(tmp_path / "sub" / "good.png", rng.integers(0, 256, (8, 8), dtype=np.uint8))
    for inputs, checkpoint, message in cases:
        result = CliRunner().invoke(app, ["sr", *inputs, "--checkpoint", checkpoint, "--out",
                                          str(out)])
        assert result.exit_code == 1, (inputs, result.output)
        assert message in result.stderr and "Traceback" not in result.output
        assert result.stderr.strip().count("\n") == 0
        assert not out.exists()


def test_sample_refuses_a_super_resolution_checkpoint(tmp_path, gray_model):
    # an SR model maps given images (its Task), so 'medsyn sample' has nothing to draw from
    out = tmp_path / "samples"
    result = CliRunner().invoke(app, ["sample", "--checkpoint", str(gray_model / "last.pt"),
                                      "--n", "4", "--out", str(out), "--device", "cpu"])
    assert result.exit_code == 1, result.output
    assert "super-resolution" in result.stderr and "medsyn sr" in result.stderr
    assert "Traceback" not in result.output and result.stderr.strip().count("\n") == 0
    assert not out.exists()
