"""FD-infinity, RBF MMD, alpha-precision / beta-recall / authenticity and the Vendi score, each
against an independent computation (a closed form, a known answer or a second implementation).
Pure functions on small arrays; one API-level test with the pixels extractor."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import blob_images
from scipy import linalg
from sklearn.neighbors import NearestNeighbors

from medsyn.evaluators.metrics import stats
from medsyn.evaluators.metrics.distribution import alpha_precision as ap
from medsyn.evaluators.metrics.distribution import fd_infinity as fdi
from medsyn.evaluators.metrics.distribution import mmd
from medsyn.evaluators.metrics.distribution.vendi import vendi_score

# ---------------------------------------------------------------- Vendi


def test_vendi_of_identical_items_is_one_and_of_orthogonal_items_is_k():
    row = np.random.default_rng(0).normal(size=(1, 32))
    assert vendi_score(np.repeat(row, 9, axis=0)) == pytest.approx(1.0, abs=1e-9)
    for k in (1, 4, 7):
        basis = linalg.qr(np.random.default_rng(k).normal(size=(16, 16)))[0][:k]
        assert vendi_score(3.0 * basis) == pytest.approx(k, rel=1e-9)
    # k orthogonal directions, each repeated: still k distinct items
    assert vendi_score(np.repeat(np.eye(5), 3, axis=0)) == pytest.approx(5.0, rel=1e-9)


@pytest.mark.parametrize("n,d", [(12, 40), (60, 6)])
def test_vendi_equals_the_papers_n_by_n_definition(n, d):
    x = np.random.default_rng(n).normal(size=(n, d)) + 0.5
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    lam = np.clip(linalg.eigvalsh(u @ u.T / n), 0, None)      # K / n, cosine kernel
    lam = lam[lam > 1e-15]
    expected = np.exp(-(lam * np.log(lam)).sum())
    assert vendi_score(x) == pytest.approx(expected, rel=1e-9)
    counts = np.random.default_rng(1).integers(0, 3, n)
    counts[0] = 1
    assert vendi_score(x, counts) == pytest.approx(vendi_score(np.repeat(x, counts, 0)),
                                                   rel=1e-9)


def test_vendi_refuses_a_zero_vector():
    with pytest.raises(ValueError, match="all zeros"):
        vendi_score(np.zeros((3, 4)))


# ---------------------------------------------------------------- MMD


def _expected_rbf(mean_diff, cov, sigma):
    """E exp(-|Z|^2 / (2 sigma^2)) for Z ~ N(mean_diff, cov) (Gaussian integral)."""
    d = len(mean_diff)
    a = np.eye(d) + cov / sigma**2
    quad = mean_diff @ np.linalg.solve(cov + sigma**2 * np.eye(d), mean_diff)
    return np.linalg.det(a) ** -0.5 * np.exp(-0.5 * quad)


def test_mmd_is_unbiased_for_two_gaussians_closed_form():
    d, sigma, m = 3, 1.5, 25
    mu1, mu2 = np.zeros(d), np.full(d, 0.4)
    s1, s2 = np.eye(d), 1.5 * np.eye(d)
    truth = (_expected_rbf(np.zeros(d), 2 * s1, sigma) + _expected_rbf(np.zeros(d), 2 * s2, sigma)
             - 2 * _expected_rbf(mu1 - mu2, s1 + s2, sigma))
    rng = np.random.default_rng(0)
    unbiased, biased = [], []
    for _ in range(400):
        x = rng.multivariate_normal(mu1, s1, m)
        y = rng.multivariate_normal(mu2, s2, m)
        kxx, kyy, kxy = mmd.rbf_kernels(x, y, sigma)
        unbiased.append(mmd.mmd2_unbiased(kxx, kyy, kxy))
        biased.append(float(kxx.mean() + kyy.mean() - 2 * kxy.mean()))    # CMMD's V-statistic
    se = np.std(unbiased) / np.sqrt(len(unbiased))
    assert abs(np.mean(unbiased) - truth) < 3 * se
    assert abs(np.mean(biased) - truth) > 5 * se          # the test can tell the two apart
    value, res, used = mmd.rbf_mmd(x, y, sigma, n_bootstrap=3)
    assert used == sigma and value == pytest.approx(1000 * unbiased[-1]) and len(res) == 3


def test_mmd_of_identical_sets_is_zero_up_to_the_u_statistic_term():
    x = np.random.default_rng(1).normal(size=(40, 5))
    kxx, kyy, kxy = mmd.rbf_kernels(x, x, 2.0)
    # V-statistic of a set against itself is exactly 0
    assert float(kxx.mean() + kyy.mean() - 2 * kxy.mean()) == pytest.approx(0, abs=1e-12)
    # U-statistic: -2 (m^2 - S) / (m^2 (m - 1)), S the sum of the kernel matrix (<= 0, O(1/m))
    m, s = len(x), float(kxx.sum())
    assert mmd.mmd2_unbiased(kxx, kyy, kxy) == pytest.approx(-2 * (m * m - s) / (m * m * (m - 1)))
    # two independent samples of one distribution: zero on average
    rng = np.random.default_rng(2)
    vals = [mmd.rbf_mmd(rng.normal(size=(30, 4)), rng.normal(size=(30, 4)), 2.0)[0]
            for _ in range(200)]
    assert abs(np.mean(vals)) < 3 * np.std(vals) / np.sqrt(len(vals))


def test_median_bandwidth_is_the_median_pairwise_distance():
    x = np.random.default_rng(3).normal(size=(31, 4))
    d = np.linalg.norm(x[:, None] - x[None], axis=-1)
    assert mmd.median_bandwidth(x) == pytest.approx(np.median(d[np.triu_indices(31, 1)]))


# ---------------------------------------------------------------- alpha / beta / authenticity


def _synthcity_curves(x, x_syn, steps=30):
    """synthcity's AlphaPrecision.metrics curves, re-implemented with sklearn's NearestNeighbors
    (real centre, alpha-quantile radii; beta: nearest synthetic closer than nearest real and in
    the synthetic beta-quantile of the reals' nearest synthetic samples)."""
    alphas = np.linspace(0, 1, steps)
    centre = x.mean(0)
    radii = np.quantile(np.linalg.norm(x - centre, axis=1), alphas)
    synth_to_centre = np.linalg.norm(x_syn - centre, axis=1)
    real_to_real = NearestNeighbors(n_neighbors=2).fit(x).kneighbors(x)[0][:, 1]
    real_to_synth, args = NearestNeighbors(n_neighbors=1).fit(x_syn).kneighbors(x)
    real_to_synth, args = real_to_synth[:, 0], args[:, 0]
    closest_d = np.linalg.norm(x_syn[args] - x_syn.mean(0), axis=1)
    beta_radii = np.quantile(closest_d, alphas)
    prec = [np.mean(synth_to_centre <= r) for r in radii]
    rec = [np.mean((real_to_synth <= real_to_real) & (closest_d <= b)) for b in beta_radii]
    return np.array(prec), np.array(rec)


def test_curves_match_an_independent_synthcity_style_implementation():
    rng = np.random.default_rng(4)
    real, fake = rng.normal(size=(200, 3)), rng.normal(0.3, 1.2, size=(150, 3))
    out = ap.alpha_precision_beta_recall(real, fake, scaling=None, recall_rule="synthcity")
    prec, rec = _synthcity_curves(real, fake)
    np.testing.assert_allclose(out["alpha_precision_curve"], prec, atol=1e-12)
    np.testing.assert_allclose(out["beta_recall_curve"], rec, atol=1e-12)
    # the score is the paper's 1 - 2 * integral |curve - a|; synthcity's discretisation agrees
    alphas = np.linspace(0, 1, 30)
    synthcity_score = 1 - np.abs(alphas - prec).sum() / alphas.sum()
    assert out["alpha_precision"] == pytest.approx(synthcity_score, abs=0.02)


def test_identical_distributions_give_curves_near_the_diagonal():
    rng = np.random.default_rng(5)
    real, fake = rng.normal(size=(600, 2)), rng.normal(size=(600, 2))
    out = ap.alpha_precision_beta_recall(real, fake)
    levels = np.asarray(out["levels"])
    assert np.max(np.abs(np.asarray(out["alpha_precision_curve"]) - levels)) < 0.08
    assert np.max(np.abs(np.asarray(out["beta_recall_curve"]) - levels)) < 0.15
    assert out["alpha_precision"] > 0.9 and out["beta_recall"] > 0.85
    # synthcity's recall rule puts a perfect generator near beta / 2 (docs/evaluation.md)
    sc = ap.alpha_precision_beta_recall(real, fake, recall_rule="synthcity")
    assert abs(sc["beta_recall_curve"][-1] - 0.5) < 0.08 and 0.4 < sc["beta_recall"] < 0.6


def test_disjoint_supports_give_zero_precision_and_recall_and_full_authenticity():
    rng = np.random.default_rng(6)
    real = rng.uniform(0, 1, size=(300, 2))
    fake = rng.uniform(0, 1, size=(300, 2)) + np.array([5.0, 5.0])
    out = ap.alpha_precision_beta_recall(real, fake, scaling=None)
    assert max(out["alpha_precision_curve"]) == 0 and out["alpha_precision"] == pytest.approx(0)
    assert max(out["beta_recall_curve"]) == 0 and out["beta_recall"] == pytest.approx(0)
    assert out["authenticity"] == 1.0


def test_copies_are_unauthentic_and_fresh_samples_are_mostly_authentic():
    rng = np.random.default_rng(7)
    train = rng.normal(size=(400, 2))
    copies = train[rng.choice(400, 100, replace=False)] + rng.normal(0, 1e-6, (100, 2))
    res = ap.authenticity(train, copies)
    assert res.fraction == 0.0 and not res.flags.any() and res.flags.shape == (100,)
    fresh = ap.authenticity(train, rng.normal(size=(100, 2)))
    assert fresh.fraction > 0.3
    # the paper's rule, by brute force
    fake = np.vstack([copies[:50], rng.normal(size=(50, 2))])
    d_fr = np.linalg.norm(fake[:, None] - train[None], axis=-1)
    d_rr = np.linalg.norm(train[:, None] - train[None], axis=-1)
    np.fill_diagonal(d_rr, np.inf)
    nearest = d_fr.argmin(1)
    expected = d_fr.min(1) > d_rr.min(1)[nearest]
    got = ap.authenticity(train, fake)
    np.testing.assert_array_equal(got.flags, expected)
    np.testing.assert_array_equal(got.nearest_real, nearest)
    assert got.fraction == pytest.approx(expected.mean())
    assert not got.flags[:50].any() and got.flags[50:].any()


def test_bootstrap_copies_are_not_their_own_neighbours():
    d = torch.tensor([[0.0, 1.0, 2.0], [1.0, 0.0, 3.0], [2.0, 3.0, 0.0]], dtype=torch.float64)
    ids = np.array([0, 0, 2])                   # item 0 drawn twice
    sub = d[ids][:, ids]
    np.testing.assert_allclose(ap.nearest_other(sub, ids).numpy(), [2.0, 2.0, 2.0])
    np.testing.assert_allclose(ap.nearest_other(d).numpy(), [1.0, 1.0, 2.0])


# ---------------------------------------------------------------- FD-infinity


def test_extrapolation_recovers_the_limit_of_a_known_1_over_n_trend():
    sizes = np.linspace(500, 5000, 15).astype(int)
    line = fdi.extrapolate_to_infinity(sizes, 12.5 + 3000.0 / sizes)
    assert line["intercept"] == pytest.approx(12.5, rel=1e-9)
    assert line["slope"] == pytest.approx(3000.0, rel=1e-9) and line["r2"] == pytest.approx(1)
    noisy = 12.5 + 3000.0 / sizes + np.random.default_rng(0).normal(0, 0.01, len(sizes))
    assert fdi.extrapolate_to_infinity(sizes, noisy)["intercept"] == pytest.approx(12.5, abs=0.1)


def test_fd_curve_at_full_size_is_fid_and_fd_infinity_removes_most_of_the_bias():
    d, n = 8, 400
    shift = np.full(d, 0.25)
    truth = float(shift @ shift)                # same covariance: FD = |mu1 - mu2|^2
    rng = np.random.default_rng(8)
    fd_full, fd_inf = [], []
    for _ in range(6):
        x, y = rng.normal(size=(n, d)) + shift, rng.normal(size=(n, d))
        fid = stats.CountFid(x, y)
        _, _, fids = fdi.fd_curve(fid, rng, [1.0])
        assert fids[0] == pytest.approx(stats.fid_value(x, y), rel=1e-6)
        fd_full.append(fids[0])
        fd_inf.append(fdi.fd_infinity(x, y, draws=2, rng=rng)[0]["value"])
    assert np.mean(fd_full) - truth > 0.02       # FID at finite n is biased upward ...
    assert abs(np.mean(fd_inf) - truth) < 0.5 * (np.mean(fd_full) - truth)   # ... less so here


def test_subsets_of_a_resample_keep_its_multiplicities():
    rng = np.random.default_rng(9)
    counts = np.array([3, 0, 1, 2])
    for _ in range(20):
        sub = fdi._subset_counts(rng, counts, 4)
        assert sub.sum() == 4 and np.all(sub <= counts)


# ---------------------------------------------------------------- through evaluate()

NEW_KEYS = ("fd_infinity", "mmd", "alpha_precision", "beta_recall", "authenticity",
            "vendi_real", "vendi_fake")


def _images(n, seed):
    """16 px blobs (tests/conftest.py) of one brightness range, 20..220."""
    return blob_images(n, seed, classes=1, contrast=200, class_step=0, offset=20)[0]


def test_evaluate_writes_the_new_families_with_intervals(tmp_path):
    import json

    import medsyn.evaluators as ev
    from medsyn.data import ImageDataset
    from medsyn.evaluators.features import PixelExtractor

    labels = torch.arange(80) % 2
    train = ImageDataset(name="blobs", split="train", images=_images(80, 0), labels=labels,
                         class_names=["a", "b"])
    test = ImageDataset(name="blobs", split="test", images=_images(60, 1),
                        labels=torch.arange(60) % 2, class_names=["a", "b"])
    one = _images(1, 2).repeat(30, 1, 1, 1)             # 30 identical images
    res = ev.evaluate(one, None, reference=train, train=train, heldout=test,
                      extractor=PixelExtractor(8, device="cpu"), n_bootstrap=5,
                      metrics=["fd_infinity", "mmd", "alpha_precision", "vendi"],
                      metric_options={"fd_inf_points": 5}, out_dir=tmp_path)
    m = json.loads((tmp_path / "results.json").read_text())["metrics"]
    assert m == json.loads(json.dumps(res["metrics"]))
    for key in NEW_KEYS:
        assert m[key]["value"] is not None and len(m[key]["ci95"]) == 2, key
        assert m[key]["extractor"] == "pixels8", key
    assert m["vendi_fake"]["value"] == pytest.approx(1.0, abs=1e-6)
    assert m["vendi_real"]["value"] > 1.5 and m["vendi_real"]["n_real"] == 80
    assert m["fd_infinity"]["points"] == 5 and len(m["fd_infinity"]["sizes_fake"]) == 5
    assert m["mmd"]["sigma"] > 0 and "median" in m["mmd"]["bandwidth_rule"]
    assert m["authenticity"]["against"] == "blobs/train"
    assert 0 < m["authenticity"]["heldout_real"]["value"] <= 1
    assert m["beta_recall"]["value"] < 0.2               # one image covers little of the reals
    csv = (tmp_path / "metrics.csv").read_text()
    assert all(f"\n{key}," in csv for key in NEW_KEYS)


def test_unknown_or_bad_metric_options_are_explained():
    import medsyn.evaluators as ev
    from medsyn.data import ImageDataset
    from medsyn.errors import ConfigError
    from medsyn.evaluators.features import PixelExtractor

    ref = ImageDataset(name="blobs", split="train", images=_images(20, 0),
                       labels=torch.zeros(20, dtype=torch.int64), class_names=["a"])
    for opts, msg in (({"mmd_sigmaa": 1}, "unknown metric option 'mmd_sigmaa'"),
                      ({"mmd_sigma": -1.0}, "mmd_sigma"),
                      ({"fd_inf_min_fraction": 1.5}, "fd_inf_min_fraction")):
        with pytest.raises(ConfigError, match=msg):
            ev.evaluate(_images(10, 1), None, reference=ref, metrics=["mmd"],
                        extractor=PixelExtractor(8, device="cpu"), metric_options=opts)


@pytest.mark.real_data
def test_real_pneumoniamnist_new_families_rank_real_above_blurred(data_root, tmp_path):
    """End to end on real images (pixels space, small n): every new family is in results.json
    with an interval, and real validation images score better than a blurred copy of them."""
    import json

    from torchvision.transforms.functional import gaussian_blur

    import medsyn.evaluators as ev
    from medsyn.data import load_dataset
    from medsyn.evaluators.features import PixelExtractor
    from medsyn.evaluators.inputs import stratified_subset

    train = stratified_subset(load_dataset("pneumoniamnist", "train", root=data_root), 300, 0)
    test = stratified_subset(load_dataset("pneumoniamnist", "test", root=data_root), 150, 0)
    val = stratified_subset(load_dataset("pneumoniamnist", "val", root=data_root), 150, 0)
    blurred = gaussian_blur(val.images, kernel_size=7, sigma=2.0)
    out = {}
    for name, images in (("real", val.images), ("blurred", blurred)):
        ev.evaluate(images, val.labels, reference=test, train=train, heldout=test,
                    extractor=PixelExtractor(16, device="cpu"), n_bootstrap=10,
                    metrics=["fd_infinity", "mmd", "alpha_precision", "vendi"],
                    metric_options={"fd_inf_points": 6}, out_dir=tmp_path / name)
        out[name] = json.loads((tmp_path / name / "results.json").read_text())["metrics"]
    for key in NEW_KEYS:
        for name in out:
            block = out[name][key]
            assert block["value"] is not None and len(block["ci95"]) == 2, (name, key)
            assert block["ci95"][0] <= block["value"] <= block["ci95"][1], (name, key)
            assert block["extractor"] == "pixels16"
    real, blur = out["real"], out["blurred"]
    for key in NEW_KEYS:         # `pytest -s` prints the figures quoted in docs/evaluation.md
        print(f"{key}: real val {real[key]['value']:.4g} {real[key]['ci95']}, "
              f"blurred {blur[key]['value']:.4g} {blur[key]['ci95']}")
    print("authenticity of held-out real test images:",
          real["authenticity"]["heldout_real"]["value"])
    assert real["fd_infinity"]["value"] < blur["fd_infinity"]["value"]
    assert real["mmd"]["value"] < blur["mmd"]["value"]
    assert real["alpha_precision"]["value"] > blur["alpha_precision"]["value"]
    assert real["beta_recall"]["value"] > blur["beta_recall"]["value"]
    assert real["authenticity"]["against"] == "pneumoniamnist/train"


def test_authenticity_refuses_too_few_samples_with_a_medsyn_error():
    from medsyn.errors import MedsynError

    with pytest.raises(MedsynError, match="at least 2 real training"):
        ap.authenticity(np.zeros((1, 3)), np.zeros((4, 3)))


def test_median_bandwidth_of_a_large_reference_uses_a_fixed_subset(monkeypatch):
    x = np.random.default_rng(10).normal(size=(60, 3))
    monkeypatch.setattr(mmd, "BANDWIDTH_MAX_ITEMS", 25)
    pick = np.sort(np.random.default_rng(0).choice(60, 25, replace=False))
    d = np.linalg.norm(x[pick][:, None] - x[pick][None], axis=-1)
    assert mmd.median_bandwidth(x) == pytest.approx(np.median(d[np.triu_indices(25, 1)]))
