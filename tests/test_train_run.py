"""Training on real data (BreastMNIST, 546 train images, 28 px) with tiny networks: run folders,
checkpoints and their API, reproducibility, exact resume, bad input, the CLI."""

import csv
import hashlib
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
from typer.testing import CliRunner

from medsyn.cli import app
from medsyn.errors import CheckpointError, ConfigError
from medsyn.generators import TrainConfig, load_checkpoint, read_checkpoint, train
from medsyn.generators.engine import TrainingDiverged, read_jsonl
from medsyn.generators.gan import step as gan_step
from medsyn.generators.gan.kinds import GAN_KINDS

KINDS = ("acgan", "cgan", "dcgan")
TINY = dict(dataset="breastmnist", image_size=28, batch_size=64, g_width=8, d_width=8,
            noise_dim=16, device="cpu", quiet=True)   # 8 steps per epoch
LOG_KEYS = {"step", "epoch", "loss_d", "loss_g", "d_x", "d_g_z1", "d_g_z2", "g_std",
            "images_per_s"}
ACGAN_KEYS = {"aux_acc_real", "aux_acc_fake", "d_acc", "d_acc_real", "d_acc_fake"}
REPO = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data_root):
    """One finished epoch of each kind."""
    base = tmp_path_factory.mktemp("runs")
    return {k: train(k, out=str(base / k), epochs=1, data_root=str(data_root), **TINY)
            for k in KINDS}


def _losses(run_dir):
    return [{k: v for k, v in r.items() if k != "images_per_s"}
            for r in read_jsonl(Path(run_dir) / "log.jsonl")]


def _same_state(a, b):
    for net in ("generator", "discriminator"):
        sa, sb = a["models"][net], b["models"][net]
        assert sa.keys() == sb.keys()
        for key in sa:
            assert torch.equal(sa[key], sb[key]), f"{net}.{key} differs"
    for net in ("generator", "discriminator"):
        oa, ob = a["optimizers"][net]["state"], b["optimizers"][net]["state"]
        for i in oa:
            for key in oa[i]:
                assert torch.equal(oa[i][key], ob[i][key]), f"optimizer {net}.{i}.{key} differs"


def _digest(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _snapshot(folder):
    return {p.relative_to(folder).as_posix(): _digest(p) for p in Path(folder).rglob("*")
            if p.is_file()}


# ------------------------------------------------------------------ run folder and checkpoint


@pytest.mark.parametrize("kind", KINDS)
def test_run_folder_is_self_describing(runs, kind):
    run = runs[kind]
    names = {p.name for p in run.iterdir()}
    assert {"config.json", "log.jsonl", "samples", "epoch001.pt", "last.pt"} <= names
    config = json.loads((run / "config.json").read_text())
    assert set(TrainConfig.__dataclass_fields__) <= set(config)
    assert config["kind"] == kind and config["batch_size"] == 64 and config["epochs"] == 1
    assert config["resolved"]["steps_per_epoch"] == 8 and config["resolved"]["device"] == "cpu"

    log = read_jsonl(run / "log.jsonl")
    assert [r["step"] for r in log] == list(range(1, 9)) and {r["epoch"] for r in log} == {1}
    assert set(log[0]) == LOG_KEYS | (ACGAN_KEYS if kind == "acgan" else set()) | \
        ({"g_std_class"} if kind != "dcgan" else set())
    for r in log:
        assert 0 <= r["d_x"] <= 1 and 0 <= r["d_g_z1"] <= 1 and r["images_per_s"] > 0

    grid = Image.open(run / "samples" / "epoch001.png")
    rows = 2 if kind != "dcgan" else 4
    assert grid.mode == "L" and grid.size[1] >= rows * 64     # one row per class, cells >= 64 px

    ckpt = read_checkpoint(run / "last.pt")
    assert _digest(run / "last.pt") == _digest(run / "epoch001.pt")
    for key in ("format_version", "medsyn_version", "torch_version", "kind", "arch", "config",
                "models", "optimizers", "grad_scaler", "epoch", "step", "rng", "dataset", "log"):
        assert key in ckpt, key
    assert (ckpt["epoch"], ckpt["step"], ckpt["epoch_finished"]) == (1, 8, True)
    assert ckpt["dataset"]["name"] == "breastmnist" and ckpt["dataset"]["split"] == "train"
    assert ckpt["dataset"]["class_names"] == ["malignant", "normal, benign"]
    assert (ckpt["dataset"]["image_size"], ckpt["dataset"]["channels"]) == (28, 1)
    assert len(ckpt["dataset"]["fingerprint"]) == 64 and "127.5" in ckpt["dataset"]["normalisation"]
    assert ckpt["arch"]["g_width"] == 8 and ckpt["arch"]["noise_dim"] == 16
    assert ckpt["log"] == read_jsonl(run / "log.jsonl")


@pytest.mark.parametrize("kind", KINDS)
def test_checkpoint_api(runs, kind):
    gen = load_checkpoint(runs[kind] / "last.pt", device="cpu")
    assert gen.kind == kind and gen.conditional == (kind != "dcgan")
    assert gen.class_names == ["malignant", "normal, benign"]
    assert (gen.image_size, gen.channels) == (28, 1)
    assert gen.metadata["epoch"] == 1 and gen.metadata["dataset"]["name"] == "breastmnist"
    assert "models" not in gen.metadata and len(gen.metadata["log"]) == 8

    images = gen.sample(7, seed=3)
    assert images.dtype == torch.uint8 and images.shape == (7, 1, 28, 28)
    assert gen.sample(0).shape == (0, 1, 28, 28)
    assert torch.equal(gen.sample(7, seed=3), images)
    assert not torch.equal(gen.sample(7, seed=4), images)

    out = gen.discriminate(images, labels=gen.sample_labels(7) if kind == "cgan" else None)
    assert out["p_real"].shape == (7,) and ((0 <= out["p_real"]) & (out["p_real"] <= 1)).all()
    if kind == "acgan":
        assert out["class_logits"].shape == (7, 2)
    else:
        assert out["class_logits"] is None
    with pytest.raises(ValueError, match=r"\(1, 28, 28\)"):
        gen.discriminate(torch.zeros(2, 3, 28, 28, dtype=torch.uint8))

    if kind == "dcgan":
        with pytest.raises(ValueError, match="unconditional"):
            gen.sample_labels(4)
        with pytest.raises(ValueError, match="unconditional"):
            gen.sample(2, labels=[0, 1])
        return
    assert gen.sample_labels(7).tolist() == [0, 0, 0, 0, 1, 1, 1]      # n // K, first n % K +1
    as_zero = gen.sample(4, labels=[0, 0, 0, 0], seed=5)
    as_one = gen.sample(4, labels=torch.tensor([1, 1, 1, 1]), seed=5)
    assert not torch.equal(as_zero, as_one)                         # the label is used
    with pytest.raises(ValueError, match="labels must be in 0..1"):
        gen.sample(2, labels=[0, 2])
    if kind == "cgan":
        with pytest.raises(ValueError, match="needs the labels"):
            gen.discriminate(images)


# ------------------------------------------------------------------ reproducibility and resume


def test_nan_generator_output_is_an_error_not_black_pixels(runs):
    from medsyn.errors import CheckpointError

    gen = load_checkpoint(runs["acgan"] / "last.pt", device="cpu")
    with torch.no_grad():
        next(gen.generator.parameters()).fill_(float("nan"))
    with pytest.raises(CheckpointError, match="NaN or infinite pixels in 4 of 4 images"):
        gen.sample(4, seed=0)


def test_same_seed_same_losses_other_seed_other_losses(tmp_path, data_root):
    a = train("acgan", out=str(tmp_path / "a"), epochs=1, max_steps=4, **TINY)
    b = train("acgan", out=str(tmp_path / "b"), epochs=1, max_steps=4, **TINY)
    c = train("acgan", out=str(tmp_path / "c"), epochs=1, max_steps=4, seed=1, **TINY)
    assert _losses(a) == _losses(b)
    _same_state(read_checkpoint(a / "last.pt"), read_checkpoint(b / "last.pt"))
    assert [r["loss_d"] for r in _losses(a)] != [r["loss_d"] for r in _losses(c)]


@pytest.mark.parametrize("kind", KINDS)
def test_resume_equals_uninterrupted(tmp_path, data_root, kind):
    whole = train(kind, out=str(tmp_path / "whole"), epochs=2, **TINY)
    # interrupted mid epoch 1, again mid epoch 2, then run to the end
    part = train(kind, out=str(tmp_path / "part"), epochs=2, max_steps=5, **TINY)
    assert read_checkpoint(part / "last.pt")["epoch_finished"] is False
    train(kind, resume=str(part / "last.pt"), max_steps=11, quiet=True)
    with open(part / "log.jsonl", "a") as f:       # steps logged after the checkpoint by a
        f.write('{"step": 12, "epoch": 2, "loss_d": 123.0}\n')      # crashed run are dropped
    train(kind, resume=str(part / "last.pt"), quiet=True)
    assert _losses(part) == _losses(whole) and len(_losses(whole)) == 16
    _same_state(read_checkpoint(whole / "last.pt"), read_checkpoint(part / "last.pt"))
    assert read_checkpoint(part / "last.pt")["step"] == 16
    assert json.loads((part / "config.json").read_text())["resolved"]["resumed_from"]["step"] == 11


TINY_ARGS = ["--dataset", "breastmnist", "--image-size", "28", "--batch-size", "64",
             "--g-width", "8", "--d-width", "8", "--noise-dim", "16", "--device", "cpu",
             "--quiet"]


@pytest.mark.parametrize("kind", KINDS)
def test_resume_after_finished_epoch_equals_uninterrupted(tmp_path, data_root, kind):
    """Stopped after epoch 2 of --epochs 2, resumed from last.pt with --epochs 3 (on the CLI):
    the same log and weights as one uninterrupted 3-epoch run."""
    whole = train(kind, out=str(tmp_path / "whole"), epochs=3, **TINY)
    part = tmp_path / "part"
    runner = CliRunner()
    result = runner.invoke(app, ["train", kind, *TINY_ARGS, "--epochs", "2", "--out", str(part)])
    assert result.exit_code == 0, result.output
    first = read_checkpoint(part / "last.pt")
    assert (first["epoch"], first["step"], first["epoch_finished"]) == (2, 16, True)
    result = runner.invoke(app, ["train", kind, "--resume", str(part / "last.pt"),
                                 "--epochs", "3", "--quiet"])
    assert result.exit_code == 0, result.output

    assert _losses(part) == _losses(whole) and len(_losses(whole)) == 24
    assert [r["step"] for r in read_jsonl(part / "log.jsonl")] == list(range(1, 25))
    a, b = read_checkpoint(whole / "last.pt"), read_checkpoint(part / "last.pt")
    _same_state(a, b)                                   # generator, discriminator, optimizers
    assert (b["epoch"], b["step"], b["epoch_finished"]) == (3, 24, True)
    assert [r["step"] for r in b["log"]] == list(range(1, 25))
    assert _digest(whole / "samples" / "epoch003.png") == _digest(part / "samples" / "epoch003.png")
    gen_a, gen_b = load_checkpoint(whole / "last.pt"), load_checkpoint(part / "last.pt")
    assert torch.equal(gen_a.sample(6, seed=1), gen_b.sample(6, seed=1))
    config = json.loads((part / "config.json").read_text())
    assert config["epochs"] == 3 and config["resolved"]["resumed_from"]["step"] == 16


@pytest.mark.parametrize("kind, smoothing, real_target", [
    ("acgan", None, 0.9),        # AC-GAN default: one-sided smoothing 0.1
    ("acgan", 0.2, 0.8),
    ("cgan", None, 1.0),         # cGAN / DCGAN default: none
    ("dcgan", None, 1.0),
])
def test_label_smoothing_is_one_sided(tmp_path, data_root, monkeypatch, kind, smoothing,
                                      real_target):
    assert GAN_KINDS["acgan"].train_defaults["label_smoothing"] == 0.1
    real_bce = gan_step.bce_with_logits
    targets = []

    def recording_bce(logits, target):
        targets.append(target)
        return real_bce(logits, target)

    monkeypatch.setattr(gan_step, "bce_with_logits", recording_bce)
    opts = {} if smoothing is None else {"label_smoothing": smoothing}
    run = train(kind, out=str(tmp_path / "run"), epochs=1, max_steps=2, recipe="cxr-acgan",
                **TINY, **opts)
    expected = 1.0 - real_target
    assert json.loads((run / "config.json").read_text())["label_smoothing"] == \
        pytest.approx(expected)
    # per step: D on reals (smoothed), D on fakes (0, never smoothed), G on fakes (1: label
    # flipping, not smoothed)
    assert targets == pytest.approx([real_target, 0.0, 1.0] * 2)


def test_resume_after_a_finished_epoch_with_more_epochs(tmp_path, runs):
    run = tmp_path / "more"
    shutil.copytree(runs["dcgan"], run)
    train("dcgan", resume=str(run / "epoch001.pt"), epochs=2, quiet=True)
    assert [r["epoch"] for r in read_jsonl(run / "log.jsonl")].count(2) == 8
    assert (run / "epoch002.pt").exists() and (run / "samples" / "epoch002.png").exists()
    with pytest.raises(ConfigError, match="nothing to train: the run has finished 2 of --epochs 2"):
        train("dcgan", resume=str(run / "last.pt"), quiet=True)


def test_mixed_precision_paths_on_cpu(tmp_path, data_root):
    fp16 = train("acgan", out=str(tmp_path / "fp16"), epochs=1, max_steps=2, precision="fp16",
                 **TINY)
    assert read_checkpoint(fp16 / "last.pt")["grad_scaler"]["scale"] > 0
    bf16 = train("cgan", out=str(tmp_path / "bf16"), epochs=1, max_steps=2, precision="bf16",
                 **TINY)
    assert all(np.isfinite(r["loss_g"]) for r in read_jsonl(bf16 / "log.jsonl"))


# ------------------------------------------------------------------ bad input


def test_unreadable_checkpoints(tmp_path, runs):
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes((runs["acgan"] / "last.pt").read_bytes()[:50_000])
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, foreign)
    pickled = tmp_path / "module.pt"
    torch.save(torch.nn.Linear(2, 2), pickled)
    text = tmp_path / "notes.pt"
    text.write_text("not a checkpoint")
    cases = {truncated: "truncated", foreign: "not a medsyn checkpoint",
             pickled: "Python objects other than tensors", text: "not a complete PyTorch",
             tmp_path / "missing.pt": "does not exist", runs["acgan"]: "is a folder"}
    for path, message in cases.items():
        with pytest.raises(CheckpointError, match=message):
            load_checkpoint(path)


def test_resume_refuses_a_bad_checkpoint_and_writes_nothing(tmp_path, runs):
    run = tmp_path / "run"
    shutil.copytree(runs["acgan"], run)
    before = _snapshot(run)
    truncated = run / "last.pt.part"
    truncated.write_bytes((run / "last.pt").read_bytes()[:50_000])
    with pytest.raises(CheckpointError, match="truncated"):
        train("acgan", resume=str(truncated))
    truncated.unlink()
    with pytest.raises(CheckpointError, match="kind 'acgan', not 'cgan'.*medsyn train acgan"):
        train("cgan", resume=str(run / "last.pt"))
    with pytest.raises(ConfigError, match="--image-size 32 differs from the checkpoint's 28"):
        train("acgan", resume=str(run / "last.pt"), image_size=32, epochs=2)
    with pytest.raises(ConfigError, match="--dataset 'pneumoniamnist' differs"):
        train("acgan", resume=str(run / "last.pt"), dataset="pneumoniamnist", epochs=2)
    assert _snapshot(run) == before


def _image_folder(root, classes, n=20, seed=0):
    rng = np.random.default_rng(seed)
    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (28, 28), dtype=np.uint8)).save(
                root / c / f"{i}.png")
    return root


def test_resume_refuses_changed_data(tmp_path, monkeypatch):
    data = _image_folder(tmp_path / "imgs", ["a", "b"])
    opts = dict(TINY, dataset=f"folder:{data}", batch_size=16)
    run = train("dcgan", out=str(tmp_path / "run"), epochs=2, max_steps=2, **opts)
    before = _snapshot(run)
    # a later second on the clock must not show in the lock file's holder line either
    monkeypatch.setattr("medsyn.generators.engine.run.time.strftime",
                        lambda fmt: "2099-01-01T00:00:00")
    _image_folder(data, ["c"])                               # a third class appears
    with pytest.raises(CheckpointError, match=r"classes \['a', 'b'\].*\['a', 'b', 'c'\]"):
        train("dcgan", resume=str(run / "last.pt"))
    shutil.rmtree(data / "c")
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(data / "a" / "0.png")  # pixels change
    with pytest.raises(CheckpointError, match="pixels or labels .* differ"):
        train("dcgan", resume=str(run / "last.pt"))
    assert _snapshot(run) == before


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, data_root, monkeypatch):
    real_bce = gan_step.bce_with_logits
    calls = {"n": 0}

    def bce_turning_nan(logits, target):
        calls["n"] += 1                                     # 3 calls per step
        out = real_bce(logits, target)
        return out * float("nan") if calls["n"] > 3 * 10 else out

    monkeypatch.setattr(gan_step, "bce_with_logits", bce_turning_nan)
    with pytest.raises(TrainingDiverged, match="loss_d = nan at step 11 \\(epoch 2\\)") as err:
        train("dcgan", out=str(tmp_path / "run"), epochs=3, recipe="cxr-acgan", **TINY)
    run = tmp_path / "run"
    assert "epoch001.pt, is untouched" in str(err.value)
    assert not (run / "epoch002.pt").exists()
    assert _digest(run / "last.pt") == _digest(run / "epoch001.pt")
    assert read_checkpoint(run / "last.pt")["step"] == 8
    assert read_jsonl(run / "log.jsonl")[-1]["step"] == 11


def test_fresh_run_never_overwrites_a_run(tmp_path, runs):
    run = tmp_path / "run"
    shutil.copytree(runs["cgan"], run)
    before = _snapshot(run)
    with pytest.raises(ConfigError, match="already holds a run.*--resume"):
        train("cgan", out=str(run), epochs=1, **TINY)
    assert _snapshot(run) == before


def test_option_errors():
    with pytest.raises(ConfigError, match="--batch-size .* must be >= 1, got 0"):
        train("cgan", batch_size=0)
    with pytest.raises(ConfigError, match="--embed-dim applies to acgan only"):
        train("cgan", embed_dim=10)
    with pytest.raises(ConfigError, match="--precision .* must be one of"):
        train("dcgan", precision="fp8")
    with pytest.raises(ConfigError, match="unknown GAN kind 'wgan'"):
        train("wgan")


# ------------------------------------------------------------------ CLI


def test_cli_train_with_config_file_and_sample(tmp_path, data_root, runs):
    cfg = tmp_path / "tiny.toml"
    cfg.write_text('dataset = "breastmnist"\nimage-size = 28\nbatch_size = 32\ng_width = 8\n'
                   'd_width = 8\nnoise_dim = 16\ndevice = "cpu"\nquiet = true\n')
    runner = CliRunner()
    result = runner.invoke(app, ["train", "cgan", "--config", str(cfg), "--batch-size", "16",
                                 "--max-steps", "2", "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["batch_size"] == 16 and config["g_width"] == 8 and config["max_steps"] == 2

    result = runner.invoke(app, ["sample", "--checkpoint", str(runs["acgan"] / "last.pt"),
                                 "--n", "5", "--out", str(tmp_path / "samples")])
    assert result.exit_code == 0, result.output
    with open(tmp_path / "samples" / "labels.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["class_name"] for r in rows] == ["malignant"] * 3 + ["normal, benign"] * 2
    for r in rows:
        img = Image.open(tmp_path / "samples" / r["file"])
        assert img.size == (28, 28) and img.mode == "L"
        assert r["file"].startswith(r["class_name"] + "/")
    meta = json.loads((tmp_path / "samples" / "sampling.json").read_text())
    assert meta["checkpoint_sha256"] == _digest(runs["acgan"] / "last.pt") and meta["n"] == 5

    result = runner.invoke(app, ["sample", "--checkpoint", str(runs["dcgan"] / "last.pt"),
                                 "--n", "3", "--out", str(tmp_path / "uncond")])
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "uncond" / "unconditional").glob("*.png"))) == 3


def test_cli_errors_are_one_line(tmp_path, runs):
    runner = CliRunner()
    bad_cfg = tmp_path / "bad.toml"
    bad_cfg.write_text("batch_sise = 3\n")
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(1)}, foreign)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.png").write_bytes(b"")
    cases = [
        (["train", "dcgan", "--config", str(bad_cfg)], "unknown option 'batch_sise'"),
        (["train", "acgan", "--image-size", "30"], "image size 30 px is not supported"),
        (["train", "cgan", "--resume", str(runs["acgan"] / "last.pt")], "kind 'acgan'"),
        (["sample", "--checkpoint", str(foreign), "--n", "2", "--out", str(tmp_path / "o")],
         "not a medsyn checkpoint"),
        (["sample", "--checkpoint", str(runs["cgan"] / "last.pt"), "--n", "2", "--out",
          str(tmp_path / "full")], "not empty"),
    ]
    for args, message in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 1, (args, result.output)
        assert message in result.stderr and "Traceback" not in result.output
        assert result.stderr.strip().count("\n") == 0


def test_cli_import_does_not_load_torch():
    code = "import sys, medsyn.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                         check=True)
    assert out.stdout.strip() == "False"


# ------------------------------------------------------------------ several processes


def test_torchrun_two_processes_keep_identical_weights(tmp_path, data_root):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(REPO / "tests" / "ddp_train_worker.py"), str(tmp_path / "run")]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    check = json.loads((tmp_path / "run" / "ddp_check.json").read_text())
    assert check == {"world_size": 2, "generator_identical": True,
                     "discriminator_identical": True, "generator_ema_identical": True}
    log = read_jsonl(tmp_path / "run" / "log.jsonl")
    assert [r["step"] for r in log] == list(range(1, 7))    # one log, written by rank 0
    assert read_checkpoint(tmp_path / "run" / "last.pt")["world_size"] == 2
