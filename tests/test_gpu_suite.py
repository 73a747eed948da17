"""bench/gpu_suite.py: the pack command, the CPU dry run of every stage, and its failure paths.

The dry run uses a small pack (16 training images per class) as its data root, so it runs the
suite's own data path; it is run with MEDSYN_INCEPTION_WEIGHTS unset, as on the GPU machine
(where the weights file cannot travel), so the random-init Inception path is the one tested.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SUITE = REPO / "bench" / "gpu_suite.py"
sys.path.insert(0, str(REPO / "bench"))

import gpu_suite  # noqa: E402


@pytest.fixture(scope="module")
def packed(data_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pack") / "gpu_data"
    rc = gpu_suite.main(["pack", "--out", str(out), "--data-root", str(data_root),
                         "--limit", "16", "--heldout-limit", "2"])
    assert rc == 0
    return out


def test_pack_writes_a_folder_medsyn_loads(packed, data_root):
    from medsyn.data import load_dataset

    manifest = json.loads((packed / "pack.json").read_text())
    assert manifest["splits"]["train"]["n"] == 48
    train = load_dataset("cxr3", "train", image_size=112, root=packed)
    assert len(train) == 48 and train.image_size == (112, 112) and train.channels == 1
    assert train.class_counts() == {"COVID": 16, "Normal": 16, "Viral Pneumonia": 16}
    assert train.fingerprint == manifest["splits"]["train"]["fingerprint"]
    # the same pixels as the real data resized by medsyn: the first 16 files of each class
    real = load_dataset("cxr3", "train", image_size=112, root=data_root)
    rows = [i for c in range(3) for i in (real.labels == c).nonzero().flatten()[:16].tolist()]
    assert real.subset(rows).fingerprint == train.fingerprint
    assert len(load_dataset("cxr3", "test", image_size=112, root=packed)) == 6
    # the pure-Python packages the GPU image lacks travel with the data
    assert (packed / "site" / "torch_fidelity" / "__init__.py").is_file()
    assert (packed / "site" / "medmnist" / "info.py").is_file()
    assert manifest["bytes"] < 40 * 2**20
    # an existing pack is not overwritten without --overwrite
    assert gpu_suite.main(["pack", "--out", str(packed), "--data-root", str(data_root),
                           "--limit", "1"]) == 2


def test_dry_run_every_stage_ok(packed, tmp_path):
    out = tmp_path / "suite.json"
    env = {k: v for k, v in os.environ.items() if k != "MEDSYN_INCEPTION_WEIGHTS"}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, str(SUITE), "--dry-run", "--data-root", str(packed),
                           "--out", str(out)], env=env, capture_output=True, text=True,
                          timeout=300)
    wall = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert doc["dry_run"] is True and doc["finished"]
    assert set(doc["stages"]) == {"throughput", "schedule", "eval", "highres"}
    for name, stage in doc["stages"].items():
        assert stage["status"] == "ok", (name, stage)
        assert stage["goal"]["met"] is None            # toy CPU figures judge no goal
    rows = doc["stages"]["throughput"]["rows"]
    assert [r["kind"] for r in rows if r["status"] == "ok"] == ["acgan", "cgan", "dcgan"]
    for r in rows:
        if r["status"] == "ok":
            assert r["medsyn_img_s"] > 0 and r["plain_img_s"] > 0 and r["ratio"] > 0
    assert doc["stages"]["throughput"]["figure"]["ratio"] > 0
    translation = doc["stages"]["throughput"]["translation"]
    assert translation["status"] == "ok" and translation["kind"] == "pix2pix"
    assert translation["medsyn_img_s"] > 0 and translation["timed_steps"] == 2
    sched = doc["stages"]["schedule"]["figure"]
    assert sched["epochs"] == 388 and sched["steps_per_epoch"] == 6     # 48 images, batch 8
    assert sched["timed_steps"] > 0 and sched["steps_per_s"] > 0
    assert sched["epoch_ends_timed"] >= 1 and sched["epoch_end_s"] >= 0
    assert sched["extrapolated_full_s"] >= sched["extrapolated_steps_only_s"] > 0
    ev = doc["stages"]["eval"]["figure"]
    assert ev["n_images"] == 16 and ev["n_real"] == 16
    for key in ("total_s", "evaluate_s", "fake_features_s", "real_features_s", "fid_s"):
        assert ev[key] > 0, key
    assert ev["weights"] == gpu_suite.RANDOM_WEIGHTS
    assert not any(k.startswith("fid_untrained") for k in ev)   # no FID from random weights
    ext = ev["extraction"]                  # one device's extraction rate, for docs/scale.md
    assert [r["batch_size"] for r in ext["rows"] if r["status"] == "ok"] == [8, 16]
    assert ext["images_per_s"] == max(r["images_per_s"] for r in ext["rows"]) > 0
    assert ext["device"] == "cpu" and ext["image_size"] == [28, 28]
    bound = ext["sharded_upper_bound_images_per_s"]
    assert bound["4"] == pytest.approx(4 * ext["images_per_s"], rel=1e-3)
    assert ext["eval_features_s_at"]["2"] == pytest.approx(ext["eval_features_s_at"]["1"] / 2,
                                                           rel=1e-3)
    assert "torchrun over 2 GPUs <=" in proc.stdout
    hr = doc["stages"]["highres"]["figure"]
    assert hr["pggan_img_s"] > 0 and hr["megan_img_s"] > 0 and "memory" not in hr
    assert "medsyn GPU suite (DRY RUN" in proc.stdout
    print(f"dry run wall time {wall:.1f} s")


def test_missing_data_root_is_a_clear_error(tmp_path, capsys):
    rc = gpu_suite.main(["--dry-run", "--data-root", str(tmp_path), "--out",
                         str(tmp_path / "x.json")])
    err = capsys.readouterr().err
    assert rc == 2
    assert str(tmp_path / "cxr3") in err and "gpu_suite.py pack --out" in err
    assert not (tmp_path / "x.json").exists()


def test_failed_or_timed_out_stage_is_recorded(tmp_path):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    cfg = {"device": "cpu", "data_root": str(tmp_path / "nowhere"), "dry_run": True,
           "deadline": time.time() + 120, "schedule": gpu_suite.DRY["schedule"]}
    report = gpu_suite.run_child("schedule", cfg, 120, env, tmp_path)
    assert report["status"] == "failed"
    assert "DataError" in report["error"] and "nowhere" in report["error"]
    report = gpu_suite.run_child("schedule", dict(cfg, deadline=time.time() + 1), 0.5, env,
                                 tmp_path)
    assert report["status"] == "failed" and report["error"].startswith("timed out after")
