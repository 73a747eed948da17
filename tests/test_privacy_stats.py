"""The privacy statistics against independent computations on small arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from medsyn.evaluators.metrics import stats
from medsyn.evaluators.metrics.privacy.family import verdict
from medsyn.evaluators.metrics.privacy.stats import (
    auc_smaller_is_positive,
    data_copying_ct,
    dcr_test,
    fraction_below,
    mann_whitney_z,
    membership_attack,
)
from medsyn.evaluators.metrics.stats.groups import GroupResampler, disjoint_halves


def brute_nearest(q, g, qg=None, gg=None):
    """Nearest distances by explicit loops (no matrix identity)."""
    out_d, out_i = [], []
    for a in range(len(q)):
        best, arg = math.inf, -1
        for b in range(len(g)):
            if qg is not None and qg[a] == gg[b]:
                continue
            d = math.sqrt(sum((float(x) - float(y)) ** 2 for x, y in zip(q[a], g[b], strict=True)))
            if d < best:
                best, arg = d, b
        out_d.append(best)
        out_i.append(arg)
    return np.array(out_d), np.array(out_i)


def u_by_pairs(x, y):
    """Mann-Whitney U of x: pairs with x > y, ties counting one half."""
    return sum(1.0 if a > b else 0.5 if a == b else 0.0 for a in x for b in y)


def normal_cdf(z):
    return 0.5 * (1 + math.erf(z / math.sqrt(2)))


def test_dcr_against_brute_force():
    rng = np.random.default_rng(0)
    train = rng.normal(size=(25, 6))
    held = rng.normal(size=(30, 6))
    fake = np.concatenate([train[:20] + 0.01 * rng.normal(size=(20, 6)), rng.normal(size=(20, 6))])
    d_fake, nn = stats.nearest_distances(fake, train)
    d_held, _ = stats.nearest_distances(held, train)
    bd_fake, bnn = brute_nearest(fake, train)
    bd_held, _ = brute_nearest(held, train)
    np.testing.assert_allclose(d_fake, bd_fake, rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(nn, bnn)
    np.testing.assert_allclose(d_held, bd_held, rtol=1e-9)
    out = dcr_test(d_fake, d_held)
    m, n = len(bd_fake), len(bd_held)
    u = u_by_pairs(bd_fake, bd_held)
    assert out["u"] == pytest.approx(u)
    # large-sample p-value with continuity correction (no ties among continuous distances)
    z = (u - m * n / 2 + 0.5) / math.sqrt(m * n * (m + n + 1) / 12)
    assert out["p_value"] == pytest.approx(normal_cdf(z), rel=1e-9)
    assert out["p_value"] < 0.01
    assert out["median_ratio"] == pytest.approx(np.median(bd_fake) / np.median(bd_held))
    frac, thr, res = fraction_below(d_fake, d_held, 5.0, 0, rng)
    srt = np.sort(bd_held)
    pos = 0.05 * (n - 1)                       # linear interpolation between order statistics
    expect_thr = srt[int(pos)] + (pos - int(pos)) * (srt[int(pos) + 1] - srt[int(pos)])
    assert thr == pytest.approx(expect_thr)
    assert frac == pytest.approx(sum(d < expect_thr for d in bd_fake) / m)
    assert res == []


def test_membership_auc_matches_sklearn_with_ties():
    rng = np.random.default_rng(1)
    d_members = np.round(rng.gamma(2.0, 1.0, 40), 1)         # rounded: many ties
    d_non = np.round(rng.gamma(2.4, 1.0, 35), 1)
    labels = np.r_[np.ones(40), np.zeros(35)]
    expect = roc_auc_score(labels, -np.r_[d_members, d_non])
    assert auc_smaller_is_positive(d_members, d_non) == pytest.approx(expect, abs=1e-12)
    out = membership_attack(d_members, d_non, 30, np.random.default_rng(0))
    assert out["auc"] == pytest.approx(expect, abs=1e-12)
    assert len(out["resamples"]) == 30
    # the attack's p-value is the one-sided U test that members are nearer
    u = u_by_pairs(d_members, d_non)
    assert out["auc"] == pytest.approx(1 - u / (40 * 35))


def meehan_ct_transcription(P, P_cells, Q, Q_cells, T, T_cells, tau):
    """C_T written out from Meehan et al. (2020), eq. for Z_U and C_T, with plain loops."""
    m, n = len(Q), len(P)
    k = int(T_cells.max()) + 1
    num = den = 0.0
    for c in range(k):
        Tc, Pc, Qc = T[T_cells == c], P[P_cells == c], Q[Q_cells == c]
        if len(Qc) / m <= tau or len(Pc) == 0:
            continue
        lq, _ = brute_nearest(Qc, Tc)
        lp, _ = brute_nearest(Pc, Tc)
        u = u_by_pairs(lq, lp)
        mc, nc = len(lq), len(lp)
        z = (u - (nc * mc / 2 - 0.5)) / math.sqrt(nc * mc * (nc + mc + 1) / 12)
        w = len(Pc) / n
        num += w * z
        den += w
    return num / den


def test_ct_against_transcription_of_the_paper():
    rng = np.random.default_rng(2)
    T = rng.normal(size=(60, 4))
    P = rng.normal(size=(50, 4))
    Q = np.concatenate([T[:30] + 0.05 * rng.normal(size=(30, 4)), rng.normal(size=(40, 4))])
    # three fixed cells by the sign pattern of the first coordinates (any partition will do)
    def cells(x):
        return (x[:, 0] > 0).astype(int) + (x[:, 1] > 0.8).astype(int)
    tc, pc, qc = cells(T), cells(P), cells(Q)
    tau = 5 / len(Q)
    out = data_copying_ct(stats.pairwise_distances(Q, T), stats.pairwise_distances(P, T),
                          tc, qc, pc, 3, tau)
    expect = meehan_ct_transcription(P, pc, Q, qc, T, tc, tau)
    assert out["value"] == pytest.approx(expect, rel=1e-9)
    assert out["value"] < -2                          # copied points: well below zero
    used = [c for c in out["cells"] if c["included"]]
    w = np.array([c["heldout_share"] for c in used])
    z_u = np.array([c["z_u"] for c in used])
    assert out["z"] == pytest.approx(w @ z_u / np.sqrt(w @ w))
    # the authors' Zu: scipy's U with their continuity-corrected mean
    lq, lp = rng.normal(size=12), rng.normal(size=9)
    u = u_by_pairs(lq, lp)
    assert mann_whitney_z(lq, lp) == pytest.approx((u - (54 - 0.5)) / math.sqrt(108 * 22 / 12))


def test_ct_leaves_out_sparse_cells():
    rng = np.random.default_rng(3)
    T, P, Q = rng.normal(size=(20, 2)), rng.normal(size=(20, 2)), rng.normal(size=(20, 2))
    tc = np.r_[np.zeros(10, int), np.ones(10, int)]
    qc = np.r_[np.zeros(19, int), np.ones(1, int)]           # cell 1: 1 synthetic point
    pc = np.r_[np.zeros(10, int), np.ones(10, int)]
    out = data_copying_ct(stats.pairwise_distances(Q, T), stats.pairwise_distances(P, T),
                          tc, qc, pc, 2, tau=2 / 20)
    assert out["n_cells_used"] == 1 and out["cells"][1]["included"] is False
    assert out["value"] == pytest.approx(out["cells"][0]["z_u"])


def test_same_patient_exclusion_changes_the_nearest_neighbour():
    train = np.array([[0.0, 0.0], [1.0, 0.0], [5.0, 5.0]])
    train_pat = np.array(["A", "B", "C"])
    held = np.array([[0.1, 0.0], [4.0, 4.0]])
    held_pat = np.array(["A", "C"])
    d, i = stats.nearest_distances(held, train)
    assert list(i) == [0, 2]
    d_x, i_x = stats.nearest_distances(held, train, None, held_pat, train_pat)
    assert list(i_x) == [1, 1]                    # each patient's own image is skipped
    bd, bi = brute_nearest(held, train, held_pat, train_pat)
    np.testing.assert_allclose(d_x, bd)
    np.testing.assert_array_equal(i_x, bi)
    # a query whose only gallery images are its own patient's has no neighbour
    d_none, i_none = stats.nearest_distances(held[:1], train[:1], None, held_pat[:1],
                                             train_pat[:1])
    assert np.isinf(d_none[0]) and i_none[0] == -1


def test_patient_bootstrap_draws_whole_patients():
    groups = np.array(["p1"] * 5 + ["p2"] * 1 + ["p3"] * 3 + ["p4"] * 2)
    rs = GroupResampler(len(groups), groups)
    assert rs.n_groups == 4
    rng = np.random.default_rng(0)
    sizes = set()
    for _ in range(50):
        idx = rs.draw(rng)
        drawn = groups[idx]
        for p in set(drawn):                       # each drawn patient comes with all images
            assert (drawn == p).sum() % (groups == p).sum() == 0
        sizes.add(len(idx))
    assert len(sizes) > 1                          # resample size varies with the patients
    plain = GroupResampler(7).draw(np.random.default_rng(0))
    assert len(plain) == 7
    # patient resampling widens the interval of a mean when patients are alike inside
    values = np.repeat(np.random.default_rng(1).normal(size=20), 10)
    pats = np.repeat(np.arange(20), 10)
    spread = {}
    for name, r in (("images", GroupResampler(200)), ("patients", GroupResampler(200, pats))):
        g = np.random.default_rng(5)
        spread[name] = np.std([values[r.draw(g)].mean() for _ in range(300)])
    assert spread["patients"] > 2 * spread["images"]


def test_disjoint_halves_by_patient():
    groups = np.repeat([f"p{i}" for i in range(9)], [1, 4, 2, 3, 1, 5, 2, 2, 2])
    a, b = disjoint_halves(np.random.default_rng(0), len(groups), groups)
    assert not set(groups[a]) & set(groups[b])
    assert sorted(np.r_[a, b]) == list(range(len(groups)))
    assert abs(len(a) - len(b)) <= 2 * 5
    a2, b2 = disjoint_halves(np.random.default_rng(0), 10)
    assert len(a2) == len(b2) == 5 and not set(a2) & set(b2)
    with pytest.raises(ValueError):
        disjoint_halves(np.random.default_rng(0), 3, np.array(["x", "x", "x"]))


def test_exclusion_on_device_matrix_matches_loops():
    rng = np.random.default_rng(4)
    q, g = rng.normal(size=(7, 3)), rng.normal(size=(9, 3))
    qg, gg = rng.integers(0, 3, 7).astype(str), rng.integers(0, 3, 9).astype(str)
    d = stats.exclude_same_group(stats.pairwise_distances(q, g), qg, gg)
    assert torch.isinf(d).sum().item() == sum(a == b for a in qg for b in gg)


def test_verdict_names_flagging_tests():
    def t(flags):
        return {"flags": flags, "rule": "p < 0.01"}
    clean = verdict({"pix": {"space": "s", "dcr": t(False), "data_copying": t(False),
                             "membership_inference": t(False)}})
    assert not clean["leak_suspected"] and clean["flagged"] == []
    assert "No test flags" in clean["text"]
    bad = verdict({"pix": {"dcr": t(True), "data_copying": t(None),
                           "membership_inference": t(False)}})
    assert bad["leak_suspected"] and bad["flagged"] == ["DCR test (pix)"]
    assert "C_T data-copying test (pix)" in bad["undecided"]
    assert "Possible leak" in bad["text"]


def test_tpr_at_low_fpr_by_counting():
    rng = np.random.default_rng(6)
    d_non = rng.gamma(3.0, 1.0, 500)
    d_mem = np.r_[np.full(20, 0.01), rng.gamma(3.0, 1.0, 480)]      # 20 of 500 copied
    out = membership_attack(d_mem, d_non, 5, rng)
    srt = np.sort(d_non)
    cut = srt[4] + 0.99 * (srt[5] - srt[4])   # 1 % quantile: position 0.01 * 499 = 4.99
    assert out["tpr_at_low_fpr"] == pytest.approx(np.mean(d_mem < cut))
    assert out["tpr_at_low_fpr"] >= 20 / 500
    assert out["auc"] < 0.6                  # the AUC barely moves with 4 % copied


def test_all_tied_distances_do_not_flag():
    zeros = np.zeros(10)
    assert dcr_test(zeros, zeros)["p_value"] == pytest.approx(1.0)
    out = membership_attack(zeros, zeros, 3, np.random.default_rng(0))
    assert out["p_value"] == pytest.approx(1.0) and out["auc"] == 0.5
    v = verdict({"pix": {"dcr": {"flags": None, "rule": "r"}}})
    assert not v["leak_suspected"] and v["undecided"] == ["DCR test (pix)"]
