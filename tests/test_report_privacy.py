"""The report's privacy section, from results.json files that `evaluate` itself wrote."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from medsyn.data import ImageDataset
from medsyn.evaluators import evaluate
from medsyn.reports import build_report
from medsyn.reports.content.privacy import privacy_view


def _images(n, seed, size=20):
    g = np.random.default_rng(seed)
    base = g.normal(128, 40, size=(n, 1, 1, 1)) + g.normal(0, 30, size=(n, 1, size, size))
    return torch.from_numpy(np.clip(base, 0, 255).astype(np.uint8))


@pytest.fixture(scope="module")
def evaluations(tmp_path_factory):
    root = tmp_path_factory.mktemp("privacy-evals")
    train = ImageDataset("toy", "train", _images(160, 0), torch.zeros(160, dtype=torch.int64),
                         ["only"])
    held = ImageDataset("toy", "test", _images(80, 1), torch.zeros(80, dtype=torch.int64),
                        ["only"])
    copies = (train.images[:80].float() + torch.randn(80, 1, 20, 20, generator=torch.Generator()
              .manual_seed(0))).round().clamp(0, 255).to(torch.uint8)
    out = {}
    for name, fake in (("copying", copies), ("fresh", _images(80, 2))):
        evaluate(fake, reference=train, train=train, heldout=held, metrics="privacy",
                 extractor="pixels", n_bootstrap=10, out_dir=root / name)
        out[name] = root / name
    return out


def test_report_shows_verdict_numbers_and_figures(evaluations, tmp_path):
    result = build_report([evaluations["copying"]], tmp_path / "out")
    assert not result.problems
    html = result.index_html.read_text()
    section = html.split("<h4>Privacy</h4>")[1].split("<h4>")[0]
    assert "Verdict:</b> Possible leak of training images" in section
    assert "C_T data-copying test" in section and "TPR at 1 % FPR" in section
    assert "membership-inference attack" in section and "AUC" in section
    assert "pixels16" in section and "pixels20" in section      # feature space + raw pixels
    assert section.count("<b>flags</b>") == 8          # 4 tests (authenticity too) x 2
    assert "one-sided level 0.01" in section and "no patient ids" in section
    assert "closest synthetic / training pairs" in section
    assert "<b>Baseline</b>" in section and "exchangeability check: training vs toy/test" \
        in section and section.count(">no shift<") == 2
    assert "synthetic vs held-out baseline" in section
    for src in re.findall(r'src="([^"]+)"', section):
        assert (result.index_html.parent / src).is_file()
    md = result.summary_md.read_text()
    assert "## Privacy" in md and "Possible leak of training images" in md


def test_report_of_a_clean_set_says_no_test_flags(evaluations, tmp_path):
    result = build_report([evaluations["fresh"]], tmp_path / "out")
    html = result.index_html.read_text()
    section = html.split("<h4>Privacy</h4>")[1].split("<h4>")[0]
    assert "Verdict:</b> No test flags" in section and "<b>flags</b>" not in section
    assert "not proof that no patient can be re-identified" in section


def test_privacy_view_of_odd_blocks(evaluations):
    assert privacy_view({}) is None
    assert privacy_view({"privacy": {"value": None, "unavailable": "needs a held-out split"}}) \
        == {"unavailable": "needs a held-out split"}
    data = json.loads((evaluations["copying"] / "results.json").read_text())
    view = privacy_view(data["metrics"])
    assert view["leak"] and len(view["rows"]) == 10      # 4 tests + the check, x 2 spaces
    checks = [r for r in view["rows"] if r.get("check")]
    assert len(checks) == 2 and all(r["status"] == "no shift" for r in checks)
    assert "toy/test" in view["baseline"] and not view["shifted"]
    dcr = [r for r in view["rows"] if r["test"].startswith("DCR")][0]
    assert "median ratio" in dcr["value"] and "expected 5.0 %" in dcr["value"]


def test_report_shows_a_shifted_baseline_beside_the_tests(tmp_path):
    """A held-out set from another distribution (brighter images) and a validation split drawn
    like the training images: the report marks the shift, shows the baseline's tests as
    confounded and the tests against the control after them."""
    def ds(split, n, seed, shift=0):
        imgs = (_images(n, seed).int() + shift).clamp(0, 255).to(torch.uint8)
        return ImageDataset("toy", split, imgs, torch.zeros(n, dtype=torch.int64), ["only"])

    train, val, test = ds("train", 160, 0), ds("val", 80, 3), ds("test", 80, 1, shift=40)
    evaluate(_images(80, 2), reference=train, train=train, heldout=test, val=val,
             metrics="privacy", extractor="pixels", n_bootstrap=0, out_dir=tmp_path / "ev",
             privacy_baseline="test")
    view = privacy_view(json.loads((tmp_path / "ev" / "results.json").read_text())["metrics"])
    assert view["shifted"] and not view["undecided"]
    assert {r["status"] for r in view["rows"] if r.get("check") and "toy/test" in r["test"]} \
        == {"SHIFT"}
    against_test = [r for r in view["rows"] if not r.get("check") and "control" not in r["test"]]
    assert against_test and all(r["status"].startswith("confounded") for r in against_test)
    assert any("against the control toy/val" in r["test"] for r in view["rows"])
    html = build_report([tmp_path / "ev"], tmp_path / "out").index_html.read_text()
    section = html.split("<h4>Privacy</h4>")[1].split("<h4>")[0]
    assert "<b>SHIFT</b>" in section and "confounded" in section
    assert "finds it shifted from the training images" in section
