"""Caches written before the evaluators were restructured (issue 25: classifier, SSL encoder
and their cache moved to evaluators/networks/) are still read.

The keys are computed here from their documented fields, as medsyn computed them before the
move (sha256 of the sorted JSON of what determines the weights or features), and the recipes'
descriptions are the literal ones main recorded. An entry written by hand under such a key is
what the moved code reads: it trains and extracts nothing.
"""

from __future__ import annotations

import hashlib
import io
import json

import numpy as np
import pytest
import timm
import torch
from conftest import blob_dataset

import medsyn
from medsyn.settings import ENV_CACHE_DIR

pytestmark = pytest.mark.usefixtures("one_thread")

# get_recipe("quick").describe() and get_ssl_recipe("quick").describe() as main wrote them
# into results.json and into the cache keys
QUICK_CLASSIFIER = {
    "name": "quick", "model": "resnet18", "stem_stride": 4, "epochs": 10, "batch_size": 128,
    "lr": 0.001, "betas": [0.9, 0.999], "weight_decay": 0.0, "milestones": [0.5, 0.75],
    "gamma": 0.1, "selection": "val_auc", "augment": "none", "precision": "auto",
    "precise_bn": 2048, "pretrained": None, "milestone_epochs": [5, 7], "optimizer": "Adam",
    "loss": "cross-entropy", "input": "x / 127.5 - 1", "stem": "stride 4"}
QUICK_SSL = {
    "name": "quick", "model": "resnet18", "stem_stride": 4, "epochs": 10, "batch_size": 256,
    "lr": 0.001, "weight_decay": 1e-06, "temperature": 0.2, "projection_dim": 128,
    "max_images": 4000, "crop_area": [0.7, 1.0], "max_rotation_deg": 10.0, "max_shift": 0.08,
    "brightness": 0.1, "contrast": 0.2, "noise_std": 0.03, "precision": "auto",
    "method": "SimCLR, NT-Xent loss, 2 views per image, projection MLP 512-512-128, features "
              "before the projection",
    "optimizer": "Adam, cosine decay of the lr to 0 over all steps",
    "input": "x / 127.5 - 1",
    "augmentations": "affine (zoom to crop_area, rotation, shift; reflection padding), "
                     "brightness, contrast, Gaussian noise; no flips"}


def _key(payload: dict) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _weights_sha256(model: torch.nn.Module) -> str:
    """sha256 over the state_dict in name order: ``name:dtype:shape;`` then the raw values."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _versions() -> dict:
    return {"medsyn": medsyn.__version__, "torch": torch.__version__.split("+")[0],
            "timm": timm.__version__, "device_type": "cpu", "precision": "fp32"}


def _write_network(folder, key: str, model: torch.nn.Module, meta: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), folder / f"{key[:40]}.pt")
    (folder / f"{key[:40]}.json").write_text(json.dumps(
        {"key": key, "weights_sha256": _weights_sha256(model), **meta}))


def _refuse_training(*args, **kwargs):
    raise AssertionError("trained a network that the cache holds")


def test_a_classifier_cached_under_mains_key_is_read(tmp_path, monkeypatch):
    from medsyn.evaluators.networks import classifier as clf_mod

    monkeypatch.setenv(ENV_CACHE_DIR, str(tmp_path))
    train, val = blob_dataset(40, 0), blob_dataset(20, 1, "val")
    assert clf_mod.get_recipe("quick").describe() == QUICK_CLASSIFIER
    key = _key({"version": 1, **_versions(),
                "train": {"name": "blobs", "split": "train", "fingerprint": train.fingerprint},
                "val": {"name": "blobs", "split": "val", "fingerprint": val.fingerprint},
                "recipe": QUICK_CLASSIFIER, "seed": 0})
    torch.manual_seed(3)
    stored = clf_mod.build_classifier(clf_mod.get_recipe("quick"), 1, 2, 16)
    _write_network(tmp_path / "classifiers", key, stored, {
        "best_epoch": 4, "history": [{"epoch": e} for e in range(1, 11)], "train_seconds": 2.5,
        "n_train": 40, "device": "cpu"})
    monkeypatch.setattr(clf_mod, "train_classifier", _refuse_training)
    clf = clf_mod.real_classifier(train, val, "quick", seed=0, device="cpu")
    assert clf.from_cache and clf.best_epoch == 4 and clf.n_train == 40
    assert clf.weights_sha256 == _weights_sha256(stored)
    for name, tensor in stored.state_dict().items():
        assert torch.equal(clf.model.state_dict()[name], tensor)


def test_an_ssl_encoder_cached_under_mains_key_is_read(tmp_path, monkeypatch):
    from medsyn.evaluators.networks import ssl

    monkeypatch.setenv(ENV_CACHE_DIR, str(tmp_path))
    train = blob_dataset(40, 0)
    recipe = ssl.get_ssl_recipe("quick")
    assert recipe.describe() == QUICK_SSL
    key = _key({"version": 1, **_versions(),
                "train": {"name": "blobs", "split": "train", "fingerprint": train.fingerprint,
                          "n": 40, "image_size": [16, 16], "channels": 1},
                "recipe": QUICK_SSL, "seed": 0})
    torch.manual_seed(4)
    stored = ssl.SimCLRNet(recipe, 1, 16)
    _write_network(tmp_path / "ssl", key, stored, {
        "history": [{"epoch": 1, "loss": 5.0}], "train_seconds": 1.5, "n_train": 40,
        "device": "cpu"})
    monkeypatch.setattr(ssl, "train_ssl_encoder", _refuse_training)
    enc = ssl.real_ssl_encoder(train, "quick", seed=0, device="cpu")
    assert enc.from_cache and enc.n_train == 40
    assert enc.weights_sha256 == _weights_sha256(stored)
    x = torch.zeros(2, 1, 16, 16)
    torch.testing.assert_close(enc.encoder(x), stored.encoder.eval()(x))


def test_real_features_cached_under_mains_key_are_read(tmp_path, monkeypatch):
    from medsyn.evaluators.features import PixelExtractor, dataset_features

    monkeypatch.setenv(ENV_CACHE_DIR, str(tmp_path))
    ds, ext = blob_dataset(30, 0), PixelExtractor(8, device="cpu")
    key = _key({"version": 1,
                "dataset": {"name": "blobs", "split": "train", "fingerprint": ds.fingerprint,
                            "n": 30, "image_size": [16, 16], "channels": 1},
                "extractor": {"name": ext.name, "feature_dim": 64, "weights_sha256": None,
                              "conventions": ext.conventions},
                "logits": False})
    features = np.full((30, 64), 7.0, dtype=np.float32)
    buf = io.BytesIO()
    np.savez(buf, features=features)
    folder = tmp_path / "features"
    folder.mkdir()
    (folder / f"{key[:40]}.npz").write_bytes(buf.getvalue())
    (folder / f"{key[:40]}.json").write_text(json.dumps(
        {"key": key, "sha256": hashlib.sha256(buf.getvalue()).hexdigest()}))
    out = dataset_features(ds, ext)
    assert out.from_cache and np.array_equal(out.features, features)
