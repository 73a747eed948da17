"""SR training on real data (BreastMNIST resized to 32 px, x4 -> LR 8 px) with tiny networks:
run folders, phases, checkpoints and their API, exact resume, --init-from, AMP and bad input."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from medsyn.errors import CheckpointError, ConfigError
from medsyn.generators import load_checkpoint, read_checkpoint
from medsyn.generators.engine import TrainingDiverged, read_jsonl
from medsyn.generators.sr.checkpoint import SRCheckpoint, SRInputError
from medsyn.generators.sr.networks import upscale_uint8
from medsyn.generators.sr.step import SRStep
from medsyn.generators.sr.training import train_sr

# 546 images, batch 64 -> 8 steps per epoch
TINY = dict(dataset="breastmnist", hr_size=32, scale=4, n_blocks=1, features=8, batch_size=64,
            device="cpu", quiet=True, sample_count=3)
GAN = dict(TINY, d_features=8, patch_size=16, epochs=2, pretrain_epochs=1)
MSE_KEYS = {"step", "epoch", "phase", "lr", "loss_content", "loss_g", "images_per_s"}
ADV_KEYS = MSE_KEYS | {"loss_adv", "loss_d", "d_x", "d_g_z1", "d_g_z2"}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data_root):
    base = tmp_path_factory.mktemp("sr-runs")
    return {"srgan": train_sr("srgan", out=str(base / "srgan"), **GAN),
            "srresnet": train_sr("srresnet", out=str(base / "srresnet"), epochs=1, **TINY)}


def _losses(run_dir):
    return [{k: v for k, v in r.items() if k != "images_per_s"}
            for r in read_jsonl(Path(run_dir) / "log.jsonl")]


def _same_state(a, b):
    for net in a["models"]:
        for key, value in a["models"][net].items():
            assert torch.equal(value, b["models"][net][key]), f"{net}.{key} differs"
        oa, ob = a["optimizers"][net]["state"], b["optimizers"][net]["state"]
        assert oa.keys() == ob.keys()
        for i in oa:
            for key in oa[i]:
                assert torch.equal(oa[i][key], ob[i][key]), f"optimizer {net}.{i}.{key} differs"


# ------------------------------------------------------------------ run folder


def test_srgan_run_folder_phases_and_log(runs):
    run = runs["srgan"]
    config = json.loads((run / "config.json").read_text())
    assert config["kind"] == "srgan" and config["hr_size"] == 32 and config["patch_size"] == 16
    resolved = config["resolved"]
    assert resolved["phases"] == [{"phase": "mse", "epochs": [1, 1]},
                                  {"phase": "adversarial", "epochs": [2, 2]}]
    assert resolved["sr"]["lr_size"] == [8, 8] and resolved["sr"]["lr_patch_size"] == 4
    assert resolved["content_loss"]["kind"] == "pixel"
    assert resolved["steps_per_epoch"] == 8
    log = read_jsonl(run / "log.jsonl")
    assert [r["phase"] for r in log] == ["mse"] * 8 + ["adversarial"] * 8
    assert all(set(r) == MSE_KEYS for r in log[:8])
    assert all(set(r) == ADV_KEYS for r in log[8:])
    for r in log[8:]:
        assert r["loss_g"] == pytest.approx(r["loss_content"] + r["loss_adv"], rel=1e-5)
        assert 0 < r["loss_adv"] < 0.1          # 1e-3 x BCE
        assert 0 <= r["d_x"] <= 1
    assert all(r["loss_g"] == r["loss_content"] for r in log[:8])
    # the strip: 3 images x (LR | bicubic | SR | HR), 32 px cells enlarged to 64
    for epoch in (1, 2):
        strip = Image.open(run / "samples" / f"epoch{epoch:03d}.png")
        assert strip.mode == "L" and strip.size == (4 * 66 + 2, 3 * 66 + 2)


def test_checkpoint_records_content_loss_and_data(runs):
    payload = read_checkpoint(runs["srgan"] / "last.pt")
    assert payload["kind"] == "srgan" and payload["phase"] == "adversarial"
    assert payload["content_loss"]["kind"] == "pixel"
    assert "MEDSYN_VGG19_WEIGHTS" in payload["content_loss"]["description"]
    assert payload["dataset"]["name"] == "breastmnist" and payload["dataset"]["hr_size"] == [32, 32]
    assert payload["sr"]["degradation"].startswith("MATLAB imresize")
    assert set(payload["models"]) == {"generator", "discriminator"}
    plain = read_checkpoint(runs["srresnet"] / "last.pt")
    assert set(plain["models"]) == {"generator"} and plain["phase"] == "mse"
    assert plain["content_loss"] == {"kind": "pixel", "description": "pixel MSE"}


@pytest.mark.parametrize("kind", ["srgan", "srresnet"])
def test_checkpoint_api_upscales(runs, kind):
    sr = load_checkpoint(runs[kind] / "last.pt")
    assert isinstance(sr, SRCheckpoint) and sr.kind == kind
    assert (sr.scale, sr.channels, sr.hr_size, sr.lr_size) == (4, 1, [32, 32], [8, 8])
    assert sr.metadata["content_loss"]["kind"] == "pixel" and "models" not in sr.metadata
    assert not sr.generator.training
    lr = torch.randint(0, 256, (3, 1, 10, 7), dtype=torch.uint8)
    out = sr.upscale(lr)
    assert out.dtype == torch.uint8 and out.shape == (3, 1, 40, 28)
    assert torch.equal(out, upscale_uint8(sr.generator, lr))
    assert torch.equal(sr.upscale(lr[0]), out[0])                  # one [C, H, W] image
    assert torch.equal(sr.upscale(lr.numpy()), out)
    assert sr.upscale(lr[:0]).shape == (0, 1, 40, 28)
    with pytest.raises(SRInputError, match="3 channel.*takes grayscale"):
        sr.upscale(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))
    with pytest.raises(SRInputError, match="uint8"):
        sr.upscale(torch.zeros(1, 1, 8, 8))
    with pytest.raises(SRInputError, match=r"\[N, C, H, W\]"):
        sr.upscale(torch.zeros(8, 8, dtype=torch.uint8))


# ------------------------------------------------------------------ resume, init, precision


def test_resume_equals_uninterrupted(tmp_path, runs):
    # interrupted in the MSE phase (mid epoch 1), again in the adversarial phase (mid epoch 2)
    part = train_sr("srgan", out=str(tmp_path / "part"), max_steps=5, **GAN)
    assert read_checkpoint(part / "last.pt")["epoch_finished"] is False
    train_sr("srgan", resume=str(part / "last.pt"), max_steps=11, quiet=True)
    assert read_checkpoint(part / "last.pt")["phase"] == "adversarial"
    train_sr("srgan", resume=str(part / "last.pt"), quiet=True)
    assert _losses(part) == _losses(runs["srgan"]) and len(_losses(part)) == 16
    _same_state(read_checkpoint(runs["srgan"] / "last.pt"), read_checkpoint(part / "last.pt"))
    assert json.loads((part / "config.json").read_text())["resolved"]["resumed_from"]["step"] == 11


def test_init_from_srresnet_starts_adversarial(tmp_path, runs):
    source = runs["srresnet"] / "last.pt"
    run = train_sr("srgan", out=str(tmp_path / "gan"), init_from=str(source), epochs=1,
                   max_steps=2, **{k: v for k, v in GAN.items()
                                   if k not in ("epochs", "pretrain_epochs")})
    log = read_jsonl(run / "log.jsonl")
    assert [r["phase"] for r in log] == ["adversarial", "adversarial"]
    config = json.loads((run / "config.json").read_text())
    assert config["pretrain_epochs"] == 0
    init = config["resolved"]["initialised_from"]
    assert init["kind"] == "srresnet" and init["checkpoint"] == str(source)
    assert read_checkpoint(run / "last.pt")["initialised_from"]["sha256"] == init["sha256"]
    with pytest.raises(CheckpointError, match="features 8 vs 16"):
        train_sr("srgan", out=str(tmp_path / "bad"), init_from=str(source),
                 **dict(GAN, features=16))


def test_mixed_precision_paths_on_cpu(tmp_path, runs):
    run = train_sr("srgan", out=str(tmp_path / "bf16"), init_from=str(runs["srresnet"] /
                   "last.pt"), precision="bf16", max_steps=2,
                   **{k: v for k, v in GAN.items() if k != "pretrain_epochs"})
    assert all(np.isfinite(r["loss_g"]) for r in read_jsonl(run / "log.jsonl"))
    assert read_checkpoint(run / "last.pt")["precision"] == "bf16"


def test_vgg_content_loss_is_recorded_and_fixed_on_resume(tmp_path, runs):
    from medsyn.generators.sr import losses
    from medsyn.utils import file_digest

    net = losses.build_vgg19_features("relu5_4")       # random weights in torchvision's layout
    weights = tmp_path / "vgg19.pth"
    torch.save({f"features.{k}": v for k, v in net.state_dict().items()}, weights)
    run = train_sr("srgan", out=str(tmp_path / "vgg"), init_from=str(runs["srresnet"] /
                   "last.pt"), content_loss="vgg19", vgg19_weights=str(weights), max_steps=1,
                   **{k: v for k, v in GAN.items() if k != "pretrain_epochs"})
    info = read_checkpoint(run / "last.pt")["content_loss"]
    assert info["kind"] == "vgg19" and info["layer"] == "relu5_4"
    assert info["weights_sha256"] == file_digest(weights)
    other = tmp_path / "other.pth"
    torch.save({f"features.{k}": v * 2 for k, v in net.state_dict().items()}, other)
    with pytest.raises(CheckpointError, match="content loss"):
        train_sr("srgan", resume=str(run / "last.pt"), vgg19_weights=str(other), max_steps=2)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, data_root, monkeypatch):
    run = train_sr("srresnet", out=str(tmp_path / "nan"), epochs=3, max_steps=8, **TINY)
    before = (run / "last.pt").read_bytes()
    original = SRStep._mse_step

    def poisoned(self, x, y):
        stats = original(self, x, y)
        return {**stats, "loss_content": stats["loss_content"] * float("nan")}

    monkeypatch.setattr(SRStep, "_mse_step", poisoned)
    with pytest.raises(TrainingDiverged, match="loss_content = nan at step 9"):
        train_sr("srresnet", resume=str(run / "last.pt"), quiet=True)
    assert (run / "last.pt").read_bytes() == before


# ------------------------------------------------------------------ bad input


def test_option_errors(tmp_path, runs, monkeypatch):
    cases = [
        (dict(kind="srgan", scale=3), ConfigError, "--scale must be 2, 4 or 8"),
        (dict(kind="srgan", epochs=5, pretrain_epochs=5), ConfigError, "no adversarial epoch"),
        (dict(kind="srresnet", d_features=8), ConfigError, "--d-features applies to srgan only"),
        (dict(kind="srresnet", g_width=8), ConfigError, "unknown training option 'g_width'"),
        (dict(kind="srgan", content_loss="vgg"), ConfigError, "must be one of auto, vgg19"),
        (dict(kind="srresnet", resume=str(runs["srgan"] / "last.pt")), CheckpointError,
         "kind 'srgan'"),
        (dict(kind="srgan", resume=str(runs["srgan"] / "last.pt"), scale=2), ConfigError,
         "fixed by the checkpoint"),
        (dict(kind="srresnet", out=str(runs["srresnet"])), ConfigError, "already holds a run"),
        (dict(kind="srresnet", **dict(TINY, patch_size=18)), ConfigError,
         "not a multiple of --scale 4"),
        (dict(kind="srresnet", **dict(TINY, patch_size=64)), ConfigError,
         "larger than the HR images"),
        (dict(kind="srgan", **dict(GAN, patch_size=12)), ConfigError, "at least 16 px"),
    ]
    for options, error, message in cases:
        options = dict(options)
        kind = options.pop("kind")
        options.setdefault("out", str(tmp_path / "never"))
        with pytest.raises(error, match=message):
            train_sr(kind, **options)
    assert not (tmp_path / "never" / "last.pt").exists()
    monkeypatch.delenv("MEDSYN_VGG19_WEIGHTS", raising=False)
    with pytest.raises(ConfigError, match="--content-loss vgg19 needs VGG19 weights"):
        train_sr("srgan", content_loss="vgg19")


def test_resume_keeps_the_run_folder_and_more_epochs_train_further(tmp_path, runs):
    run = tmp_path / "more"
    shutil.copytree(runs["srresnet"], run)
    train_sr("srresnet", resume=str(run / "last.pt"), epochs=2, quiet=True)
    log = read_jsonl(run / "log.jsonl")
    assert [r["epoch"] for r in log].count(2) == 8 and (run / "samples" / "epoch002.png").exists()
    with pytest.raises(ConfigError, match="nothing to train"):
        train_sr("srresnet", resume=str(run / "last.pt"), epochs=2, quiet=True)


# ------------------------------------------------------------------ several processes


def test_torchrun_two_processes_keep_identical_weights(tmp_path, data_root):
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(repo), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(repo / "tests" / "ddp_sr_worker.py"), str(tmp_path / "run")]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    check = json.loads((tmp_path / "run" / "ddp_check.json").read_text())
    assert check == {"world_size": 2, "generator_identical": True,
                     "discriminator_identical": True}
    log = read_jsonl(tmp_path / "run" / "log.jsonl")
    assert [r["step"] for r in log] == list(range(1, 11))    # one log, written by rank 0
    assert [r["phase"] for r in log] == ["mse"] * 8 + ["adversarial"] * 2
    assert read_checkpoint(tmp_path / "run" / "last.pt")["world_size"] == 2
