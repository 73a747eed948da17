"""`medsyn evaluate` with encoders users bring: --extractor SOURCE:TARGET, --extractor-weights
and --protocol, end to end on tiny folders and tiny random models (nothing downloaded)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from medsyn.cli import app
from medsyn.evaluators.metrics.distribution import chexgenbench

pytestmark = pytest.mark.usefixtures("one_thread")
runner = CliRunner()


def _pngs(folder, n, seed, size=20):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        low = rng.integers(0, 256, (5, 5), dtype=np.uint8)
        Image.fromarray(low).resize((size, size), Image.BICUBIC).save(folder / f"{i}.png")


def _evaluate(*args):
    result = runner.invoke(app, ["evaluate", *map(str, args)])
    return result, result.output + (repr(result.exception) if result.exception else "")


def test_timm_space_from_the_cli(tmp_path):
    import safetensors.torch
    import timm

    torch.manual_seed(0)
    weights = tmp_path / "test_resnet.safetensors"
    safetensors.torch.save_file(timm.create_model("test_resnet").state_dict(), str(weights))
    _pngs(tmp_path / "ref", 8, seed=0)
    _pngs(tmp_path / "fake", 8, seed=1)
    out = tmp_path / "out"
    result, text = _evaluate("--fake", tmp_path / "fake", "--real", tmp_path / "ref",
                             "--extractor", "timm:test_resnet", "--extractor-weights", weights,
                             "--metrics", "fid,cmmd", "--bootstrap", 0, "--no-cache",
                             "--out", out)
    assert result.exit_code == 0, text
    res = json.loads((out / "results.json").read_text())
    assert res["metrics"]["fid"]["extractor"] == "timm:test_resnet"
    assert res["metrics"]["cmmd"]["value"] > 0
    desc = json.dumps(res["provenance"])
    assert "timm:test_resnet" in desc and str(weights) in desc


def test_missing_weights_is_one_line(tmp_path):
    _pngs(tmp_path / "ref", 3, seed=0)
    missing = tmp_path / "nowhere" / "w.safetensors"
    result, text = _evaluate("--fake", tmp_path / "ref", "--real", tmp_path / "ref",
                             "--extractor", f"timm:test_resnet@{missing}", "--out",
                             tmp_path / "out")
    assert result.exit_code != 0
    assert str(missing) in result.output and "Traceback" not in result.output
    # no folder: the hub's snapshot of microsoft/rad-dino, not downloaded offline (conftest)
    result, text = _evaluate("--fake", tmp_path / "ref", "--real", tmp_path / "ref",
                             "--protocol", "chexgenbench", "--out", tmp_path / "out")
    assert result.exit_code != 0 and "Traceback" not in result.output
    line = " ".join(result.output.split())
    assert "microsoft/rad-dino" in line and "MEDSYN_OFFLINE" in line
    assert "--extractor-weights" in line
    result, text = _evaluate("--fake", tmp_path / "ref", "--real", tmp_path / "ref",
                             "--protocol", "cmmd", "--extractor", "pixels",
                             "--extractor-weights", tmp_path, "--out", tmp_path / "out")
    assert result.exit_code != 0 and "drop --extractor" in result.output


def test_protocol_chexgenbench_end_to_end(tmp_path):
    transformers = pytest.importorskip("transformers")
    folder = tmp_path / "tiny-rad-dino"
    torch.manual_seed(0)
    cfg = transformers.Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                    mlp_ratio=2, image_size=28, patch_size=14,
                                    layerscale_value=1.0)
    transformers.Dinov2Model(cfg).eval().save_pretrained(folder)
    transformers.BitImageProcessor(
        size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28},
        image_mean=[0.5307] * 3, image_std=[0.2583] * 3, resample=3).save_pretrained(folder)
    _pngs(tmp_path / "ref", 10, seed=0)
    _pngs(tmp_path / "fake", 10, seed=1)
    out = tmp_path / "out"
    result, text = _evaluate("--fake", tmp_path / "fake", "--real", tmp_path / "ref",
                             "--protocol", "chexgenbench", "--extractor-weights", folder,
                             "--no-cache", "--out", out)
    assert result.exit_code == 0, text
    res = json.loads((out / "results.json").read_text())
    block = res["metrics"]["chexgenbench"]
    assert block["protocol"] == "chexgenbench" and block["kid"]["subset_size"] == 10
    assert set(res["metrics"]) >= {"chexgenbench"} and "fid" not in res["metrics"]
    # the numbers are the protocol's functions of the space's features
    from medsyn.evaluators.features import get_extractor
    ext = get_extractor(f"rad-dino:{folder}", device="cpu")

    def feats(d):
        arr = np.stack([np.asarray(Image.open(d / f"{i}.png")) for i in range(10)])
        return ext.extract(torch.from_numpy(arr[:, None]))["features"].numpy()
    want = chexgenbench.chexgenbench_values(feats(tmp_path / "ref"), feats(tmp_path / "fake"))
    assert block["fid"]["value"] == pytest.approx(want["fid"], rel=1e-5)
    assert block["precision"]["value"] == pytest.approx(want["precision"])
