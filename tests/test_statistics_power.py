"""Sample-size power (evaluators/audit/power.py): the power curve of a synthetic metric with a
known answer, the minimum-n rule, and the audit's --power on a small pixel-space run."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from medsyn.evaluators.audit.power import minimum_n, power_curve, power_sizes

pytestmark = pytest.mark.usefixtures("one_thread")


def test_power_curve_recovers_a_known_detection_threshold():
    """Metric = mean of n N(delta_level, 1) draws, worse higher. Against a one-sided 5 % null
    threshold the power is Phi(delta sqrt(n) - z_0.95), so 80 % power needs
    n >= ((z_0.95 + z_0.8) / delta)^2: 24.7 images at delta 0.5, 6.2 at delta 1.0, 99 at 0.25."""
    deltas = {1: 0.25, 2: 0.5, 3: 1.0}
    sizes = [4, 8, 16, 32, 64, 128, 256]

    def score(level, n, draw):
        rng = np.random.default_rng([level, n, draw])
        shift = 0.0 if level == 0 else deltas[level]
        return {"m": float(rng.normal(shift, 1.0, n).mean()), "low": -float(draw)}

    repeats = 2000
    out = power_curve(score, [1, 2, 3], sizes, repeats, {"m": "higher"})["m"]
    z = norm.ppf(0.95)
    for lv in out["levels"]:
        delta = deltas[lv["level"]]
        expected = [norm.cdf(delta * np.sqrt(n) - z) for n in sizes]
        # binomial SE at 2,000 draws <= 0.011; the null quantile adds about as much
        assert np.allclose(lv["rates"], expected, atol=0.05), (lv["level"], lv["rates"])
        needed = ((z + norm.ppf(0.8)) / delta) ** 2
        assert lv["min_n"] == next(n for n in sizes if n >= needed)
    assert [lv["min_n"] for lv in out["levels"]] == [128, 32, 8]


def test_no_shift_detects_at_about_alpha_and_either_is_two_sided():
    def score(level, n, draw):
        rng = np.random.default_rng([level, n, draw, 7])
        shift = {0: 0.0, 1: 0.0, 2: -1.0}[level]
        return {"x": float(rng.normal(shift, 1.0, n).mean())}

    out = power_curve(score, [1, 2], [16], 1000, {"x": "either"})["x"]
    assert out["levels"][0]["rates"][0] == pytest.approx(0.05, abs=0.025)
    assert out["levels"][1]["rates"][0] > 0.95           # a fall is detected too
    assert out["levels"][0]["min_n"] is None


def test_minimum_n_needs_power_to_stay():
    assert minimum_n([10, 20, 40, 80], [0.9, 0.5, 0.85, 0.95], 0.8) == 40
    assert minimum_n([10, 20], [0.5, None], 0.8) is None
    assert minimum_n([10, 20], [0.8, 0.8], 0.8) == 10


def test_power_sizes_fit_the_pool():
    assert power_sizes([400, 25, 100], 500) == ([25, 100], [400])


@pytest.mark.real_data
def test_audit_power_on_pixels(data_root):
    """--power through the audit: a contrast change of level 2 or more is detected by FD in
    pixel space at every size (measured: 10 of 10 draws at n = 20); the card shows the table."""
    from medsyn.evaluators.audit import audit
    from medsyn.evaluators.audit.card import card_markdown

    result = audit("pneumoniamnist", "test", extractors="pixels", metrics="fid",
                   failures="intensity", quick=True, data_root=data_root, power=True,
                   power_sizes=[20, 40, 400], power_repeats=5, use_cache=False)
    power = result["power"]
    assert power["settings"]["sizes"] == [20, 40]
    assert power["settings"]["sizes_left_out"] == [400]
    assert power["settings"]["repeats"] == 5
    cell = power["spaces"]["pixels16"]["intensity"]["fid"]
    assert [lv["level"] for lv in cell["levels"]] == [1, 2, 3, 4]
    strongest = cell["levels"][-1]
    assert strongest["rates"] == [1.0, 1.0] and strongest["min_n"] == 20
    assert all(0 <= r <= 1 for lv in cell["levels"] for r in lv["rates"])
    card = card_markdown(result)
    assert "Minimum n for 80 % power: pixels16" in card
    assert "| Intensity / contrast shift | 1 ((contrast, brightness)" in card


def test_bad_power_options_are_one_line_errors():
    from typer.testing import CliRunner

    from medsyn.cli import app

    runner = CliRunner()
    out = runner.invoke(app, ["audit", "--dataset", "pneumoniamnist", "--power",
                              "--power-sizes", "50,lots"])
    assert out.exit_code == 1 and "--power-sizes: give comma-separated integers" in out.output
    assert "Traceback" not in out.output
    out = runner.invoke(app, ["audit", "--dataset", "pneumoniamnist", "--power",
                              "--power-repeats", "2"])
    assert out.exit_code == 1 and "--power-repeats must be an integer >= 5" in out.output


def _toy_train(n=60, patients=None):
    import torch

    from medsyn.data.dataset import ImageDataset

    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 1, 8, 8), generator=g, dtype=torch.uint8)
    labels = torch.arange(n) % 3
    return ImageDataset("toy", "train", images, labels, ["a", "b", "c"],
                        patient_ids=None if patients is None else np.asarray(patients))


def test_training_split_as_pool_is_disjoint_from_the_reference():
    """--dataset NAME:train --n-reference N: the reference and the held-out pool are disjoint
    rows of the training split (whole patients with ids); the pool's rows index the split."""
    import torch

    from medsyn.errors import ConfigError
    from medsyn.evaluators.audit.runner import _split_training

    train = _toy_train()
    reference, pool = _split_training(train, 21, None, seed=0, k=5)
    ref_rows, pool_rows = set(reference.parent[1]), set(pool.parent[1])
    assert len(reference) == 21 and len(pool) == 39 and not ref_rows & pool_rows
    assert np.bincount(reference.labels.numpy()).tolist() == [7, 7, 7]       # stratified
    assert pool.parent[0] == train.fingerprint
    assert torch.equal(pool.images, train.images[sorted(pool_rows)])
    _, small = _split_training(train, 21, 12, seed=0, k=5)
    assert len(small) == 12 and set(small.parent[1]) <= pool_rows

    patients = np.repeat(np.arange(20), 3).astype(str)         # 3 images per patient
    with_ids = _toy_train(patients=patients)
    reference, pool = _split_training(with_ids, 20, None, seed=0, k=5)
    assert len(reference) == 21                                 # 7 whole patients
    assert not set(patients[reference.parent[1]]) & set(patients[pool.parent[1]])
    with pytest.raises(ConfigError, match="--n-reference 55: .* give --n-reference <= 53"):
        _split_training(train, 55, None, seed=0, k=5)


def test_power_draws_are_without_replacement_and_sizes_above_half_the_pool_left_out():
    from medsyn.data.subsets import stratified_rows

    labels = np.repeat([0, 1], [300, 700])
    for draw in range(5):
        rows = stratified_rows(labels, 500, np.random.default_rng([0, 30, 0, 500, draw]))
        assert len(np.unique(rows)) == 500                     # no image twice in a draw
        assert np.bincount(labels[rows]).tolist() == [150, 350]
    assert power_sizes([50, 100, 2000], 4208) == ([50, 100, 2000], [])
    assert power_sizes(None, 603) == ([25, 50, 100, 200], [400, 800, 1600, 2000])


@pytest.mark.real_data
def test_power_sizes_above_half_the_pool_are_a_one_line_error(data_root):
    from typer.testing import CliRunner

    from medsyn.cli import app

    out = CliRunner().invoke(app, ["audit", "--dataset", "pneumoniamnist", "--extractor",
                                   "pixels", "--metrics", "fid", "--failures", "blur",
                                   "--power", "--power-sizes", "400,2000"])
    assert out.exit_code == 1 and "Traceback" not in out.output
    assert len(out.stderr.strip().splitlines()) == 1
    assert "every size is above half the held-out pool (624 images)" in out.stderr
    assert "--dataset NAME:train --n-reference N" in out.stderr
    out = CliRunner().invoke(app, ["audit", "--dataset", "pneumoniamnist:train",
                                   "--n-reference", "4705", "--extractor", "pixels"])
    assert out.exit_code == 1 and len(out.stderr.strip().splitlines()) == 1
    assert "give --n-reference <= 4701" in out.stderr
