"""The feature-extractor interface every feature space implements, and the generic
``nn.Module`` adapter (how an in-domain network plugs in)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from medsyn.device import resolve_device
from medsyn.errors import MedsynError
from medsyn.model_range import to_model_range


class FeatureExtractor:
    """Base class: ``extract(images)`` maps a uint8 batch ``[N, C, H, W]`` to features.

    Attributes every extractor sets: ``name``, ``feature_dim``, ``weights_sha256`` (``None``
    when it has no weights), ``conventions`` (a JSON-ready dict) and ``logits_unavailable``
    (``None`` when ``extract`` also returns classifier ``"logits"`` for the Inception Score,
    else the reason why not).
    """

    name: str = "base"
    feature_dim: int = 0
    weights_sha256: str | None = None
    conventions: dict = {}
    logits_unavailable: str | None = "this extractor has no classifier head"
    device: torch.device = torch.device("cpu")

    @property
    def has_logits(self) -> bool:
        return self.logits_unavailable is None

    def extract(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"features": float32 [N, feature_dim]}`` (+ ``"logits"`` if available), on CPU."""
        raise NotImplementedError

    def prepare(self, images: torch.Tensor) -> None:
        """Called with (a sample of) the images before features are extracted or the cache key
        is computed: a space whose layout depends on the image size sets itself up here."""

    def describe(self) -> dict:
        return {"name": self.name, "feature_dim": self.feature_dim,
                "weights_sha256": self.weights_sha256, "conventions": self.conventions,
                "logits": self.logits_unavailable or "available"}

    def cache_identity(self) -> dict:
        """What, besides the images, determines this extractor's features."""
        return {"name": self.name, "feature_dim": self.feature_dim,
                "weights_sha256": self.weights_sha256, "conventions": self.conventions}


def _three_channels(images: torch.Tensor) -> torch.Tensor:
    if images.shape[1] == 1:
        return images.expand(-1, 3, -1, -1)
    if images.shape[1] != 3:
        raise MedsynError(f"images must have 1 or 3 channels, got {images.shape[1]}.")
    return images


class TorchModuleExtractor(FeatureExtractor):
    """Any ``nn.Module`` mapping a preprocessed batch to ``[N, feature_dim]`` features.

    ``preprocess`` turns the uint8 batch (on the device) into the module's input; the default
    is medsyn's network convention ``x / 127.5 - 1``. Pass ``weights_sha256`` so cached real
    features are invalidated when the weights change. This is how an in-domain classifier
    (penultimate-layer features of a network trained on the real training split) plugs in.
    """

    def __init__(self, name: str, module: torch.nn.Module, feature_dim: int,
                 weights_sha256: str | None, conventions: dict | None = None,
                 preprocess: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 device=None):
        self.name = name
        self.feature_dim = int(feature_dim)
        self.weights_sha256 = weights_sha256
        self.device = resolve_device(device)
        self.module = module.eval().requires_grad_(False).to(self.device)
        self.preprocess = preprocess or to_model_range
        self.conventions = {"input": "uint8 [N, C, H, W]",
                            "preprocess": "x / 127.5 - 1" if preprocess is None else "custom",
                            **(conventions or {})}
        self.logits_unavailable = "this extractor has no Inception classifier head"

    @torch.no_grad()
    def extract(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.preprocess(images.to(self.device, non_blocking=True))
        feats = self.module(x).flatten(1).float().cpu()
        if feats.shape[1] != self.feature_dim:
            raise MedsynError(f"extractor {self.name} returned {feats.shape[1]} features, "
                              f"declared {self.feature_dim}.")
        return {"features": feats}
