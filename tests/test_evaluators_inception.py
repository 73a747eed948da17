"""Inception-based metrics on the real cxr3 images, against torch-fidelity itself.

Inception forward passes dominate the cost (about 0.05-0.1 s per image on a 2-core CPU), so
the sets are small and features are shared through module-scoped fixtures.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch_fidelity
from PIL import Image
from threadpoolctl import threadpool_limits
from torchvision.transforms.functional import gaussian_blur

import medsyn.evaluators as ev
from medsyn.data import ImageDataset, load_dataset
from medsyn.errors import ConfigError
from medsyn.evaluators import metrics
from medsyn.evaluators.inputs import stratified_subset
from medsyn.evaluators.metrics import stats
from medsyn.settings import ENV_CACHE_DIR

pytestmark = [pytest.mark.inception, pytest.mark.real_data]

N_SPLIT = 100      # images per split in the end-to-end test
N_TF = 24          # images per set in the torch-fidelity comparison


@pytest.fixture(scope="module")
def inception(inception_weights):
    return ev.get_extractor("inception", weights=inception_weights, device="cpu")


@pytest.fixture(scope="module")
def cxr3_small(data_root):
    val = stratified_subset(load_dataset("cxr3", "val", image_size=112, root=data_root),
                            N_SPLIT, seed=0)
    test = stratified_subset(load_dataset("cxr3", "test", image_size=112, root=data_root),
                             N_SPLIT, seed=0)
    return val, test


def _as_dataset(images, name):
    return ImageDataset(name=name, split="x", images=images,
                        labels=torch.zeros(len(images), dtype=torch.long), class_names=["all"])


def _write_pngs(images, folder):
    folder.mkdir()
    for i, img in enumerate(images):
        Image.fromarray(img[0].numpy(), mode="L").save(folder / f"{i:04d}.png")


def test_fid_and_kid_equal_torch_fidelity_calculate_metrics(inception, inception_weights,
                                                            cxr3_small, tmp_path):
    val, test = cxr3_small
    fake, real = val.images[:N_TF], test.images[:N_TF]
    _write_pngs(fake, tmp_path / "fake")
    _write_pngs(real, tmp_path / "real")
    with threadpool_limits(limits=1):   # its numpy FID after torch: avoid thread contention
        ref = torch_fidelity.calculate_metrics(
            input1=str(tmp_path / "fake"), input2=str(tmp_path / "real"), fid=True, kid=True,
            kid_subset_size=N_TF, kid_subsets=100, rng_seed=3, cuda=False, batch_size=64,
            feature_extractor_weights_path=str(inception_weights), cache=False, verbose=False,
            save_cpu_ram=True)
    got = ev.evaluate(fake, None, reference=_as_dataset(real, "tf-real"), extractor=inception,
                      metrics=["fid", "kid"], seed=3, n_bootstrap=10, batch_size=64,
                      use_cache=False)["metrics"]
    assert got["fid"]["value"] == pytest.approx(ref["frechet_inception_distance"], rel=1e-6)
    # torch-fidelity's KID kernels are float32 (its features' dtype), medsyn's float64: equal to
    # float32 rounding; with float64 features they agree to 1e-9 (test_evaluators_stats.py).
    # KID of two near-identical small sets is a difference of kernel means close to 0, so its
    # relative error is ill-conditioned: the kernel terms are O(1) and agree to ~1e-7 absolute.
    assert got["kid"]["value"] == pytest.approx(ref["kernel_inception_distance_mean"], rel=1e-5,
                                                abs=1e-6)
    assert got["kid"]["subset_size"] == N_TF
    assert got["fid"]["extractor"] == "inception-v3-compat"


def test_real_vs_real_is_far_below_real_vs_blurred_and_self_is_zero(inception, cxr3_small,
                                                                    tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_CACHE_DIR, str(tmp_path))      # an empty cache, even on re-runs
    val, test = cxr3_small
    kw = {"extractor": inception, "metrics": ["fid", "kid"], "n_bootstrap": 20}
    real = ev.evaluate(val.images, val.labels, reference=test, **kw)
    blurred_images = gaussian_blur(test.images, kernel_size=13, sigma=3.0)
    blurred = ev.evaluate(blurred_images, test.labels, reference=test, **kw)
    # the reference's features came from the cache the second time
    assert real["provenance"]["timings"]["real_features_cached"] is False
    assert blurred["provenance"]["timings"]["real_features_cached"] is True
    fid_real, fid_blur = real["metrics"]["fid"]["value"], blurred["metrics"]["fid"]["value"]
    kid_real, kid_blur = real["metrics"]["kid"]["value"], blurred["metrics"]["kid"]["value"]
    print(f"n={N_SPLIT}: FID val/test {fid_real:.2f} {real['metrics']['fid']['ci95']}, "
          f"test/blurred {fid_blur:.2f}; KID {kid_real:.4f} vs {kid_blur:.4f}")
    # at n = 100 FID carries a large small-sample bias (both values include it); KID does not
    assert fid_blur > 2.5 * fid_real, (fid_real, fid_blur)
    assert kid_blur > 0.05 and abs(kid_real) < 0.1 * kid_blur, (kid_real, kid_blur)
    lo, hi = real["metrics"]["fid"]["ci95"]
    assert hi < blurred["metrics"]["fid"]["ci95"][0]      # the intervals do not overlap
    assert lo <= fid_real <= hi
    # a set against itself, from the cached reference features (no new forward pass)
    feats = ev.dataset_features(test, inception).features
    assert abs(stats.fid_value(feats, feats)) < 1e-3 * fid_real
    itself, _ = metrics.kid_entry(_ctx_for(inception), feats, feats, "self")
    assert abs(itself["value"]) < 0.05 * kid_blur


def _ctx_for(extractor):
    from medsyn.evaluators.metrics import EvalContext, EvalOptions

    return EvalContext(fake_labels=None, fake_images=None, reference=None,
                       extractor=extractor, options=EvalOptions(n_bootstrap=0),
                       device=torch.device("cpu"))


def test_inception_score_unavailable_with_featureonly_weights(inception, cxr3_small, tmp_path):
    assert not inception.has_logits
    assert "non-finite classifier" in inception.logits_unavailable
    val, _ = cxr3_small
    res = ev.evaluate(val.images[:4], None, reference=val, extractor=inception,
                      metrics=["is"], n_bootstrap=5, out_dir=tmp_path)
    assert "real_features_s" not in res["provenance"]["timings"]   # IS needs no reference
    block = res["metrics"]["is"]
    assert block["value"] is None and "non-finite" in block["unavailable"]
    assert "NaN" not in (tmp_path / "results.json").read_text()
    assert "is,,," in (tmp_path / "metrics.csv").read_text()


def test_inception_score_computed_when_classifier_is_finite(inception, cxr3_small):
    model = inception.model
    saved = (model.fc.weight.clone(), model.fc.bias.clone(), list(model.features_list),
             inception.logits_unavailable)
    try:
        g = torch.Generator().manual_seed(0)
        model.fc.weight.copy_(torch.randn(model.fc.weight.shape, generator=g) * 0.05)
        model.fc.bias.zero_()
        model.features_list = ["2048", "logits_unbiased"]
        inception.logits_unavailable = None
        val, _ = cxr3_small
        block = ev.evaluate(val.images[:12], None, reference=val, extractor=inception,
                            metrics=["is"], n_bootstrap=5, is_splits=3,
                            use_cache=False)["metrics"]["is"]
        assert block["value"] is not None and np.isfinite(block["value"])
        assert block["value"] >= 1.0 and block["splits"] == 3 and block["n_fake"] == 12
    finally:
        model.fc.weight.copy_(saved[0])
        model.fc.bias.copy_(saved[1])
        model.features_list = saved[2]
        inception.logits_unavailable = saved[3]


def test_bad_weights_files_are_explained(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        ev.get_extractor("inception", weights=tmp_path / "missing.pth")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a state dict")
    with pytest.raises(ConfigError, match="not a torch-fidelity inception-v3-compat"):
        ev.get_extractor("inception", weights=junk)


def test_fast_cpu_execution_equals_torch_fidelity_eager_to_float32_rounding(
        inception, inception_weights, cxr3_small):
    """'inception' runs the network with batch norm folded, channels_last, in chunks on CPU;
    'inception-exact' runs torch-fidelity's own forward. Features agree to float32 rounding, for
    grayscale and RGB, and for a batch that is not a whole number of chunks."""
    from medsyn.evaluators.features.inception_fast import CHUNK

    assert inception._fast is not None and "batch norm folded" in inception.conventions["execution"]
    # folding works on a copy: torch-fidelity's network keeps its 94 batch norm layers
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in inception.model.modules()) == 94
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in inception._fast.trunk.modules())
    exact = ev.get_extractor("inception-exact", weights=inception_weights, device="cpu")
    assert exact._fast is None
    assert exact.cache_identity() != inception.cache_identity()     # separate cache entries
    val, _ = cxr3_small
    gray = val.images[:6]
    assert len(val) > CHUNK + 2
    uneven = val.images[:CHUNK + 3]                  # one whole chunk and a remainder of 3
    for batch in (gray, gray.expand(-1, 3, -1, -1).contiguous(), uneven):
        fast = inception.extract(batch)["features"]
        eager = exact.extract(batch)["features"]
        scale = float(eager.abs().max())
        assert float((fast - eager).abs().max()) <= 1e-5 * scale
    # logits: torch-fidelity's logits_unbiased (features @ fc.weight^T), from either path
    model = inception.model
    saved = model.fc.weight.clone()
    try:
        model.fc.weight.copy_(torch.randn(model.fc.weight.shape,
                                          generator=torch.Generator().manual_seed(1)) * 0.05)
        inception.logits_unavailable = None
        feats = inception.extract(gray)
        expected = feats["features"].mm(model.fc.weight.T)
        assert torch.equal(feats["logits"], expected)
    finally:
        model.fc.weight.copy_(saved)
        inception.logits_unavailable = exact.logits_unavailable
