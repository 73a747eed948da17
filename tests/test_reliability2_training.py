"""Faults and attacks, round 2 (issue 26; docs/reliability.md): training and the options of
the commands. Per-class collapse of an AC-GAN, two trainings into one run folder, a full disk
inside torch's zip writer, divergence advice before the first checkpoint, absurd thread
counts, negative seeds and sample counts.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from faults import TINY, TINY_FLAGS, FullDisk, make_image_folder, one_line_error
from typer.testing import CliRunner

from medsyn.cli import app
from medsyn.generators import read_checkpoint, train

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("one_thread")
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory) -> Path:
    return make_image_folder(tmp_path_factory.mktemp("images"))


@pytest.fixture(scope="module")
def dataset(image_folder) -> str:
    return f"folder:{image_folder}"


@pytest.fixture(scope="module")
def trained(tmp_path_factory, dataset) -> Path:
    out = tmp_path_factory.mktemp("runs") / "cgan"
    return train("cgan", dataset=dataset, out=str(out), epochs=1, **TINY)


# ---------------------------------------------------------------- 6. collapse within a class


def test_ac_gan_collapsed_to_one_image_per_class_is_flagged(tmp_path, dataset):
    from medsyn.generators.engine import read_jsonl

    out = tmp_path / "collapsed"
    train("acgan", dataset=dataset, out=str(out), epochs=4, lr=1e3, **TINY)
    warned = [r["warning"] for r in read_jsonl(out / "log.jsonl") if r.get("warning")]
    assert len(warned) == 1 and "collapse suspected" in warned[0]
    assert read_checkpoint(out / "last.pt")["warnings"] == warned
    healthy = tmp_path / "healthy"
    train("acgan", dataset=dataset, out=str(healthy), epochs=4, **TINY)
    assert not [r for r in read_jsonl(healthy / "log.jsonl") if r.get("warning")]


# ---------------------------------------------------------------- 5. one run folder, one trainer


SLOW_STEPS = """
import time
from medsyn.generators.gan import step as gan_step
_step = gan_step.GanStep.__call__
def _slow(self, batch, state=None):
    time.sleep(0.5)
    return _step(self, batch, state)
gan_step.GanStep.__call__ = _slow
from medsyn.cli import app
app()
"""


def test_a_second_training_into_a_busy_run_folder_is_refused_with_the_first_ones_pid(
        tmp_path, dataset):
    out = tmp_path / "run"
    common = ["train", "cgan", "--dataset", dataset, *TINY_FLAGS, "--quiet", "--out", str(out)]
    args = common + ["--epochs", "3"]
    first = subprocess.Popen([sys.executable, "-c", SLOW_STEPS, *args], cwd=tmp_path,
                             env={**os.environ, "PYTHONPATH": str(REPO)},
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 180
        while not ((out / "log.jsonl").is_file() and (out / "log.jsonl").read_text()):
            assert first.poll() is None, first.stderr.read()
            assert time.monotonic() < deadline, "the first training never started"
            time.sleep(0.2)
        second = runner.invoke(app, args)
        one_line_error(second, str(out), f"process {first.pid}")
        assert first.poll() is None          # the first run goes on
    finally:
        first.kill()
        first.wait()
    # the lock died with its process: the folder can be trained again
    again = runner.invoke(app, common + ["--epochs", "1"])
    assert again.exit_code == 0, again.output
    assert read_checkpoint(out / "last.pt")["epoch"] == 1


# ---------------------------------------------------------------- 10. full disk in torch.save


def test_a_full_disk_inside_torchs_zip_writer_is_the_one_line_disk_full_error(
        tmp_path, monkeypatch, dataset):
    real_save = torch.save
    calls = []

    def save(obj, f, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:        # the second checkpoint finds the disk full after 4 KB
            return real_save(obj, FullDisk(f, 4096), *args, **kwargs)
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", "cgan", "--dataset", dataset, *TINY_FLAGS,
                                 "--epochs", "2", "--quiet", "--out", str(out)])
    one_line_error(result, "disk full", "epoch002.pt", str(out))
    monkeypatch.setattr(torch, "save", real_save)
    assert read_checkpoint(out / "last.pt")["epoch"] == 1
    assert not list(out.glob(".*.tmp"))


# ---------------------------------------------------------------- 13. smaller ones


def test_divergence_before_the_first_checkpoint_points_at_no_missing_file(
        tmp_path, monkeypatch, dataset):
    from medsyn.generators.engine import TrainingDiverged
    from medsyn.generators.gan import step as gan_step

    real_step = gan_step.GanStep.__call__

    def step(self, batch, state=None):
        stats = real_step(self, batch, state)
        if state.step == 2:
            stats["loss_d"] = torch.tensor(float("nan"))
        return stats

    monkeypatch.setattr(gan_step.GanStep, "__call__", step)
    out = tmp_path / "run"
    with pytest.raises(TrainingDiverged) as info:
        train("cgan", dataset=dataset, out=str(out), epochs=1, precision="bf16", **TINY)
    message = str(info.value)
    assert not (out / "last.pt").exists()
    assert "last.pt" not in message and f"--resume {out}" not in message
    assert "--precision fp32 --out NEW_FOLDER" in message


def test_threads_beyond_the_core_count_are_capped(tmp_path, dataset):
    code = (f"import torch\nfrom medsyn.generators import train\nseen = []\n"
            f"train('cgan', dataset={dataset!r}, out={str(tmp_path / 'run')!r}, epochs=1, "
            f"max_steps=2, threads=100000, step_callback=lambda s: "
            f"seen.append(torch.get_num_threads()), **{TINY!r})\nprint(max(seen))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout.split()[-1]) <= (os.cpu_count() or 1)


def test_a_negative_seed_is_a_one_line_error(tmp_path, dataset, image_folder):
    evaluate = runner.invoke(app, ["evaluate", "--fake", str(image_folder / "calm"), "--real",
                                   f"{dataset}:train", "--extractor", "pixels", "--metrics",
                                   "fid", "--device", "cpu", "--seed", "-1", "--out",
                                   str(tmp_path / "eval")])
    one_line_error(evaluate, "--seed")
    audit = runner.invoke(app, ["audit", "--dataset", f"{dataset}:test", "--extractor",
                                "pixels", "--metrics", "fid", "--failures", "blur", "--device",
                                "cpu", "--seed", "-1", "--out", str(tmp_path / "audit")])
    one_line_error(audit, "--seed")
    assert not (tmp_path / "eval").exists() and not (tmp_path / "audit").exists()


def test_an_absurd_sample_count_is_a_one_line_error(trained, tmp_path):
    out = tmp_path / "many"
    result = runner.invoke(app, ["sample", "--checkpoint", str(trained / "last.pt"), "-n",
                                 "99999999999999999999999", "--out", str(out), "--device",
                                 "cpu"])
    one_line_error(result, "--n 99999999999999999999999")
    assert not out.exists() or not any(out.rglob("*.png"))
