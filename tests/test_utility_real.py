"""The utility protocol on real data (short recipe): TRTR on PneumoniaMNIST beats the majority
class; 'synthetic' images that are the real training images give ~TRTR; pure noise gives
~chance; real images with shuffled labels give ~chance class fidelity. Then the CLI on a real
(tiny) cGAN checkpoint of BreastMNIST and on a folder of images."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from medsyn.cli import app
from medsyn.data import load_dataset
from medsyn.evaluators.metrics.utility.protocol import evaluate_utility
from medsyn.evaluators.networks.classifier import get_recipe
from medsyn.settings import ENV_INCEPTION_WEIGHTS

pytestmark = pytest.mark.real_data
SHORT = get_recipe("quick", epochs=3, milestones=(0.67,))     # lr x0.1 for the last epoch
N_TRAIN = 1200


@pytest.fixture(scope="module")
def pneumonia(data_root):
    from medsyn.evaluators.inputs import stratified_subset

    train = load_dataset("pneumoniamnist", "train", root=data_root)
    return {"train": stratified_subset(train, N_TRAIN, seed=0),
            "val": load_dataset("pneumoniamnist", "val", root=data_root),
            "test": load_dataset("pneumoniamnist", "test", root=data_root)}


@pytest.fixture(scope="module")
def real_as_synthetic(pneumonia):
    d = pneumonia
    return evaluate_utility(d["train"].images, d["train"].labels, train=d["train"], val=d["val"],
                            test=d["test"], recipe=SHORT, seeds=(0,), device="cpu")


def test_trtr_beats_the_majority_class_by_a_clear_margin(real_as_synthetic):
    block = real_as_synthetic
    majority = block["reference_rates"]["majority_class_accuracy"]
    assert majority == pytest.approx(390 / 624)
    trtr = block["arms"]["trtr"]
    assert trtr["accuracy"]["mean"] > majority + 0.1
    assert trtr["auc_macro"]["mean"] > 0.85
    assert trtr["balanced_accuracy"]["mean"] > 0.65
    assert block["n"]["test"] == 624 and block["n"]["real_train"] == N_TRAIN


def test_real_images_as_synthetic_give_about_trtr(real_as_synthetic):
    arms = real_as_synthetic["arms"]
    for stat in ("accuracy", "auc_macro", "balanced_accuracy"):
        assert abs(arms["tstr"][stat]["mean"] - arms["trtr"][stat]["mean"]) < 0.06, stat
    # doubling the real data with itself changes little
    assert abs(real_as_synthetic["gain"]["accuracy"]["mean"]) < 0.06
    # the TRTR classifier recognises its own training images
    assert arms["class_fidelity"]["accuracy"]["mean"] > 0.9
    assert real_as_synthetic["tstr_over_trtr"]["accuracy"]["mean"] == pytest.approx(1, abs=0.08)


def test_noise_images_give_chance(pneumonia):
    d = pneumonia
    g = torch.Generator().manual_seed(0)
    noise = torch.randint(0, 256, d["train"].images.shape, generator=g, dtype=torch.uint8)
    block = evaluate_utility(noise, d["train"].labels, train=d["train"], val=d["val"],
                             test=d["test"], recipe=SHORT, seeds=(0,), arms=("tstr",),
                             device="cpu")
    tstr = block["arms"]["tstr"]
    assert abs(tstr["balanced_accuracy"]["mean"] - 0.5) < 0.1
    assert abs(tstr["auc_macro"]["mean"] - 0.5) < 0.15
    assert set(block["arms"]) == {"tstr"}


def test_shuffled_labels_give_chance_class_fidelity(pneumonia, real_as_synthetic):
    d = pneumonia
    perm = torch.randperm(len(d["train"]), generator=torch.Generator().manual_seed(1))
    shuffled = d["train"].labels[perm]
    block = evaluate_utility(d["train"].images, shuffled, train=d["train"], val=d["val"],
                             test=d["test"], recipe=SHORT, seeds=(0,), arms=("class_fidelity",),
                             device="cpu")
    fidelity = block["arms"]["class_fidelity"]
    assert abs(fidelity["balanced_accuracy"]["mean"] - 0.5) < 0.1
    assert abs(fidelity["auc_macro"]["mean"] - 0.5) < 0.1
    # the TRTR classifier came from the cache of the first protocol run
    assert block["classifiers"][0]["from_cache"] is True


# ---------------------------------------------------------------- CLI


def _invoke(*args):
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def breast_cgan(tmp_path_factory, data_root):
    work = tmp_path_factory.mktemp("utility-cli")
    code, out = _invoke("train", "cgan", "--dataset", "breastmnist", "--data-root", data_root,
                        "--image-size", 28, "--g-width", 16, "--d-width", 16, "--batch-size", 32,
                        "--epochs", 1, "--max-steps", 4, "--device", "cpu", "--quiet",
                        "--out", work / "runs" / "cgan")
    assert code == 0, out
    return work / "runs" / "cgan" / "last.pt"


def test_cli_checkpoint_utility_needs_no_inception(breast_cgan, data_root, tmp_path, monkeypatch):
    # --metrics utility must not load the Inception network: point its variable nowhere
    monkeypatch.setenv(ENV_INCEPTION_WEIGHTS, str(tmp_path / "missing.pth"))
    out_dir = tmp_path / "eval"
    code, out = _invoke("evaluate", "--checkpoint", breast_cgan, "--data-root", data_root,
                        "--metrics", "utility", "--utility-epochs", 1, "--utility-seeds", "0,1",
                        "--utility-ratio", 2, "--device", "cpu", "--out", out_dir)
    assert code == 0, out
    results = json.loads((out_dir / "results.json").read_text())
    utility = results["metrics"]["utility"]
    train = load_dataset("breastmnist", "train", root=data_root)
    assert utility["n"]["real_train"] == len(train) == 546
    assert utility["n"]["synthetic"] == 546                  # as many per class as real train
    assert utility["n"]["synthetic_added"] == 2 * 546        # ratio 2, topped up by sampling
    assert utility["n_per_class"]["synthetic"] == train.class_counts()
    assert utility["seeds"] == [0, 1] and utility["recipe"]["name"] == "quick+custom"
    assert set(utility["arms"]) == {"trtr", "tstr", "trtr_s", "class_fidelity"}
    assert results["provenance"]["extractor"] is None
    assert results["provenance"]["val"]["split"] == "val"
    assert "utility.arms.tstr.accuracy" in (out_dir / "metrics.csv").read_text()
    assert "utility.arms.trtr.accuracy" in out                # the printed summary table


def test_cli_in_domain_extractor_and_folder_input(breast_cgan, data_root, tmp_path):
    folder = tmp_path / "fakes"
    train = load_dataset("breastmnist", "train", root=data_root)
    for c, name in enumerate(train.class_names):
        (folder / name).mkdir(parents=True)
        for i in np.flatnonzero(train.labels.numpy() == c)[:40]:
            Image.fromarray(train.images[i, 0].numpy()).save(folder / name / f"{i}.png")
    out_dir = tmp_path / "eval-folder"
    code, out = _invoke("evaluate", "--fake", folder, "--real", "breastmnist:train",
                        "--data-root", data_root, "--metrics", "fid,utility",
                        "--extractor", "classifier", "--utility-epochs", 1,
                        "--utility-seeds", "0", "--bootstrap", 5, "--device", "cpu",
                        "--out", out_dir)
    assert code == 0, out
    results = json.loads((out_dir / "results.json").read_text())
    fid = results["metrics"]["fid"]
    assert fid["extractor"] == "resnet18-breastmnist-trtr" and fid["value"] >= 0
    ext = results["provenance"]["extractor"]
    assert ext["feature_dim"] == 512 and ext["weights_sha256"]
    assert "penultimate" in ext["conventions"]["layer"]
    utility = results["metrics"]["utility"]
    assert utility["n"]["synthetic"] == 80                       # all the folder had
    assert any("fewer than" in w for w in results["warnings"])
    # the in-domain extractor is the TRTR seed-0 classifier, trained once
    assert utility["classifiers"][0]["from_cache"] is True


def test_cli_utility_option_errors(tmp_path):
    cases = [(["--utility-recipe", "slow"], "unknown classifier recipe"),
             (["--utility-seeds", "0,x"], "comma-separated integers"),
             (["--utility-epochs", "0"], "--utility-epochs must be >= 1"),
             (["--extractor", "nope"], "unknown feature extractor"),
             (["--classifier-weights", str(tmp_path / "none.pth")], "does not exist")]
    for extra, message in cases:
        code, out = _invoke("evaluate", "--fake", tmp_path, "--real", "breastmnist",
                            "--metrics", "utility", *extra)
        assert code == 1 and message in out, (extra, out)
        assert "Traceback" not in out
