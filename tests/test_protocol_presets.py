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
from medsyn.evaluators.metrics.distribution import chexgenbench, cmmd

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
    assert not {"cmmd", "chexgenbench"} & defaults
    assert [s.name for s in resolve_metrics("cmmd,chexgenbench", False)] == \
        ["cmmd", "chexgenbench"]


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
        (f"dinov2:vitl14@{tmp_path / 'w.pth'}", "fid")
    with pytest.raises(ConfigError, match="one of"):
        protocol_choice("fid-leaderboard", "inception", None, tmp_path)
