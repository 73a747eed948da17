"""The privacy audit on real chest X-rays (PneumoniaMNIST, small n, pixel feature spaces).

"Synthetic" sets with a known answer: lightly-noised copies of training images (a leak every
test must flag) and unseen real images drawn from the same pool as the training images (no
leak: nothing may flag, the attack's interval must contain 0.5).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import with_noise
from PIL import Image

from medsyn.data import ImageDataset, load_dataset
from medsyn.evaluators import evaluate

TESTS = ("dcr", "data_copying", "membership_inference")


@pytest.fixture(scope="module")
def pool(data_root):
    full = load_dataset("pneumoniamnist", split="train")
    perm = np.random.default_rng(1).permutation(len(full))
    return {"train": full.subset(perm[:600]), "heldout": full.subset(perm[600:900]),
            "unseen": full.subset(perm[900:1200])}


def _privacy(fake, pool, tmp_path=None, **kw):
    return evaluate(fake, reference=pool["train"], train=pool["train"],
                    heldout=pool["heldout"], metrics="privacy", extractor="pixels",
                    n_bootstrap=30, out_dir=tmp_path, **kw)


def test_noised_copies_of_training_images_are_flagged(pool, tmp_path):
    fake = with_noise(pool["train"].images[:300], sigma=4.0, seed=0)
    res = _privacy(fake, pool, tmp_path)
    p = res["metrics"]["privacy"]
    assert set(p["spaces"]) == {"pixels16", "pixels28"}        # feature space + raw pixels
    for space, block in p["spaces"].items():
        for test in TESTS:
            assert block[test]["flags"] is True, (space, test)
        assert block["dcr"]["p_value"] < 1e-10
        assert block["dcr"]["median_ratio"] < 0.5
        assert block["dcr"]["fraction_below_heldout_p5"] > 0.9
        assert block["data_copying"]["value"] < -3
        mia = block["membership_inference"]
        # half of the 600 members were copied: AUC about 0.5 + 0.5 * 300/600 + ...
        assert mia["auc"] > 0.75 and mia["ci95"][0] > 0.7
        assert block["dcr"]["closest"][0]["train_index"] < 300      # a copied image
    # three built-in tests and authenticity (registered test), in two spaces
    assert p["verdict"]["leak_suspected"] and len(p["verdict"]["flagged"]) == 8
    assert "Possible leak" in p["verdict"]["text"]
    for key in ("privacy_pairs_pixels28", "privacy_hist_pixels28", "privacy_pairs_pixels16"):
        assert (tmp_path / res["figures"][key]).is_file()


def test_unseen_real_images_are_not_flagged(pool):
    p = _privacy(pool["unseen"].images, pool)["metrics"]["privacy"]
    for space, block in p["spaces"].items():
        for test in TESTS:
            assert block[test]["flags"] is False, (space, test)
        lo, hi = block["membership_inference"]["ci95"]
        assert lo < 0.5 < hi
        assert 0.85 < block["dcr"]["median_ratio"] < 1.15
    assert not p["verdict"]["leak_suspected"]
    assert p["patients"]["bootstrap"] == "images"


def _patient_folder(root, base: ImageDataset, n_patients: int, per_patient: int = 3):
    """A folder dataset where each 'patient' has per_patient noisy scans of one base image."""
    rows = ["path,label,patient_id"]
    names = base.class_names
    for p in range(n_patients):
        scans = with_noise(base.images[p:p + 1].repeat(per_patient, 1, 1, 1), 6.0, seed=p)
        label = names[int(base.labels[p])]
        for j in range(per_patient):
            rel = f"{label}/p{p:03d}_{j}.png"
            (root / label).mkdir(parents=True, exist_ok=True)
            Image.fromarray(scans[j, 0].numpy()).save(root / rel)
            rows.append(f"{rel},{label},P{p:03d}")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    return root


def test_patient_aware_audit_with_a_manifest(pool, tmp_path):
    root = _patient_folder(tmp_path / "ds", pool["unseen"], n_patients=120)
    splits = {s: load_dataset(f"folder:{root}", split=s) for s in ("train", "val", "test")}
    train, test = splits["train"], splits["test"]
    assert not set(train.patient_ids) & set(test.patient_ids)
    copies = with_noise(train.images[::3], sigma=4.0, seed=1)        # one copy per patient
    res = evaluate(copies, reference=train, train=train, heldout=test, metrics="privacy,real_floor",
                   extractor="pixels", n_bootstrap=20)
    p = res["metrics"]["privacy"]
    assert p["patients"] == {**p["patients"], "known": True, "bootstrap": "patients",
                             "n_train_patients": len(set(train.patient_ids))}
    assert p["spaces"]["pixels28"]["dcr"]["flags"] is True
    assert "patient-disjoint" in res["metrics"]["real_floor"]["fid_halves"]["sets"]

    # The same folder split per file (no manifest): held-out scans have siblings in train, the
    # baseline collapses towards the copies' distances and the leak looks smaller.
    (root / "manifest.csv").rename(root / "ignored.csv.bak")
    leaky_train = load_dataset(f"folder:{root}", split="train")
    leaky_test = load_dataset(f"folder:{root}", split="test")
    assert leaky_train.patient_ids is None
    leaky = evaluate(copies, reference=leaky_train, train=leaky_train, heldout=leaky_test,
                     metrics="privacy", extractor="pixels", n_bootstrap=0)["metrics"]["privacy"]
    d_ok = p["spaces"]["pixels28"]["dcr"]["median_heldout"]
    d_leaky = leaky["spaces"]["pixels28"]["dcr"]["median_heldout"]
    assert d_leaky < 0.7 * d_ok


def test_same_patient_pairs_are_excluded(pool):
    """Held-out scans of training patients: their baseline distance skips their own patient and
    they are not used as non-members of the attack."""
    base = pool["unseen"]
    train = ImageDataset("toy", "train", base.images[:200], base.labels[:200], base.class_names,
                         patient_ids=np.array([f"P{i}" for i in range(200)]))
    sibling_images = with_noise(base.images[:40], 6.0, seed=3)
    held_images = torch.cat([sibling_images, base.images[200:300]])
    held_labels = torch.cat([base.labels[:40], base.labels[200:300]])
    held_ids = np.array([f"P{i}" for i in range(40)] + [f"Q{i}" for i in range(100)])
    held = ImageDataset("toy", "test", held_images, held_labels, base.class_names,
                        patient_ids=held_ids)
    blind = ImageDataset("toy", "test", held_images, held_labels, base.class_names)
    fake = pool["heldout"].images[:100]
    out = {}
    for name, h in (("aware", held), ("blind", blind)):
        out[name] = evaluate(fake, reference=train, train=train, heldout=h, metrics="privacy",
                             extractor="pixels", n_bootstrap=0)["metrics"]["privacy"]
    aware = out["aware"]["spaces"]["pixels28"]
    blind_b = out["blind"]["spaces"]["pixels28"]
    assert aware["membership_inference"]["nonmembers_dropped_same_patient"] == 40
    assert aware["membership_inference"]["n_nonmembers"] == 100
    assert blind_b["membership_inference"]["n_nonmembers"] == 140
    # without patient ids the siblings' own scans are their nearest neighbours
    assert aware["dcr"]["median_heldout"] > blind_b["dcr"]["median_heldout"]
    assert aware["dcr"]["n_heldout"] == 140
