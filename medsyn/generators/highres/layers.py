"""The layers of progressive growing (Karras et al. 2018, "Progressive Growing of GANs", section
4): equalised learning rate, pixel normalisation and minibatch standard deviation.

- **Equalised learning rate** (section 4.1): weights are drawn from N(0, 1) and scaled at run
  time by He's constant ``gain / sqrt(fan_in)``, so Adam's per-parameter step size is the same
  for every layer whatever its fan-in.
- **Pixel normalisation** (section 4.2): each pixel's feature vector divided by its root mean
  square over channels (``eps`` = 1e-8), in the generator after every convolution.
- **Minibatch standard deviation** (section 3): the discriminator's last block gets one more
  feature map, the standard deviation of each feature over a group of images averaged over
  features and pixels, so it can see a lack of variation in the batch.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

HE_GAIN = math.sqrt(2.0)


def equalised_scale(fan_in: int, gain: float = HE_GAIN) -> float:
    """The run-time weight multiplier ``gain / sqrt(fan_in)``."""
    return gain / math.sqrt(fan_in)


class EqualisedConv2d(nn.Module):
    """A convolution whose N(0, 1) weights are multiplied by :func:`equalised_scale` at every
    forward pass (bias initialised to 0, not scaled)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 padding: int = 0, gain: float = HE_GAIN):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size,
                                               kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.scale = equalised_scale(in_channels * kernel_size * kernel_size, gain)
        self.padding = padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, padding=self.padding)


class EqualisedLinear(nn.Module):
    """A linear layer with the equalised learning rate (see :class:`EqualisedConv2d`)."""

    def __init__(self, in_features: int, out_features: int, gain: float = HE_GAIN):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features))
        self.scale = equalised_scale(in_features, gain)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.scale, self.bias)


def pixel_norm(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Each pixel's feature vector over its root mean square across channels (dim 1)."""
    return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + eps)


def minibatch_stddev(x: torch.Tensor, group_size: int = 4) -> torch.Tensor:
    """``x`` with one more channel: the standard deviation of each feature over a group of
    ``group_size`` images (the whole batch if it does not divide), averaged over features and
    pixels, broadcast over the group's pixels."""
    n, c, h, w = x.shape
    g = group_size if n % group_size == 0 and n >= group_size else n
    y = x.float().reshape(g, -1, c, h, w)
    y = y - y.mean(dim=0, keepdim=True)
    y = (y.pow(2).mean(dim=0) + 1e-8).sqrt()             # [n/g, c, h, w]
    y = y.mean(dim=(1, 2, 3))                            # [n/g]
    y = y.reshape(-1, 1, 1, 1).repeat(g, 1, h, w).to(x.dtype)
    return torch.cat([x, y], dim=1)


def fade(old: torch.Tensor, new: torch.Tensor, alpha: float) -> torch.Tensor:
    """The fade-in blend ``(1 - alpha) * old + alpha * new``; exactly ``old`` at alpha 0 and
    exactly ``new`` at alpha 1 (``torch.lerp`` computes ``new - (new - old) * (1 - alpha)`` for
    alpha >= 0.5)."""
    return torch.lerp(old, new, float(alpha))
