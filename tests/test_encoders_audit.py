"""The trust card of `medsyn audit` in the space of an encoder the user brings (a timm model
with a local weights file), on a tiny folder dataset."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from medsyn.cli import app

pytestmark = pytest.mark.usefixtures("one_thread")


def test_audit_trust_card_in_a_timm_space(tmp_path):
    import safetensors.torch
    import timm

    root = tmp_path / "data"
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for c, cls in enumerate(("dark", "bright")):
            for i in range(20):
                low = rng.integers(0, 120, (4, 4)).astype(np.uint8) + 100 * c
                (root / split / cls).mkdir(parents=True, exist_ok=True)
                Image.fromarray(low).resize((28, 28), Image.BICUBIC).save(
                    root / split / cls / f"{i:03d}.png")
    torch.manual_seed(0)
    weights = tmp_path / "test_resnet.safetensors"
    safetensors.torch.save_file(timm.create_model("test_resnet").state_dict(), str(weights))
    space = f"timm:test_resnet@{weights}"
    out = tmp_path / "audit"
    result = CliRunner().invoke(app, [
        "audit", "--dataset", f"folder:{root}:test", "--extractor", space, "-n", "16",
        "--n-pool", "40", "--bootstrap", "5", "--failures", "blur,memorisation",
        "--no-cache", "--out", str(out)])
    assert result.exit_code == 0, result.output
    audit = json.loads((out / "audit.json").read_text())
    assert audit["settings"]["extractors"] == [space] or space in json.dumps(audit)
    (cells,) = [s["cells"] for s in audit["spaces"].values()]
    assert set(cells) == {"blur", "memorisation"}
    assert cells["blur"]["fid"]["levels"][4]["value"] != cells["blur"]["fid"]["levels"][0]["value"]
