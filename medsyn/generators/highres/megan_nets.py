"""MEGAN's networks (Uzunova et al. 2019): a U-Net for the whole low-resolution image, a
residual patch generator per higher scale, and PatchGAN discriminators.

Inputs (all in [-1, 1] except the class planes, one-hot maps of the class when the data have
more than one):

- low-resolution U-Net: edge map (1), noise plane (1), class planes (K);
- patch generator of scale s: upscaled previous-scale patch (C), edge patch (1), noise plane
  (1), class planes (K);
- discriminators: the generator's condition (its input minus the noise), then the image (C).

Instance normalisation everywhere (no running statistics: a network's output does not depend
on the other images of the batch, and the EMA copy needs no batch-norm recalibration).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

MAX_WIDTH_FACTOR = 8


def class_planes(labels: torch.Tensor | None, num_classes: int, size: int) -> torch.Tensor | None:
    """One-hot maps ``[N, K, size, size]`` of ``labels`` (None when there is one class)."""
    if labels is None or num_classes <= 1:
        return None
    onehot = F.one_hot(labels, num_classes).float()
    return onehot[:, :, None, None].expand(-1, -1, size, size)


def join(*parts: torch.Tensor | None) -> torch.Tensor:
    return torch.cat([p for p in parts if p is not None], dim=1)


def _norm(c: int) -> nn.Module:
    return nn.InstanceNorm2d(c, affine=True)


class UNet(nn.Module):
    """pix2pix's U-Net: stride-2 4x4 convolutions down to 4 px, transposed ones back up, with
    skip connections; tanh output."""

    def __init__(self, in_channels: int, out_channels: int, width: int, size: int):
        super().__init__()
        depth = max(1, size.bit_length() - 3)          # size / 2**depth == 4
        widths = [width * min(2 ** i, MAX_WIDTH_FACTOR) for i in range(depth)]
        self.down = nn.ModuleList()
        cin = in_channels
        for i, w in enumerate(widths):
            layers = [nn.Conv2d(cin, w, 4, 2, 1)]
            if i > 0:
                layers.append(_norm(w))
            layers.append(nn.LeakyReLU(0.2))
            self.down.append(nn.Sequential(*layers))
            cin = w
        self.up = nn.ModuleList()
        for j in reversed(range(depth)):
            cin = widths[j] if j == depth - 1 else 2 * widths[j]
            if j == 0:
                self.up.append(nn.Sequential(nn.ConvTranspose2d(cin, out_channels, 4, 2, 1),
                                             nn.Tanh()))
            else:
                self.up.append(nn.Sequential(nn.ConvTranspose2d(cin, widths[j - 1], 4, 2, 1),
                                             _norm(widths[j - 1]), nn.ReLU()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for layer in self.down:
            x = layer(x)
            skips.append(x)
        x = skips.pop()
        for i, layer in enumerate(self.up):
            if i > 0:
                x = torch.cat([x, skips.pop()], dim=1)
            x = layer(x)
        return x


class ResidualBlock(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c, c, 3, 1, 1), _norm(c), nn.ReLU(),
                                  nn.Conv2d(c, c, 3, 1, 1), _norm(c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class PatchGenerator(nn.Module):
    """A small ResNet generator (one 2x downsampling, ``blocks`` residual blocks, one 2x
    upsampling); tanh output. Fully convolutional: it runs on a patch or on a whole image."""

    def __init__(self, in_channels: int, out_channels: int, width: int, blocks: int = 3):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, 1, 1), _norm(width), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 4, 2, 1), _norm(2 * width), nn.ReLU(),
            *[ResidualBlock(2 * width) for _ in range(blocks)],
            nn.ConvTranspose2d(2 * width, width, 4, 2, 1), _norm(width), nn.ReLU(),
            nn.Conv2d(width, out_channels, 3, 1, 1), nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class PatchDiscriminator(nn.Module):
    """PatchGAN (pix2pix): a map of real/fake logits, one per receptive field."""

    def __init__(self, in_channels: int, width: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, width, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 4, 2, 1), _norm(2 * width), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * width, 4 * width, 3, 1, 1), _norm(4 * width), nn.LeakyReLU(0.2),
            nn.Conv2d(4 * width, 1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def build_megan(arch: dict) -> dict[str, nn.Module]:
    """``generator_0`` (U-Net), ``discriminator_0``, then ``generator_s`` /
    ``discriminator_s`` for every scale s above the low resolution."""
    c, k = arch["channels"], arch["num_classes"]
    planes = k if k > 1 else 0
    nets: dict[str, nn.Module] = {
        "generator_0": UNet(2 + planes, c, arch["g_width"], arch["scales"][0]),
        "discriminator_0": PatchDiscriminator(1 + planes + c, arch["d_width"]),
    }
    for s in range(1, len(arch["scales"])):
        nets[f"generator_{s}"] = PatchGenerator(c + 2 + planes, c, arch["g_width"])
        nets[f"discriminator_{s}"] = PatchDiscriminator(c + 1 + planes + c, arch["d_width"])
    return nets
