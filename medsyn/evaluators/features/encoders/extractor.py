"""The extractor every encoder source returns: a PIL preprocessing pipeline, then a forward
function of the library's module, on the chosen device."""

from __future__ import annotations

from collections.abc import Callable

import torch

from medsyn.device import resolve_device
from medsyn.errors import MedsynError
from medsyn.evaluators.features.base import FeatureExtractor
from medsyn.evaluators.features.encoders.preprocess import PilPipeline


class EncoderExtractor(FeatureExtractor):
    """``forward(pixel_values) -> [N, D]`` of a network the user brought, after ``pipeline``.

    ``unit_norm``: divide each feature vector by its L2 norm (CLIP embeddings for CMMD).
    ``weights_path`` and ``licence`` go into the provenance, not the cache key (the weights'
    sha256 is in both)."""

    def __init__(self, name: str, module: torch.nn.Module,
                 forward: Callable[[torch.Tensor], torch.Tensor], pipeline: PilPipeline,
                 feature_dim: int, weights_sha256: str, conventions: dict, device=None,
                 unit_norm: bool = False, weights_path: str = "", licence: str = ""):
        self.name = name
        self.feature_dim = int(feature_dim)
        self.weights_sha256 = weights_sha256
        self.device = resolve_device(device)
        self.module = module.eval().requires_grad_(False).to(self.device)
        self.forward = forward
        self.pipeline = pipeline
        self.unit_norm = unit_norm
        self.weights_path = weights_path
        self.licence = licence
        self.conventions = {**pipeline.describe(), **conventions,
                            **({"unit_norm": "features divided by their L2 norm"}
                               if unit_norm else {}), "dtype": "float32"}
        self.logits_unavailable = "this encoder has no Inception classifier head"

    def describe(self) -> dict:
        return {**super().describe(), "weights_path": self.weights_path,
                **({"licence": self.licence} if self.licence else {})}

    @torch.no_grad()
    def extract(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.pipeline(images).to(self.device, non_blocking=True)
        feats = self.forward(x).flatten(1).float()
        if self.unit_norm:
            feats = feats / torch.linalg.norm(feats, dim=-1, keepdim=True)
        if feats.shape[1] != self.feature_dim:
            raise MedsynError(f"extractor {self.name} returned {feats.shape[1]} features, "
                              f"declared {self.feature_dim}.")
        return {"features": feats.cpu()}
