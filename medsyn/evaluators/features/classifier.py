"""In-domain space: penultimate features of a ResNet-18 trained on the real training split
(the utility protocol's TRTR classifier), trained offline and cached."""

from __future__ import annotations

import torch

from medsyn.device import resolve_device
from medsyn.errors import ConfigError
from medsyn.evaluators.features.base import TorchModuleExtractor
from medsyn.evaluators.networks.classifier import get_recipe, penultimate, real_classifier


class _Penultimate(torch.nn.Module):
    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        return penultimate(self.model, x)


def classifier_extractor(device=None, train=None, val=None, recipe=None, seed: int = 0,
                         use_cache: bool = True, **_):
    """Penultimate features of the TRTR classifier of ``train`` (the in-domain extractor).

    The network is :func:`real_classifier` of the recipe and seed (trained once, then cached),
    so FID-style metrics in this space measure what a diagnostic model of this dataset sees.
    Its training images are fitted by the network: distances of those images (memorization,
    the train-vs-test floor) are smaller than in a space the data never trained.
    """
    if train is None:
        raise ConfigError("the 'classifier' feature extractor is trained on the real training "
                          "split of the reference dataset; it needs that split (train=...).")
    recipe = get_recipe(recipe)
    dev = resolve_device(device)
    note = None
    if val is None:
        from medsyn.data.subsets import split_validation

        train, val = split_validation(train)
        note = "no validation split: a stratified 10 % of the training split selected the epoch"
    clf = real_classifier(train, val, recipe, seed, dev, use_cache,
                          desc=f"in-domain classifier {train.name}")
    model = clf.model
    dim = int(getattr(model, "num_features", 0)) or int(
        penultimate(model, torch.zeros(1, train.channels, *train.image_size, device=dev)).shape[1])
    conventions = {
        "network": f"timm {recipe.model} trained on real {train.name}/{train.split} "
                   f"(fingerprint {train.fingerprint[:16]}), recipe {recipe.name}, seed {seed}, "
                   f"epoch {clf.best_epoch} selected on {val.split}",
        "layer": "penultimate (global average pool before the classifier)",
        "preprocess": "x / 127.5 - 1",
        "recipe": recipe.describe(),
        "dataset_fingerprint": train.fingerprint,
        "caveat": "trained on the reference's training images: train-set distances are "
                  "smaller than held-out ones in this space",
    }
    if note:
        conventions["note"] = note
    ext = TorchModuleExtractor(f"{recipe.model}-{train.name}-trtr", _Penultimate(model), dim,
                               weights_sha256=clf.weights_sha256, conventions=conventions,
                               device=dev)
    ext.logits_unavailable = ("the in-domain classifier's classes are the dataset's, not "
                              "ImageNet's: the Inception Score needs the Inception network")
    return ext
