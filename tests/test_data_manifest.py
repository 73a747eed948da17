"""Patient ids from a folder dataset's manifest.csv, and patient-disjoint splits."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from medsyn.cli import app
from medsyn.data import load_dataset
from medsyn.data.manifest import patient_split
from medsyn.errors import DataError

runner = CliRunner()


def _png(path, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (8, 8), int(value) % 256).save(path)


def _flat_tree(root, n_patients=20, per_patient=3, classes=("a", "b")):
    """<root>/<class>/<file>.png, per_patient images per patient, and a manifest."""
    rows = ["path,label,patient_id"]
    k = 0
    for p in range(n_patients):
        cls = classes[p % len(classes)]
        for _ in range(per_patient):
            rel = f"{cls}/img{k:03d}.png"
            _png(root / rel, 7 * k)
            rows.append(f"{rel},{cls},P{p:02d}")
            k += 1
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    return root


def test_automatic_split_is_patient_disjoint_and_complete(tmp_path):
    root = _flat_tree(tmp_path / "ds")
    splits = {s: load_dataset(f"folder:{root}", split=s)
              for s in ("train", "val", "test")}
    pats = {s: set(ds.patient_ids) for s, ds in splits.items()}
    assert not pats["train"] & pats["test"] and not pats["train"] & pats["val"]
    assert not pats["val"] & pats["test"]
    assert sum(len(ds) for ds in splits.values()) == 60
    assert len(pats["train"] | pats["val"] | pats["test"]) == 20
    # 10 patients per class: 2 test, 1 val, 7 train per class
    assert len(pats["test"]) == 4 and len(pats["val"]) == 2 and len(pats["train"]) == 14
    test = splits["test"]
    assert test.source["manifest"]["n_patients"] == 4
    assert "patients" in test.source["manifest"]["split_rule"]
    assert test.describe()["n_patients"] == 4
    # every image carries its manifest's patient id, and subsets keep them aligned
    sub = test.subset([2, 0])
    assert list(sub.patient_ids) == [test.patient_ids[2], test.patient_ids[0]]


def test_patient_split_rule_by_hand():
    pids = np.array(["x", "x", "y", "z", "z", "z", "w"])
    labels = np.array([0, 1, 1, 0, 0, 0, 1])      # x: tie 0/1 -> class 0
    test = patient_split(pids, labels, "test")
    train = patient_split(pids, labels, "train")
    val = patient_split(pids, labels, "val")
    assert sorted(np.r_[test, train, val]) == list(range(7))
    for idx in (test, train, val):                 # a patient is never cut in two
        for p in set(pids[idx]):
            assert set(np.flatnonzero(pids == p)) <= set(idx)


def test_without_manifest_nothing_changes(tmp_path):
    root = _flat_tree(tmp_path / "ds")
    (root / "manifest.csv").unlink()
    ds = load_dataset(f"folder:{root}", split="train")
    assert ds.patient_ids is None and "manifest" not in ds.source


def _split_tree(root, shared=False):
    rows = ["path,label,patient_id"]
    for split, pats in (("train", ["A", "B"]), ("test", ["C", "A" if shared else "D"])):
        for i, p in enumerate(pats):
            rel = f"{split}/cls/{p}{i}.png"
            _png(root / rel, i * 30)
            rows.append(f"{rel},cls,{p}")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    return root


def test_split_folders_must_be_patient_disjoint(tmp_path):
    ok = load_dataset(f"folder:{_split_tree(tmp_path / 'ok')}", split="test")
    assert sorted(ok.patient_ids) == ["C", "D"]
    root = _split_tree(tmp_path / "bad", shared=True)
    with pytest.raises(DataError) as err:
        load_dataset(f"folder:{root}", split="test")
    msg = str(err.value)
    assert "manifest.csv" in msg and "'A'" in msg and "patient-disjoint" in msg


@pytest.mark.parametrize("content, expect", [
    ("file,label,patient\n", "missing path, patient_id"),
    ("path,label,patient_id\n", "lists no images"),
    ("path,label,patient_id\ntrain/cls/A0.png,cls,\n", "line 2"),
    ("path,label,patient_id\ntrain/cls/A0.png,cls,A\ntrain/cls/A0.png,cls,A\n", "listed twice"),
    ("path,label,patient_id\ntrain/cls/A0.png,other,A\ntrain/cls/B1.png,cls,B\n"
     "test/cls/C0.png,cls,C\ntest/cls/D1.png,cls,D\n", "label 'other'"),
    ("path,label,patient_id\ntrain/cls/A0.png,cls,A\n", "is not listed"),
])
def test_bad_manifest_is_named(tmp_path, content, expect):
    root = _split_tree(tmp_path / "ds")
    (root / "manifest.csv").write_text(content)
    with pytest.raises(DataError) as err:
        load_dataset(f"folder:{root}", split="train")
    assert expect in str(err.value) and "manifest.csv" in str(err.value)


def test_cli_manifest_error_is_one_line(tmp_path):
    root = _split_tree(tmp_path / "ds", shared=True)
    result = runner.invoke(app, ["data", "info", f"folder:{root}", "--split", "train"])
    assert result.exit_code == 1
    assert "patient-disjoint" in result.output and "Traceback" not in result.output


def test_cli_privacy_audit_on_a_manifest_folder(tmp_path):
    """`medsyn evaluate --metrics privacy` on a folder with patients: the verdict is printed,
    results.json records the patients, and copies of training scans are flagged."""
    root = tmp_path / "ds"
    rng = np.random.default_rng(0)
    rows = ["path,label,patient_id"]
    for p in range(60):
        cls = "ab"[p % 2]
        base = rng.normal(120, 40) + rng.normal(0, 35, (24, 24))
        for j in range(2):                       # two scans per patient
            rel = f"{cls}/p{p:02d}_{j}.png"
            (root / cls).mkdir(parents=True, exist_ok=True)
            scan = np.clip(base + rng.normal(0, 5, base.shape), 0, 255).astype(np.uint8)
            Image.fromarray(scan).save(root / rel)
            rows.append(f"{rel},{cls},P{p:02d}")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    train = load_dataset(f"folder:{root}", split="train")
    fakes = tmp_path / "fakes"
    for i, img in enumerate(train.images[:40]):
        cls = train.class_names[int(train.labels[i])]
        (fakes / cls).mkdir(parents=True, exist_ok=True)
        Image.fromarray(img[0].numpy()).save(fakes / cls / f"{i}.png")
    out = tmp_path / "eval"
    result = runner.invoke(app, ["evaluate", "--fake", str(fakes), "--real", f"folder:{root}",
                                 "--metrics", "privacy", "--extractor", "pixels",
                                 "--bootstrap", "5", "--out", str(out), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    printed = " ".join(result.output.split())     # rich wraps long lines at any width
    assert "privacy:" in printed and "Possible leak" in printed, result.output
    block = json.loads((out / "results.json").read_text())["metrics"]["privacy"]
    assert block["patients"]["known"] and block["patients"]["bootstrap"] == "patients"
    assert block["spaces"]["pixels24"]["dcr"]["flags"] is True
    # the manifest's random patient split gives a validation split: the default baseline
    assert block["baseline"]["set"].endswith("/val")
    assert block["patients"]["n_heldout_patients"] == 6
    # 4 tests and the exchangeability check, in 2 spaces
    assert (out / "metrics.csv").read_text().count("privacy.spaces.") == 10


def test_hook_attaches_ids_to_other_selections(tmp_path):
    """A selection that is no train/val/test split (e.g. a folder's every image) keeps its
    files and gets their ids; files outside class folders are not checked against a label."""
    from medsyn.data.manifest import apply_manifest

    root = tmp_path / "flat"
    rows = ["path,label,patient_id"]
    for i in range(4):
        _png(root / f"img{i}.png", i)
        rows.append(f"img{i}.png,whatever,P{i // 2}")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    files = sorted(root.glob("*.png"))

    def no_listing(*_):
        raise AssertionError("a non-split selection must not be re-split")

    out_files, labels, patients = apply_manifest(root, "all", files, [0] * 4, ["unlabelled"],
                                                 False, no_listing)
    assert out_files == files and labels == [0] * 4
    assert list(patients.ids) == ["P0", "P0", "P1", "P1"]
    assert patients.info["n_patients"] == 2
