"""Translation training on real data (PneumoniaMNIST at 32 px) with tiny networks: run folders,
strips, checkpoints and their API, bit-exact resume, medsyn translate, bad input."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from medsyn.errors import CheckpointError, ConfigError
from medsyn.generators import load_checkpoint, read_checkpoint
from medsyn.generators.engine import read_jsonl
from medsyn.generators.interface import Task
from medsyn.generators.translation.checkpoint import (
    TranslationCheckpoint,
    TranslationInputError,
)
from medsyn.generators.translation.networks import translate_uint8
from medsyn.generators.translation.training import train_translation

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = dict(image_size=32, features=4, d_features=4, device="cpu", quiet=True, sample_count=2,
            epochs=1)
PIX = dict(TINY, dataset="pneumoniamnist", split="test", batch_size=64, max_steps=6)
CYC = dict(TINY, source="pneumoniamnist:test:normal", target="pneumoniamnist:test:pneumonia",
           batch_size=4, n_blocks=1, pool_size=3, max_steps=6)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data_root):
    base = tmp_path_factory.mktemp("translation-runs")
    return {"pix2pix": train_translation("pix2pix", out=str(base / "pix2pix"), **PIX),
            "cyclegan": train_translation("cyclegan", out=str(base / "cyclegan"), **CYC)}


def _losses(run_dir):
    return [{k: v for k, v in r.items() if k != "images_per_s"}
            for r in read_jsonl(Path(run_dir) / "log.jsonl")]


def _same_state(a, b):
    for net in a["models"]:
        for key, value in a["models"][net].items():
            assert torch.equal(value, b["models"][net][key]), f"{net}.{key} differs"
        if net not in a["optimizers"]:          # the EMA generator has none
            continue
        oa, ob = a["optimizers"][net]["state"], b["optimizers"][net]["state"]
        for i in oa:
            for key in oa[i]:
                assert torch.equal(oa[i][key], ob[i][key]), f"optimizer {net}.{i}.{key} differs"


def test_pix2pix_run_folder_log_and_strip(runs):
    run = runs["pix2pix"]
    config = json.loads((run / "config.json").read_text())
    assert config["kind"] == "pix2pix" and config["condition"] == "edges"
    assert config["unet_depth"] == 5 and config["d_layers"] == 3
    resolved = config["resolved"]
    assert resolved["translation"]["condition"]["condition"] == "edges"
    assert resolved["dataset"]["name"] == "pneumoniamnist" and resolved["steps_per_epoch"] == 9
    log = read_jsonl(run / "log.jsonl")
    assert len(log) == 6
    for r in log:
        assert r["loss_g"] == pytest.approx(r["loss_adv"] + r["loss_l1"], rel=1e-5)
        assert 0 <= r["d_x"] <= 1 and 0 <= r["d_g_z2"] <= 1
    # strip: 2 images x (input | output | target), 32 px cells enlarged to 64
    strip = Image.open(run / "samples" / "epoch001.png")
    assert strip.mode == "L" and strip.size == (3 * 66 + 2, 2 * 66 + 2)


def test_cyclegan_log_pools_and_strip(runs):
    run = runs["cyclegan"]
    log = read_jsonl(run / "log.jsonl")
    for r in log:
        assert r["loss_g"] == pytest.approx(r["loss_adv"] + r["loss_cycle"] + r["loss_identity"],
                                            rel=1e-5)
    payload = read_checkpoint(run / "last.pt")
    assert payload["image_pools"]["a"].shape == (3, 1, 32, 32)      # pool of 3, filled
    assert payload["translation"]["source"]["selection"] == "pneumoniamnist/test/normal"
    # two row groups (A | G_AB(A) | rec A, B | G_BA(B) | rec B) of 2 images
    assert Image.open(run / "samples" / "epoch001.png").size == (3 * 66 + 2, 4 * 66 + 2)


@pytest.mark.parametrize("kind", ["pix2pix", "cyclegan"])
def test_checkpoint_api_translates(runs, kind):
    model = load_checkpoint(runs[kind] / "last.pt")
    assert isinstance(model, TranslationCheckpoint) and model.task is Task.TRANSLATION
    assert (model.kind, model.channels, model.input_channels, model.image_size) == \
        (kind, 1, 1, 32)
    assert "models" not in model.metadata and "image_pools" not in model.metadata
    images = torch.randint(0, 256, (3, 1, 32, 32), dtype=torch.uint8)
    out = model.translate(images)
    assert out.dtype == torch.uint8 and out.shape == (3, 1, 32, 32)
    net = model.generator if kind == "pix2pix" else model.generator.g_ab
    assert torch.equal(out, translate_uint8(net, images))
    assert torch.equal(model.translate(images[0]), out[0])
    assert model.translate(images[:0]).shape == (0, 1, 32, 32)
    with pytest.raises(TranslationInputError, match="3 channel"):
        model.translate(torch.zeros(1, 3, 32, 32, dtype=torch.uint8))
    with pytest.raises(TranslationInputError, match="multiples of"):
        model.translate(torch.zeros(1, 1, 30, 30, dtype=torch.uint8))
    if kind == "cyclegan":
        assert torch.equal(model.translate(images, direction="backward"),
                           translate_uint8(model.generator.g_ba, images))
    else:
        with pytest.raises(TranslationInputError, match="one way"):
            model.translate(images, direction="backward")
        assert set(model.make_condition(images).unique().tolist()) <= {0, 255}


@pytest.mark.parametrize("kind", ["pix2pix", "cyclegan"])
def test_killed_and_resumed_equals_uninterrupted(tmp_path, runs, kind):
    options = PIX if kind == "pix2pix" else CYC
    part = train_translation(kind, out=str(tmp_path / "part"),
                             **dict(options, max_steps=2 if kind == "pix2pix" else 3))
    assert read_checkpoint(part / "last.pt")["epoch_finished"] is False
    train_translation(kind, resume=str(part / "last.pt"), max_steps=6, quiet=True)
    assert _losses(part) == _losses(runs[kind]) and len(_losses(part)) == 6
    _same_state(read_checkpoint(runs[kind] / "last.pt"), read_checkpoint(part / "last.pt"))
    if kind == "cyclegan":
        pools = read_checkpoint(part / "last.pt")["image_pools"]
        reference = read_checkpoint(runs[kind] / "last.pt")["image_pools"]
        assert torch.equal(pools["a"], reference["a"]) and torch.equal(pools["b"], reference["b"])


def test_options_fixed_on_resume_and_bad_options(tmp_path, runs):
    with pytest.raises(ConfigError, match="--condition"):
        train_translation("pix2pix", resume=str(runs["pix2pix"] / "last.pt"),
                          condition="noise")
    with pytest.raises(ConfigError, match="cyclegan needs --source and --target"):
        train_translation("cyclegan", out=str(tmp_path / "x"), device="cpu")
    with pytest.raises(ConfigError, match="applies to cyclegan only"):
        train_translation("pix2pix", out=str(tmp_path / "x"), pool_size=3)
    with pytest.raises(ConfigError, match="divisible by 2\\^depth"):
        train_translation("pix2pix", out=str(tmp_path / "y"), **dict(PIX, image_size=36,
                                                                  unet_depth=5))
    with pytest.raises(CheckpointError, match="not 'pix2pix'"):
        train_translation("pix2pix", resume=str(runs["cyclegan"] / "last.pt"))


def test_translate_command_writes_images_and_manifest(tmp_path, runs):
    from typer.testing import CliRunner

    from medsyn.cli import app

    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in ("x", "y"):
        Image.fromarray(rng.integers(0, 256, (32, 32), dtype=np.uint8)).save(folder / f"{name}.png")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["translate", str(folder), "--checkpoint",
                                      str(runs["pix2pix"] / "last.pt"), "--out", str(out),
                                      "--from-images", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    model = load_checkpoint(runs["pix2pix"] / "last.pt")
    written = np.asarray(Image.open(out / "y.png"))
    image = torch.from_numpy(np.asarray(Image.open(folder / "y.png")).copy())[None, None]
    assert np.array_equal(written, model.translate(model.make_condition(image))[0, 0].numpy())
    manifest = json.loads((out / "translate.json").read_text())
    assert manifest["checkpoint"]["kind"] == "pix2pix" and len(manifest["images"]) == 2
    # again without --overwrite: one line, nothing replaced
    again = CliRunner().invoke(app, ["translate", str(folder), "--checkpoint",
                                     str(runs["cyclegan"] / "last.pt"), "--out", str(out)])
    assert again.exit_code == 1 and len(again.output.strip().splitlines()) == 1
    assert "exist already" in again.output
    bad = tmp_path / "odd.png"
    Image.fromarray(np.zeros((30, 30), np.uint8)).save(bad)
    odd = CliRunner().invoke(app, ["translate", str(bad), "--checkpoint",
                                   str(runs["cyclegan"] / "last.pt"), "--out",
                                   str(tmp_path / "o2"), "--device", "cpu"])
    assert odd.exit_code == 1 and "multiples of 4" in odd.output
    assert len(odd.output.strip().splitlines()) == 1


@pytest.mark.parametrize("kind", ["pix2pix", "cyclegan"])
def test_bf16_autocast_path_on_cpu(tmp_path, data_root, kind):
    options = dict(PIX if kind == "pix2pix" else CYC, max_steps=2, precision="bf16")
    run = train_translation(kind, out=str(tmp_path / kind), **options)
    assert all(np.isfinite(r["loss_g"]) for r in read_jsonl(run / "log.jsonl"))
    assert read_checkpoint(run / "last.pt")["precision"] == "bf16"
    assert load_checkpoint(run / "last.pt").translate(
        torch.zeros(1, 1, 32, 32, dtype=torch.uint8)).shape == (1, 1, 32, 32)


# ------------------------------------------------------------------ several processes


@pytest.mark.parametrize("options", [[], ["spectral_norm=true", "ema_decay=0.9",
                                          'augment="translation,cutout"', "lr_d=0.0001"]],
                         ids=["default", "stabilised"])
def test_torchrun_two_processes_keep_identical_weights(tmp_path, data_root, options):
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(repo), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(repo / "tests" / "ddp_translation_worker.py"), str(tmp_path / "run"), *options]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    check = json.loads((tmp_path / "run" / "ddp_check.json").read_text())
    expected = {"world_size": 2, "generator_identical": True, "discriminator_identical": True}
    if options:
        expected["generator_ema_identical"] = True
    assert check == expected
    log = read_jsonl(tmp_path / "run" / "log.jsonl")
    assert [r["step"] for r in log] == [1, 2, 3, 4]             # one log, written by rank 0
    payload = read_checkpoint(tmp_path / "run" / "last.pt")
    assert payload["world_size"] == 2 and len(payload["rng"]) == 2
    assert ("generator_ema" in payload["models"]) == bool(options)
