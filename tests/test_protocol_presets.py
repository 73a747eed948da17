"""The cmmd and chexgenbench families against the values the protocols' original code computes
on fixed feature arrays (bench/encoder_reference: cmmd-pytorch distance.py, CheXGenBench
metrics/fid.py with torchmetrics 1.7.1 and prdc 0.2, run by make_reference.py)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from medsyn.evaluators.features import Features
from medsyn.evaluators.metrics import resolve_metrics
from medsyn.evaluators.metrics.distribution import chexgenbench, cmmd, dgm_eval

pytestmark = pytest.mark.usefixtures("one_thread")

REF_DIR = Path(__file__).resolve().parents[1] / "bench" / "encoder_reference"
REF = json.loads((REF_DIR / "reference_values.json").read_text())
CMMD_CASES = {"ref_vs_eval": ("cmmd_ref", "cmmd_eval"),
              "ref_vs_same_distribution": ("cmmd_ref", "cmmd_same"),
              "ref_vs_itself": ("cmmd_ref", "cmmd_ref")}


@pytest.fixture(scope="module")
def arrays():
    with np.load(REF_DIR / "features.npz", allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


@pytest.mark.parametrize("case", sorted(CMMD_CASES))
def test_cmmd_equals_cmmd_pytorch(arrays, case):
    x, y = CMMD_CASES[case]
    expected = REF["cmmd"][case]["cmmd"]
    value = cmmd.cmmd_value(arrays[x], arrays[y])
    assert value == pytest.approx(expected, rel=1e-6, abs=1e-9)
    # and it is not the float64 value nor medsyn's unbiased mmd: the estimator matters
    if expected:
        u = REF["cmmd"][case]["independent_float64"]["u_statistic_x1000"]
        assert abs(value - u) > 0.01


def test_cmmd_family_normalises_and_reports_the_protocol(arrays):
    scale = np.linspace(0.5, 3.0, len(arrays["cmmd_eval"]), dtype=np.float32)[:, None]
    ctx = SimpleNamespace(real=Features(arrays["cmmd_ref"]),
                          fake=Features(arrays["cmmd_eval"] * scale),
                          extractor=SimpleNamespace(name="cmmd-clip:test"))
    block = cmmd.metric_cmmd(ctx)["cmmd"]
    assert block["value"] == pytest.approx(REF["cmmd"]["ref_vs_eval"]["cmmd"], rel=1e-4)
    assert (block["sigma"], block["scale"], block["protocol"]) == (10.0, 1000.0, "cmmd")
    assert (block["n_real"], block["n_fake"]) == (120, 100)


@pytest.mark.parametrize("case", ["main", "equal", "lowrank"])
def test_chexgenbench_equals_its_fid_py(arrays, case):
    ref = REF["chexgenbench"][case]
    v = chexgenbench.chexgenbench_values(arrays[f"cxgb_{case}_real"],
                                         arrays[f"cxgb_{case}_fake"])
    assert v["fid"] == pytest.approx(ref["fid"], rel=1e-6)
    assert v["fid_csv"] == ref["fid_csv"]
    assert v["kid_subset_size"] == ref["kid_subset_size"]
    assert v["kid"] == pytest.approx(ref["kid_mean"], rel=1e-5, abs=1e-7)
    assert v["kid_std"] == pytest.approx(ref["kid_std"], rel=1e-4, abs=1e-7)
    for name in ("precision", "recall", "density", "coverage"):
        assert v[name] == pytest.approx(ref[name], abs=1e-12), name


def test_chexgenbench_family_block(arrays):
    ctx = SimpleNamespace(real=Features(arrays["cxgb_equal_real"]),
                          fake=Features(arrays["cxgb_equal_fake"]),
                          extractor=SimpleNamespace(name="rad-dino:test"))
    block = chexgenbench.metric_chexgenbench(ctx)["chexgenbench"]
    assert block["protocol"] == "chexgenbench"
    assert block["fid"]["value"] == pytest.approx(REF["chexgenbench"]["equal"]["fid"], rel=1e-6)
    assert block["kid"]["subset_size"] == 96
    assert block["coverage"]["k"] == 5


def test_protocol_families_are_opt_in():
    defaults = {s.name for s in resolve_metrics(None, have_discriminator=False)}
    assert not {"cmmd", "chexgenbench", "dgm_eval"} & defaults
    assert [s.name for s in resolve_metrics("cmmd,chexgenbench,dgm_eval", False)] == \
        ["cmmd", "chexgenbench", "dgm_eval"]


def test_dgm_eval_fd_is_medsyn_fid(arrays):
    """--protocol dgm-eval scores FD with medsyn's fid family: dgm-eval's fd.py (scipy sqrtm on
    np.cov) gives the same value on the reference arrays."""
    from medsyn.evaluators.metrics import stats

    ref = REF["dgm_eval"]["main"]
    assert stats.fid_value(arrays["dgm_fake"], arrays["dgm_real"]) == \
        pytest.approx(ref["fd"], rel=1e-6)


def test_protocol_choice_builds_space_and_families(tmp_path):
    from medsyn.errors import ConfigError
    from medsyn.evaluators.commands import protocol_choice

    assert protocol_choice("chexgenbench", "inception", None, tmp_path) == \
        (f"rad-dino:{tmp_path}", "chexgenbench")
    assert protocol_choice("cmmd", "inception", "fid", tmp_path) == \
        (f"cmmd-clip:{tmp_path}", "cmmd,fid")
    assert protocol_choice("dgm-eval", "inception", None, tmp_path / "w.pth") == \
        (f"dinov2:vitl14@{tmp_path / 'w.pth'}", "fid,dgm_eval")
    # no weights: the spaces' own downloads (a hub repo id, the hub's DINOv2 state dict)
    assert protocol_choice("chexgenbench", "inception", None, None) == \
        ("rad-dino:microsoft/rad-dino", "chexgenbench")
    assert protocol_choice("cmmd", "inception", None, None) == \
        ("cmmd-clip:openai/clip-vit-large-patch14-336", "cmmd")
    assert protocol_choice("dgm-eval", "inception", "kid", None) == \
        ("dinov2:vitl14", "fid,dgm_eval,kid")
    with pytest.raises(ConfigError, match="one of"):
        protocol_choice("fid-leaderboard", "inception", None, tmp_path)


# ------------------------------------------------------------------ dgm-eval

def test_dgm_eval_family_equals_dgm_eval_code(arrays):
    """KD and PRDC as dgm-eval's compute_mmd / compute_scores computed them on the reference
    arrays (make_reference.py ran dgm-eval's own files: np.random.seed(13579) before each;
    120 of the 150 real rows per KD subset, so the draws matter and are dgm-eval's)."""
    ref = REF["dgm_eval"]["main"]
    v = dgm_eval.dgm_eval_values(arrays["dgm_real"], arrays["dgm_fake"])
    assert v["fd"] == pytest.approx(ref["fd"], rel=1e-6)
    assert v["kd"] == pytest.approx(ref["kd_value"], rel=1e-12)
    assert v["kd_std"] == pytest.approx(ref["kd_variance_field_is_std"], rel=1e-12)
    assert v["kd_subset_size"] == ref["kd_subset_size"] == 120
    assert v["prdc_n"] == ref["prdc_subsample_to"]
    for k in ("precision", "recall", "density", "coverage"):
        assert v[k] == pytest.approx(ref[k], rel=1e-12), k


def _dgm_fd_infinity(reps1, reps2, rng, num_points=15):
    """dgm-eval's compute_FD_infinity (metrics/fd.py at 74c79f7), rewritten here: scipy sqrtm
    FD of random fake subsets against the whole real set, sklearn LinearRegression in 1/N."""
    from scipy import linalg
    from sklearn.linear_model import LinearRegression

    def fd(a, b):
        mu1, mu2 = a.mean(0), b.mean(0)
        s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
        covmean = linalg.sqrtm(s1.dot(s2)).real
        return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2)
                     - 2 * np.trace(covmean))

    batches = np.linspace(min(5000, max(len(reps2) // 10, 2)), len(reps2),
                          num_points).astype("int32")
    fds = [fd(reps1, rng.choice(reps2, n, replace=False)) for n in batches]
    reg = LinearRegression().fit(1 / batches.reshape(-1, 1), np.array(fds).reshape(-1, 1))
    return float(reg.predict(np.array([[0]]))[0, 0]), batches


def test_dgm_eval_fd_infinity_equals_its_formula(arrays):
    real, fake = arrays["dgm_real"].astype(np.float64), arrays["dgm_fake"].astype(np.float64)
    ours = dgm_eval.fd_infinity(real, fake, np.random.default_rng(7))
    theirs, sizes = _dgm_fd_infinity(real, fake, np.random.default_rng(7))
    assert ours["sizes_fake"] == sizes.tolist() and sizes[0] == 12 and sizes[-1] == 120
    assert ours["value"] == pytest.approx(theirs, rel=1e-5)
    # the whole set at the last size: FD itself
    assert ours["fd_at_sizes"][-1] == pytest.approx(REF["dgm_eval"]["main"]["fd"], rel=1e-6)


def test_dgm_eval_vendi_is_mean_per_class():
    rng = np.random.default_rng(0)
    fake = rng.normal(size=(40, 8))
    labels = np.repeat([0, 1], 20)
    value, classes = dgm_eval.mean_vendi_per_class(fake, labels)
    assert classes == 2

    def vendi(x):               # dgm-eval metrics/vendi.py compute_vendi_score, q = 1
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
        w = np.linalg.eigvalsh(x @ x.T / len(x))
        w = w[w > 0]
        return float(np.exp(-(w * np.log(w)).sum()))
    assert value == pytest.approx((vendi(fake[:20]) + vendi(fake[20:])) / 2, rel=1e-6)
    assert dgm_eval.mean_vendi_per_class(fake)[0] == pytest.approx(vendi(fake), rel=1e-6)


def test_dgm_eval_family_block_names_its_protocol(arrays):
    ctx = SimpleNamespace(real=Features(arrays["dgm_real"]), fake=Features(arrays["dgm_fake"]),
                          fake_labels=None, extractor=SimpleNamespace(name="dinov2:vitl14"))
    block = dgm_eval.metric_dgm_eval(ctx)["dgm_eval"]
    assert block["protocol"] == "dgm-eval" and "74c79f7" in block["source"]
    assert block["kd"]["value"] == pytest.approx(REF["dgm_eval"]["main"]["kd_value"])
    assert block["kd"]["subset_size"] == 120 and block["precision"]["k"] == 5
    assert block["fd_infinity"]["points"] == 15 and block["vendi"]["classes"] == 1
