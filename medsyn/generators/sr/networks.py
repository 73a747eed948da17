"""SRResNet / SRGAN networks (Ledig et al., CVPR 2017), as plain ``nn.Module``s, and how they run
on uint8 images.

- :class:`SRResNet`: 9x9 conv + PReLU, ``n_blocks`` residual blocks (conv3-BN-PReLU-conv3-BN,
  identity skip), conv3-BN + long skip, log2(scale) stages of conv3 (64 -> 256) + pixel
  shuffle x2 + PReLU, 9x9 conv to the image channels. Linear output.
- :class:`SRDiscriminator`: k3n64s1 + LeakyReLU(0.2), then seven conv-BN-LeakyReLU blocks
  k3n64s2, k3n128s1, k3n128s2, k3n256s1, k3n256s2, k3n512s1, k3n512s2, then dense 1024,
  LeakyReLU(0.2), dense 1 (a logit: the sigmoid lives in the BCE-with-logits loss).
- :func:`build_sr_networks`: both from the ``arch`` dict a checkpoint stores.
- :func:`upscale_uint8`: uint8 LR images in, uint8 SR images out.

Networks see images in [-1, 1] (:mod:`medsyn.model_range`) at both ends, as everywhere in
medsyn. The losses are in :mod:`medsyn.generators.sr.losses`.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from medsyn.errors import ConfigError
from medsyn.model_range import to_model_range, to_uint8

SR_SCALES = (2, 4, 8)


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


def build_sr_networks(arch: dict) -> tuple[SRResNet, SRDiscriminator | None]:
    """Fresh SRResNet (and SRGAN discriminator for ``srgan``) from an ``arch`` dict."""
    g = arch["generator"]
    gen = SRResNet(channels=g["channels"], scale=g["scale"], n_blocks=g["n_blocks"],
                   features=g["features"])
    d = arch.get("discriminator")
    disc = None if d is None else SRDiscriminator(channels=d["channels"], features=d["features"],
                                                  dense=d["dense"], pool_size=d["pool_size"])
    return gen, disc


# ------------------------------------------------------------------------------ inference


@torch.no_grad()
def upscale_uint8(model: nn.Module, lr: torch.Tensor, batch_size: int = 16,
                  device: torch.device | str | None = None, amp: bool = False) -> torch.Tensor:
    """Run an SR network on uint8 ``[N, C, h, w]`` LR images, returning uint8 HR images.

    :func:`~medsyn.model_range.to_model_range` in, :func:`~medsyn.model_range.to_uint8` out;
    eval mode; autocast to float16 when ``amp`` and the device is CUDA. The model's training
    flag is restored afterwards.
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
            x = to_model_range(lr[start:start + batch_size].to(device))
            with torch.autocast(device.type, dtype=torch.float16,
                                enabled=amp and device.type == "cuda"):
                y = model(x)
            outs.append(to_uint8(y).cpu())
    finally:
        model.train(was_training)
    return torch.cat(outs) if outs else torch.empty(0, dtype=torch.uint8)
