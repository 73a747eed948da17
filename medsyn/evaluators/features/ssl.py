"""SSL space: the pooled features of a SimCLR encoder trained on the real training split
(no labels), trained offline and cached (medsyn.evaluators.networks.ssl)."""

from __future__ import annotations

from medsyn.device import resolve_device
from medsyn.errors import ConfigError
from medsyn.evaluators.features.base import TorchModuleExtractor


def ssl_extractor(device=None, train=None, ssl_recipe=None, seed: int = 0,
                  use_cache: bool = True, **_):
    """512-d features of the SimCLR encoder of ``train`` (trained once, then cached).

    Unlike the ``classifier`` space it never sees labels, so it is not tuned to the class
    boundaries only; like it, its training images are the ones it knows best (train-set
    distances and memorization are optimistic in this space).
    """
    from medsyn.evaluators.networks.ssl import get_ssl_recipe, real_ssl_encoder

    if train is None:
        raise ConfigError("the 'ssl' feature space is trained on the real training split of the "
                          "reference dataset; it needs that split (train=...).")
    recipe = get_ssl_recipe(ssl_recipe)
    dev = resolve_device(device)
    enc = real_ssl_encoder(train, recipe, seed, dev, use_cache)
    conventions = {
        "network": f"timm {recipe.model} encoder trained with SimCLR on real "
                   f"{train.name}/{train.split} (fingerprint {train.fingerprint[:16]}), "
                   f"recipe {recipe.name}, seed {seed}, {enc.n_train} images, no labels",
        "layer": "encoder output (global average pool), before the projection head",
        "preprocess": "x / 127.5 - 1",
        "recipe": recipe.describe(),
        "dataset_fingerprint": train.fingerprint,
        "training": enc.describe(),
        "caveat": "trained on the reference's training images and invariant to its "
                  "augmentations (small shifts, rotations, zoom, brightness/contrast, noise)",
    }
    conventions["training"].pop("from_cache", None)   # not part of the space's identity
    ext = TorchModuleExtractor(f"simclr-{recipe.model}-{train.name}", enc.encoder,
                               enc.net.feature_dim, weights_sha256=enc.weights_sha256,
                               conventions=conventions, device=dev)
    ext.from_cache = enc.from_cache
    ext.logits_unavailable = "the SSL encoder has no classifier head"
    return ext
