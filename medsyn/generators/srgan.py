"""SRResNet / SRGAN building blocks (Ledig et al., CVPR 2017), as plain ``nn.Module``s.

- :class:`SRResNet`: 9x9 conv + PReLU, ``n_blocks`` residual blocks (conv3-BN-PReLU-conv3-BN,
  identity skip), conv3-BN + long skip, log2(scale) stages of conv3 (64 -> 256) + pixel
  shuffle x2 + PReLU, 9x9 conv to the image channels. Linear output.
- :class:`SRDiscriminator`: k3n64s1 + LeakyReLU(0.2), then seven conv-BN-LeakyReLU blocks
  k3n64s2, k3n128s1, k3n128s2, k3n256s1, k3n256s2, k3n512s1, k3n512s2, then dense 1024,
  LeakyReLU(0.2), dense 1 (a logit: the sigmoid lives in the BCE-with-logits loss).
- :func:`generator_adversarial_loss` (BCE with logits, weight 1e-3) and
  :func:`discriminator_loss`.
- :class:`ContentLoss`: MSE between VGG19 feature maps (``relu5_4``, the paper's VGG54, features
  rescaled by 1/12.75) when local VGG19 weights are given (option or ``MEDSYN_VGG19_WEIGHTS``),
  otherwise pixel MSE; :attr:`ContentLoss.description` says which.

Networks see images in [-1, 1] (``x / 127.5 - 1``) at both ends, as everywhere in medsyn.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from medsyn.errors import CheckpointError, ConfigError
from medsyn.settings import ENV_VGG19_WEIGHTS
from medsyn.weights import read_state_dict

ADVERSARIAL_WEIGHT = 1e-3
VGG_FEATURE_SCALE = 1.0 / 12.75  # the paper's rescaling of VGG feature maps
SR_SCALES = (2, 4, 8)

# torchvision's VGG19 "features" (configuration E); "M" = 2x2 max pooling.
VGG19_CONFIG = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
                512, 512, 512, 512, "M", 512, 512, 512, 512, "M"]
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ------------------------------------------------------------------------------ generator


class ResidualBlock(nn.Module):
    def __init__(self, features: int = 64):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(features, features, 3, padding=1), nn.BatchNorm2d(features), nn.PReLU(),
            nn.Conv2d(features, features, 3, padding=1), nn.BatchNorm2d(features))

    def forward(self, x):
        return x + self.body(x)


class UpsampleBlock(nn.Module):
    """conv3 to 4x the channels, pixel shuffle x2, PReLU (the paper's sub-pixel stage)."""

    def __init__(self, features: int = 64):
        super().__init__()
        self.conv = nn.Conv2d(features, features * 4, 3, padding=1)
        self.shuffle = nn.PixelShuffle(2)
        self.act = nn.PReLU()

    def forward(self, x):
        return self.act(self.shuffle(self.conv(x)))


class SRResNet(nn.Module):
    """The SRGAN generator. ``scale`` in (2, 4, 8): one pixel-shuffle x2 stage per factor 2."""

    def __init__(self, channels: int = 3, scale: int = 4, n_blocks: int = 16,
                 features: int = 64):
        super().__init__()
        if scale not in SR_SCALES:
            raise ConfigError(f"SR scale must be one of {SR_SCALES}, got {scale!r}.")
        if channels not in (1, 3):
            raise ConfigError(f"channels must be 1 or 3, got {channels!r}.")
        if n_blocks < 1 or features < 1:
            raise ConfigError(f"n_blocks and features must be >= 1, got {n_blocks}, {features}.")
        self.channels, self.scale = channels, scale
        self.n_blocks, self.features = n_blocks, features
        self.head = nn.Sequential(nn.Conv2d(channels, features, 9, padding=4), nn.PReLU())
        self.blocks = nn.Sequential(*[ResidualBlock(features) for _ in range(n_blocks)])
        self.body_tail = nn.Sequential(nn.Conv2d(features, features, 3, padding=1),
                                       nn.BatchNorm2d(features))
        self.upsample = nn.Sequential(
            *[UpsampleBlock(features) for _ in range(int(math.log2(scale)))])
        self.tail = nn.Conv2d(features, channels, 9, padding=4)

    def forward(self, x):
        head = self.head(x)
        x = head + self.body_tail(self.blocks(head))
        return self.tail(self.upsample(x))

    def arch(self) -> dict:
        return {"name": "srresnet", "channels": self.channels, "scale": self.scale,
                "n_blocks": self.n_blocks, "features": self.features}


# ------------------------------------------------------------------------------ discriminator


class SRDiscriminator(nn.Module):
    """The SRGAN discriminator, returning one logit per image.

    The paper feeds 96x96 crops, so the last block gives 6x6x512 and the first dense layer
    sees 18,432 inputs. An adaptive average pool to ``pool_size`` (6) keeps that dense layer
    at the paper's size for any input of at least 16 px; at 96 px it is the identity.
    """

    def __init__(self, channels: int = 3, features: int = 64, dense: int = 1024,
                 pool_size: int = 6):
        super().__init__()
        if channels not in (1, 3):
            raise ConfigError(f"channels must be 1 or 3, got {channels!r}.")
        self.channels, self.features, self.dense, self.pool_size = (
            channels, features, dense, pool_size)
        layers = [nn.Conv2d(channels, features, 3, padding=1), nn.LeakyReLU(0.2, inplace=True)]
        in_ch = features
        # (multiplier of `features`, stride): k3n64s2, k3n128s1, ..., k3n512s2
        for mult, stride in ((1, 2), (2, 1), (2, 2), (4, 1), (4, 2), (8, 1), (8, 2)):
            out_ch = features * mult
            layers += [nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1),
                       nn.BatchNorm2d(out_ch), nn.LeakyReLU(0.2, inplace=True)]
            in_ch = out_ch
        self.features_net = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(pool_size)
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(in_ch * pool_size * pool_size, dense),
            nn.LeakyReLU(0.2, inplace=True), nn.Linear(dense, 1))

    def forward(self, x):
        if x.shape[-1] < 16 or x.shape[-2] < 16:
            raise ConfigError(
                f"the SRGAN discriminator needs images of at least 16x16 (four stride-2 "
                f"layers), got {tuple(x.shape[-2:])}.")
        return self.classifier(self.pool(self.features_net(x))).squeeze(1)

    def arch(self) -> dict:
        return {"name": "srgan-discriminator", "channels": self.channels,
                "features": self.features, "dense": self.dense, "pool_size": self.pool_size}


def generator_adversarial_loss(fake_logits: torch.Tensor,
                               weight: float = ADVERSARIAL_WEIGHT) -> torch.Tensor:
    """``weight * BCE(D(G(lr)), real)`` with logits: the generator's adversarial term."""
    return weight * F.binary_cross_entropy_with_logits(fake_logits,
                                                       torch.ones_like(fake_logits))


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """``BCE(D(hr), real) + BCE(D(sr), fake)`` with logits."""
    return (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
            + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))


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


# ------------------------------------------------------------------------------ inference


@torch.no_grad()
def upscale_uint8(model: nn.Module, lr: torch.Tensor, batch_size: int = 16,
                  device: torch.device | str | None = None, amp: bool = False) -> torch.Tensor:
    """Run an SR network on uint8 ``[N, C, h, w]`` LR images, returning uint8 HR images.

    ``x / 127.5 - 1`` in, ``round((y + 1) * 127.5)`` clamped to 0..255 out; eval mode;
    autocast to float16 when ``amp`` and the device is CUDA. The model's training flag is
    restored afterwards.
    """
    if lr.dtype != torch.uint8 or lr.ndim != 4:
        raise ConfigError(f"LR images must be uint8 [N, C, H, W], got {lr.dtype} "
                          f"{tuple(lr.shape)}.")
    if device is None:
        device = next(model.parameters()).device
    device = torch.device(device)
    was_training = model.training
    model.eval()
    outs = []
    try:
        for start in range(0, lr.shape[0], batch_size):
            x = lr[start:start + batch_size].to(device).float() / 127.5 - 1.0
            with torch.autocast(device.type, dtype=torch.float16,
                                enabled=amp and device.type == "cuda"):
                y = model(x)
            outs.append(((y.float() + 1.0) * 127.5).round_().clamp_(0, 255)
                        .to(torch.uint8).cpu())
    finally:
        model.train(was_training)
    return torch.cat(outs) if outs else torch.empty(0, dtype=torch.uint8)
