"""The exchangeability check of the privacy audit (metrics/privacy/exchangeability.py): its
statistics against independent computations, its size on exchangeable data over repeated
draws, its power on shifted data, and patients as the unit of permutation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import mannwhitneyu
from sklearn.metrics import roc_auc_score
from threadpoolctl import threadpool_limits

from medsyn.evaluators.metrics.privacy.exchangeability import (
    auc_greater,
    check_exchangeable,
    describe_shift,
    exchangeability_test,
    median_bandwidth,
    mmd2_unbiased,
    permuted_labels,
    permuted_labels_by_count,
    probe_split,
    squared_distances,
)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def _one_blas_thread():
    # tiny matrices: OpenBLAS threads spinning on a busy machine cost 10x the product
    with threadpool_limits(limits=1):
        yield


def _rejections(draw, n_draws: int, seed: int, **kw) -> dict:
    rng = np.random.default_rng(seed)
    out = {"combined": 0, "distance": 0, "mmd": 0}
    for _ in range(n_draws):
        train, held = draw(rng)
        c = check_exchangeable(train, held, rng, n_permutations=99, **kw)
        out["combined"] += c["shift_detected"]
        out["distance"] += c["distance"]["p_value"] < 0.05
        out["mmd"] += c["mmd"]["p_value"] < 0.05
    return {k: v / n_draws for k, v in out.items()}


def test_size_on_exchangeable_gaussian_features():
    """400 draws of 120 training and 40 held-out points from one Gaussian: each test and the
    combined check reject about 5 % of them (binomial sd 1.1 %)."""
    rates = _rejections(lambda rng: (rng.normal(size=(120, 5)), rng.normal(size=(40, 5))),
                        400, seed=0)
    for name, rate in rates.items():
        assert 0.025 <= rate <= 0.08, (name, rates)


def test_power_on_shifted_gaussian_features():
    # held-out spread wider: farther from the training points (what inflates the DCR baseline)
    wide = _rejections(lambda rng: (rng.normal(size=(120, 5)), 1.5 * rng.normal(size=(40, 5))),
                       40, seed=1)
    assert wide["distance"] >= 0.8 and wide["combined"] >= 0.8, wide
    # another mixture of two classes (MedMNIST's test split: 37.5 % vs 26 % normal images)
    centres = np.eye(5) * 3

    def mixture(rng, n, share):
        cls = (rng.random(n) < share).astype(int)
        return centres[cls] + rng.normal(size=(n, 5))

    balance = _rejections(lambda rng: (mixture(rng, 200, 0.2), mixture(rng, 100, 0.6)),
                          40, seed=2)
    assert balance["mmd"] >= 0.8 and balance["combined"] >= 0.8, balance


def test_patients_are_the_unit():
    """Four scans per patient (a patient effect plus small noise): permuting images treats
    them as independent and rejects far too often; permuting patients keeps the size."""
    def patients(rng, n_patients, tag):
        centre = rng.normal(size=(n_patients, 4))
        x = np.repeat(centre, 4, axis=0) + 0.2 * rng.normal(size=(4 * n_patients, 4))
        return x, np.repeat([f"{tag}{i}" for i in range(n_patients)], 4)

    rng = np.random.default_rng(3)
    by_image = by_patient = 0
    n = 150
    for _ in range(n):
        (tr, tg), (he, hg) = patients(rng, 40, "T"), patients(rng, 15, "H")
        by_patient += check_exchangeable(tr, he, rng, train_groups=tg, held_groups=hg,
                                         n_permutations=99)["shift_detected"]
        by_image += check_exchangeable(tr, he, rng, n_permutations=99)["shift_detected"]
    assert by_image / n > 0.5
    assert by_patient / n <= 0.09


def test_statistics_against_independent_computations():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(30, 3)), rng.normal(0.3, 1.0, size=(20, 3))
    labels = permuted_labels_by_count(30, 20, 5, rng)
    pooled = np.concatenate([x, y])
    sq = squared_distances(pooled)
    bw = median_bandwidth(sq)
    k = np.exp(-sq / (2 * bw ** 2))
    for col in range(labels.shape[1]):
        a, b = pooled[~labels[:, col]], pooled[labels[:, col]]

        def kern(u, v):
            return np.exp(-np.sum((u - v) ** 2) / (2 * bw ** 2))

        xx = sum(kern(a[i], a[j]) for i in range(len(a)) for j in range(len(a)) if i != j)
        yy = sum(kern(b[i], b[j]) for i in range(len(b)) for j in range(len(b)) if i != j)
        xy = sum(kern(u, v) for u in a for v in b)
        brute = xx / (len(a) * (len(a) - 1)) + yy / (len(b) * (len(b) - 1)) \
            - 2 * xy / (len(a) * len(b))
        assert mmd2_unbiased(k, labels[:, col:col + 1])[0] == pytest.approx(brute, rel=1e-9)
    pairwise = np.sqrt(((pooled[:, None] - pooled[None]) ** 2).sum(-1))
    assert bw == pytest.approx(np.median(pairwise[np.triu_indices(50, 1)]), rel=1e-9)
    # AUC P(second > first) with ties, against scikit-learn
    v = np.round(rng.normal(size=50), 1)
    auc = auc_greater(v, labels)
    for col in range(labels.shape[1]):
        assert auc[col] == pytest.approx(roc_auc_score(labels[:, col], v), rel=1e-12)


def test_distance_p_value_matches_mann_whitney():
    """Without patients the distance test is a permutation Mann-Whitney test: its p-value
    agrees with scipy's two-sided asymptotic one up to Monte-Carlo error."""
    rng = np.random.default_rng(5)
    d_probe, d_held = rng.normal(size=200), rng.normal(0.15, 1.0, size=150)
    feats = rng.normal(size=(350, 2))
    out = exchangeability_test(feats[:200], feats[200:], d_probe, d_held, rng,
                               n_permutations=4000)
    ref = mannwhitneyu(d_held, d_probe, alternative="two-sided").pvalue
    assert out["distance"]["p_value"] == pytest.approx(ref, abs=0.02)
    assert out["distance"]["auc"] == pytest.approx(
        mannwhitneyu(d_held, d_probe).statistic / (200 * 150), rel=1e-12)
    # the min-p combination lies between the smaller p-value and Bonferroni's bound
    small = min(out["distance"]["p_value"], out["mmd"]["p_value"])
    assert small - 1e-12 <= out["p_value"] <= min(1.0, 2 * small) + 2 / 4001


def test_probe_split_and_permutations_keep_patients_whole():
    rng = np.random.default_rng(6)
    groups = np.repeat([f"P{i}" for i in range(10)], [1, 2, 3, 4, 5, 1, 2, 3, 4, 5])
    probe, ref = probe_split(len(groups), 12, rng, groups)
    assert not set(groups[probe]) & set(groups[ref])
    assert len(probe) >= 12 and len(ref) >= 1
    assert sorted(np.concatenate([probe, ref]).tolist()) == list(range(len(groups)))
    labels = permuted_labels(groups[:15], groups[15:], 50, rng)
    for col in labels.T:
        held_patients = set(np.concatenate([groups[:15], groups[15:]])[col])
        for p in held_patients:   # every image of a permuted patient moves with it
            assert col[np.concatenate([groups[:15], groups[15:]]) == p].all()
    with pytest.raises(ValueError, match="both sets"):
        permuted_labels(["A", "B"], ["B", "C"], 3, rng)
    with pytest.raises(ValueError, match="two training"):
        probe_split(1, 1, rng)


def test_held_out_images_of_training_patients_are_left_out():
    rng = np.random.default_rng(7)
    train, held = rng.normal(size=(60, 3)), rng.normal(size=(30, 3))
    tg = np.array([f"P{i}" for i in range(60)])
    hg = np.array([f"P{i}" for i in range(10)] + [f"Q{i}" for i in range(20)])
    out = check_exchangeable(train, held, rng, train_groups=tg, held_groups=hg,
                             n_permutations=19)
    assert out["n_heldout_dropped_training_patients"] == 10
    assert out["n_heldout"] == 20 and out["units"] == "patients"
    assert "farther from" in describe_shift(out) or "nearer to" in describe_shift(out)


def test_real_chest_x_rays_size_and_shift(data_root):
    """PneumoniaMNIST in raw pixels: random draws inside the training split are exchangeable
    (about 5 % rejections); the test split, another collection with another class balance,
    is told apart from the training split in every draw."""
    from medsyn.data import load_dataset

    def pixels(split):
        x = load_dataset("pneumoniamnist", split).images[:, 0].numpy()
        return x.reshape(len(x), -1).astype(np.float64) / 255

    train, test = pixels("train"), pixels("test")
    rng = np.random.default_rng(8)
    rejected, n = 0, 60
    for _ in range(n):
        perm = rng.permutation(len(train))
        rejected += check_exchangeable(train[perm[:400]], train[perm[400:600]], rng,
                                       n_permutations=99)["shift_detected"]
    assert rejected <= 8, rejected          # binomial(60, 0.05): P(> 8) < 0.2 %
    for seed in range(3):
        r = np.random.default_rng(seed)
        check = check_exchangeable(train, test, r, n_permutations=199)
        assert check["shift_detected"], check
