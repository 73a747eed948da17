"""`medsyn evaluate` end to end on real cxr3 images (at 32 px, with the cheap 'pixels'
extractor), with a test double for the generator checkpoint API (docs/architecture.md s.2).
"""

from __future__ import annotations

import json
import sys
import types

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from medsyn.cli import app
from medsyn.data import load_dataset

pytestmark = pytest.mark.real_data
SIZE = 32
CLASSES = ["COVID", "Normal", "Viral Pneumonia"]


@pytest.fixture(scope="module")
def cxr3(data_root):
    return {s: load_dataset("cxr3", s, image_size=SIZE, root=data_root)
            for s in ("train", "val", "test")}


class DoubleGenerator:
    """Implements the checkpoint contract; 'copy' mode returns training images (a memorizing
    generator), 'val' mode returns validation images (an honest one)."""

    def __init__(self, spec: dict, pools: dict):
        self.kind = spec.get("kind", "acgan")
        self.class_names = spec.get("class_names", CLASSES)
        self.conditional = True
        self.image_size = SIZE
        self.channels = 1
        self.pool = pools[spec["mode"]]
        self.metadata = {
            "format_version": 1, "kind": self.kind, "epoch": spec["epoch"], "step": 100,
            "dataset": {"name": "cxr3", "split": "train", "image_size": SIZE, "channels": 1,
                        "class_names": self.class_names, "fingerprint": spec["fingerprint"]}}
        self.discriminate_calls = 0

    def sample_labels(self, n):
        k = len(self.class_names)
        return torch.cat([torch.full((n // k + (i < n % k),), i) for i in range(k)])

    def sample(self, n, labels=None, seed=None):
        labels = self.sample_labels(n) if labels is None else torch.as_tensor(labels)
        g = torch.Generator().manual_seed(seed or 0)
        out = []
        for lab in labels.tolist():
            members = torch.nonzero(self.pool.labels == lab)[:, 0]
            out.append(self.pool.images[members[torch.randint(len(members), (1,), generator=g)]])
        return torch.cat(out)

    def discriminate(self, images, labels=None):
        x = images.float().mean((1, 2, 3)) / 255
        logits = torch.stack([x, 1 - x, 0.5 * torch.ones_like(x)], 1)
        return {"p_real": x, "class_logits": logits}


@pytest.fixture
def checkpoints(tmp_path, monkeypatch, cxr3):
    pools = {"copy": cxr3["train"], "val": cxr3["val"]}
    module = types.ModuleType("medsyn.generators")

    def load_checkpoint(path, device="cpu"):
        return DoubleGenerator(json.loads(open(path).read()), pools)

    module.load_checkpoint = load_checkpoint
    monkeypatch.setitem(sys.modules, "medsyn.generators", module)
    run = tmp_path / "runs" / "double"
    run.mkdir(parents=True)

    def make(name, **spec):
        spec.setdefault("fingerprint", cxr3["train"].fingerprint)
        (run / name).write_text(json.dumps(spec))
        return run / name

    return run, make


def _invoke(*args):
    result = CliRunner().invoke(app, ["evaluate", *map(str, args)])
    text = result.output + (getattr(result, "stderr", "") or "")
    return result, text


def test_checkpoint_glob_writes_one_result_per_epoch(checkpoints, cxr3):
    run, make = checkpoints
    make("epoch001.pt", mode="copy", epoch=1)
    make("epoch002.pt", mode="val", epoch=2)
    # --n-memorization: the floor and memorization use every training image, while --n-real
    # alone would bound them to 60 too
    result, text = _invoke("--checkpoint", run / "epoch*.pt", "--extractor", "pixels",
                           "--n-real", 60, "--n-memorization", len(cxr3["train"]),
                           "--bootstrap", 5, "--seed", 1)
    assert result.exit_code == 0, text
    assert "fid" in text and "memorization" in text
    fractions = {}
    for epoch in (1, 2):
        out = run / "eval" / f"epoch{epoch:03d}"
        res = json.loads((out / "results.json").read_text())
        assert res["run"] == {"name": "double", "checkpoint": str(run / f"epoch{epoch:03d}.pt"),
                              "model_kind": "acgan", "epoch": epoch, "step": 100,
                              "run_dir": str(run)}
        m = res["metrics"]
        assert m["fid"]["n_real"] == 60 and m["fid"]["n_fake"] == 60      # as many as the ref
        assert set(m["intra_fid"]["per_class"]) == set(CLASSES)
        assert m["intra_fid"]["per_class"]["COVID"]["n_fake"] == 20
        disc = m["discriminator"]
        assert 0 <= disc["acc_real_test"] <= 1 and 0 <= disc["aux_acc_real_test"] <= 1
        assert disc["n_real_test"] == len(cxr3["test"])
        assert m["real_floor"]["fid_train_vs_test"]["n_real"] == len(cxr3["train"])
        assert m["memorization"]["n_train"] == len(cxr3["train"])
        fractions[epoch] = m["memorization"]["fraction"]
        prov = res["provenance"]
        assert prov["checkpoint_sha256"] and prov["dataset"]["split"] == "train"
        assert prov["sampling"]["seed"] == 1
        assert (out / "metrics.csv").exists() and (out / "tsne.png").exists()
        assert (out / "memorization.png").exists()
    assert fractions[1] > 0.9            # the copying generator is caught
    assert fractions[2] < 0.2            # validation images are not copies


def test_checkpoint_dataset_mismatch_is_an_error(checkpoints):
    run, make = checkpoints
    make("classes.pt", mode="val", epoch=1, class_names=["a", "b", "c"])
    result, text = _invoke("--checkpoint", run / "classes.pt", "--extractor", "pixels")
    assert result.exit_code == 1 and "generates classes ['a', 'b', 'c']" in text
    make("changed.pt", mode="val", epoch=1, fingerprint="f" * 64)
    result, text = _invoke("--checkpoint", run / "changed.pt", "--extractor", "pixels")
    assert result.exit_code == 1 and "changed since training" in text
    assert "Traceback" not in text
    result, text = _invoke("--checkpoint", run / "nothing*.pt")
    assert result.exit_code == 1 and "no checkpoint matches" in text


def _save_folder(root, images, labels=None, names=CLASSES):
    root.mkdir(parents=True)
    for i, img in enumerate(images):
        folder = root if labels is None else root / names[int(labels[i])]
        folder.mkdir(exist_ok=True)
        arr = img[0].numpy() if img.shape[0] == 1 else img.permute(1, 2, 0).numpy()
        Image.fromarray(arr).save(folder / f"{i:04d}.png")


def test_fake_folder_with_classes_and_npz_evaluate(tmp_path, cxr3):
    val = cxr3["val"]
    idx = torch.arange(0, len(val), 10)
    _save_folder(tmp_path / "fake", val.images[idx], val.labels[idx])
    out = tmp_path / "out"
    result, text = _invoke("--fake", tmp_path / "fake", "--real", "cxr3:test", "--extractor",
                           "pixels", "--metrics", "fid,kid,intra_fid,memorization",
                           "--bootstrap", 5, "--out", out)
    assert result.exit_code == 0, text
    res = json.loads((out / "results.json").read_text())
    assert res["metrics"]["fid"]["n_fake"] == len(idx)
    assert res["metrics"]["fid"]["n_real"] == len(cxr3["test"])
    assert res["provenance"]["reference"]["split"] == "test"
    assert res["run"]["checkpoint"] is None
    assert res["metrics"]["intra_fid"]["per_class"]["Normal"]["n_fake"] == int(
        (val.labels[idx] == 1).sum())
    # an npz with images at another size (resized to the reference's, and said so)
    big = torch.nn.functional.interpolate(val.images[:40].float(), size=48).to(torch.uint8)
    np.savez(tmp_path / "fake.npz", images=big.numpy(), labels=val.labels[:40].numpy())
    result, text = _invoke("--fake", tmp_path / "fake.npz", "--real", "cxr3:train",
                           "--image-size", SIZE, "--extractor", "pixels", "--metrics", "fid",
                           "--bootstrap", 0, "--out", tmp_path / "out2", "--json")
    assert result.exit_code == 0, text
    res = json.loads((tmp_path / "out2" / "results.json").read_text())
    assert res["provenance"]["resize"]["fakes"]["from"] == [48, 48]
    assert res["metrics"]["fid"]["ci95"] is None                   # --bootstrap 0


@pytest.mark.parametrize("case,message", [
    ("empty", "contains no images"),
    ("unknown_class", "are not classes of the reference"),
    ("nan_npz", "NaN or infinite"),
    ("two_channels", "neither 1 nor 3 channels"),
    ("colour", "colour"),
    ("mixed_sizes", "different sizes"),
    ("float_range", "accepts floats in [0, 1] or [-1, 1]"),
])
def test_bad_fake_inputs_are_explained(tmp_path, cxr3, case, message):
    imgs = cxr3["val"].images[:6]
    fake = tmp_path / "fake"
    if case == "empty":
        fake.mkdir()
        (fake / "notes.txt").write_text("no images here")
    elif case == "unknown_class":
        _save_folder(fake, imgs, torch.tensor([0, 1, 2, 0, 1, 2]), names=["COVID", "Normal", "Cat"])
    elif case == "nan_npz":
        arr = imgs.numpy().astype(np.float32) / 255
        arr[3, 0, 5, 5] = np.nan
        fake = tmp_path / "fake.npz"
        np.savez(fake, images=arr)
    elif case == "two_channels":
        fake = tmp_path / "fake.npz"
        np.savez(fake, images=np.zeros((6, 32, 32, 2), np.uint8))
    elif case == "colour":
        rgb = imgs.repeat(1, 3, 1, 1)
        rgb[:, 0] //= 2
        _save_folder(fake, rgb)
    elif case == "mixed_sizes":
        fake.mkdir()
        Image.fromarray(imgs[0, 0].numpy()).save(fake / "a.png")
        Image.fromarray(np.zeros((40, 40), np.uint8)).save(fake / "b.png")
    elif case == "float_range":
        fake = tmp_path / "fake.npz"
        np.savez(fake, images=imgs.numpy().astype(np.float32))
    result, text = _invoke("--fake", fake, "--real", "cxr3:test", "--extractor", "pixels",
                           "--metrics", "fid", "--bootstrap", 0, "--out", tmp_path / "out")
    assert result.exit_code == 1, text
    assert message in text and "Traceback" not in text


def test_option_errors_and_list():
    for args, message in [
        ([], "either --checkpoint"),
        (["--fake", "x"], "--fake needs --real"),
        (["--fake", "x", "--real", "cxr3", "--checkpoint", "y"], "either --checkpoint"),
        (["--fake", "x", "--real", "cxr3", "--metrics", "fid,fdi"], "unknown metric(s) fdi"),
        (["--checkpoint", "y.pt", "--reference", "val"], "--reference must be one of"),
        (["--fake", "x", "--real", "cxr3"], "--fake x: no such file or folder"),
        (["--fake", ".", "--real", "cxr3", "--extractor", "nope"], "unknown feature extractor"),
        (["--fake", ".", "--real", "cxr3", "--device", "cuda:7"], "device"),
    ]:
        result, text = _invoke(*args)
        assert result.exit_code == 1, (args, text)
        assert message in text, (args, text)
    result, text = _invoke("--list")
    assert result.exit_code == 0 and "intra_fid" in text and "inception" in text
