"""The ssl, radiomics and wavelet feature spaces against independent computations, and the
multi-space layout of results.json / metrics.csv (synthetic images; seconds)."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import pywt
import torch
from conftest import blob_dataset as _dataset  # 16 px blobs (tests/conftest.py)
from scipy import stats

import medsyn.evaluators as ev
from medsyn.errors import ConfigError
from medsyn.evaluators.features import radiomics as rad
from medsyn.evaluators.features import wavelet as wav
from medsyn.evaluators.results import metric_rows, metric_spaces
from medsyn.settings import ENV_CACHE_DIR

# ---------------------------------------------------------------- wavelet


def test_packet_levels_follow_the_image_size():
    assert [wav.packet_levels(s) for s in (28, 32, 64, 256, 6, 4)] == [2, 4, 4, 4, 1, 1]
    assert wav.packet_levels(7) == 0
    with pytest.raises(ConfigError, match="even"):
        wav.WaveletExtractor(image_size=7)


def test_packet_energies_match_pywt_packet_tree_and_parseval():
    rng = np.random.default_rng(0)
    img = rng.random((16, 16))
    levels = 3
    ours = wav.packet_energies(img[None], levels)[0]
    tree = pywt.WaveletPacket2D(img, "haar", mode="periodization", maxlevel=levels)
    direct = [np.mean(tree[p].data ** 2) for p in wav.packet_paths(levels)]
    np.testing.assert_allclose(ours, direct, rtol=1e-12)
    # orthonormal Haar: every level's packets hold exactly the image's energy
    start = 0
    for level in range(1, levels + 1):
        count, side = 4 ** level, 16 // 2 ** level
        total = ours[start:start + count].sum() * side * side
        assert total == pytest.approx(np.sum(img ** 2), rel=1e-12)
        start += count


def test_wavelet_extractor_gives_log_energies_and_fixes_its_size():
    ext = wav.WaveletExtractor()
    x = torch.randint(0, 256, (3, 1, 28, 28), dtype=torch.uint8)
    feats = ext.extract(x)["features"].numpy()
    assert ext.levels == 2 and feats.shape == (3, 20) == (3, ext.feature_dim)
    expected = np.log(wav.packet_energies(x[:, 0].double().numpy() / 255.0, 2) + wav.LOG_EPS)
    np.testing.assert_allclose(feats, expected, rtol=1e-6)
    rgb = ext.extract(x.repeat(1, 3, 1, 1))["features"].numpy()
    np.testing.assert_allclose(rgb, feats, rtol=1e-6)   # channels are averaged
    with pytest.raises(ConfigError, match="28 px"):
        ext.extract(torch.zeros(1, 1, 32, 32, dtype=torch.uint8))


# ---------------------------------------------------------------- radiomics

# the 4 x 4 example of Haralick's paper (and scikit-image's docs), as uint8 pixels whose
# fixed-width quantisation (width 8) gives levels 0..3
TINY = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [0, 2, 2, 2], [2, 2, 3, 3]], dtype=np.uint8)


def test_first_order_statistics_match_numpy_and_scipy():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (3, 20, 20)).astype(np.uint8)
    ours = rad.first_order(img)
    x = img.reshape(3, -1) / 255.0
    pct = np.percentile(x, [0, 10, 25, 50, 75, 90, 100], axis=1)
    hist = np.stack([np.histogram(row, bins=32, range=(0, 256))[0] for row in img.reshape(3, -1)])
    p = hist / x.shape[1]
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -np.nansum(p * np.log2(p), 1)
    expected = np.stack([x.mean(1), x.std(1), stats.skew(x, 1), stats.kurtosis(x, 1), *pct,
                         pct[4] - pct[2], pct[6] - pct[0],
                         np.abs(x - x.mean(1, keepdims=True)).mean(1), (x ** 2).mean(1),
                         entropy, (p ** 2).sum(1)], 1)
    np.testing.assert_allclose(ours, expected, rtol=1e-10, atol=1e-12)


def test_glcm_of_a_4x4_image_counted_by_hand():
    q = rad.quantise(TINY * 8)
    np.testing.assert_array_equal(q, TINY)
    glcm = rad.glcm_matrices(q[None])[0]
    # horizontal neighbour pairs (i, j) at distance 1, counted by hand
    counts = np.array([[2, 2, 1, 0], [0, 2, 0, 0], [0, 0, 3, 1], [0, 0, 0, 1]], float)
    sym = counts + counts.T
    np.testing.assert_allclose(glcm[:4, :4, 0, 0], sym / sym.sum())
    assert glcm[4:, :, 0, 0].sum() == 0
    props = rad.glcm_properties(glcm[None])[0].reshape(3, 6)   # [distance, property]
    i, j = np.indices((4, 4))
    p0 = sym / sym.sum()
    # contrast at distance 1 averaged over the 4 angles: the 0-degree term by hand, the others
    # by the same formula on scikit-image's matrices
    per_angle = [np.sum(glcm[:, :, 0, a] * (np.subtract.outer(np.arange(32), np.arange(32)) ** 2))
                 for a in range(4)]
    assert per_angle[0] == pytest.approx(np.sum(p0 * (i - j) ** 2))
    assert props[0, 0] == pytest.approx(np.mean(per_angle))
    from skimage.feature import graycoprops

    for k, name in enumerate(rad.GLCM_PROPS):
        np.testing.assert_allclose(props[:, k], graycoprops(glcm, name).mean(1), rtol=1e-10)


def test_run_lengths_of_a_4x4_image_counted_by_hand():
    # rows: (0,2)(1,2) | (0,2)(1,2) | (0,1)(2,3) | (2,2)(3,2): 8 runs
    lengths = np.array([2, 2, 2, 2, 1, 3, 2, 2], float)
    grays = np.array([0, 1, 0, 1, 0, 2, 2, 3], float) + 1
    expected = [np.mean(1 / lengths ** 2), np.mean(lengths ** 2), (9 + 4 + 4 + 1) / 64,
                (1 + 36 + 1) / 64, 8 / 16, np.mean(1 / grays ** 2), np.mean(grays ** 2)]
    ours = rad.run_length_features(TINY[None].copy())[0]
    np.testing.assert_allclose(ours, expected, rtol=1e-12)
    # a batch gives each image its own runs
    both = rad.run_length_features(np.stack([TINY, TINY.T.copy()]))
    np.testing.assert_allclose(both[0], expected, rtol=1e-12)
    np.testing.assert_allclose(both[1], rad.run_length_features(TINY.T.copy()[None])[0])


def test_lbp_histograms_are_skimage_code_frequencies():
    from skimage.feature import local_binary_pattern

    img = np.random.default_rng(2).integers(0, 256, (24, 24)).astype(np.uint8)
    hist = rad.lbp_histograms(img)
    assert hist.shape == (28,)
    codes = local_binary_pattern(img, 8, 1, method="uniform")
    np.testing.assert_allclose(hist[:10], [np.mean(codes == c) for c in range(10)])
    assert hist[:10].sum() == pytest.approx(1) and hist[10:].sum() == pytest.approx(1)


def test_radiomics_is_z_scored_on_the_training_split(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_CACHE_DIR, str(tmp_path))
    train = _dataset(40, 0)
    ext = ev.get_extractor("radiomics", train=train)
    z = ext.extract(train.images)["features"].numpy().astype(np.float64)
    raw = rad.raw_features(train.images)
    varying = raw.std(0) > 1e-8
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(z.std(0)[varying], 1, rtol=1e-4)
    assert ext.conventions["reference"]["fingerprint"] == train.fingerprint
    other = ev.get_extractor("radiomics", train=_dataset(40, 1))
    assert other.weights_sha256 != ext.weights_sha256     # the reference is its identity
    with pytest.raises(ConfigError, match="training split"):
        ev.get_extractor("radiomics")


# ---------------------------------------------------------------- ssl

TINY_SSL = {"name": "tiny", "epochs": 1, "batch_size": 8, "max_images": 32, "stem_stride": 4}


def test_nt_xent_matches_its_definition():
    from medsyn.evaluators.networks.ssl import nt_xent

    z = torch.randn(6, 4, generator=torch.Generator().manual_seed(0))
    loss, _ = nt_xent(z, 0.5)
    u = torch.nn.functional.normalize(z, dim=1).double()
    total = 0.0
    for a in range(6):
        pos = (a + 3) % 6
        sims = [float(u[a] @ u[b]) / 0.5 for b in range(6) if b != a]
        total += -(float(u[a] @ u[pos]) / 0.5 - np.log(np.sum(np.exp(sims))))
    assert float(loss) == pytest.approx(total / 6, rel=1e-5)
    same = torch.cat([u[:3], u[:3]]).float()      # views identical, others far: near-perfect
    assert nt_xent(same * 10, 0.1)[1] == 1.0


def test_augmentations_are_small_seeded_and_in_range():
    from medsyn.evaluators.networks.ssl import augment, get_ssl_recipe

    x = torch.rand(4, 1, 16, 16) * 2 - 1
    r = get_ssl_recipe("quick")
    a = augment(x, r, torch.Generator().manual_seed(0))
    b = augment(x, r, torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and a.shape == x.shape and a.abs().max() <= 1
    assert 0 < (a - x).abs().mean() < 0.5
    flat = augment(x, get_ssl_recipe(r, crop_area=(1.0, 1.0), max_rotation_deg=0.0,
                                      max_shift=0.0, brightness=0.0, contrast=0.0,
                                      noise_std=0.0), torch.Generator())
    torch.testing.assert_close(flat, x, atol=1e-5, rtol=0)   # the identity when switched off


def test_ssl_recipes_are_validated():
    from medsyn.evaluators.networks.ssl import get_ssl_recipe

    assert get_ssl_recipe("quick", epochs=2).name == "quick+custom"
    for bad in ({"epochs": 0}, {"crop_area": (0.9, 0.5)}, {"bogus": 1}):
        with pytest.raises(ConfigError):
            get_ssl_recipe({**TINY_SSL, **bad})
    with pytest.raises(ConfigError, match="unknown SSL recipe"):
        get_ssl_recipe("huge")


def test_ssl_encoders_are_cached_and_verified(tmp_path, monkeypatch, caplog):
    from medsyn.evaluators.networks import netcache, ssl

    monkeypatch.setenv(ENV_CACHE_DIR, str(tmp_path))
    train = _dataset(40, 0)
    first = ssl.real_ssl_encoder(train, TINY_SSL, seed=0, device="cpu")
    assert not first.from_cache and first.n_train == 32
    again = ssl.real_ssl_encoder(train, TINY_SSL, seed=0, device="cpu")
    assert again.from_cache and again.weights_sha256 == first.weights_sha256
    x = train.images[:5].float() / 127.5 - 1
    torch.testing.assert_close(again.encoder(x), first.encoder.eval()(x))
    # the extractor reuses it and names its identity
    ext = ev.get_extractor("ssl", train=train, ssl_recipe=TINY_SSL, device="cpu")
    assert ext.from_cache and ext.weights_sha256 == first.weights_sha256
    assert ext.extract(train.images[:3])["features"].shape == (3, 512)
    # another seed, recipe or dataset is another entry
    recipe, cpu = ssl.get_ssl_recipe(TINY_SSL), torch.device("cpu")
    key = ssl._cache_key(train, recipe, 0, cpu)
    assert len({key, ssl._cache_key(train, recipe, 1, cpu),
                ssl._cache_key(_dataset(40, 5), recipe, 0, cpu),
                ssl._cache_key(train, ssl.get_ssl_recipe(recipe, temperature=0.5), 0, cpu),
                ssl._cache_key(train, recipe, 0, torch.device("cuda"))}) == 5
    # weights that no longer hash to the recorded digest are not used: trained again
    weights, meta = netcache.entry_paths(ssl.CACHE_KIND, key)
    state = torch.load(weights, weights_only=True)
    name = next(n for n, t in state.items() if t.dtype.is_floating_point)
    state[name] = state[name] + 1
    torch.save(state, weights)
    with caplog.at_level(logging.WARNING):
        redone = ssl.real_ssl_encoder(train, TINY_SSL, seed=0, device="cpu")
    assert not redone.from_cache and "sha256" in caplog.text
    assert redone.weights_sha256 == first.weights_sha256        # same seed: same weights
    assert json.loads(meta.read_text())["weights_sha256"] == first.weights_sha256
    with pytest.raises(ConfigError, match="training split"):
        ev.get_extractor("ssl")


# ---------------------------------------------------------------- several spaces


def test_several_spaces_in_one_evaluation(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_CACHE_DIR, str(tmp_path / "cache"))
    train, test, fake = _dataset(60, 0), _dataset(40, 1, "test"), _dataset(30, 2, "fake")
    out = tmp_path / "eval"
    res = ev.evaluate(fake.images, fake.labels, reference=test, train=train, heldout=test,
                      extractor="pixels, wavelet,radiomics", n_bootstrap=4, out_dir=out,
                      metrics="fid,kid,is,prdc,memorization")
    m = res["metrics"]
    assert list(m["spaces"]) == ["pixels", "wavelet", "radiomics"] == res["provenance"]["spaces"]
    for space, ext_name in (("pixels", "pixels16"), ("wavelet", "wavelet-packets"),
                            ("radiomics", "radiomics")):
        blocks = m["spaces"][space]
        assert set(blocks) == {"fid", "kid", "precision", "recall", "density", "coverage",
                               "memorization"}
        assert blocks["fid"]["extractor"] == ext_name and blocks["fid"]["value"] > 0
        assert res["provenance"]["extractors"][space]["name"] == ext_name
    for name in m["spaces"]["pixels"]:
        assert m[name] == m["spaces"]["pixels"][name]     # the first space stays on top
    assert "is" in m and "is" not in m["spaces"]["wavelet"]
    assert res["figures"]["memorization_wavelet"] == "spaces/wavelet/memorization.png"
    assert (out / "spaces" / "wavelet" / "memorization.png").exists()
    # the same numbers as one space at a time
    alone = ev.evaluate(fake.images, fake.labels, reference=test, train=train, heldout=test,
                        extractor="wavelet", n_bootstrap=4, metrics="fid")
    assert alone["metrics"]["fid"]["value"] == m["spaces"]["wavelet"]["fid"]["value"]
    assert metric_spaces(alone) == {"wavelet-packets": {"fid": alone["metrics"]["fid"]}}
    assert metric_spaces(res) == m["spaces"]
    rows = (out / "metrics.csv").read_text().splitlines()
    assert rows[0].endswith(",space")
    fid_rows = [r for r in rows if r.split(",")[0].endswith("fid")]
    assert [r.split(",")[0] for r in fid_rows] == ["fid", "spaces.wavelet.fid",
                                                   "spaces.radiomics.fid"]
    assert fid_rows[1].split(",")[6] == "wavelet-packets" and fid_rows[1].endswith(",wavelet")
    assert len(metric_rows(m)) == len(rows) - 1
    with pytest.raises(ConfigError, match="unknown feature extractor"):
        ev.evaluate(fake.images, None, reference=test, extractor="pixels,vgg")
    with pytest.raises(ConfigError, match="named twice"):
        ev.evaluate(fake.images, None, reference=test, extractor=[
            ev.get_extractor("pixels"), ev.get_extractor("pixels")])


class _WithLogits(ev.PixelExtractor):
    """A pixel space that also returns classifier logits (stands in for Inception)."""

    def __init__(self):
        super().__init__(4, device="cpu")
        self.name = "pixels-with-logits"
        self.logits_unavailable = None

    def extract(self, images):
        out = super().extract(images)
        out["logits"] = out["features"][:, :10] * 5
        return out


def test_is_runs_once_in_the_space_with_logits_and_ssl_joins_in(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_CACHE_DIR, str(tmp_path))
    train, test, fake = _dataset(40, 0), _dataset(30, 1, "test"), _dataset(30, 2, "fake")
    res = ev.evaluate(fake.images, fake.labels, reference=test, train=train,
                      extractor={"wavelet": "wavelet", "logits": _WithLogits(), "ssl": "ssl"},
                      ssl_recipe=TINY_SSL, metrics="fid,is", n_bootstrap=0, device="cpu")
    m = res["metrics"]
    assert m["is"]["value"] is not None and m["is"]["extractor"] == "pixels-with-logits"
    assert all("is" not in blocks for blocks in m["spaces"].values())
    assert m["fid"] == m["spaces"]["wavelet"]["fid"]
    assert m["spaces"]["ssl"]["fid"]["extractor"] == "simclr-resnet18-blobs"
    assert res["provenance"]["extractors"]["ssl"]["conventions"]["recipe"]["name"] == "tiny"
