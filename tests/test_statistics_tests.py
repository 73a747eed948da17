"""Two-sample permutation tests (metrics/stats/permutation.py, metrics/distribution/two_sample.py):
statistics against independent computations, size on real vs real over repeated draws, power on
a known shift, and patients kept whole."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import linalg
from threadpoolctl import threadpool_limits

from medsyn.evaluators.metrics.distribution.two_sample import statement, two_sample_test
from medsyn.evaluators.metrics.stats.permutation import (
    fd_permuted,
    labels_for,
    min_p_combined,
    permutation_p_values,
)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def _one_blas_thread():
    with threadpool_limits(limits=1):
        yield


def _fd_scipy(a, b):
    """FID's formula with scipy's matrix square root: the independent computation."""
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(root))


def _mmd2_hand(x, y, sigma):
    def k(a, b):
        d2 = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
        return np.exp(-d2 / (2 * sigma ** 2))
    m, n = len(x), len(y)
    kxx, kyy = k(x, x), k(y, y)
    return ((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy))
            / (n * (n - 1)) - 2 * k(x, y).mean())


def test_statistics_match_independent_computations():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(30, 6)), rng.normal(0.4, 1.2, size=(25, 6))
    out = two_sample_test(a, b, np.random.default_rng(1), n_permutations=19)
    assert out["fd"]["value"] == pytest.approx(_fd_scipy(a, b), rel=1e-6)
    pooled = np.concatenate([a, b])
    d = np.sqrt(((pooled[:, None] - pooled[None]) ** 2).sum(-1))
    sigma = np.median(d[np.triu_indices(len(d), 1)])
    assert out["mmd"]["bandwidth"] == pytest.approx(sigma)
    assert out["mmd"]["value"] == pytest.approx(1000 * _mmd2_hand(a, b, sigma), rel=1e-9)
    # every permuted FD is the FD of the two sides that labelling makes
    labels, _ = labels_for(30, 25, 5, np.random.default_rng(2))
    fds = fd_permuted(pooled, labels)
    for col in range(labels.shape[1]):
        side = labels[:, col]
        assert fds[col] == pytest.approx(_fd_scipy(pooled[~side], pooled[side]), rel=1e-6)


def test_p_values_and_min_p_by_hand():
    stat = np.array([3.0, 1.0, 3.0, 5.0, 2.0])
    # #(T_j >= T_b) / (B + 1): the observed 3 is matched by 3 and 5
    assert permutation_p_values(stat).tolist() == [0.6, 1.0, 0.6, 0.2, 0.8]
    p1 = np.array([0.2, 0.4, 0.2, 1.0])
    p2 = np.array([0.5, 0.1, 0.8, 0.3])
    # min-p per labelling: 0.2, 0.1, 0.2, 0.3; observed 0.2 -> 3 of 4 at most that
    assert min_p_combined(p1, p2) == pytest.approx(0.75)


@pytest.mark.real_data
def test_size_and_power_on_real_pixels(data_root):
    """Real vs real (two disjoint draws of PneumoniaMNIST test images): about 5 % rejections;
    a shift of the intensity (+20 grey levels of 255) on one side: rejected nearly always."""
    from medsyn.data import load_dataset

    ds = load_dataset("pneumoniamnist", "test", root=data_root)
    # 7x7 average-pooled pixels: the test in a 49-d space (fast, and the FD well defined)
    x = torch.nn.functional.avg_pool2d(ds.images.float(), 4).flatten(1).numpy() / 255.0
    rng = np.random.default_rng(0)
    draws, n = 80, 40
    rejected = shifted = 0
    for _ in range(draws):
        rows = rng.permutation(len(x))[:2 * n]
        a, b = x[rows[:n]], x[rows[n:]]
        rejected += two_sample_test(a, b, rng, 99)["distinguishable"]
    for _ in range(20):
        rows = rng.permutation(len(x))[:2 * n]
        a, b = x[rows[:n]], x[rows[n:]] + 20 / 255
        shifted += two_sample_test(a, b, rng, 99)["distinguishable"]
    # size 0.05: over 80 draws a rate above 0.125 has probability < 1 % (binomial)
    assert rejected / draws <= 0.125
    assert shifted / 20 >= 0.9


def test_size_over_many_draws_gaussian():
    """Exchangeable Gaussian sets: the rejection rate (p <= 0.05 with 39 permutations, an
    exact-size test) over 300 draws is about 5 % (each statistic and the min-p combination)."""
    rng = np.random.default_rng(3)
    out = {"combined": 0, "fd": 0, "mmd": 0}
    draws = 300
    for _ in range(draws):
        a, b = rng.normal(size=(20, 3)), rng.normal(size=(20, 3))
        t = two_sample_test(a, b, rng, 39)
        out["combined"] += t["distinguishable"]
        out["fd"] += t["fd"]["p_value"] <= 0.05
        out["mmd"] += t["mmd"]["p_value"] <= 0.05
    for key, count in out.items():
        # binomial(300, 0.05): 99 % of draws fall in [6, 25]
        assert 5 <= count <= 26, (key, count)


def test_patient_disjoint_permutation_keeps_patients_together():
    rng = np.random.default_rng(0)
    patients = np.repeat([f"p{i}" for i in range(12)], 3)           # 36 real images
    labels, units = labels_for(36, 10, 200, rng, patients, None)
    assert units == "patients"
    real_part = labels[:36]
    for p in np.unique(patients):
        rows = real_part[patients == p]
        assert (rows.all(0) | (~rows).all(0)).all(), p               # never split
    # the number of units (12 patients + 10 synthetic images) on each side is kept: the
    # second side always holds 10 units
    n_patient_units_second = np.array([len(np.unique(patients[real_part[:, b]]))
                                       for b in range(labels.shape[1])])
    n_fake_second = labels[36:].sum(0)
    assert ((n_patient_units_second + n_fake_second) == 10).all()
    # and patients do move: some permutation puts a patient on the synthetic side
    assert real_part[:, 1:].any()
    with pytest.raises(ValueError, match="both sets"):
        labels_for(2, 2, 5, rng, ["a", "b"], ["b", "c"])


def test_patient_grouping_restores_the_size_when_images_are_correlated():
    """Patients whose images share a patient-specific offset: permuting images rejects real vs
    real far too often, permuting patients holds the size."""
    rng = np.random.default_rng(5)
    by_image = by_patient = 0
    draws = 60
    for _ in range(draws):
        offsets = rng.normal(0, 2.0, size=(16, 4))
        x = np.repeat(offsets, 4, axis=0) + rng.normal(0, 0.3, size=(64, 4))
        ids = np.repeat(np.arange(16).astype(str), 4)
        a, b = x[:32], x[32:]
        by_image += two_sample_test(a, b, rng, 39)["distinguishable"]
        by_patient += two_sample_test(a, b, rng, 39, ids[:32], ids[32:])["distinguishable"]
    assert by_patient / draws <= 0.15
    assert by_image / draws >= 0.5


def test_statement_names_n_and_p():
    out = two_sample_test(np.zeros((5, 2)) + np.arange(5)[:, None], np.ones((6, 2)) * 9,
                          np.random.default_rng(0), 99)
    text = statement(out, 5, 6)
    assert text.startswith("distinguishable from real at n = 6 synthetic vs 5 real images")
    assert f"p = {out['p_value']:.3g}" in text


def test_tests_family_in_evaluate():
    """``--metrics tests`` through the registry: a block per space with the p-value as value,
    and the real-vs-real halves beside it."""
    from medsyn.evaluators.features import extract_features
    from medsyn.evaluators.features.pixels import PixelExtractor
    from medsyn.evaluators.metrics import EvalContext, EvalOptions, resolve_metrics

    class Real:
        class_names = ["a"]
        labels = torch.zeros(60, dtype=torch.int64)
        patient_ids = np.repeat(np.arange(20).astype(str), 3)
        fingerprint = "x"

    g = torch.Generator().manual_seed(0)
    real = torch.randint(0, 256, (60, 1, 8, 8), generator=g, dtype=torch.uint8)
    fake = (real[:40].int() // 2).to(torch.uint8)
    ext = PixelExtractor(size=8)
    ctx = EvalContext(fake_labels=None, fake_images=fake, reference=Real(), extractor=ext,
                      options=EvalOptions(test_permutations=49), device=torch.device("cpu"),
                      split_features_needed=False)
    ctx.provide_features("reference", extract_features(ext, real, 64))
    (spec,) = resolve_metrics(["tests"], have_discriminator=False)
    block = spec.fn(ctx)["tests"]
    assert block["units"] == "patients" and block["n_permutations"] == 49
    assert block["distinguishable"] and block["value"] == block["p_value"] == 1 / 50
    assert block["real_vs_real"]["units"] == "patients"
    assert block["real_vs_real"]["halves"].startswith("patient-disjoint")


def test_results_csv_and_report_state_distinguishable(tmp_path, monkeypatch):
    """evaluate(metrics="fid,tests") in two spaces: one block per space in results.json, the
    p-value as the CSV value, and the run page says "distinguishable at n = ... (p = ...)"."""
    import json

    from conftest import blob_dataset, blob_images

    from medsyn.evaluators import evaluate
    from medsyn.reports import build_report
    from medsyn.settings import ENV_CACHE_DIR

    monkeypatch.setenv(ENV_CACHE_DIR, str(tmp_path / "cache"))
    ref = blob_dataset(80, 0, size=16)
    fake, labels = blob_images(40, 1, size=16, contrast=60.0)      # flatter blobs
    evaluate(fake, labels, reference=ref, extractor="pixels,wavelet", metrics="fid,tests",
             n_bootstrap=0, out_dir=tmp_path / "ev", test_permutations=99)
    data = json.loads((tmp_path / "ev" / "results.json").read_text())
    spaces = data["metrics"]["spaces"]
    assert set(spaces) == {"pixels", "wavelet"}
    for block in (spaces["pixels"]["tests"], spaces["wavelet"]["tests"]):
        assert block["n_permutations"] == 99 and block["distinguishable"]
        assert block["p_value"] == pytest.approx(0.01)
    csv = (tmp_path / "ev" / "metrics.csv").read_text()
    assert "\ntests,0.01," in csv and "spaces.wavelet.tests,0.01," in csv
    html = build_report([tmp_path / "ev"], tmp_path / "out").index_html.read_text()
    section = html.split("<h4>Two-sample tests: real vs synthetic</h4>")[1].split("<h4>")[0]
    assert section.count("distinguishable from real at n = 40 synthetic vs 80 real images "
                         "(permutation p = 0.01, 99 permutations of images)") == 2
    assert "effect size (null SDs): FD" in section and "real vs real" in section
    # the evaluation receipt is part of the run's provenance
    assert "receipt.selftest.status" in html and "receipt.weights_sha256.pixels" in html
