"""The metric mathematics on feature matrices, against independent implementations."""

from __future__ import annotations

import numpy as np
import prdc as prdc_reference
import pytest
import scipy.linalg
import torch
from threadpoolctl import threadpool_limits
from torch_fidelity.metric_kid import kid_features_to_metric

from medsyn.evaluators.metrics import stats


@pytest.fixture(autouse=True)
def _one_thread():
    """As in evaluate(): mixing torch and OpenBLAS thread pools on 2 cores is 10-100x slower."""
    with threadpool_limits(limits=1):
        yield


def _sets(n1, n2, d, seed=0, shift=0.3):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((n1, d)) * 1.3 + shift).astype(np.float32)
    y = rng.standard_normal((n2, d)).astype(np.float32)
    return x, y


def _fid_scipy(x, y):
    """pytorch-fid's formula with scipy's sqrtm: an implementation independent of ours."""
    mu1, mu2 = x.mean(0, dtype=np.float64), y.mean(0, dtype=np.float64)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


@pytest.mark.parametrize("n1,n2,d", [(300, 200, 64), (120, 90, 200), (40, 50, 256)])
def test_fid_paths_agree_with_torch_fidelity_and_scipy(n1, n2, d):
    x, y = _sets(n1, n2, d)
    ref = stats.fid_value(x, y)                      # torch-fidelity's own functions
    assert ref == pytest.approx(_fid_scipy(x, y), rel=1e-6)
    # the bootstrap's two code paths compute the same quantity
    assert stats.fid_from_grams(x, y, method="gram") == pytest.approx(ref, rel=1e-6)
    assert stats.fid_from_grams(x, y, method="cov") == pytest.approx(ref, rel=1e-6)


def test_fid_of_a_set_with_itself_is_zero():
    x, _ = _sets(200, 10, 64)
    scale = float(np.trace(np.cov(x, rowvar=False)))
    assert abs(stats.fid_value(x, x)) < 1e-8 * scale
    # sqrt of rounding-level eigenvalues of the rank-deficient Gram product: ~1e-8 relative
    assert abs(stats.fid_from_grams(x, x)) < 1e-6 * scale
    assert abs(stats.fid_from_grams(x, x, method="cov")) < 1e-6 * scale


def test_fid_resamples_gram_and_cov_agree_and_interval_contains_value():
    x, y = _sets(150, 130, 32)
    a = stats.fid_resamples(x, y, 5, np.random.default_rng(3), method="gram")
    b = stats.fid_resamples(x, y, 5, np.random.default_rng(3), method="cov")
    assert np.allclose(a, b, rtol=1e-6)
    value = stats.fid_value(x, y)
    res = stats.fid_resamples(x, y, 60, np.random.default_rng(0))
    lo, hi = stats.recentred_interval(value, res, lower=0.0)
    assert lo < value < hi
    assert np.std(res) > 0


def test_bootstrap_resample_equals_fid_of_the_duplicated_set():
    """A count vector is the same as materialising the resample with its duplicates."""
    x, y = _sets(60, 70, 16)
    rng = np.random.default_rng(7)
    ca, cb = stats.bootstrap_counts(rng, 60), stats.bootstrap_counts(rng, 70)
    xs, ys = np.repeat(x, ca, axis=0), np.repeat(y, cb, axis=0)
    got = stats._fid_gram(*[torch.from_numpy(m).double() for m in (x @ x.T, y @ y.T, x @ y.T)],
                          torch.from_numpy(ca).double(), torch.from_numpy(cb).double())
    assert got == pytest.approx(stats.fid_value(xs, ys), rel=1e-6)


def _kernels(x, y):
    xt, yt = torch.from_numpy(x).double(), torch.from_numpy(y).double()
    d = x.shape[1]
    return (stats.poly_kernel(xt @ xt.T, d), stats.poly_kernel(yt @ yt.T, d),
            stats.poly_kernel(xt @ yt.T, d))


def test_kid_equals_torch_fidelity_subsets():
    x, y = _sets(260, 240, 128, shift=0.1)
    value, std = stats.kid_subsets_value(*_kernels(x, y), subset_size=100, subsets=30, seed=11)
    # torch-fidelity computes the kernels in the features' dtype: given float64 features its
    # value is medsyn's (float64) to rounding; from float32 features it differs by float32
    # rounding of the kernel sums (about 1e-6 relative here)
    ref64 = kid_features_to_metric(torch.from_numpy(x).double(), torch.from_numpy(y).double(),
                                   kid_subsets=30, kid_subset_size=100, rng_seed=11,
                                   verbose=False)
    assert value == pytest.approx(ref64["kernel_inception_distance_mean"], rel=1e-9)
    assert std == pytest.approx(ref64["kernel_inception_distance_std"], rel=1e-9)
    ref = kid_features_to_metric(torch.from_numpy(x), torch.from_numpy(y), kid_subsets=30,
                                 kid_subset_size=100, rng_seed=11, verbose=False)
    assert value == pytest.approx(ref["kernel_inception_distance_mean"], rel=1e-5)
    assert std == pytest.approx(ref["kernel_inception_distance_std"], rel=1e-3)


def test_kid_near_zero_for_same_distribution_and_for_a_set_with_itself():
    x, y = _sets(300, 300, 64, shift=0.0)
    same_dist, std = stats.kid_subsets_value(*_kernels(x, y), subset_size=150, subsets=50)
    shifted, _ = stats.kid_subsets_value(*_kernels(x + 0.5, y), subset_size=150, subsets=50)
    assert abs(same_dist) < 3 * std
    assert shifted > 20 * abs(same_dist)
    # With itself, subsets drawn from the same 300 rows overlap and the estimator (which
    # assumes independent sets) goes slightly negative; at full size it is -O(1/n).
    itself, _ = stats.kid_subsets_value(*_kernels(x, x), subset_size=300, subsets=1)
    assert itself <= 0 and abs(itself) < 0.25 * shifted


def test_kid_resamples_with_unit_counts_is_the_unbiased_mmd():
    x, y = _sets(50, 40, 8)
    kxx, kyy, kxy = _kernels(x, y)
    n1, n2 = 50, 40
    expected = ((kxx.sum() - kxx.trace()) / (n1 * (n1 - 1))
                + (kyy.sum() - kyy.trace()) / (n2 * (n2 - 1)) - 2 * kxy.mean())

    class Ones:
        def integers(self, lo, hi, size):
            return np.arange(size)

    got = stats.kid_resamples(kxx, kyy, kxy, 1, Ones())[0]
    assert got == pytest.approx(float(expected), rel=1e-10)


def test_kid_subset_size_is_reduced_and_said():
    assert stats.kid_subset_size(5000, 3000) == (1000, None)
    size, note = stats.kid_subset_size(300, 120)
    assert size == 120 and "reduced from 1000 to 120" in note


def test_prdc_equals_naeem_reference_implementation():
    rng = np.random.default_rng(1)
    real = rng.standard_normal((200, 24)).astype(np.float32)
    fake = (rng.standard_normal((150, 24)) * 1.2 + 0.2).astype(np.float32)
    values, _ = stats.prdc(real, fake, k=5)
    ref = prdc_reference.compute_prdc(real, fake, nearest_k=5)
    for name in ("precision", "recall", "density", "coverage"):
        assert values[name] == pytest.approx(float(ref[name]), abs=1e-12), name


def test_prdc_orientation_mode_collapse_has_low_recall_and_coverage():
    rng = np.random.default_rng(2)
    real = rng.standard_normal((300, 16))
    good = rng.standard_normal((300, 16))
    collapsed = np.repeat(real[:1], 300, axis=0)         # one real image, repeated
    ok, _ = stats.prdc(real, good, k=5)
    bad, _ = stats.prdc(real, collapsed, k=5)
    assert ok["recall"] > 0.5 and ok["coverage"] > 0.5
    assert bad["recall"] < 0.05 and bad["coverage"] < 0.05
    assert bad["precision"] == 1.0                        # a real image is realistic


def test_knn_radius_ignores_own_copies_in_a_resample():
    d = stats.pairwise_distances(np.array([[0.0], [1.0], [3.0], [7.0]]),
                                 np.array([[0.0], [1.0], [3.0], [7.0]]))
    knn = stats._KnnRadii(d, k=2)
    assert knn.radii().tolist() == [3.0, 2.0, 3.0, 6.0]
    # item 0 drawn three times, item 1 twice: copies of an item are not its own neighbours
    counts = torch.tensor([3.0, 2.0, 0.0, 1.0], dtype=torch.float64)
    assert knn.radii(counts).tolist()[:2] == [1.0, 1.0]


def test_prdc_bootstrap_intervals_bracket_the_values():
    rng = np.random.default_rng(4)
    real, fake = rng.standard_normal((150, 8)), rng.standard_normal((120, 8)) + 0.3
    values, res = stats.prdc(real, fake, k=5, n_bootstrap=40, rng=np.random.default_rng(0))
    for name, v in values.items():
        assert len(res[name]) == 40
        lo, hi = stats.recentred_interval(v, res[name], 0.0)
        assert lo <= v <= hi, name


def test_inception_score_extremes():
    k = 10
    confident = torch.full((100, k), -30.0)
    confident[torch.arange(100), torch.arange(100) % k] = 30.0   # sure and evenly spread
    assert stats.inception_score(confident, splits=1)[0] == pytest.approx(k, rel=1e-6)
    same = torch.zeros(100, k)
    same[:, 3] = 30.0                                            # always the same class
    assert stats.inception_score(same, splits=5)[0] == pytest.approx(1.0, abs=1e-6)


def test_recentred_interval_handles_missing_values():
    assert stats.recentred_interval(None, [1.0, 2.0]) is None
    assert stats.recentred_interval(1.0, [float("nan")]) is None
    lo, hi = stats.recentred_interval(0.5, [0.9, 1.0, 1.1, 1.0], lower=0.0, upper=1.0)
    assert 0.0 <= lo <= 0.5 <= hi <= 1.0


def test_metric_names_accept_what_a_family_computes_and_suggest_close_names():
    from medsyn.errors import ConfigError
    from medsyn.evaluators.metrics import resolve_metrics

    names = [s.name for s in resolve_metrics("precision,recall,fid", have_discriminator=False)]
    assert names == ["fid", "prdc"]
    names = [s.name for s in resolve_metrics(["coverage", "prdc", "fid_halves"], False)]
    assert names == ["prdc", "real_floor"]
    with pytest.raises(ConfigError, match=r"precison \(did you mean precision\?\)"):
        resolve_metrics("precison", have_discriminator=False)
    with pytest.raises(ConfigError, match="no metric named"):
        resolve_metrics("", have_discriminator=False)


def test_fid_of_a_set_against_itself_is_reported_as_zero_not_negative():
    from types import SimpleNamespace

    from medsyn.evaluators.metrics import EvalOptions
    from medsyn.evaluators.metrics.fidelity import fid_entry

    rng = np.random.default_rng(3)
    feats = rng.normal(size=(40, 64)).astype(np.float32)
    raw = stats.fid_value(feats, feats)
    ctx = SimpleNamespace(extractor=SimpleNamespace(name="test"),
                          options=EvalOptions(n_bootstrap=5), device=torch.device("cpu"),
                          rng=lambda purpose: np.random.default_rng(0))
    block, _ = fid_entry(ctx, feats, feats, "fid")
    assert block["value"] >= 0.0
    assert block["ci95"][0] >= 0.0 and block["ci95"][0] <= block["value"] <= block["ci95"][1]
    if raw < 0:        # the rounding artefact this guards against
        assert block["value"] == 0.0 and block["raw_value"] == raw
        assert "reported as 0" in block["note"]
