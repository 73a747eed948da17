"""Utility protocol building blocks on small synthetic data: scores against sklearn, recipes,
the network's stem rule, synthetic-set construction, determinism, caching, local weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import blob_dataset, blob_images

from medsyn.data import ImageDataset
from medsyn.errors import ConfigError, DataError
from medsyn.evaluators.metrics.utility.protocol import (
    evaluate_utility,
    split_validation,
    synthetic_sets,
)
from medsyn.evaluators.networks import classifier as clf_mod
from medsyn.evaluators.networks.classifier import (
    Recipe,
    build_classifier,
    classification_scores,
    get_recipe,
    predict_proba,
    real_classifier,
    train_classifier,
)
from medsyn.settings import ENV_CACHE_DIR

TINY = get_recipe("quick", epochs=2, batch_size=32)


def _style(classes=2):
    """This module's blobs (tests/conftest.py): 28 px, the mean brightness encodes the class
    (easy to learn), the classes 150 apart in all, plus texture noise."""
    return dict(size=28, classes=classes, contrast=100, class_step=150 / max(classes - 1, 1))


def _blobs(n, seed, classes=2):
    return blob_images(n, seed, **_style(classes))


def _ds(n, seed, split, classes=2):
    return blob_dataset(n, seed, split, **_style(classes))


# ---------------------------------------------------------------- scores


def test_scores_match_sklearn_on_a_three_class_example():
    from sklearn.metrics import balanced_accuracy_score, f1_score, recall_score, roc_auc_score

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 200)
    logits = rng.normal(size=(200, 3)) + 1.5 * np.eye(3)[labels]
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    s = classification_scores(probs, labels, ["a", "b", "c"])
    pred = probs.argmax(1)
    assert s["accuracy"] == pytest.approx(np.mean(pred == labels))
    assert s["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(labels, pred))
    assert s["f1_macro"] == pytest.approx(f1_score(labels, pred, average="macro"))
    assert s["auc_macro"] == pytest.approx(roc_auc_score(labels, probs, multi_class="ovr"))
    assert [s["per_class_recall"][c] for c in "abc"] == pytest.approx(
        recall_score(labels, pred, average=None))
    assert 0.5 < s["auc_macro"] < 1.0 and s["n"] == 200


def test_scores_binary_auc_and_degenerate_label_sets():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    s = classification_scores(probs, np.array([0, 1, 0, 1]), ["neg", "pos"])
    assert s["auc_macro"] == 1.0 and s["accuracy"] == 1.0
    one = classification_scores(probs, np.array([1, 1, 1, 1]), ["neg", "pos"])
    assert one["auc_macro"] is None and "fewer than two classes" in one["auc_macro_unavailable"]
    assert one["per_class_recall"]["neg"] is None          # absent class: undefined, not 0
    # three classes of which two occur: AUC over the present pair
    p3 = np.array([[0.7, 0.2, 0.1], [0.1, 0.2, 0.7], [0.6, 0.3, 0.1], [0.2, 0.1, 0.7]])
    two = classification_scores(p3, np.array([0, 2, 0, 2]), ["a", "b", "c"])
    assert two["auc_macro"] == 1.0 and two["per_class_recall"]["b"] is None


# ---------------------------------------------------------------- recipes and networks


def test_recipes_are_named_validated_and_overridable():
    assert get_recipe().name == "quick"
    medmnist = get_recipe("medmnist")
    assert (medmnist.epochs, medmnist.batch_size, medmnist.lr) == (100, 128, 1e-3)
    assert medmnist.milestone_epochs() == [50, 75] and medmnist.gamma == 0.1
    short = get_recipe("medmnist", epochs=8)
    assert short.name == "medmnist+custom" and short.milestone_epochs() == [4, 6]
    # floor(m * epochs), a repeated epoch decays twice (as MultiStepLR does)
    assert get_recipe("quick", epochs=3).milestone_epochs() == [1, 2]
    assert get_recipe("quick", epochs=5).milestone_epochs() == [2, 3]
    assert get_recipe("quick", epochs=1).milestone_epochs() == [1, 1]
    assert get_recipe("quick", epochs=None) == get_recipe("quick")
    assert get_recipe({"name": "mine", "epochs": 3}).epochs == 3
    d = medmnist.describe()
    assert d["optimizer"] == "Adam" and d["milestone_epochs"] == [50, 75]
    for bad, msg in [(dict(epochs=0), "epochs"), (dict(selection="best"), "selection"),
                     (dict(stem_stride=3), "stem_stride"), (dict(milestones=(1.5,)), "fraction"),
                     (dict(pretrained="/no/such/file.pth"), "does not exist")]:
        with pytest.raises(ConfigError, match=msg):
            get_recipe("quick", **bad)
    with pytest.raises(ConfigError, match="quick, medmnist"):
        get_recipe("fast")
    with pytest.raises(ConfigError, match="unknown classifier recipe field"):
        get_recipe({"epoch": 3})


@pytest.mark.parametrize("size,stride,map_size", [(28, 1, 4), (64, 2, 4), (112, 4, 4),
                                                  (28, 4, 1)])
def test_stem_follows_the_size_rule(size, stride, map_size):
    recipe = Recipe(stem_stride=None if (size, stride) != (28, 4) else 4)
    model = build_classifier(recipe, channels=1, num_classes=3, image_size=size)
    assert isinstance(model.maxpool, torch.nn.Identity) == (stride == 1)
    assert model.conv1.stride == ((1, 1) if stride < 4 else (2, 2))
    assert model.conv1.in_channels == 1 and model.fc.out_features == 3
    with torch.no_grad():
        fmap = model.forward_features(torch.zeros(2, 1, size, size))
    assert fmap.shape[1:] == (512, map_size, map_size)


def test_unknown_timm_model_and_unsupported_stem_are_explained():
    with pytest.raises(ConfigError, match="timm has no model"):
        build_classifier(Recipe(model="resnet_does_not_exist"), 1, 2, 28)
    with pytest.raises(ConfigError, match="ResNet-style"):
        build_classifier(Recipe(model="mobilenetv3_small_050", stem_stride=1), 1, 2, 28)


def test_local_pretrained_weights_are_loaded(tmp_path):
    import timm

    donor = timm.create_model("resnet18", pretrained=False, num_classes=1000)
    path = tmp_path / "resnet18.pth"
    torch.save(donor.state_dict(), path)
    recipe = get_recipe("quick", pretrained=str(path))
    model = build_classifier(recipe, channels=3, num_classes=2, image_size=112)
    assert torch.equal(model.layer1[0].conv1.weight, donor.layer1[0].conv1.weight)
    assert model.fc.out_features == 2
    assert recipe.describe()["pretrained_sha256"]
    path.write_bytes(b"not a state dict")
    with pytest.raises(ConfigError, match="could not load classifier weights"):
        build_classifier(get_recipe("quick", pretrained=str(path)), 1, 2, 28)


# ---------------------------------------------------------------- training


def test_training_is_deterministic_and_learns_an_easy_task():
    train, val = _ds(96, 0, "train"), _ds(48, 1, "val")
    a = train_classifier(train.images, train.labels, val.images, val.labels, 2, TINY, seed=3,
                         device="cpu")
    b = train_classifier(train.images, train.labels, val.images, val.labels, 2, TINY, seed=3,
                         device="cpu")
    c = train_classifier(train.images, train.labels, val.images, val.labels, 2, TINY, seed=4,
                         device="cpu")
    assert a.weights_sha256 == b.weights_sha256 != c.weights_sha256
    assert [h["loss"] for h in a.history] == [h["loss"] for h in b.history]
    assert len(a.history) == 2 and 1 <= a.best_epoch <= 2
    test = _ds(60, 2, "test")
    scores = classification_scores(predict_proba(a.model, test.images), test.labels.numpy(),
                                   test.class_names)
    assert scores["auc_macro"] > 0.9


def test_learning_rate_follows_the_milestones():
    train, val = _ds(40, 0, "train"), _ds(20, 1, "val")
    recipe = get_recipe("quick", epochs=4, batch_size=20)
    out = train_classifier(train.images, train.labels, val.images, val.labels, 2, recipe,
                           device="cpu")
    assert [h["lr"] for h in out.history] == pytest.approx([1e-3, 1e-3, 1e-4, 1e-5])


def test_precise_bn_replaces_running_statistics_by_their_average():
    images, _ = _blobs(64, 0)
    model = build_classifier(Recipe(stem_stride=4), 1, 2, 28)
    clf_mod.recompute_batchnorm(model, images, 64, 16, torch.Generator().manual_seed(0),
                                Recipe())
    with torch.no_grad():
        first = model.conv1(clf_mod.to_input(images))
    # four equal batches of 16: the average of their means is the mean over all 64
    assert torch.allclose(model.bn1.running_mean, first.mean((0, 2, 3)), atol=1e-4)
    assert model.bn1.momentum == 0.1 and model.bn1.num_batches_tracked == 4


def test_training_rejects_bad_input():
    imgs, labels = _blobs(10, 0)
    with pytest.raises(DataError, match="labels must be in 0..1"):
        train_classifier(imgs, labels + 5, imgs, labels, 2, TINY)
    with pytest.raises(DataError, match="10 images but 9 labels"):
        train_classifier(imgs, labels[:9], imgs, labels, 2, TINY)
    with pytest.raises(DataError, match="uint8"):
        train_classifier(imgs.float(), labels, imgs, labels, 2, TINY)


def test_real_classifiers_are_cached(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_CACHE_DIR, str(tmp_path))
    train, val = _ds(64, 0, "train"), _ds(32, 1, "val")
    calls = []
    original = clf_mod.train_classifier
    monkeypatch.setattr(clf_mod, "train_classifier",
                        lambda *a, **k: calls.append(1) or original(*a, **k))
    first = real_classifier(train, val, TINY, seed=0, device="cpu")
    again = real_classifier(train, val, TINY, seed=0, device="cpu")
    assert len(calls) == 1 and not first.from_cache and again.from_cache
    assert again.weights_sha256 == first.weights_sha256
    x = train.images[:8]
    assert np.allclose(predict_proba(first.model, x), predict_proba(again.model, x))
    real_classifier(train, val, TINY, seed=1, device="cpu")                        # other seed
    real_classifier(train, val, get_recipe(TINY, epochs=1), seed=0, device="cpu")  # recipe
    changed = _ds(64, 0, "train")
    changed.images[0, 0, 0, 0] ^= 1                                                # pixels
    real_classifier(changed, val, TINY, seed=0, device="cpu")
    real_classifier(train, val, TINY, seed=0, use_cache=False, device="cpu")
    assert len(calls) == 5
    # a damaged cache entry is not trusted: retrained
    import json

    key = clf_mod._cache_key(train, val, TINY, 0, torch.device("cpu"))
    meta = tmp_path / "classifiers" / f"{key[:40]}.json"
    record = json.loads(meta.read_text())
    record["weights_sha256"] = "0" * 64
    meta.write_text(json.dumps(record))
    for _ in range(2):
        real_classifier(train, val, TINY, seed=0, device="cpu")
        real_classifier(train, val, TINY, seed=1, device="cpu")
    assert len(calls) == 6


def test_shift_augmentation_moves_images_and_keeps_shape():
    x = torch.arange(2 * 16 * 16, dtype=torch.float32).view(2, 1, 16, 16)
    out = clf_mod._shift(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    assert not torch.equal(out, x)
    again = clf_mod._shift(x, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)


# ---------------------------------------------------------------- synthetic sets


def test_synthetic_sets_take_counts_per_class_and_top_up_from_a_sampler():
    images, labels = _blobs(30, 0, classes=3)              # 10 per class
    got = synthetic_sets(images, labels.numpy(), np.array([4, 6, 8]), ratio=1.0, seed=0)
    assert got["counts"]["tstr"] == [4, 6, 8] and not got["notes"]
    assert np.bincount(got["tstr"][1]).tolist() == [4, 6, 8]
    # ratio 2 needs 8/12/16: classes 1 and 2 run short without a sampler, and say so
    short = synthetic_sets(images, labels.numpy(), np.array([4, 6, 8]), ratio=2.0, seed=0)
    assert short["counts"]["extra"] == [8, 10, 10]
    assert any("class 2: 10 synthetic images available" in n for n in short["notes"])
    drawn = []

    def sampler(lab, seed):
        drawn.append(np.asarray(lab))
        return torch.full((len(lab), 1, 28, 28), 7, dtype=torch.uint8)

    topped = synthetic_sets(images, labels.numpy(), np.array([4, 6, 8]), 2.0, 0, sampler)
    assert topped["counts"]["extra"] == [8, 12, 16]
    assert np.bincount(drawn[0], minlength=3).tolist() == [0, 2, 6]
    extra_images, extra_labels = topped["extra"]
    assert len(extra_labels) == 36 and (extra_images[extra_labels == 2] == 7).sum() > 0
    # the TSTR set is the first part of the TRTR+S addition
    tstr_images, _ = topped["tstr"]
    assert torch.equal(tstr_images[:4], extra_images[:4])


def test_split_validation_is_stratified_and_disjoint():
    ds = _ds(100, 0, "train")
    rest, val = split_validation(ds)
    assert len(rest) + len(val) == 100 and np.bincount(val.labels.numpy()).tolist() == [5, 5]
    assert rest.fingerprint != val.fingerprint and "val" in val.split


# ---------------------------------------------------------------- the protocol, small


def test_protocol_reports_every_arm_over_seeds(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_CACHE_DIR, str(tmp_path))
    train, val, test = _ds(80, 0, "train"), _ds(40, 1, "val"), _ds(40, 2, "test")
    fake, fake_labels = _blobs(80, 5)
    block = evaluate_utility(fake, fake_labels, train=train, val=val, test=test, recipe=TINY,
                             seeds=(0, 1, 2), device="cpu")
    assert set(block["arms"]) == {"trtr", "tstr", "trtr_s", "class_fidelity"}
    acc = block["arms"]["tstr"]["accuracy"]
    assert len(acc["values"]) == 3 and acc["mean"] == pytest.approx(np.mean(acc["values"]))
    assert acc["std"] == pytest.approx(np.std(acc["values"], ddof=1))
    assert acc["ci95"][0] <= acc["mean"] <= acc["ci95"][1]
    gain = block["gain"]["accuracy"]
    expected = [a - b for a, b in zip(block["arms"]["trtr_s"]["accuracy"]["values"],
                                      block["arms"]["trtr"]["accuracy"]["values"], strict=True)]
    assert gain["values"] == pytest.approx(expected)
    assert block["tstr_over_trtr"]["accuracy"]["mean"] > 0
    assert block["n"] == {"real_train": 80, "real_val": 40, "test": 40, "synthetic": 80,
                          "synthetic_added": 80}
    assert block["seeds"] == [0, 1, 2] and block["recipe"]["epochs"] == 2
    assert set(block["arms"]["trtr"]["per_class_recall"]) == {"c0", "c1"}
    assert block["reference_rates"]["majority_class_accuracy"] == 0.5
    # the report reads this block
    from medsyn.reports.content.metrics import METRICS

    cell = METRICS["tstr_acc"].extract({"utility": block})
    assert cell.value == pytest.approx(acc["mean"])


def test_protocol_without_labels_or_val(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_CACHE_DIR, str(tmp_path))
    train, test = _ds(80, 0, "train"), _ds(40, 2, "test")
    fake, _ = _blobs(40, 5)
    out = evaluate_utility(fake, None, train=train, test=test, recipe=TINY, seeds=(0,))
    assert out["value"] is None and "no class labels" in out["unavailable"]
    fake_labels = torch.zeros(40, dtype=torch.int64)      # a generator that only makes c0
    block = evaluate_utility(fake, fake_labels, train=train, test=test, recipe=TINY,
                             seeds=(0,), arms=("tstr", "class_fidelity"), device="cpu")
    assert any("no validation split" in n for n in block["notes"])
    assert any("class 1: 0 synthetic images" in n for n in block["notes"])
    assert block["n"]["real_train"] == 72 and block["n"]["real_val"] == 8
    fid = block["arms"]["class_fidelity"]
    assert fid["auc_macro"]["mean"] is None and "fewer than two" in fid["auc_macro"]["note"]
    with pytest.raises(DataError, match="seeds must differ"):
        evaluate_utility(fake, fake_labels, train=train, test=test, recipe=TINY, seeds=(0, 0))
    with pytest.raises(DataError, match="ratio"):
        evaluate_utility(fake, fake_labels, train=train, test=test, recipe=TINY, ratio=0)
    with pytest.raises(DataError, match=r"\(1, 28, 28\)"):
        evaluate_utility(fake[:, :, :20, :20], fake_labels, train=train, test=test,
                         recipe=TINY)
    with pytest.raises(DataError, match="40 synthetic images but 39 labels"):
        evaluate_utility(fake, fake_labels[:39], train=train, test=test, recipe=TINY)
    with pytest.raises(DataError, match="test and validation splits are the same"):
        evaluate_utility(fake, fake_labels, train=train, val=test, test=test, recipe=TINY)
    small_test = ImageDataset("blobs", "test", test.images[:, :, :20, :20], test.labels,
                              test.class_names)
    with pytest.raises(DataError, match="the test split"):
        evaluate_utility(fake, fake_labels, train=train, test=small_test, recipe=TINY)


def test_no_arm_trains_or_selects_on_test_images(tmp_path, monkeypatch):
    from medsyn.evaluators.metrics.utility import protocol as utility_mod

    monkeypatch.setenv(ENV_CACHE_DIR, str(tmp_path))
    train, val, test = _ds(60, 0, "train"), _ds(30, 1, "val"), _ds(30, 2, "test")
    seen = []
    original = clf_mod.train_classifier

    def recording(train_images, train_labels, val_images, val_labels, *a, **k):
        seen.append((train_images, val_images))
        return original(train_images, train_labels, val_images, val_labels, *a, **k)

    monkeypatch.setattr(clf_mod, "train_classifier", recording)
    monkeypatch.setattr(utility_mod, "train_classifier", recording)
    fake, fake_labels = _blobs(60, 5)
    evaluate_utility(fake, fake_labels, train=train, val=val, test=test, recipe=TINY,
                     seeds=(0,), device="cpu")
    assert len(seen) == 3                                   # TRTR, TSTR, TRTR+S
    test_rows = {bytes(x.numpy()) for x in test.images}
    for train_images, val_images in seen:
        assert torch.equal(val_images, val.images)
        assert not test_rows & {bytes(x.numpy()) for x in train_images}


def test_evaluate_api_with_the_in_domain_extractor(tmp_path, monkeypatch):
    import medsyn.evaluators as ev

    monkeypatch.setenv(ENV_CACHE_DIR, str(tmp_path))
    train, val, test = _ds(60, 0, "train"), _ds(30, 1, "val"), _ds(30, 2, "test")
    fake, fake_labels = _blobs(40, 5)
    res = ev.evaluate(fake, fake_labels, reference=train, train=train, heldout=test, val=val,
                      extractor="classifier", utility_recipe=TINY, metrics=["fid", "utility"],
                      utility_seeds=(0,), n_bootstrap=3, device="cpu")
    assert res["metrics"]["fid"]["extractor"] == "resnet18-blobs-trtr"
    assert res["provenance"]["extractor"]["feature_dim"] == 512
    # the extractor's network is the TRTR seed-0 classifier: trained once, for both
    assert res["metrics"]["utility"]["classifiers"][0]["from_cache"] is True


def test_one_seed_has_no_spread_and_the_report_does_not_invent_one():
    from medsyn.evaluators.metrics.utility.protocol import _summary
    from medsyn.reports.runs import _mean_std

    one = _summary([0.8125])
    assert one["mean"] == 0.8125 and one["std"] is None and "ci95" not in one
    assert _mean_std(one) == "0.812 (1 seed)"
    # results.json files written before the fix carry std 0.0 for one seed
    assert _mean_std({"mean": 0.8125, "std": 0.0, "values": [0.8125]}) == "0.812 (1 seed)"
    three = _summary([0.7, 0.8, 0.9])
    assert _mean_std(three) == "0.800 ± 0.100"
    assert _mean_std(_summary([0.01, 0.03]), sign="+") == "+0.020 ± 0.014"
