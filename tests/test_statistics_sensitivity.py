"""Preprocessing and reference sensitivity (evaluators/audit/sensitivity.py): an identical
pipeline moves nothing, the default pipeline is the dataset loader's, the alternatives are the
filters they name, and the reference spread through the audit."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from dicom_files import write_dicom

from medsyn.evaluators.audit.sensitivity import (
    preprocessing_sensitivity,
    preprocessing_variants,
    reference_sensitivity,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def _images(n=12, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 1, size, size), generator=g, dtype=torch.uint8)


def test_identical_pipeline_scores_zero_and_alternatives_move():
    native = _images()
    variants = preprocessing_variants(native, 16, identical=True)
    names = [p.name for p, _, _ in variants]
    assert names[:2] == ["default", "default, again"]

    def score(images):        # any deterministic metric of the images
        x = images.float()
        return {"mean": float(x.mean()), "sd": float(x.std())}

    table = preprocessing_sensitivity(variants, score, ["mean", "sd"])
    rows = {r["pipeline"]: r for r in table["rows"]}
    assert rows["default"]["change"] == {"mean": 0.0, "sd": 0.0}
    assert rows["default, again"]["change"] == {"mean": 0.0, "sd": 0.0}
    # no antialiasing keeps more of the noise's spread than the antialiased default
    assert rows["bicubic, no antialias"]["change"]["sd"] > 0
    # truncation lowers every pixel by half a grey level on average
    assert rows["truncated to 8 bits"]["change"]["mean"] == pytest.approx(-0.5, abs=0.1)
    assert "8 bits" in rows["bit depth minmax"]["unavailable"]
    assert rows["DICOM window full range"]["unavailable"] == "no DICOM file in the dataset"
    assert rows["DICOM window percentile"]["unavailable"] == "no DICOM file in the dataset"
    assert "DICOM window file VOI, re-decoded" not in rows      # no DICOM loader: no check row


def test_alternative_filters_are_the_ones_named():
    native = _images()
    got = {p.name: im for p, im, _ in preprocessing_variants(native, 16)}
    x = native.float()
    expected = {
        "bilinear, antialiased": F.interpolate(x, size=(16, 16), mode="bilinear",
                                               antialias=True, align_corners=False),
        "area": F.avg_pool2d(x, 2),            # area to half size = 2x2 means
    }
    for name, want in expected.items():
        assert torch.equal(got[name], want.round().clamp(0, 255).to(torch.uint8)), name
    # no resize at the stored size: the resize rows do not apply
    same = {p.name: reason for p, _, reason in preprocessing_variants(native, None)}
    assert same["area"].startswith("no resize")


def test_reference_sensitivity_spread_and_patients():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 20)
    groups = np.repeat(np.arange(30).astype(str), 2)
    feats = rng.normal(size=(60, 3)) + labels[:, None]
    seen = []

    def score_rows(rows):
        seen.append(rows)
        return {"m": float(feats[rows].mean())}

    out = reference_sensitivity(score_rows, labels, ["a", "b", "c"], ["m"], seed=0,
                                groups=groups, draws=5)
    halves = seen[:5]
    for rows in halves:                   # whole patients only
        picked = set(groups[rows])
        assert all(set(np.flatnonzero(groups == p)) <= set(rows) for p in picked)
    block = out["keys"]["m"]
    assert len(block["halves"]["values"]) == 5 and block["halves"]["sd"] > 0
    loo = block["leave_one_class_out"]
    # leaving class 2 out (the highest features) gives the lowest mean
    assert loo["c"] == loo["min"] and loo["a"] == loo["max"]
    assert out["units"] == "patients" and out["leave_one_class_out_size"] == 40


@pytest.mark.real_data
def test_audit_preprocessing_and_reference_on_pixels(data_root):
    """Through the audit, PneumoniaMNIST resized to 32 px in pixel space: the default row is
    the loader's own pipeline (change exactly 0), the alternatives move FD, and the
    reference table lists every audited key."""
    from medsyn.data import load_dataset
    from medsyn.data.transforms.resize import resize_uint8
    from medsyn.evaluators.audit import audit
    from medsyn.evaluators.audit.card import card_html, card_markdown

    native = load_dataset("pneumoniamnist", "test", root=data_root)
    loaded = load_dataset("pneumoniamnist", "test", image_size=32, root=data_root)
    assert torch.equal(resize_uint8(native.images[:50], 32), loaded.images[:50])

    result = audit("pneumoniamnist", "test", extractors="pixels", metrics="fid,mmd",
                   failures="blur", quick=True, data_root=data_root, image_size=32,
                   preprocessing=True, reference_sensitivity=True, use_cache=False)
    rows = {r["pipeline"]: r for r in result["preprocessing"]["spaces"]["pixels16"]["rows"]}
    assert rows["default"]["change"] == {"fid": 0.0, "mmd": 0.0}
    assert rows["area"]["change"]["fid"] != 0.0
    # an npz of 8-bit arrays: the bit-depth and DICOM window rows say why they do not apply
    assert rows["DICOM window full range"]["unavailable"] == \
        "no DICOM file in the dataset (stored as medmnist-npz, 8-bit arrays)"
    assert rows["bit depth 16"]["unavailable"].startswith("every file is stored with 8 bits")
    # the default pipeline's score is the audit's own level-0 score of the same images
    real = result["spaces"]["pixels16"]["real_vs_real"]["fid"]["value"]
    assert rows["default"]["values"]["fid"] == pytest.approx(real, rel=1e-9)
    ref = result["reference_sensitivity"]["spaces"]["pixels16"]
    assert set(ref["keys"]) == {"fid", "mmd"}
    assert set(ref["keys"]["fid"]["leave_one_class_out"]) >= {"normal", "pneumonia"}
    card = card_markdown(result)
    assert "Preprocessing sensitivity: pixels16" in card
    assert "Reference sensitivity: pixels16" in card
    html = card_html(result)                  # what medsyn report shows
    assert "Preprocessing sensitivity: pixels16</h3>" in html and "nan" not in html


@pytest.fixture(scope="module")
def dicom_folder(tmp_path_factory):
    """A DICOM folder (train/test, two classes of 12 files each, 12-bit with a VOI window
    1800/1600 and one burnt-in marker pixel at 4095 per image)."""
    import pydicom

    root = tmp_path_factory.mktemp("dicom") / "dcm"
    rng = np.random.default_rng(5)
    for split in ("train", "test"):
        for c, name in enumerate(("a", "b")):
            for i in range(12):
                values = rng.integers(800 + 400 * c, 2400 + 400 * c, (16, 16))
                values[rng.integers(16), rng.integers(16)] = 4095       # burnt-in marker
                write_dicom(root / split / name / f"{i}.dcm", values, window=(1800.0, 1600.0))
    assert pydicom.dcmread(root / "test" / "b" / "11.dcm").WindowCenter == 1800.0
    return root


def test_audit_preprocessing_scores_dicom_window_alternatives(dicom_folder):
    """--preprocessing on the DICOM folder scores the held-out sample under each window rule,
    the images of each row are the loader's under that rule, the default row is the file's
    window (change 0), and decoding the files again under the file's window moves nothing."""
    from medsyn.data import load_dataset
    from medsyn.evaluators.audit import audit
    from medsyn.evaluators.audit.card import card_markdown
    from medsyn.evaluators.audit.statistics import preprocessing_inputs

    root = f"folder:{dicom_folder}"
    result = audit(root, "test", extractors="pixels", metrics="fid", failures="blur", n=8,
                   n_bootstrap=2, preprocessing=True, use_cache=False)
    rows = {r["pipeline"]: r for r in result["preprocessing"]["spaces"]["pixels16"]["rows"]}
    assert rows["default"]["change"] == {"fid": 0.0}
    assert "VOI window" in rows["default"]["description"]
    for name in ("DICOM window full range", "DICOM window percentile"):
        assert "unavailable" not in rows[name]
        assert rows[name]["change"]["fid"] != 0.0
    assert rows["bit depth 16"]["unavailable"].startswith("no file but DICOM")
    assert "DICOM window file VOI, re-decoded" not in rows        # a check row, tests only
    card = card_markdown(result)
    assert "| DICOM window percentile | DICOM window | " in card

    # the images behind each row are the loader's under that window rule
    test = load_dataset(root, "test")
    base_rows = np.arange(8)
    variants = preprocessing_inputs(root, "test", test, base_rows, None, None, identical=True)
    images = {p.name: im for p, im, _ in variants}
    for window, name in (("full", "DICOM window full range"),
                         ("percentile", "DICOM window percentile")):
        want = load_dataset(root, "test", dicom_window=window).images[:8]
        assert torch.equal(images[name], want)
        assert not torch.equal(want, test.images[:8])
    # identical pipelines: the default run again, and the files decoded again with their own
    # window, are the default's images bit for bit, so every metric's change is exactly 0
    assert torch.equal(images["DICOM window file VOI, re-decoded"], images["default"])

    def score(batch):
        x = batch.float()
        return {"mean": float(x.mean()), "sd": float(x.std())}

    table = preprocessing_sensitivity(variants, score, ["mean", "sd"])
    changes = {r["pipeline"]: r.get("change") for r in table["rows"]}
    zero = {"mean": 0.0, "sd": 0.0}
    assert changes["default, again"] == zero
    assert changes["DICOM window file VOI, re-decoded"] == zero
    # the full range keeps the marker in the scale, so the anatomy reads darker than the
    # percentile window (which clips the marker away) and than the file's window
    assert changes["DICOM window full range"]["mean"] < 0
    assert changes["DICOM window percentile"]["mean"] > changes["DICOM window full range"]["mean"]


def test_cli_audit_preprocessing_on_a_dicom_folder(dicom_folder, tmp_path):
    """End to end through the command line: the window rows in audit.json and the card."""
    import json

    from typer.testing import CliRunner

    from medsyn.cli import app

    out = tmp_path / "audit"
    result = CliRunner().invoke(app, [
        "audit", "--dataset", f"folder:{dicom_folder}:test", "--extractor", "pixels",
        "--metrics", "fid,kid", "--failures", "blur", "-n", "8", "--bootstrap", "2",
        "--preprocessing", "--no-cache", "--out", str(out)])
    assert result.exit_code == 0, result.output
    audit = json.loads((out / "audit.json").read_text())
    rows = {r["pipeline"]: r for r in audit["preprocessing"]["spaces"]["pixels16"]["rows"]}
    assert [r["pipeline"] for r in audit["preprocessing"]["spaces"]["pixels16"]["rows"]][-2:] \
        == ["DICOM window full range", "DICOM window percentile"]
    assert rows["default"]["change"] == {"fid": 0.0, "kid": 0.0}
    for name in ("DICOM window full range", "DICOM window percentile"):
        assert rows[name]["aspect"] == "DICOM window"
        assert rows[name]["change"]["fid"] != 0.0 and rows[name]["change"]["kid"] != 0.0
    # 16 px stored, evaluated as stored: the resize rows say why they have no value
    assert rows["area"]["unavailable"].startswith("no resize")
    card = (out / "card.md").read_text()
    assert "| DICOM window full range | DICOM window | " in card
    assert "Preprocessing sensitivity: pixels16" in result.output


def test_rows_that_do_not_apply_say_how_the_files_are_stored():
    from medsyn.evaluators.audit.statistics import stored_as

    cxr3 = {"kind": "image-folder", "intensity": {"bit_depths": {"PNG 8-bit": 603}}}
    assert stored_as(cxr3) == "PNG 8-bit"
    assert stored_as({"kind": "medmnist-npz"}) == "medmnist-npz, 8-bit arrays"
    assert stored_as(None) is None
    rows = {p.name: reason for p, _, reason in
            preprocessing_variants(_images(), 16, stored_as=stored_as(cxr3))}
    assert rows["DICOM window full range"] == "no DICOM file in the dataset (stored as PNG 8-bit)"
    assert rows["bit depth minmax"] == "every file is stored with 8 bits (stored as PNG 8-bit)"
