"""Faults and bad input (docs/reliability.md): weight files that carry code, damaged caches and
checkpoints, existing outputs, read-only and full disks, bad option values, huge sample counts,
leftovers of killed writes, divergence and collapse, HTML in names, restarting an empty run.

Everything runs on a small synthetic image folder and tiny networks (no real data needed).
"""

from __future__ import annotations

import builtins
import errno
import io
import json
import logging
import os
import re
import subprocess
import sys
import time
import zipfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from medsyn import utils
from medsyn.cli import app
from medsyn.data import ImageDataset
from medsyn.errors import CheckpointError, ConfigError
from medsyn.evaluators import PixelExtractor, dataset_features
from medsyn.generators import read_checkpoint, train
from medsyn.generators.engine import TrainingDiverged, read_jsonl
from medsyn.generators.gan import checkpoint as gan_checkpoint
from medsyn.generators.gan import step as gan_step

TINY = dict(image_size=28, batch_size=8, g_width=4, d_width=4, noise_dim=8, device="cpu",
            quiet=True)
runner = CliRunner()


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory) -> Path:
    """Two classes of 40 smooth 28 px images (folder dataset: 56 train images, 7 steps of 8)."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for c, name in enumerate(("calm", "busy")):
        (root / name).mkdir()
        for i in range(40):
            base = rng.random((7, 7))
            img = np.kron(base, np.ones((4, 4))) * 150 + 60 * c
            Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(root / name / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def dataset(image_folder) -> str:
    return f"folder:{image_folder}"


@pytest.fixture(scope="module")
def trained(tmp_path_factory, dataset) -> Path:
    """A finished one-epoch cGAN run."""
    out = tmp_path_factory.mktemp("runs") / "cgan"
    return train("cgan", dataset=dataset, out=str(out), epochs=1, **TINY)


def _one_line_error(result, *needles):
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception,
                                                                     SystemExit), result.exception
    errors = [line for line in result.output.splitlines() if line.startswith("medsyn: error:")]
    assert len(errors) == 1, result.output
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


class _Payload:
    """Unpickling this creates ``marker``: proof that a weights file ran code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _dead_pid() -> str:
    """The PID of a process that has finished."""
    return subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()


def _evil_weights(tmp_path) -> tuple[Path, Path]:
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.pth"
    torch.save({"fc.weight": torch.zeros(2, 2), "payload": _Payload(marker)}, path)
    assert not marker.exists()
    return path, marker


# ---------------------------------------------------------------- 1. weight files carry no code


def test_inception_weights_with_code_are_refused_and_never_run(tmp_path, monkeypatch, dataset):
    evil, marker = _evil_weights(tmp_path)
    fakes = tmp_path / "fakes"
    fakes.mkdir()
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(fakes / "0.png")
    for how in ("option", "environment"):
        args = ["evaluate", "--fake", str(fakes), "--real", f"{dataset}:train",
                "--metrics", "fid", "--device", "cpu", "--out", str(tmp_path / how)]
        if how == "option":
            args += ["--inception-weights", str(evil)]
        else:
            monkeypatch.setenv("MEDSYN_INCEPTION_WEIGHTS", str(evil))
        result = runner.invoke(app, args)
        assert not marker.exists(), "unpickling the weights file ran code"
        _one_line_error(result, str(evil), "weights_only=True")


def test_classifier_and_vgg19_weights_with_code_are_refused(tmp_path):
    from medsyn.evaluators.networks.classifier import build_classifier, get_recipe
    from medsyn.generators.sr.losses import ContentLoss

    evil, marker = _evil_weights(tmp_path)
    with pytest.raises(ConfigError, match="weights_only=True"):
        build_classifier(get_recipe("quick", pretrained=str(evil)), 1, 2, 28)
    with pytest.raises(CheckpointError, match="weights_only=True"):
        ContentLoss("vgg19", vgg19_weights=evil)
    assert not marker.exists()


def test_verified_classifier_weights_load_and_their_sha256_is_recorded(tmp_path):
    import timm

    from medsyn.evaluators.networks.classifier import build_classifier, get_recipe
    from medsyn.utils import file_digest

    source = timm.create_model("resnet18", pretrained=False, num_classes=5)
    path = tmp_path / "resnet18.pth"
    torch.save(source.state_dict(), path)
    recipe = get_recipe("quick", pretrained=str(path))
    model = build_classifier(recipe, 3, 2, 64)       # stride 4: timm's own stem, as saved
    assert torch.equal(model.layer1[0].conv1.weight, source.layer1[0].conv1.weight)
    assert recipe.describe()["pretrained_sha256"] == file_digest(path)


def test_inception_loads_verified_weights_identically_and_records_sha256(inception_weights):
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    from medsyn.evaluators import InceptionExtractor
    from medsyn.utils import file_digest

    ours = InceptionExtractor(inception_weights, device="cpu", fast=False)   # eager: bitwise
    theirs = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"],
                                         feature_extractor_weights_path=str(inception_weights))
    x = torch.randint(0, 256, (2, 3, 40, 40), dtype=torch.uint8)
    assert torch.equal(ours.extract(x)["features"], theirs(x)[0])
    assert ours.describe()["weights_sha256"] == file_digest(inception_weights)


# ---------------------------------------------------------------- 2. damaged feature cache


def _blobs_dataset(n=24):
    g = torch.Generator().manual_seed(1)
    images = (torch.rand(n, 1, 16, 16, generator=g) * 255).to(torch.uint8)
    return ImageDataset(name="blobs", split="train", images=images,
                        labels=torch.arange(n) % 2, class_names=["a", "b"])


def _flip_byte(blob: bytes, at: int) -> bytes:
    return blob[:at] + bytes([blob[at] ^ 0x10]) + blob[at + 1:]


@pytest.mark.parametrize("damage", ["bit flip in the data", "bit flip in the header", "empty",
                                    "truncated"])
def test_damaged_feature_cache_entry_is_discarded_and_recomputed(tmp_path, monkeypatch, caplog,
                                                                 damage):
    monkeypatch.setenv("MEDSYN_CACHE_DIR", str(tmp_path))
    ds, ext = _blobs_dataset(), PixelExtractor(8, device="cpu")
    fresh = dataset_features(ds, ext)
    [data_path] = (tmp_path / "features").glob("*.npz")
    blob = data_path.read_bytes()
    damaged = {"bit flip in the data": _flip_byte(blob, len(blob) // 2),
               "bit flip in the header": _flip_byte(blob, 40), "empty": b"",
               "truncated": blob[: len(blob) // 3]}[damage]
    data_path.write_bytes(damaged)
    with caplog.at_level(logging.WARNING):
        again = dataset_features(ds, ext)
    assert not again.from_cache and np.array_equal(again.features, fresh.features)
    assert any("damaged feature cache entry" in r.getMessage() for r in caplog.records)
    third = dataset_features(ds, ext)           # rewritten, valid again
    assert third.from_cache and np.array_equal(third.features, fresh.features)


def test_stale_temporary_cache_files_of_dead_writers_are_removed(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDSYN_CACHE_DIR", str(tmp_path))
    folder = tmp_path / "features"
    folder.mkdir()
    dead = _dead_pid()
    stale = folder / f".abc.npz.{dead}.x1y2z3.tmp"
    live = folder / f".abc.npz.{os.getpid()}.q9w8e7.tmp"
    here = folder / f".abc.npz.{dead}@{utils._HOST}.k4l5m6.tmp"
    # another node's writer on a shared cache: its PID says nothing on this machine
    other_node = folder / f".abc.npz.{dead}@some-other-node.r7t8y9.tmp"
    for f in (stale, live, here, other_node):
        f.write_bytes(b"x" * 100)
    dataset_features(_blobs_dataset(), PixelExtractor(8, device="cpu"))
    assert not stale.exists() and not here.exists()
    assert live.exists() and other_node.exists()
    old = time.time() - 2 * 24 * 3600
    os.utime(other_node, (old, old))             # a day old: its writer is long gone
    assert other_node in utils.remove_stale_temp_files(folder)


# ---------------------------------------------------------------- 3. checkpoint digest


def _largest_data_record(path: Path) -> tuple[int, int]:
    with zipfile.ZipFile(path) as z:
        info = max((i for i in z.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    with open(path, "rb") as f:
        f.seek(info.header_offset + 26)
        name_len, extra_len = np.frombuffer(f.read(4), dtype="<u2")
    return info.header_offset + 30 + int(name_len) + int(extra_len), info.file_size


def test_checkpoint_with_a_flipped_byte_is_refused(trained, tmp_path):
    bad = tmp_path / "flipped.pt"
    blob = (trained / "last.pt").read_bytes()
    start, size = _largest_data_record(trained / "last.pt")
    bad.write_bytes(_flip_byte(blob, start + size // 2))
    with pytest.raises(CheckpointError, match="is corrupt: its content no longer matches"):
        read_checkpoint(bad)
    result = runner.invoke(app, ["sample", "--checkpoint", str(bad), "-n", "2", "--out",
                                 str(tmp_path / "s"), "--device", "cpu"])
    _one_line_error(result, "is corrupt")


def test_checkpoint_without_a_digest_loads_with_a_warning(trained, tmp_path, caplog):
    payload = torch.load(trained / "last.pt", weights_only=True)
    assert len(payload.pop("payload_sha256")) == 64
    old = tmp_path / "old.pt"
    torch.save(payload, old)
    with caplog.at_level(logging.WARNING):
        loaded = read_checkpoint(old)
    assert loaded["step"] == payload["step"]
    assert any("carries no payload digest" in r.getMessage() for r in caplog.records)


# ---------------------------------------------------------------- 4. existing outputs


def _evaluate_args(trained, out, *extra):
    return ["evaluate", "--checkpoint", str(trained / "last.pt"), "--extractor", "pixels",
            "--metrics", "fid,tsne", "--bootstrap", "0", "--device", "cpu", "--out", str(out),
            *extra]


def test_evaluate_refuses_an_existing_evaluation_unless_overwrite(trained, tmp_path):
    out = tmp_path / "eval"
    assert runner.invoke(app, _evaluate_args(trained, out)).exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert "tsne.png" in before
    _one_line_error(runner.invoke(app, _evaluate_args(trained, out)), "--overwrite")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    replaced = runner.invoke(app, _evaluate_args(trained, out, "--overwrite", "--metrics",
                                                 "fid"))
    assert replaced.exit_code == 0, replaced.output
    assert sorted(p.name for p in out.iterdir()) == [".medsyn-manifest.json", "metrics.csv",
                                                     "results.json"]
    assert not any(p.name.startswith(".eval.") for p in tmp_path.iterdir())
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    _one_line_error(runner.invoke(app, _evaluate_args(trained, foreign, "--overwrite")),
                    "not a medsyn evaluation")
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_a_kill_while_writing_never_mixes_two_evaluations(tmp_path, monkeypatch):
    import inspect

    import medsyn.evaluators as ev
    from medsyn.evaluators import results as results_module

    out, ds = tmp_path / "eval", _blobs_dataset()
    common = dict(reference=ds, extractor="pixels", metrics=["fid"], n_bootstrap=0,
                  device="cpu", out_dir=out)
    ev.evaluate(ds.images[:12], None, **common)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    real = results_module.atomic_write

    def killed_before_csv(path, *args, **kwargs):
        if Path(path).name == "metrics.csv":
            raise KeyboardInterrupt            # the process dies between the two files
        return real(path, *args, **kwargs)

    monkeypatch.setattr(results_module, "atomic_write", killed_before_csv)
    replace = {"overwrite": True} if "overwrite" in inspect.signature(ev.evaluate).parameters \
        else {}                                # (medsyn before --overwrite replaced silently)
    with pytest.raises(KeyboardInterrupt):
        ev.evaluate(ds.images[12:], None, **common, **replace)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_interrupted_swap_is_completed_at_the_next_start(tmp_path):
    from medsyn.evaluators.results import recover_output_folder
    from medsyn.outputs import write_manifest

    dead = _dead_pid()
    old, new = tmp_path / f".eval.{dead}.replaced", tmp_path / f".eval.{dead}.staging"
    for folder, text in ((old, "old"), (new, "new")):
        folder.mkdir()
        (folder / "results.json").write_text(text)
        (folder / "metrics.csv").write_text(text)
    write_manifest(new, "medsyn evaluate")      # written last: the staged folder is complete
    recover_output_folder(tmp_path / "eval")
    assert (tmp_path / "eval" / "results.json").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["eval"]


def test_report_refuses_to_overwrite_unless_asked(tmp_path):
    out = tmp_path / "reports"
    args = ["report", "--runs-root", str(tmp_path / "none"), "--out", str(out)]
    assert runner.invoke(app, args).exit_code == 0
    first = (out / "index.html").read_text()
    _one_line_error(runner.invoke(app, args), "index.html", "--overwrite")
    assert (out / "index.html").read_text() == first
    assert runner.invoke(app, args + ["--overwrite", "--title", "second"]).exit_code == 0
    assert "second" in (out / "index.html").read_text()
    # a page of the user's own is never replaced, not even with --overwrite (issue 26)
    mine = tmp_path / "site"
    mine.mkdir()
    (mine / "index.html").write_text("my own page")
    for extra in ([], ["--overwrite"]):
        _one_line_error(runner.invoke(app, args[:-1] + [str(mine), *extra]), "index.html",
                        "did not write")
    assert (mine / "index.html").read_text() == "my own page"


# ---------------------------------------------------------------- 5. one-line errors


@contextmanager
def _read_only(monkeypatch, folder: Path):
    """Writes under ``folder`` fail as on a read-only file system (chmod does not stop root)."""
    root = os.path.abspath(folder)

    def inside(p) -> bool:
        try:
            return os.path.abspath(os.fspath(p)).startswith(root)
        except TypeError:
            return False

    def deny(p):
        raise PermissionError(errno.EROFS, "Read-only file system", os.fspath(p))

    real_open, real_os_open, real_mkdir = builtins.open, os.open, os.mkdir
    real_replace, real_rename = os.replace, os.rename

    def fake_open(file, mode="r", *a, **k):
        if inside(file) and any(c in mode for c in "wax+"):
            deny(file)
        return real_open(file, mode, *a, **k)

    def fake_os_open(path, flags, *a, **k):
        if inside(path) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            deny(path)
        return real_os_open(path, flags, *a, **k)

    def fake_mkdir(path, *a, **k):
        if inside(path):
            deny(path)
        return real_mkdir(path, *a, **k)

    def guarded(real):
        def move(src, dst, *a, **k):
            if inside(src) or inside(dst):
                deny(dst)
            return real(src, dst, *a, **k)
        return move

    with monkeypatch.context() as m:
        m.setattr(builtins, "open", fake_open)
        m.setattr(io, "open", fake_open)
        m.setattr(os, "open", fake_os_open)
        m.setattr(os, "mkdir", fake_mkdir)
        m.setattr(os, "replace", guarded(real_replace))
        m.setattr(os, "rename", guarded(real_rename))
        yield


def test_read_only_output_folders_give_one_line_errors(trained, tmp_path, monkeypatch, dataset):
    locked = tmp_path / "locked"
    locked.mkdir()
    last = str(trained / "last.pt")
    commands = {
        "train": ["train", "cgan", "--dataset", dataset, "--image-size", "28", "--g-width", "4",
                  "--d-width", "4", "--batch-size", "8", "--epochs", "1", "--device", "cpu",
                  "--out", str(locked / "run")],
        "evaluate": _evaluate_args(trained, locked / "eval"),
        "sample": ["sample", "--checkpoint", last, "-n", "4", "--out", str(locked / "s"),
                   "--device", "cpu"],
        "report": ["report", str(trained), "--out", str(locked / "report")],
    }
    for name, args in commands.items():
        with _read_only(monkeypatch, locked):
            result = runner.invoke(app, args)
        assert result.exit_code == 1, f"{name}: {result.output}"
        _one_line_error(result, "cannot write", str(locked))
    with _read_only(monkeypatch, trained):
        result = runner.invoke(app, ["train", "cgan", "--resume", last, "--epochs", "2",
                                     "--device", "cpu", "--quiet"])
    _one_line_error(result, "cannot write", str(trained))


def test_disk_full_while_checkpointing_names_folder_and_size_and_keeps_earlier_files(
        tmp_path, monkeypatch, dataset):
    real_save = torch.save
    calls = []

    def save(obj, f, *a, **k):
        calls.append(1)
        if len(calls) == 2:           # the second checkpoint (epoch 2) finds the disk full
            f.write(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *a, **k)

    monkeypatch.setattr(torch, "save", save)
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", "cgan", "--dataset", dataset, "--image-size", "28",
                                 "--g-width", "4", "--d-width", "4", "--batch-size", "8",
                                 "--epochs", "2", "--device", "cpu", "--quiet", "--out",
                                 str(out)])
    line = _one_line_error(result, "disk full", "epoch002.pt", str(out), "was needed")
    assert "MB" in line or "KB" in line
    monkeypatch.setattr(torch, "save", real_save)
    assert read_checkpoint(out / "epoch001.pt")["epoch"] == 1
    assert read_checkpoint(out / "last.pt")["epoch"] == 1
    assert not list(out.glob(".*.tmp"))


def test_permission_and_disk_errors_read_as_one_line():
    from medsyn.clitools import os_error_message

    denied = os_error_message(PermissionError(errno.EACCES, "Permission denied", "/x/y.json"))
    assert denied.startswith("cannot write or read /x/y.json: Permission denied")
    full = os_error_message(OSError(errno.ENOSPC, "No space left on device", "/x/y.json"))
    assert full.startswith("disk full while writing /x/y.json (in /x)")
    assert os_error_message(FileNotFoundError(errno.ENOENT, "nope", "/x")) is None


@pytest.mark.parametrize("lr", ["nan", "inf", "-1", "0"])
def test_bad_learning_rates_are_one_line_errors(tmp_path, lr, dataset):
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", "cgan", "--dataset", dataset, "--device", "cpu",
                                 "--lr", lr, "--out", str(out)])
    _one_line_error(result, "--lr")
    assert not out.exists()


def test_huge_sample_count_is_refused_up_front(trained, tmp_path):
    out = tmp_path / "many"
    result = runner.invoke(app, ["sample", "--checkpoint", str(trained / "last.pt"), "-n",
                                 str(10**12), "--out", str(out), "--device", "cpu"])
    _one_line_error(result, "--n 1000000000000", "free")
    assert not out.exists() or not any(out.rglob("*.png"))


def test_batch_too_large_for_memory_is_refused(trained, tmp_path, monkeypatch):
    from medsyn.generators import sampling

    monkeypatch.setattr(sampling, "available_memory", lambda: 10_000_000)
    result = runner.invoke(app, ["sample", "--checkpoint", str(trained / "last.pt"), "-n",
                                 "300", "--out", str(tmp_path / "s"), "--device", "cpu"])
    _one_line_error(result, "--batch-size 256", "available")


def test_samples_are_streamed_in_batches_with_balanced_labels(trained, tmp_path):
    from medsyn.generators import load_checkpoint
    from medsyn.generators.sampling import balanced_label_slice, write_samples

    for n, k in ((10, 2), (7, 3), (1, 4)):
        full = gan_checkpoint.balanced_labels(n, k)
        parts = torch.cat([balanced_label_slice(n, k, s, min(s + 3, n)) for s in range(0, n, 3)])
        assert torch.equal(parts, full)
    gen = load_checkpoint(trained / "last.pt")
    csv_path = write_samples(gen, 11, tmp_path / "s", seed=3, batch_size=4)
    rows = csv_path.read_text().splitlines()
    assert rows[0] == "file,label,class_name" and len(rows) == 12
    labels = [int(r.split(",")[1]) for r in rows[1:]]
    assert labels == gen.sample_labels(11).tolist()
    first = gen.sample(4, labels=gen.sample_labels(11)[:4], seed=3 * 1_000_003)
    name = rows[1].split(",")[0]
    assert np.array_equal(np.asarray(Image.open(tmp_path / "s" / name)), first[0, 0].numpy())
    assert [p.name for p in (tmp_path / "s").glob(".*")] == [".medsyn-manifest.json"]


# ---------------------------------------------------------------- 6. leftovers of killed writes


def test_temporary_files_of_killed_writes_are_removed_at_the_next_start(tmp_path, dataset):
    out = tmp_path / "run"
    train("cgan", dataset=dataset, out=str(out), epochs=1, **TINY)
    dead = _dead_pid()
    leftovers = [out / ".epoch002.pt.k3j2h1g0.tmp", out / ".last.pt.12345.tmp",
                 out / f".log.jsonl.{dead}.abcdefgh.tmp",
                 out / "samples" / f".epoch002.png.{dead}.zz9.tmp"]
    live = out / f".epoch003.pt.{os.getpid()}.abcdefgh.tmp"      # a writer still running
    for p in leftovers + [live]:
        p.write_bytes(b"\0" * 1000)
    train("cgan", resume=str(out / "last.pt"), epochs=2, device="cpu", quiet=True)
    assert not [p for p in leftovers if p.exists()] and live.exists()
    assert read_checkpoint(out / "last.pt")["epoch"] == 2


# ---------------------------------------------------------------- 7. divergence and collapse


def test_divergence_advice_is_a_command_that_works(tmp_path, monkeypatch, dataset):
    real_step = gan_step.GanStep.__call__

    def step(self, batch, state=None):
        stats = real_step(self, batch, state)
        if state.step == 2:
            stats["loss_d"] = torch.tensor(float("nan"))
        return stats

    monkeypatch.setattr(gan_step.GanStep, "__call__", step)
    with pytest.raises(TrainingDiverged) as info:
        train("cgan", dataset=dataset, out=str(tmp_path / "run"), epochs=1, **TINY)
    message = str(info.value)
    assert "another --seed" not in message
    assert "medsyn train cgan ... --lr LOWER --out NEW_FOLDER" in message
    assert "cannot change on --resume" in message


def test_collapse_with_finite_losses_is_reported_in_log_summary_and_checkpoint(
        tmp_path, capsys, dataset):
    out = tmp_path / "run"
    options = {**TINY, "quiet": False}
    train("dcgan", dataset=dataset, out=str(out), epochs=4, lr=1e3, **{
        k: v for k, v in options.items()})
    warned = [r for r in read_jsonl(out / "log.jsonl") if r.get("warning")]
    assert len(warned) == 1 and "collapse suspected" in warned[0]["warning"]
    err = capsys.readouterr().err
    done = err[err.index("done: epoch 4"):]
    assert "warning: collapse suspected" in done
    assert read_checkpoint(out / "last.pt")["warnings"] == [warned[0]["warning"]]


def test_collapse_detector_rules():
    detector = gan_step.CollapseDetector(window=5)
    healthy = [{"d_x": 0.7, "d_g_z1": 0.3, "g_std": 0.4}] * 5
    assert detector(healthy) is None and detector(healthy[:4]) is None
    blind = [{"d_x": 0.001, "d_g_z1": 0.001, "g_std": 0.4}] * 5
    assert "same saturated output" in detector(blind)
    certain = [{"d_x": 0.999, "d_g_z1": 0.0, "g_std": 0.4}] * 5
    assert "no gradient" in detector(certain)
    alike = [{"d_x": 0.6, "d_g_z1": 0.4, "g_std": 0.001}] * 5
    assert "mode collapse" in detector(alike)
    assert detector(alike[:4] + healthy[:1]) is None       # one healthy step breaks the window


# ---------------------------------------------------------------- 8. HTML in names


def test_summary_md_escapes_html_in_run_and_class_names(tmp_path):
    sys.path.insert(0, str(Path(__file__).parent))
    from report_fakes import make_generation_run

    from medsyn.reports import build_report

    runs = tmp_path / "runs"
    make_generation_run(runs, "<script>alert(1)</script>", {1: 90.0}, utility=True,
                        dataset="<i>scans</i>", classes=["<b>bold</b>", "a|b"])
    result = build_report(None, tmp_path / "out", runs_root=runs)
    md = result.summary_md.read_text()
    assert "| &lt;script&gt;alert(1)&lt;/script&gt; @ epoch 1 ★ |" in md
    assert "## &lt;i&gt;scans&lt;/i&gt; at 112 px" in md
    assert not {"<script>", "<i>", "<b>"} & set(re.findall(r"<[^>]*>", md))


# ---------------------------------------------------------------- 9. restart an empty run


def test_run_folder_killed_before_its_first_checkpoint_can_be_restarted(tmp_path, dataset):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text(json.dumps({"kind": "cgan"}))
    (out / "log.jsonl").write_text('{"step": 1, "epoch": 1, "loss_d": 1.0}\n')
    (out / ".epoch001.pt.a1b2c3d4.tmp").write_bytes(b"\0" * 100)
    train("cgan", dataset=dataset, out=str(out), epochs=1, **TINY)
    assert read_checkpoint(out / "last.pt")["epoch"] == 1
    assert read_jsonl(out / "log.jsonl")[0]["loss_d"] != 1.0
    assert not list(out.glob(".*.tmp"))
    with pytest.raises(ConfigError, match="already holds a run"):     # now it has one
        train("cgan", dataset=dataset, out=str(out), epochs=1, **TINY)
