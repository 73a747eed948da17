"""``medsyn selftest`` (metrics/conformance.py, evaluators/selftest.py): every check passes on
a correct installation, a deliberately broken metric fails the suite loudly, and every
evaluation records the suite's status in its receipt."""

from __future__ import annotations

import pytest
from conftest import blob_dataset, blob_images
from typer.testing import CliRunner

import medsyn.evaluators as ev
from medsyn.cli import app
from medsyn.evaluators.features import PixelExtractor
from medsyn.evaluators.metrics import conformance, stats
from medsyn.evaluators.metrics.distribution import mmd, vendi
from medsyn.settings import ENV_CACHE_DIR

pytestmark = pytest.mark.usefixtures("one_thread")
runner = CliRunner()


def test_every_check_passes_here():
    result = conformance.run_checks()
    assert result["status"] == "passed", result["failed"]
    names = " ".join(c["name"] for c in result["checks"])
    for family in ("FID", "KID", "MMD", "PRDC precision", "PRDC density", "Vendi",
                   "permutation"):
        assert family in names
    assert result["n_checks"] == len(result["checks"]) >= 14


def test_a_broken_fid_fails_the_suite_and_the_command(monkeypatch):
    true_fid = stats.fid_value
    monkeypatch.setattr(stats, "fid_value", lambda a, b: true_fid(a, b) * 1.001)
    result = conformance.run_checks()
    assert result["status"] == "failed"
    assert result["failed"] == ["FID (torch-fidelity path): set vs its translate",
                                "FID (torch-fidelity path): fixed Gaussian features"]
    cli = runner.invoke(app, ["selftest"], terminal_width=200)
    assert cli.exit_code == 1
    assert "FAIL" in cli.output and "selftest failed" in cli.output


def test_swapped_precision_and_recall_are_caught(monkeypatch):
    """torch-fidelity #58: precision and recall swapped for two years."""
    true_prdc = stats.prdc

    def swapped(*args, **kwargs):
        values, res = true_prdc(*args, **kwargs)
        values["precision"], values["recall"] = values["recall"], values["precision"]
        return values, res

    monkeypatch.setattr(stats, "prdc", swapped)
    failed = conformance.run_checks(["prdc"])["failed"]
    assert failed == ["PRDC precision: fixed Gaussians, k 5", "PRDC recall: fixed Gaussians, k 5"]


def test_a_metric_that_raises_fails_with_its_error(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("eigh did not converge")

    monkeypatch.setattr(vendi, "vendi_score", broken)
    monkeypatch.setattr(mmd, "rbf_mmd", lambda *a, **k: (0.0, [], 1.0))
    result = conformance.run_checks(["vendi", "mmd"])
    by_name = {c["name"]: c for c in result["checks"]}
    assert by_name["vendi"]["error"] == "RuntimeError: eigh did not converge"
    assert not by_name["MMD: RBF U-statistic, sigma 2"]["passed"]
    assert result["status"] == "failed"


def test_the_command_passes_and_prints_versions():
    cli = runner.invoke(app, ["selftest", "--json"])
    assert cli.exit_code == 0, cli.output
    assert '"status": "passed"' in cli.output and '"torch_fidelity"' in cli.output


def test_results_carry_the_receipt(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_CACHE_DIR, str(tmp_path))
    monkeypatch.setattr(conformance, "_PROCESS_RESULT", None)   # run here, on intact metrics
    ref = blob_dataset(60, 0, size=16)
    fake, labels = blob_images(30, 1, size=16)
    r = ev.evaluate(fake, labels, reference=ref, extractor=PixelExtractor(8, device="cpu"),
                    metrics=["fid"], n_bootstrap=0)
    receipt = r["provenance"]["receipt"]
    assert receipt["selftest"]["status"] == "passed"
    assert receipt["selftest"]["n_checks"] >= 14
    assert receipt["versions"]["torch_fidelity"] and receipt["versions"]["scipy"]
    assert receipt["weights_sha256"] == {"pixels8": None}
    assert receipt["input_pipeline"]["feature_conventions"]["pixels8"]["normalisation"] == \
        "x / 255"
