"""evaluate(): the feature cache, result layout, unavailable metrics, bad input (API level).

These use the cheap 'pixels' extractor on small synthetic sets, so they run in seconds.
"""

from __future__ import annotations

import json
import math
from functools import partial

import numpy as np
import pytest
import torch
from conftest import blob_dataset, blob_images

import medsyn.evaluators as ev
from medsyn.errors import ConfigError, DataError
from medsyn.evaluators.features import PixelExtractor
from medsyn.settings import ENV_CACHE_DIR

# this module's images: 24 px blobs, brightness 60 apart per class (tests/conftest.py)
_blobs = partial(blob_images, size=24)
_dataset = partial(blob_dataset, size=24)


class CountingExtractor(PixelExtractor):
    def __init__(self, weights_sha256=None):
        super().__init__(8, device="cpu")
        self.weights_sha256 = weights_sha256
        self.images_seen = 0

    def extract(self, images):
        self.images_seen += len(images)
        return super().extract(images)


def test_real_features_are_cached_and_not_recomputed(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_CACHE_DIR, str(tmp_path))      # an empty cache, even on re-runs
    ref = _dataset(120, 0)
    ext = CountingExtractor()
    fake1, lab1 = _blobs(50, 1)
    fake2, lab2 = _blobs(60, 2)
    r1 = ev.evaluate(fake1, lab1, reference=ref, extractor=ext, metrics=["fid"], n_bootstrap=5)
    assert ext.images_seen == 120 + 50
    assert r1["provenance"]["timings"]["real_features_cached"] is False
    r2 = ev.evaluate(fake2, lab2, reference=ref, extractor=ext, metrics=["fid", "kid"],
                     n_bootstrap=5)
    assert ext.images_seen == 120 + 50 + 60           # only the new fakes
    assert r2["provenance"]["timings"]["real_features_cached"] is True
    # another extractor identity (weights checksum) or other pixels: computed again
    other = CountingExtractor(weights_sha256="0" * 64)
    ev.evaluate(fake2, lab2, reference=ref, extractor=other, metrics=["fid"], n_bootstrap=0)
    assert other.images_seen == 120 + 60
    changed = _dataset(120, 0)
    changed.images[0, 0, 0, 0] ^= 1
    ext.images_seen = 0
    ev.evaluate(fake2, lab2, reference=changed, extractor=ext, metrics=["fid"], n_bootstrap=0)
    assert ext.images_seen == 120 + 60
    # use_cache=False neither reads nor writes
    ext.images_seen = 0
    ev.evaluate(fake2, lab2, reference=ref, extractor=ext, metrics=["fid"], n_bootstrap=0,
                use_cache=False)
    assert ext.images_seen == 120 + 60


def test_full_evaluation_writes_the_documented_layout(tmp_path):
    train, test = _dataset(160, 0), _dataset(80, 5, split="test")
    fake, labels = _blobs(100, 9, offset=10)
    out = tmp_path / "eval"
    res = ev.evaluate(fake, labels, reference=train, train=train, heldout=test,
                      extractor="pixels", n_bootstrap=20, out_dir=out, tsne_max_points=60)
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk["schema_version"] == 1 and on_disk["kind"] == "generation"
    assert set(on_disk["run"]) == {"name", "checkpoint", "model_kind", "epoch", "step", "run_dir"}
    m = on_disk["metrics"]
    for name in ("fid", "kid", "precision", "recall", "density", "coverage"):
        e = m[name]
        assert e["n_real"] == 160 and e["n_fake"] == 100 and e["extractor"] == "pixels16"
        lo, hi = e["ci95"]
        assert lo <= e["value"] <= hi, name
    assert m["kid"]["subset_size"] == 100 and "reduced" in m["kid"]["note"]
    assert m["is"]["value"] is None and m["is"]["unavailable"]
    assert set(m["intra_fid"]["per_class"]) == {"c0", "c1"}
    assert m["intra_fid"]["value"] == pytest.approx(
        np.mean([c["value"] for c in m["intra_fid"]["per_class"].values()]))
    assert "kid" in m["intra_fid"]["per_class"]["c0"]
    assert "fewer than the 256 feature dimensions" in m["intra_fid"]["per_class"]["c0"]["warning"]
    floor = m["real_floor"]
    assert floor["fid_halves"]["n_real"] == 80 and floor["fid_train_vs_test"]["n_fake"] == 80
    mem = m["memorization"]
    assert 0 <= mem["fraction"] <= 1 and mem["percentile"] == 1
    assert mem["n_train"] == 160 and mem["n_heldout"] == 80 and mem["n_fake"] == 100
    for fig in on_disk["figures"].values():
        assert (out / fig).stat().st_size > 1000
    assert set(on_disk["figures"]) >= {"tsne", "memorization"}
    prov = on_disk["provenance"]
    assert prov["dataset"]["fingerprint"] == train.fingerprint
    assert {"medsyn", "torch", "torch_fidelity", "python"} <= set(prov["versions"])
    assert prov["seed"] == 0 and prov["date"]
    csv = (out / "metrics.csv").read_text().splitlines()
    assert csv[0].startswith("metric,value,ci95_lo,ci95_hi")
    assert any(line.startswith("intra_fid.per_class.c1.kid,") for line in csv)
    assert res["metrics"]["fid"]["value"] == m["fid"]["value"]
    # same seed, same numbers
    again = ev.evaluate(fake, labels, reference=train, train=train, heldout=test,
                        extractor="pixels", n_bootstrap=20, metrics="fid,prdc")
    assert again["metrics"]["fid"] == m["fid"]
    assert again["metrics"]["coverage"] == m["coverage"]


def test_collapsed_generator_gets_low_recall_and_coverage():
    ref = _dataset(200, 0)
    good, good_labels = _blobs(200, 3)
    collapsed = ref.images[:1].repeat(200, 1, 1, 1)
    r_good = ev.evaluate(good, good_labels, reference=ref, extractor="pixels",
                         metrics=["prdc"], n_bootstrap=0)["metrics"]
    r_bad = ev.evaluate(collapsed, None, reference=ref, extractor="pixels",
                        metrics=["prdc"], n_bootstrap=0)["metrics"]
    assert r_good["recall"]["value"] > 0.5 and r_good["coverage"]["value"] > 0.5
    assert r_bad["recall"]["value"] < 0.05 and r_bad["coverage"]["value"] < 0.05


def test_memorizing_generator_is_flagged():
    train, test = _dataset(150, 0), _dataset(100, 7, split="test")
    copies = train.images[:60]
    fresh, _ = _blobs(60, 11)
    m_copy = ev.evaluate(copies, None, reference=train, train=train, heldout=test,
                         extractor="pixels", metrics=["memorization"],
                         n_bootstrap=10)["metrics"]["memorization"]
    m_fresh = ev.evaluate(fresh, None, reference=train, train=train, heldout=test,
                          extractor="pixels", metrics=["memorization"],
                          n_bootstrap=10)["metrics"]["memorization"]
    assert m_copy["fraction"] == 1.0 and m_copy["closest"][0]["distance"] < 1e-5
    assert m_fresh["fraction"] < 0.2


def test_unavailable_metrics_are_null_with_a_reason_never_nan(tmp_path):
    ref = _dataset(40, 0)
    fake, _ = _blobs(30, 1)
    res = ev.evaluate(fake, None, reference=ref, extractor="pixels",
                      metrics=["is", "intra_fid", "memorization", "real_floor", "discriminator"],
                      n_bootstrap=3, out_dir=tmp_path)
    m = res["metrics"]
    assert m["is"]["value"] is None and "classifier" in m["is"]["unavailable"]
    assert m["intra_fid"]["value"] is None and "labels" in m["intra_fid"]["unavailable"]
    assert m["memorization"]["value"] is None
    assert m["real_floor"]["fid_train_vs_test"]["value"] is None
    assert "checkpoint" in m["discriminator"]["unavailable"]
    text = (tmp_path / "results.json").read_text()
    assert "NaN" not in text and "Infinity" not in text


def test_write_results_refuses_nan_and_add_metrics_merges(tmp_path):
    with pytest.raises(ValueError, match="non-finite"):
        ev.write_results({"metrics": {"fid": {"value": math.nan}}}, tmp_path / "x")
    ev.write_results({"schema_version": 1, "metrics": {"fid": {"value": 3.0, "ci95": [2, 4]}},
                      "figures": {}, "provenance": {}}, tmp_path)
    utility = {"arms": {"tstr": {"accuracy": {"mean": 0.8, "std": 0.01, "values": [0.8]}}},
               "gain": {"accuracy": {"mean": 0.02, "std": 0.01, "ci95": [0.0, 0.04]}}}
    merged = ev.add_metrics(tmp_path, {"utility": utility}, figures={"cm": "cm.png"})
    assert merged["metrics"]["fid"]["value"] == 3.0 and merged["figures"] == {"cm": "cm.png"}
    assert ev.load_results(tmp_path)["metrics"]["utility"] == utility
    csv = (tmp_path / "metrics.csv").read_text()
    assert "utility.gain.accuracy,0.02,0.0,0.04" in csv
    assert "utility.arms.tstr.accuracy,0.8" in csv


def test_register_metric_adds_a_family(tmp_path):
    def brightness(ctx):
        v = float(ctx.fake_images.float().mean())
        return {"brightness": ev.entry(v, [], len(ctx.real), len(ctx.fake), "pixels")}

    ev.register_metric("brightness_test", brightness, "mean grey level", default=False)
    try:
        ref = _dataset(30, 0)
        fake, _ = _blobs(20, 1)
        res = ev.evaluate(fake, None, reference=ref, extractor="pixels",
                          metrics=["brightness_test"], out_dir=tmp_path)
        assert res["metrics"]["brightness"]["value"] == pytest.approx(float(fake.float().mean()))
        assert "brightness" in (tmp_path / "metrics.csv").read_text()
    finally:
        from medsyn.evaluators.metrics.registry import _METRICS
        _METRICS.pop("brightness_test")


def test_registering_a_torch_module_extractor_takes_a_few_lines():
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.AdaptiveAvgPool2d(1))
    ev.register_extractor("tiny-test", lambda device=None, **_: ev.TorchModuleExtractor(
        "tiny-test", net, feature_dim=4, weights_sha256="abc", device=device), "test")
    try:
        assert "tiny-test" in ev.list_extractors()
        ref = _dataset(40, 0)
        fake, _ = _blobs(40, 1)
        res = ev.evaluate(fake, None, reference=ref, extractor="tiny-test", metrics=["fid"],
                          n_bootstrap=0)
        assert res["metrics"]["fid"]["extractor"] == "tiny-test"
        assert res["provenance"]["extractor"]["weights_sha256"] == "abc"
    finally:
        from medsyn.evaluators.features.registry import _REGISTRY
        _REGISTRY.pop("tiny-test")


def test_bad_api_input_is_explained():
    ref = _dataset(30, 0)
    fake, _ = _blobs(20, 1)
    with pytest.raises(DataError, match="uint8"):
        ev.evaluate(fake.float(), None, reference=ref, extractor="pixels")
    with pytest.raises(DataError, match="channel"):
        ev.evaluate(fake.repeat(1, 3, 1, 1), None, reference=ref, extractor="pixels")
    with pytest.raises(DataError, match="resize"):
        ev.evaluate(fake[:, :, :16, :16], None, reference=ref, extractor="pixels")
    with pytest.raises(DataError, match="out of range"):
        ev.evaluate(fake, torch.full((20,), 5), reference=ref, extractor="pixels")
    with pytest.raises(DataError, match="shape"):
        ev.evaluate(fake, torch.zeros(3, dtype=torch.long), reference=ref, extractor="pixels")
    with pytest.raises(ConfigError, match="unknown metric"):
        ev.evaluate(fake, None, reference=ref, extractor="pixels", metrics=["fdi"])
    with pytest.raises(ConfigError, match="unknown feature extractor"):
        ev.evaluate(fake, None, reference=ref, extractor="vgg")
    with pytest.raises(ConfigError, match="n_bootstrap"):
        ev.evaluate(fake, None, reference=ref, extractor="pixels", n_bootstrap=-1)


def test_reference_subset_is_sliced_from_the_training_features(tmp_path, monkeypatch):
    from medsyn.evaluators.inputs import stratified_subset

    monkeypatch.setenv(ENV_CACHE_DIR, str(tmp_path))
    train, test = _dataset(160, 0), _dataset(80, 5, split="test")
    reference = stratified_subset(train, 60, seed=0)               # what --n-real 60 does
    fake, labels = _blobs(50, 9)
    ext = CountingExtractor()
    sliced = ev.evaluate(fake, labels, reference=reference, train=train, heldout=test,
                         extractor=ext, metrics=["fid", "real_floor"], n_bootstrap=0)
    assert ext.images_seen == 50 + 160 + 80                        # not 60 more for the subset
    assert sliced["provenance"]["timings"]["real_features_sliced_from"] == "train"
    # the same numbers as extracting the subset itself
    direct = ev.evaluate(fake, labels, reference=reference, extractor=CountingExtractor(),
                         metrics=["fid"], n_bootstrap=0, use_cache=False)
    assert sliced["metrics"]["fid"]["value"] == pytest.approx(direct["metrics"]["fid"]["value"],
                                                              rel=1e-9)
    assert sliced["metrics"]["fid"]["n_real"] == 60
    # without families that need the splits, only the subset is extracted
    ext2 = CountingExtractor(weights_sha256="1" * 64)
    ev.evaluate(fake, labels, reference=reference, train=train, heldout=test, extractor=ext2,
                metrics=["fid"], n_bootstrap=0)
    assert ext2.images_seen == 50 + 60


def test_n_split_bounds_the_floor_and_memorization_extractions(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_CACHE_DIR, str(tmp_path))
    train, test = _dataset(300, 10), _dataset(200, 11, split="test")
    ext = CountingExtractor()
    fake, lab = _blobs(40, 12)
    r = ev.evaluate(fake, lab, reference=train, train=train, heldout=test, extractor=ext,
                    metrics=["fid", "real_floor", "memorization"], n_bootstrap=3, n_split=60)
    # the reference (the whole training split) and the fakes, then 60 train + 60 test images
    assert ext.images_seen == 300 + 40 + 60 + 60
    mem = r["metrics"]["memorization"]
    assert mem["n_train"] == 60 and mem["n_heldout"] == 60
    assert r["metrics"]["real_floor"]["fid_train_vs_test"]["n_real"] == 60
    assert r["metrics"]["fid"]["n_real"] == 300
    said = " ".join(r["warnings"])
    assert "stratified subset of 60 of the 300 images of blobs/train" in said
    assert "stratified subset of 60 of the 200 images of blobs/test" in said
    # without the bound every image is used and nothing is said
    ext2 = CountingExtractor(weights_sha256="other")        # a new cache key: extract again
    r2 = ev.evaluate(fake, lab, reference=train, train=train, heldout=test, extractor=ext2,
                     metrics=["memorization"], n_bootstrap=3)
    assert r2["metrics"]["memorization"]["n_train"] == 300
    assert not any("stratified subset" in w for w in r2["warnings"])
    with pytest.raises(DataError, match="n_split"):
        ev.evaluate(fake, lab, reference=train, extractor=ext, metrics=["fid"], n_split=1)


def test_n_real_subset_and_the_bounded_training_split_are_one_extraction(tmp_path, monkeypatch):
    """What `medsyn evaluate --n-real 60` does: the reference is the same stratified subset as
    the bounded training split, so its features are extracted once."""
    from medsyn.evaluators.inputs import stratified_subset

    monkeypatch.setenv(ENV_CACHE_DIR, str(tmp_path))
    train, test = _dataset(300, 20), _dataset(200, 21, split="test")
    reference = stratified_subset(train, 60, seed=0)
    ext = CountingExtractor()
    fake, lab = _blobs(40, 22)
    r = ev.evaluate(fake, lab, reference=reference, train=train, heldout=test, extractor=ext,
                    metrics=["fid", "real_floor", "memorization"], n_bootstrap=3, n_split=60)
    assert ext.images_seen == 40 + 60 + 60
    assert r["metrics"]["memorization"]["n_train"] == 60
