"""The three commands of the README chained on real data, as a user runs them:

    medsyn train KIND ...  ->  medsyn evaluate --checkpoint ...  ->  medsyn report ...

A tiny AC-GAN (narrow networks, a few steps) on real PneumoniaMNIST at 28 px, evaluated with the
cheap 'pixels' extractor (the Inception path has its own tests), then one HTML report. Each
stage reads only the file the previous one wrote, so this is the contract of
docs/architecture.md exercised through the CLI.
"""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from medsyn.cli import app

pytestmark = pytest.mark.real_data


def _invoke(args, cwd, monkeypatch):
    monkeypatch.chdir(cwd)
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, f"medsyn {' '.join(map(str, args))}\n{result.output}"
    return result.output


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, data_root):
    work = tmp_path_factory.mktemp("pipeline")
    with pytest.MonkeyPatch.context() as mp:
        _invoke(["train", "acgan", "--dataset", "pneumoniamnist", "--data-root", data_root,
                 "--image-size", 28, "--g-width", 16, "--d-width", 16, "--batch-size", 32,
                 "--epochs", 2, "--max-steps", 12, "--device", "cpu", "--quiet",
                 "--out", "runs/tiny"], work, mp)
        _invoke(["evaluate", "--checkpoint", "runs/tiny/epoch*.pt", "--data-root", data_root,
                 "--extractor", "pixels", "--n-real", 300, "--bootstrap", 5, "--device", "cpu"],
                work, mp)
        report_out = _invoke(["report", "--out", "reports", "--strict"], work, mp)
    return work, report_out


def test_training_writes_a_run_folder_with_checkpoints(pipeline):
    work, _ = pipeline
    run = work / "runs" / "tiny"
    assert (run / "config.json").is_file() and (run / "log.jsonl").is_file()
    checkpoints = sorted(p.name for p in run.glob("epoch*.pt"))
    # 12 steps of batch 32 stop inside epoch 1 (4708 images per epoch): one checkpoint
    assert checkpoints == ["epoch001.pt"]
    assert (run / "last.pt").is_file()
    config = json.loads((run / "config.json").read_text())
    assert (config["kind"], config["dataset"], config["image_size"]) == (
        "acgan", "pneumoniamnist", 28)


def test_evaluation_reads_the_checkpoint_and_writes_results(pipeline):
    work, _ = pipeline
    results_files = list((work / "runs" / "tiny" / "eval").glob("*/results.json"))
    assert len(results_files) == 1
    results = json.loads(results_files[0].read_text())
    metrics = results["metrics"]
    fid = metrics["fid"]
    # a generator after 12 steps is far from real images: above the real-vs-real floor
    assert fid["value"] > metrics["real_floor"]["fid_halves"]["value"]
    assert fid["n_bootstrap"] == 5 and fid["ci95"][0] < fid["ci95"][1]
    assert set(metrics["intra_fid"]["per_class"]) == {"normal", "pneumonia"}
    assert results["kind"] == "generation"
    assert (results["run"]["model_kind"], results["run"]["epoch"]) == ("acgan", 1)
    assert results["provenance"]["dataset"]["name"] == "pneumoniamnist"
    assert fid["n_real"] == 300 and fid["extractor"].startswith("pixels")


def test_report_shows_the_evaluated_run(pipeline):
    work, output = pipeline
    html = (work / "reports" / "index.html").read_text()
    assert "tiny" in html
    assert re.search(r"pneumoniamnist at 28\s*px", html)
    assert (work / "reports" / "summary.csv").read_text().count("\n") > 1
    assert "wrote reports/index.html" in output.replace("\\", "/")
