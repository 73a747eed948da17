"""LR/HR pair preparation and SR evaluation, on synthetic arrays and on real cxr3 images."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import skimage.data
import torch

from medsyn.errors import ConfigError, MedsynError
from medsyn.evaluators import sr
from medsyn.generators.sr import data as sr_data
from medsyn.generators.sr import networks


@pytest.fixture(scope="module")
def rgb_batch():
    img = skimage.data.astronaut()[::4, ::4]  # 128x128x3
    return torch.from_numpy(np.stack([img, img[::-1], img[:, ::-1]]).transpose(0, 3, 1, 2)
                            .copy())


def test_crop_hr_whole_center_random(rgb_batch):
    odd = rgb_batch[:, :, :127, :126]
    whole = sr_data.crop_hr(odd, 4)
    assert whole.shape == (3, 3, 124, 124)
    assert torch.equal(whole, odd[:, :, :124, :124])
    center = sr_data.crop_hr(rgb_batch, 4, hr_size=64)
    assert torch.equal(center, rgb_batch[:, :, 32:96, 32:96])
    rand = sr_data.crop_hr(rgb_batch, 4, hr_size=48, crop="random", seed=3)
    assert rand.shape == (3, 3, 48, 48)
    assert torch.equal(rand, sr_data.crop_hr(rgb_batch, 4, hr_size=48, crop="random", seed=3))
    for k in range(3):  # each crop is a window of its own image
        found = any(torch.equal(rand[k], rgb_batch[k, :, t:t + 48, s:s + 48])
                    for t in range(81) for s in range(81))
        assert found


def test_crop_hr_errors(rgb_batch):
    with pytest.raises(ConfigError, match="not a multiple of scale 4"):
        sr_data.crop_hr(rgb_batch, 4, hr_size=50)
    with pytest.raises(ConfigError, match="larger than the images"):
        sr_data.crop_hr(rgb_batch, 4, hr_size=256)
    with pytest.raises(ConfigError, match="uint8"):
        sr_data.crop_hr(rgb_batch.float(), 4)
    with pytest.raises(ConfigError, match="crop"):
        sr_data.crop_hr(rgb_batch, 4, hr_size=64, crop="middle")


def test_make_lr_is_matlab_imresize(rgb_batch):
    lr = sr_data.make_lr(rgb_batch, 4)
    assert lr.shape == (3, 3, 32, 32) and lr.dtype == torch.uint8
    np.testing.assert_array_equal(lr[1].numpy().transpose(1, 2, 0),
                                  sr.imresize(rgb_batch[1].numpy().transpose(1, 2, 0), 1 / 4))


def test_paired_random_crop_is_aligned(rgb_batch):
    lr = sr_data.make_lr(rgb_batch, 4)
    gen = torch.Generator().manual_seed(0)
    lr_p, hr_p = sr_data.paired_random_crop(lr, rgb_batch, 48, 4, generator=gen)
    assert lr_p.shape == (3, 3, 12, 12) and hr_p.shape == (3, 3, 48, 48)
    for k in range(3):
        hits = [(t, s) for t in range(21) for s in range(21)
                if torch.equal(lr_p[k], lr[k, :, t:t + 12, s:s + 12])]
        assert any(torch.equal(hr_p[k], rgb_batch[k, :, 4 * t:4 * t + 48, 4 * s:4 * s + 48])
                   for t, s in hits)
    with pytest.raises(ConfigError, match="not a scale 4 pair"):
        sr_data.paired_random_crop(lr, rgb_batch[:, :, :64], 48, 4)


# ----------------------------------------------------------------------------- evaluate_sr


def test_evaluate_sr_bicubic_model_equals_bicubic_baseline_rgb(rgb_batch, tmp_path):
    result = sr.evaluate_sr(sr.bicubic_upscaler(4), rgb_batch, 4, n_boot=200, batch_size=2,
                            ids=["a", "b", "c"], show_progress=False)
    m = result["metrics"]
    assert set(m) == {"psnr_y", "ssim_y", "psnr_y_bicubic", "ssim_y_bicubic"}
    assert m["psnr_y"]["value"] == m["psnr_y_bicubic"]["value"]
    assert m["ssim_y"]["value"] == m["ssim_y_bicubic"]["value"]
    for entry in m.values():
        assert entry["n"] == entry["n_real"] == entry["n_fake"] == 3
        lo, hi = entry["ci95"]
        assert lo <= entry["value"] <= hi
        assert entry["crop_border"] == 4 and entry["scale"] == 4
        assert entry["extractor"].startswith("Y of MATLAB rgb2ycbcr")
    json.dumps(result["metrics"])  # JSON-ready: no NaN/inf objects
    table = result["per_image"]
    assert list(table["image"]) == ["a", "b", "c"]
    hr0 = rgb_batch[0].numpy().transpose(1, 2, 0)
    up0 = sr.imresize(sr.imresize(hr0, 1 / 4), 4)
    assert table.loc[0, "psnr_y"] == pytest.approx(sr.psnr(up0, hr0, 4))
    assert table.loc[0, "ssim_y"] == pytest.approx(sr.ssim(up0, hr0, 4))
    assert m["psnr_y"]["value"] == pytest.approx(table["psnr_y"].mean())
    csv = tmp_path / "per_image.csv"
    sr.write_per_image_csv(table, csv)
    back = pd.read_csv(csv)
    assert list(back.columns) == ["image", "psnr_y", "ssim_y", "psnr_y_bicubic",
                                  "ssim_y_bicubic"]
    assert back["psnr_y"].tolist() == pytest.approx(table["psnr_y"].tolist(), abs=1e-6)


def test_evaluate_sr_with_a_network_and_bad_models(rgb_batch):
    torch.manual_seed(0)
    net = networks.SRResNet(3, 4, n_blocks=1, features=8)
    result = sr.evaluate_sr(lambda lr: networks.upscale_uint8(net, lr), rgb_batch[:2], 4,
                            n_boot=50, show_progress=False)
    # An untrained network is far worse than bicubic.
    assert result["metrics"]["psnr_y"]["value"] < result["metrics"]["psnr_y_bicubic"]["value"]
    with pytest.raises(MedsynError, match="expected"):
        sr.evaluate_sr(lambda lr: lr, rgb_batch, 4, show_progress=False)
    with pytest.raises(MedsynError, match="uint8"):
        sr.evaluate_sr(lambda lr: sr.imresize_batch(lr, 4).float(), rgb_batch, 4,
                       show_progress=False)
    with pytest.raises(MedsynError, match="multiples of scale 3"):
        sr.evaluate_sr(sr.bicubic_upscaler(3), rgb_batch, 3, show_progress=False)
    # A "model" returning the ground truth: PSNR infinite -> null value with a reason.
    hr = rgb_batch[:2]
    cheat = sr.evaluate_sr(lambda lr: hr[: lr.shape[0]], hr, 4, batch_size=2,
                           show_progress=False)
    assert cheat["metrics"]["psnr_y"]["value"] is None
    assert "infinite" in cheat["metrics"]["psnr_y"]["unavailable"]
    assert cheat["metrics"]["ssim_y"]["value"] == pytest.approx(1.0)


def test_bootstrap_interval():
    values = np.random.default_rng(0).normal(30, 2, size=400)
    lo, hi = sr.bootstrap_mean_ci(values, n_boot=2000, seed=1)
    half = 1.96 * values.std(ddof=1) / np.sqrt(values.size)
    assert lo == pytest.approx(values.mean() - half, abs=0.05)
    assert hi == pytest.approx(values.mean() + half, abs=0.05)
    assert sr.bootstrap_mean_ci([1.0]) is None


# ----------------------------------------------------------------------------- real data


@pytest.mark.real_data
def test_cxr3_pairs_and_bicubic_evaluation(data_root):
    pairs = sr_data.load_sr_pairs("cxr3", "test", scale=4, root=data_root)
    assert pairs.hr.shape == (603, 1, 256, 256) and pairs.lr.shape == (603, 1, 64, 64)
    assert pairs.hr_mode == "whole images"
    info = pairs.describe()
    assert info["dataset"]["name"] == "cxr3" and len(info["dataset"]["fingerprint"]) == 64
    subset = pairs.hr[::100]  # 7 images across the three classes
    result = sr.evaluate_sr(sr.bicubic_upscaler(4), subset, 4, n_boot=200,
                            ids=pairs.labels[::100].tolist(), show_progress=False)
    m = result["metrics"]
    assert m["psnr_y"]["value"] == m["psnr_y_bicubic"]["value"]
    assert m["ssim_y"]["value"] == m["ssim_y_bicubic"]["value"]
    assert m["psnr_y"]["extractor"] == "grayscale as is"
    assert 25 < m["psnr_y"]["value"] < 45 and 0.7 < m["ssim_y"]["value"] < 1.0
    # The evaluation's LR images are the pairs' LR images.
    first = subset[0, 0].numpy()
    np.testing.assert_array_equal(sr.imresize(first, 1 / 4), pairs.lr[0, 0].numpy())
    up = sr.imresize(pairs.lr[0, 0].numpy(), 4)
    assert result["per_image"].loc[0, "psnr_y"] == pytest.approx(sr.psnr(up, first, 4))
    crops = sr_data.load_sr_pairs("cxr3", "val", scale=4, hr_size=96, crop="random",
                                  root=data_root)
    assert crops.hr.shape == (603, 1, 96, 96) and "random crops" in crops.hr_mode
    resized = sr_data.load_sr_pairs("pneumoniamnist", "test", scale=2, hr_size=16,
                                    crop="resize", root=data_root)
    assert resized.hr.shape[1:] == (1, 16, 16) and resized.lr.shape[1:] == (1, 8, 8)
