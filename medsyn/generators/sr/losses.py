"""SRGAN losses (Ledig et al., CVPR 2017).

- :func:`generator_adversarial_loss` (BCE with logits, weight 1e-3) and
  :func:`discriminator_loss`.
- :class:`ContentLoss`: MSE between VGG19 feature maps (``relu5_4``, the paper's VGG54, features
  rescaled by 1/12.75) when local VGG19 weights are given (option or ``MEDSYN_VGG19_WEIGHTS``),
  otherwise pixel MSE; :attr:`ContentLoss.description` says which.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from medsyn.errors import CheckpointError, ConfigError
from medsyn.generators.engine.adversarial import bce_with_logits
from medsyn.settings import ENV_VGG19_WEIGHTS
from medsyn.weights import read_state_dict

ADVERSARIAL_WEIGHT = 1e-3
VGG_FEATURE_SCALE = 1.0 / 12.75  # the paper's rescaling of VGG feature maps
# torchvision's VGG19 "features" (configuration E); "M" = 2x2 max pooling.
VGG19_CONFIG = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
                512, 512, 512, 512, "M", 512, 512, 512, 512, "M"]
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def generator_adversarial_loss(fake_logits: torch.Tensor,
                               weight: float = ADVERSARIAL_WEIGHT) -> torch.Tensor:
    """``weight * BCE(D(G(lr)), real)`` with logits, in float32: the generator's adversarial
    term (what the adversarial phase of :class:`~medsyn.generators.sr.step.SRStep` adds)."""
    return weight * bce_with_logits(fake_logits, 1.0)


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """``BCE(D(hr), real) + BCE(D(sr), fake)`` with logits, in float32 (training takes the two
    terms in two backward passes,
    :class:`~medsyn.generators.engine.adversarial.AdversarialUpdate`)."""
    return bce_with_logits(real_logits, 1.0) + bce_with_logits(fake_logits, 0.0)


# ------------------------------------------------------------------------------ content loss


def vgg19_layer_names() -> list[str]:
    """Names of torchvision's ``vgg19().features`` modules by index (conv1_1, relu1_1, ...)."""
    names, block, conv = [], 1, 1
    for item in VGG19_CONFIG:
        if item == "M":
            names.append(f"pool{block}")
            block, conv = block + 1, 1
        else:
            names += [f"conv{block}_{conv}", f"relu{block}_{conv}"]
            conv += 1
    return names


def build_vgg19_features(until: str = "relu5_4") -> nn.Sequential:
    """torchvision's VGG19 ``features`` up to and including layer ``until`` (random init).

    Module indices equal torchvision's, so its state_dict keys (``features.N.weight``) load.
    """
    names = vgg19_layer_names()
    if until not in names:
        raise ConfigError(f"unknown VGG19 layer {until!r}; choose one of "
                          f"{', '.join(n for n in names if n.startswith('relu'))}.")
    layers, in_ch = [], 3
    for item in VGG19_CONFIG:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(in_ch, item, 3, padding=1), nn.ReLU(inplace=True)]
            in_ch = item
    return nn.Sequential(*layers[: names.index(until) + 1])


def resolve_vgg19_weights(path: str | os.PathLike | None = None) -> Path | None:
    """The VGG19 weights file to use: ``path``, else ``$MEDSYN_VGG19_WEIGHTS``, else None."""
    if path is not None:
        return Path(path).expanduser()
    env = os.environ.get(ENV_VGG19_WEIGHTS)
    return Path(env).expanduser() if env else None


def load_vgg19_features(path: str | os.PathLike, until: str = "relu5_4") -> nn.Sequential:
    """Frozen VGG19 features up to ``until`` from a torchvision ``vgg19`` state_dict file.

    Accepts the full model's state_dict (``features.N.*`` keys; the classifier is ignored) or
    that of ``vgg19().features`` (``N.*`` keys).
    """
    path = Path(path)
    where = f"VGG19 weights {path}"
    fix = (f" Give a torchvision vgg19 state_dict (torchvision.models.vgg19(weights="
           f"'IMAGENET1K_V1').state_dict(), saved with torch.save) via the option or "
           f"{ENV_VGG19_WEIGHTS}, or leave both unset to use the pixel-MSE content loss.")
    try:
        state = read_state_dict(path, "VGG19 weights", fix.strip())
    except ConfigError as exc:
        raise CheckpointError(str(exc)) from None
    if any(k.startswith("features.") for k in state):
        state = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
    net = build_vgg19_features(until)
    expected = net.state_dict()
    missing = [k for k in expected if k not in state]
    if missing:
        raise CheckpointError(
            f"{where}: missing {len(missing)} VGG19 tensors needed up to {until} (first: "
            f"features.{missing[0]}); is this a VGG19 (not VGG16/other) state_dict?{fix}")
    for key, ref in expected.items():
        got = state[key]
        if tuple(got.shape) != tuple(ref.shape):
            raise CheckpointError(
                f"{where}: features.{key} has shape {tuple(got.shape)}, VGG19 needs "
                f"{tuple(ref.shape)}; is this a VGG19 state_dict?{fix}")
        if not torch.isfinite(got).all():
            raise CheckpointError(f"{where}: features.{key} contains NaN or inf.{fix}")
    net.load_state_dict({k: state[k].float() for k in expected})
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


class ContentLoss(nn.Module):
    """SRGAN content loss: VGG19 feature MSE when VGG19 weights are available, else pixel MSE.

    ``mode``: "auto" (VGG19 if ``vgg19_weights`` or ``$MEDSYN_VGG19_WEIGHTS`` names a file,
    pixel MSE otherwise), "vgg19" (error without weights) or "pixel". Inputs are SR and HR
    batches in [-1, 1]; grayscale is repeated to three channels for VGG19.
    :attr:`description` is a one-line string for logs, checkpoints and results.
    """

    def __init__(self, mode: str = "auto", vgg19_weights: str | os.PathLike | None = None,
                 layer: str = "relu5_4", feature_scale: float = VGG_FEATURE_SCALE):
        super().__init__()
        if mode not in ("auto", "vgg19", "pixel"):
            raise ConfigError(f"content loss must be 'auto', 'vgg19' or 'pixel', got {mode!r}.")
        weights = resolve_vgg19_weights(vgg19_weights) if mode != "pixel" else None
        if mode == "vgg19" and weights is None:
            raise ConfigError(
                f"content loss 'vgg19' needs local VGG19 weights: pass their path or set "
                f"{ENV_VGG19_WEIGHTS} (a torchvision vgg19 state_dict), or use 'auto'/'pixel'.")
        self.layer, self.feature_scale = layer, feature_scale
        self.weights_path = str(weights) if weights is not None else None
        if weights is None:
            self.kind = "pixel"
            self.vgg = None
            self.description = (f"pixel MSE (no VGG19 weights: {ENV_VGG19_WEIGHTS} unset)"
                                if mode == "auto" else "pixel MSE")
        else:
            self.kind = "vgg19"
            self.vgg = load_vgg19_features(weights, layer)
            self.description = (f"VGG19 {layer} feature MSE, features x {feature_scale:.6g} "
                                f"(weights {weights.name})")
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1),
                             persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1),
                             persistent=False)

    def info(self) -> dict:
        """JSON-ready record of the content loss (what checkpoints and results store)."""
        out = {"kind": self.kind, "description": self.description}
        if self.kind == "vgg19":
            from medsyn.utils import file_digest

            out.update(layer=self.layer, feature_scale=self.feature_scale,
                       weights=self.weights_path, weights_sha256=file_digest(self.weights_path))
        return out

    def _features(self, x):
        x = (x + 1.0) / 2.0
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return self.vgg((x - self.mean) / self.std) * self.feature_scale

    def forward(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        if sr.shape != hr.shape:
            raise ConfigError(f"content loss: SR {tuple(sr.shape)} and HR {tuple(hr.shape)} "
                              "differ in shape.")
        if self.vgg is None:
            return F.mse_loss(sr, hr)
        with torch.no_grad():
            target = self._features(hr)
        return F.mse_loss(self._features(sr), target)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.vgg is not None:
            self.vgg.eval()  # frozen feature extractor, whatever the trainer does
        return self
