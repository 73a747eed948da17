"""``medsyn evaluate --checkpoint`` on super-resolution checkpoints: results.json of kind
"super-resolution", values checked against independent recomputation, Inception FID, errors."""

import csv
import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from medsyn.cli import app
from medsyn.data import load_dataset
from medsyn.errors import CheckpointError
from medsyn.evaluators import evaluate
from medsyn.evaluators.sr import evaluate_sr_checkpoint, imresize, imresize_batch, psnr, ssim
from medsyn.generators import load_checkpoint
from medsyn.generators.sr.training import train_sr

pytestmark = pytest.mark.real_data


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model_path(tmp_path_factory, data_root):
    out = tmp_path_factory.mktemp("sr-eval") / "run"
    run = train_sr("srresnet", dataset="breastmnist", hr_size=32, scale=4, n_blocks=1,
                   features=8, batch_size=64, max_steps=3, device="cpu", quiet=True,
                   out=str(out))
    return run / "last.pt"


@pytest.fixture(scope="module")
def srgan_path(tmp_path_factory, model_path):
    # a few adversarial steps from the srresnet above (as the paper initialises SRGAN)
    out = tmp_path_factory.mktemp("sr-eval-gan") / "run"
    run = train_sr("srgan", dataset="breastmnist", hr_size=32, scale=4, n_blocks=1,
                   features=8, d_features=8, batch_size=64, max_steps=3, device="cpu",
                   quiet=True, content_loss="pixel", init_from=str(model_path), out=str(out))
    return run / "last.pt"


def _evaluate_cli(checkpoint, tmp_path):
    """medsyn evaluate on 24 test images with the pixels extractor -> (out dir, results)."""
    out = tmp_path / "eval"
    result = CliRunner().invoke(app, ["evaluate", "--checkpoint", str(checkpoint), "--n-real",
                                      "24", "--extractor", "pixels", "--bootstrap", "20",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out, json.loads((out / "results.json").read_text())


def test_cli_writes_super_resolution_results(tmp_path, model_path, data_root):
    out, results = _evaluate_cli(model_path, tmp_path)
    assert results["kind"] == "super-resolution"
    assert results["run"]["model_kind"] == "srresnet" and results["run"]["step"] == 3
    metrics = results["metrics"]
    assert set(metrics) == {"psnr_y", "ssim_y", "psnr_y_bicubic", "ssim_y_bicubic", "fid",
                            "fid_bicubic"}
    for name in ("psnr_y", "ssim_y", "psnr_y_bicubic", "ssim_y_bicubic"):
        entry = metrics[name]
        assert entry["n"] == 24 and entry["scale"] == 4 and entry["crop_border"] == 4
        assert entry["extractor"] == "grayscale as is"
        assert entry["ci95"][0] <= entry["value"] <= entry["ci95"][1]
    assert metrics["fid"]["n_real"] == metrics["fid"]["n_fake"] == 24
    prov = results["provenance"]
    assert prov["dataset"]["name"] == "breastmnist" and prov["dataset"]["split"] == "test"
    assert prov["dataset"]["image_size"] == [32, 32]
    assert prov["sr_convention"]["crop_border"] == 4
    assert prov["content_loss"] == {"kind": "pixel", "description": "pixel MSE"}
    assert prov["model"]["kind"] == "srresnet" and prov["model"]["lr_size"] == [8, 8]
    assert results["figures"] == {"sr_examples": "sr_examples.png"}
    assert (out / "sr_examples.png").exists() and (out / "metrics.csv").exists()

    # the numbers, recomputed independently from the model and the test images
    with open(out / "per_image_sr.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 24 and rows[0]["image"].split("/")[0] in ("malignant", "normal, benign")
    model = load_checkpoint(model_path)
    test = load_dataset("breastmnist", "test", image_size=32, root=data_root)
    name_to_index = {name: i for i, name in enumerate(test.class_names)}
    from medsyn.evaluators.inputs import stratified_subset

    subset = stratified_subset(test, 24, 0)
    for k in (0, 23):
        assert name_to_index[rows[k]["image"].split("/")[0]] == int(subset.labels[k])
        hr = subset.images[k, 0].numpy()
        lr = imresize(hr, 0.25)
        sr = model.upscale(torch.from_numpy(lr)[None, None])[0, 0].numpy()
        assert float(rows[k]["psnr_y"]) == pytest.approx(psnr(sr, hr, 4), abs=1e-5)
        assert float(rows[k]["ssim_y"]) == pytest.approx(ssim(sr, hr, 4), abs=1e-6)
        assert float(rows[k]["psnr_y_bicubic"]) == pytest.approx(
            psnr(imresize(lr, 4), hr, 4), abs=1e-5)
    assert metrics["psnr_y"]["value"] == pytest.approx(
        np.mean([float(r["psnr_y"]) for r in rows]), abs=1e-5)
    sr_all = model.upscale(imresize_batch(subset.images, 0.25))
    direct = evaluate(sr_all, None, reference=subset, metrics="fid", extractor="pixels",
                      n_bootstrap=0, device="cpu")
    assert metrics["fid"]["value"] == pytest.approx(direct["metrics"]["fid"]["value"], rel=1e-9)


def test_cli_evaluates_srgan_checkpoint(tmp_path, srgan_path, model_path, data_root):
    out, results = _evaluate_cli(srgan_path, tmp_path)
    assert results["kind"] == "super-resolution"
    assert results["run"]["model_kind"] == "srgan" and results["run"]["step"] == 3
    metrics = results["metrics"]
    assert {"psnr_y", "ssim_y", "psnr_y_bicubic", "ssim_y_bicubic", "fid"} <= set(metrics)
    for name in ("psnr_y", "ssim_y", "psnr_y_bicubic", "ssim_y_bicubic"):
        entry = metrics[name]
        assert entry["n"] == 24 and entry["scale"] == 4 and entry["crop_border"] == 4
        assert entry["value"] is not None
        assert entry["ci95"][0] <= entry["value"] <= entry["ci95"][1]
    assert metrics["fid"]["value"] is not None
    assert metrics["fid"]["n_real"] == metrics["fid"]["n_fake"] == 24
    prov = results["provenance"]
    # the adversarial phase's content loss, as recorded in the checkpoint
    model = load_checkpoint(srgan_path)
    assert prov["content_loss"] == model.content_loss == {"kind": "pixel",
                                                          "description": "pixel MSE"}
    assert prov["model"]["kind"] == "srgan" and prov["model"]["phase"] == "adversarial"
    assert prov["model"]["initialised_from"]["checkpoint"] == str(model_path)
    assert prov["dataset"]["split"] == "test"
    # the SR values are the srgan generator's, not the srresnet's it started from
    with open(out / "per_image_sr.csv") as f:
        rows = list(csv.DictReader(f))
    from medsyn.evaluators.inputs import stratified_subset

    test = load_dataset("breastmnist", "test", image_size=32, root=data_root)
    hr = stratified_subset(test, 24, 0).images[0, 0].numpy()
    lr = imresize(hr, 0.25)
    sr = model.upscale(torch.from_numpy(lr)[None, None])[0, 0].numpy()
    assert float(rows[0]["psnr_y"]) == pytest.approx(psnr(sr, hr, 4), abs=1e-5)
    assert float(rows[0]["ssim_y"]) == pytest.approx(ssim(sr, hr, 4), abs=1e-6)


@pytest.mark.inception
def test_inception_fid_of_sr_outputs(tmp_path, model_path, inception_weights):
    # the default extractor; the bicubic pass (same code) is left out to save time
    results = evaluate_sr_checkpoint(model_path, out_dir=tmp_path / "eval", n_real=4,
                                     n_bootstrap=0, device="cpu", bicubic_fid=False,
                                     extractor_options={"weights": inception_weights})
    fid = results["metrics"]["fid"]
    assert fid["extractor"] == "inception-v3-compat" and fid["n_fake"] == 4
    assert fid["value"] is not None and fid["value"] > 0
    assert "fid_bicubic" not in results["metrics"]


def test_sr_evaluation_errors(tmp_path, model_path):
    runner = CliRunner()
    cases = [
        (["--n-samples", "10"], "--n-samples does not apply to super-resolution"),
        (["--image-size", "64"], "--image-size does not apply to super-resolution"),
        (["--reference", "nope"], "--reference must be one of"),
    ]
    for extra, message in cases:
        result = runner.invoke(app, ["evaluate", "--checkpoint", str(model_path),
                                     "--extractor", "pixels", "--out", str(tmp_path / "o"),
                                     *extra])
        assert result.exit_code == 1, result.output
        assert message in result.stderr and result.stderr.strip().count("\n") == 0
    foreign = tmp_path / "dcgan.pt"
    torch.save({"format": "medsyn-checkpoint", "format_version": 1, "kind": "dcgan"}, foreign)
    with pytest.raises(CheckpointError, match="not a super-resolution model"):
        evaluate_sr_checkpoint(foreign)
