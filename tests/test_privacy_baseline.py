"""The privacy audit's baseline (issue 33): an exchangeable held-out set by default, the
exchangeability check in every run, and no accusation on the basis of a shifted baseline.

PneumoniaMNIST's val split is drawn from the same pool as its train split; its test split is
another collection (37.5 % normal images against 26 %). A set of real validation images copies
nothing, so no test may flag it; noised copies of training images must still be flagged.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from medsyn.cli import app
from medsyn.data import ImageDataset, load_dataset
from medsyn.data.subsets import reserved_rows, split_validation
from medsyn.errors import ConfigError
from medsyn.evaluators import evaluate
from medsyn.evaluators.metrics.privacy.baseline import choose_sets, parse_baseline
from medsyn.evaluators.metrics.privacy.family import verdict

TESTS = ("dcr", "data_copying", "membership_inference")
SPACES = {"pixels16", "pixels28"}
runner = CliRunner()


def _noised(images: torch.Tensor, sigma: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = images.float() + sigma * torch.randn(images.shape, generator=g)
    return x.round().clamp(0, 255).to(torch.uint8)


@pytest.fixture(scope="module")
def splits(data_root):
    return {s: load_dataset("pneumoniamnist", split=s) for s in ("train", "val", "test")}


@pytest.fixture(scope="module")
def val400(splits, tmp_path_factory):
    """400 validation images (seeded draw), as an npz a user would pass to --fake."""
    val = splits["val"]
    rows = np.sort(np.random.default_rng(0).permutation(len(val))[:400])
    path = tmp_path_factory.mktemp("fakes") / "val400.npz"
    np.savez(path, images=val.images[rows, 0].numpy(), labels=val.labels[rows].numpy())
    return path


def _cli_privacy(fake, out, *extra):
    result = runner.invoke(app, ["evaluate", "--fake", str(fake), "--real",
                                 "pneumoniamnist:train", "--metrics", "privacy",
                                 "--extractor", "pixels", "--bootstrap", "20", "--out", str(out),
                                 "--device", "cpu", *extra])
    assert result.exit_code == 0, result.output
    return result, json.loads((out / "results.json").read_text())["metrics"]["privacy"]


def test_validation_images_are_flagged_by_no_test(val400, tmp_path):
    """The default baseline is the validation split: 400 of its images as "synthetic" are
    flagged by no test in any space, the check finds no shift, the verdict names the baseline.
    (Against the test split, today's audit accuses them.)"""
    result, p = _cli_privacy(val400, tmp_path / "eval")
    assert p["baseline"]["set"] == "pneumoniamnist/val" and p["baseline"]["choice"] == "auto"
    # the 400 synthetic images are validation images: the rest of the split is the baseline
    assert p["baseline"]["n_excluded_identical_to_synthetic"] == 400
    assert p["baseline"]["n"] == 124
    assert set(p["spaces"]) == SPACES
    for space, block in p["spaces"].items():
        for test in (*TESTS, "authenticity"):
            assert block[test]["flags"] is False, (space, test)
        assert block["exchangeability"]["shift_detected"] is False, space
    v = p["verdict"]
    assert not v["leak_suspected"] and v["basis"] == "baseline" and v["exchangeable"] is True
    assert "Possible leak" not in v["text"] and "pneumoniamnist/val" in v["text"]
    assert "Possible leak" not in result.output
    assert "pixel-identical" in result.output           # the exclusion is a printed warning


def test_forced_test_baseline_reports_the_shift(val400, tmp_path):
    """--privacy-baseline test: the check reports the shift in both spaces, the tests against
    the test split are read as confounded, and the verdict rests on the validation control."""
    result, p = _cli_privacy(val400, tmp_path / "eval", "--privacy-baseline", "test")
    assert p["baseline"]["set"] == "pneumoniamnist/test"
    for space, block in p["spaces"].items():
        check = block["exchangeability"]
        assert check["shift_detected"] is True, space
        assert check["p_value"] < 0.05 and check["mmd"]["p_value"] < 0.05
        assert check["n_heldout"] == 624 and check["units"] == "images"
    v = p["verdict"]
    assert v["exchangeable"] is False and set(v["shift"]) == SPACES
    assert not v["leak_suspected"] and v["basis"] == "control"
    assert "shifted from the training images" in v["text"] and "confounded" in v["text"]
    control = p["control"]
    assert control["set"] == "pneumoniamnist/val" and control["n"] == 124
    for space, block in control["spaces"].items():
        assert block["exchangeability"]["shift_detected"] is False
        for test in TESTS:
            assert block[test]["flags"] is False, (space, test)
    assert "shifted from the training images" in " ".join(result.output.split())


def test_noised_copies_of_training_images_are_still_flagged(splits):
    """400 randomly chosen training images plus noise (sigma 4 grey levels): DCR, C_T and the
    membership attack flag against the validation baseline, in raw pixels."""
    train = splits["train"]
    rows = np.sort(np.random.default_rng(1).permutation(len(train))[:400])
    fake = _noised(train.images[rows], 4.0, seed=0)
    p = evaluate(fake, reference=train, train=train, heldout=splits["test"], val=splits["val"],
                 metrics="privacy", extractor="pixels", n_bootstrap=20)["metrics"]["privacy"]
    assert p["baseline"]["set"] == "pneumoniamnist/val" and p["baseline"]["n"] == 524
    block = p["spaces"]["pixels28"]
    for test in TESTS:
        assert block[test]["flags"] is True, test
    assert block["dcr"]["fraction_below_heldout_p5"] > 0.95
    assert block["membership_inference"]["tpr_at_low_fpr"] > 0.08    # 400 / 4708 exposed
    assert all(c["train_index"] in set(rows.tolist()) for c in block["dcr"]["closest"])
    for test in ("dcr", "data_copying"):
        assert p["spaces"]["pixels16"][test]["flags"] is True
    v = p["verdict"]
    assert v["leak_suspected"] and v["basis"] == "baseline"
    assert "MIA" not in v["text"] and "membership-inference attack (pixels28)" in v["flagged"]


def test_shifted_baseline_without_a_control_is_undecided(splits, val400):
    """No validation split given: the test split is the baseline, the check finds the shift,
    and with no control the audit says it cannot decide instead of accusing."""
    fake = torch.from_numpy(np.load(val400)["images"][:, None])
    train = splits["train"]
    p = evaluate(fake, reference=train, train=train, heldout=splits["test"], metrics="privacy",
                 extractor="pixels", n_bootstrap=0)["metrics"]["privacy"]
    v = p["verdict"]
    assert p["baseline"]["set"] == "pneumoniamnist/test" and p["baseline"]["control_available"] \
        is None
    assert v["exchangeable"] is False and v["basis"] is None
    assert not v["leak_suspected"] and not v["flagged"]
    assert len(v["undecided"]) == 8 and "cannot decide" in v["text"]
    assert p["control"]["set"] is None


def test_reserved_part_of_the_training_split(splits):
    """--privacy-baseline reserve:0.2: a random fifth of the training split is the baseline and
    leaves the audit's training set; copies of the rest are flagged, and the closest pairs
    name rows of the full training split."""
    train = splits["train"]
    kept, reserved = reserved_rows(train, 0.2, seed=0)
    sub_train, sub_val = split_validation(train, 0.2, 0)
    np.testing.assert_array_equal(reserved, np.sort(sub_val.parent[1]))
    np.testing.assert_array_equal(kept, np.sort(sub_train.parent[1]))
    picked = kept[np.random.default_rng(2).permutation(len(kept))[:300]]
    fake = _noised(train.images[picked], 4.0, seed=1)
    p = evaluate(fake, reference=train, train=train, heldout=splits["test"], metrics="privacy",
                 extractor="pixels", n_bootstrap=0,
                 privacy_baseline="reserve:0.2")["metrics"]["privacy"]
    assert p["baseline"]["set"] == "pneumoniamnist/train[reserved 20%]"
    assert p["baseline"]["n"] == len(reserved) and p["n_train"] == len(kept)
    assert "trained without" in p["baseline"]["why"]
    block = p["spaces"]["pixels28"]
    assert block["exchangeability"]["shift_detected"] is False
    assert block["dcr"]["flags"] is True and block["data_copying"]["flags"] is True
    assert {c["train_index"] for c in block["dcr"]["closest"]} <= set(picked.tolist())


def test_choice_of_baseline_and_its_errors():
    rng = np.random.default_rng(0)

    def ds(split, n, ids=None, offset=0):
        imgs = torch.from_numpy(rng.integers(0, 256, (n, 1, 8, 8), dtype=np.uint8))
        return ImageDataset("toy", split, imgs, torch.arange(n) % 2, ["a", "b"],
                            patient_ids=ids)

    train, val, test = ds("train", 40), ds("val", 10), ds("test", 12)
    fake = torch.cat([val.images[:3], test.images[:1]])
    sets = choose_sets("auto", train, val, test, fake, 0)
    assert sets.baseline.label == "toy/val" and sets.control is None
    assert sets.baseline.n_identical_to_synthetic == 3 and len(sets.baseline.rows) == 7
    assert sets.warnings and "pixel-identical" in sets.warnings[0]
    sets = choose_sets("test", train, val, test, fake, 0)
    assert sets.baseline.label == "toy/test" and len(sets.baseline.rows) == 11
    assert sets.control.label == "toy/val"
    assert choose_sets("auto", train, None, test, fake, 0).baseline.label == "toy/test"
    with pytest.raises(ConfigError, match="no validation split"):
        choose_sets("val", train, None, test, fake, 0)
    with pytest.raises(ConfigError, match="no validation and no test"):
        choose_sets("auto", train, None, None, fake, 0)
    for bad in ("holdout", "val:0.2", "reserve:1.5", "reserve:x"):
        with pytest.raises(ConfigError):
            parse_baseline(bad)
    assert parse_baseline("reserve") == ("reserve", 0.1)
    # with patients the reserved part takes whole patients
    ids = np.repeat([f"P{i}" for i in range(10)], 4)
    kept, reserved = reserved_rows(ds("train", 40, ids), 0.25, seed=3)
    assert not set(ids[kept]) & set(ids[reserved]) and len(reserved) == 12


def _blocks(flags: bool, shift: bool) -> dict:
    check = {"shift_detected": shift, "p_value": 0.002 if shift else 0.4,
             "distance": {"auc": 0.56, "median_ratio": 1.05}, "mmd": {"mmd2": 0.01}}
    return {"pixels28": {t: {"flags": flags, "rule": "r"} for t in TESTS}
            | {"exchangeability": check}}


def test_verdict_never_accuses_on_a_shifted_baseline_alone():
    base = {"set": "x/test", "role": "the test split", "why": "asked for"}
    clean = verdict(_blocks(True, False), base)
    assert clean["leak_suspected"] and clean["basis"] == "baseline"
    shifted = verdict(_blocks(True, True), base)
    assert not shifted["leak_suspected"] and shifted["basis"] is None
    assert len(shifted["confounded"]) == 3 and "AUC 0.560" in shifted["text"]
    control = {"set": "x/val", "role": "the validation split"}
    calibrated = verdict(_blocks(True, True), base, {**control, "spaces": _blocks(False, False)})
    assert not calibrated["leak_suspected"] and calibrated["basis"] == "control"
    leak = verdict(_blocks(False, True), base, {**control, "spaces": _blocks(True, False)})
    assert leak["leak_suspected"] and leak["flagged"][0].endswith("against x/val)")
    both = verdict(_blocks(True, True), base, {**control, "spaces": _blocks(True, True)})
    assert not both["leak_suspected"] and "cannot decide" in both["text"]
    # blocks without the check (older callers): the verdict reads as before
    old = verdict({"p": {t: {"flags": False, "rule": "r"} for t in TESTS}})
    assert old["exchangeable"] is None and not old["leak_suspected"]
