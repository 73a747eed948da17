"""Evaluation of translation checkpoints end to end on real data (PneumoniaMNIST at 32 px, tiny
models, a few test images): paired metrics against independent computations, baselines,
results.json of kind translation, the unpaired protocol, the CLI."""

import json

import numpy as np
import pytest
import torch

from medsyn.evaluators.translation import evaluate_translation_checkpoint, mae_y, paired_table
from medsyn.generators import load_checkpoint
from medsyn.generators.translation.training import train_translation

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = dict(image_size=32, features=4, d_features=4, device="cpu", quiet=True, epochs=1,
            max_steps=2)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data_root):
    base = tmp_path_factory.mktemp("translation-eval")
    return {
        "pix2pix": train_translation("pix2pix", out=str(base / "p"), dataset="pneumoniamnist",
                                     split="test", condition="lowres", batch_size=64, **TINY),
        "cyclegan": train_translation("cyclegan", out=str(base / "c"), batch_size=4, n_blocks=1,
                                      source="breastmnist:val:malignant",
                                      target="breastmnist:val:normal, benign", **TINY)}


def test_paired_metrics_equal_independent_computations():
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    rng = np.random.default_rng(0)
    a = torch.from_numpy(rng.integers(0, 256, (2, 1, 24, 24), dtype=np.uint8))
    b = torch.from_numpy(rng.integers(0, 256, (2, 1, 24, 24), dtype=np.uint8))
    table = paired_table(a, b)
    for i in range(2):
        x, y = a[i, 0].numpy().astype(np.float64), b[i, 0].numpy().astype(np.float64)
        assert table["mae_y"][i] == pytest.approx(np.abs(x - y).mean())
        assert table["psnr_y"][i] == pytest.approx(peak_signal_noise_ratio(y, x, data_range=255))
        assert table["ssim_y"][i] == pytest.approx(structural_similarity(
            y, x, data_range=255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False))
    # RGB: on MATLAB's Y, BT.601 studio swing
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[..., 0] = 255
    assert mae_y(rgb, np.zeros_like(rgb)) == pytest.approx(round(65.481 + 16) - 16)


def test_paired_evaluation_scores_the_model_and_the_baselines(tmp_path, runs):
    out = tmp_path / "eval"
    results = evaluate_translation_checkpoint(runs["pix2pix"] / "last.pt", out_dir=out,
                                              n_real=8, kid_subset_size=4, extractor="pixels")
    assert results["kind"] == "translation"
    saved = json.loads((out / "results.json").read_text())
    assert saved["kind"] == "translation" and saved["run"]["model_kind"] == "pix2pix"
    m = saved["metrics"]
    # lowres: the input itself is the bicubic baseline
    for base in ("", "_bicubic", "_mean_image"):
        for name in ("mae_y", "psnr_y", "ssim_y"):
            entry = m[name + base]
            assert entry["n"] == 8 and entry["ci95"][0] <= entry["value"] <= entry["ci95"][1]
    assert {"fid", "kid", "precision", "fid_bicubic", "fid_mean_image"} <= set(m)
    # the per-image table is what the means are made of; recompute one baseline by hand
    import pandas as pd

    table = pd.read_csv(out / "per_image_translation.csv")
    assert m["psnr_y"]["value"] == pytest.approx(table["psnr_y"].mean(), rel=1e-5)
    from medsyn.evaluators.translation.checkpoint import load_test_pairs

    model = load_checkpoint(runs["pix2pix"] / "last.pt")
    pairs, train = load_test_pairs(model)
    rows = np.sort(np.random.default_rng(0).choice(len(pairs), 8, replace=False))
    mean = train.double().mean(0).round()[0].numpy()
    expected = np.mean([np.abs(mean - pairs.targets[r, 0].numpy()).mean() for r in rows])
    assert m["mae_y_mean_image"]["value"] == pytest.approx(expected)
    assert saved["provenance"]["translation"]["condition"]["condition"] == "lowres"
    assert (out / "translation_examples.png").is_file()
    # the report shows it in a translation table, with the baselines beside the model
    from typer.testing import CliRunner

    from medsyn.cli import app

    report = CliRunner().invoke(app, ["report", str(out), "--out", str(tmp_path / "report")])
    assert report.exit_code == 0, report.output
    assert "unknown kind" not in report.output
    summary = (tmp_path / "report" / "summary.md").read_text()
    assert "- translation" in summary and "Image-to-image translation" in summary
    assert f"{m['psnr_y']['value']:.2f}" in summary
    assert f"{m['psnr_y_mean_image']['value']:.2f}" in summary


def test_unpaired_evaluation_protocol(tmp_path, runs):
    out = tmp_path / "eval"
    results = evaluate_translation_checkpoint(
        runs["cyclegan"] / "last.pt", out_dir=out, n_real=8, kid_subset_size=4,
        extractor="pixels", classifier_recipe={"epochs": 1})
    m = results["metrics"]
    assert {"fid", "kid", "precision", "real_floor", "memorization", "fid_identity",
            "cycle_mae_y", "content_ssim_y", "content_feature_distance",
            "content_feature_distance_unrelated", "target_class_rate"} <= set(m)
    rate = m["target_class_rate"]
    assert 0 <= rate["value"] <= 1 and rate["target_class"] == "normal, benign"
    assert rate["n"] == 8 and 0 <= rate["real_target"]["value"] <= 1
    # cycle error by hand
    model = load_checkpoint(runs["cyclegan"] / "last.pt")
    from medsyn.generators.translation.data import load_domain

    source = load_domain("breastmnist:test:malignant", image_size=32)
    rows = np.sort(np.random.default_rng(0).choice(len(source), 8, replace=False))
    x = source.images[rows]
    rec = model.translate(model.translate(x), direction="backward")
    expected = np.mean([np.abs(rec[i, 0].numpy().astype(float) - x[i, 0].numpy()).mean()
                        for i in range(8)])
    assert m["cycle_mae_y"]["value"] == pytest.approx(expected)
    saved = json.loads((out / "results.json").read_text())
    assert saved["provenance"]["translation"]["source"]["selection"] == \
        "breastmnist/test/malignant"


def test_evaluate_command_on_a_translation_checkpoint(tmp_path, runs):
    from typer.testing import CliRunner

    from medsyn.cli import app

    out = tmp_path / "cli"
    result = CliRunner().invoke(app, ["evaluate", "--checkpoint",
                                      str(runs["pix2pix"] / "last.pt"), "--out", str(out),
                                      "--n-real", "4", "--kid-subset-size", "2",
                                      "--extractor", "pixels", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "results.json").read_text())
    assert saved["kind"] == "translation"
    assert saved["metrics"]["fid"]["value"] is not None and "psnr_y_bicubic" in saved["metrics"]
    bad = CliRunner().invoke(app, ["evaluate", "--checkpoint", str(runs["cyclegan"] / "last.pt"),
                                   "--out", str(tmp_path / "x"), "--n-samples", "4",
                                   "--extractor", "pixels"])
    assert bad.exit_code == 1 and "does not apply to translation" in bad.output
    assert len(bad.output.strip().splitlines()) == 1
