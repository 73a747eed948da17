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
    assert view["leak"] and len(view["rows"]) == 8
    dcr = [r for r in view["rows"] if r["test"].startswith("DCR")][0]
    assert "median ratio" in dcr["value"] and "expected 5.0 %" in dcr["value"]
