"""The trust card of `medsyn audit` in the space of an encoder the user brings (a timm model
with a local weights file, named in the space or by --extractor-weights as for `medsyn
evaluate`), on a tiny folder dataset."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from medsyn.cli import app

pytestmark = pytest.mark.usefixtures("one_thread")


def _folder_dataset(root):
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for c, cls in enumerate(("dark", "bright")):
            for i in range(20):
                low = rng.integers(0, 120, (4, 4)).astype(np.uint8) + 100 * c
                (root / split / cls).mkdir(parents=True, exist_ok=True)
                Image.fromarray(low).resize((28, 28), Image.BICUBIC).save(
                    root / split / cls / f"{i:03d}.png")
    return root


@pytest.mark.parametrize("form", ["space@file", "--extractor-weights"])
def test_audit_trust_card_in_a_timm_space(tmp_path, form):
    import safetensors.torch
    import timm

    from medsyn.evaluators.features.encoders.files import digest

    root = _folder_dataset(tmp_path / "data")
    torch.manual_seed(0)
    weights = tmp_path / "test_resnet.safetensors"
    safetensors.torch.save_file(timm.create_model("test_resnet").state_dict(), str(weights))
    space = f"timm:test_resnet@{weights}" if form == "space@file" else "timm:test_resnet"
    given = [] if form == "space@file" else ["--extractor-weights", str(weights)]
    out = tmp_path / "audit"
    result = CliRunner().invoke(app, [
        "audit", "--dataset", f"folder:{root}:test", "--extractor", space, *given, "-n", "16",
        "--n-pool", "40", "--bootstrap", "5", "--failures", "blur,memorisation",
        "--no-cache", "--out", str(out)])
    assert result.exit_code == 0, result.output
    audit = json.loads((out / "audit.json").read_text())
    assert audit["settings"]["extractors"] == [space] or space in json.dumps(audit)
    assert digest(weights) in json.dumps(audit)          # the weights' sha256 in provenance
    (cells,) = [s["cells"] for s in audit["spaces"].values()]
    assert set(cells) == {"blur", "memorisation"}
    assert cells["blur"]["fid"]["levels"][4]["value"] != cells["blur"]["fid"]["levels"][0]["value"]


def test_audit_extractor_weights_errors_are_evaluates(tmp_path):
    root = _folder_dataset(tmp_path / "data")
    missing = tmp_path / "nowhere" / "w.safetensors"
    audit = CliRunner().invoke(app, [
        "audit", "--dataset", f"folder:{root}:test", "--extractor", "timm:test_resnet",
        "--extractor-weights", str(missing), "--no-cache", "--out", str(tmp_path / "a")])
    evaluate = CliRunner().invoke(app, [
        "evaluate", "--fake", str(root / "test"), "--real", f"folder:{root}:train",
        "--extractor", "timm:test_resnet", "--extractor-weights", str(missing), "--no-cache",
        "--out", str(tmp_path / "e")])
    assert audit.exit_code != 0 and evaluate.exit_code != 0
    assert "Traceback" not in audit.output
    line = " ".join(audit.output.split())
    assert str(missing) in line and "file not found" in line
    assert line == " ".join(evaluate.output.split())
