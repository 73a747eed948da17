"""PGGAN's networks (Karras et al. 2018), conditional by class.

Both networks hold every level from the start, so their parameters (and the optimizer state)
never change shape when the run grows; ``level`` and ``alpha`` choose the path at each call:

- generator: noise and a class embedding, pixel-normalised, -> a dense layer to the start map
  -> one block per doubling (nearest 2x upsampling, two 3x3 convolutions, leaky ReLU 0.2 and
  pixel norm after each) -> ``to_rgb`` (1x1) of the current level. While ``level`` fades in,
  the output is ``fade(upsample(to_rgb[level-1](h)), to_rgb[level](block(h)), alpha)``.
- discriminator: ``from_rgb`` (1x1) of the current level -> blocks (two 3x3 convolutions, 2x
  average pooling) down to the start map -> minibatch standard deviation -> 3x3 convolution
  -> dense -> one logit, plus the class projection of Miyato & Koyama 2018 (``<embed(y), h>``;
  the default) or an auxiliary class head (AC-GAN; ``conditioning="aux"``).
  While ``level`` fades in, ``fade(from_rgb[level-1](avgpool(x)), block(from_rgb[level](x)),
  alpha)`` enters the next block.

The layers of progressive growing:

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


LEAK = 0.2
# how the discriminator reads the class: a projection term (Miyato & Koyama 2018) or an
# auxiliary classification head (AC-GAN, Odena et al. 2017)
CONDITIONINGS = ("projection", "aux")
MAX_WIDTH_FACTOR = 8     # channels double from the highest resolution towards the start, to 8x


def level_widths(levels: int, width: int) -> list[int]:
    """Channels of each level, start first: ``width`` at the last level, doubling towards the
    start up to ``MAX_WIDTH_FACTOR * width``."""
    return [width * 2 ** min(levels - 1 - i, MAX_WIDTH_FACTOR.bit_length() - 1)
            for i in range(levels)]


def _act(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, LEAK)


class GeneratorBlock(nn.Module):
    """Nearest 2x upsampling, then two 3x3 convolutions, each followed by leaky ReLU and pixel
    norm."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1 = EqualisedConv2d(cin, cout, 3, padding=1)
        self.conv2 = EqualisedConv2d(cout, cout, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        x = pixel_norm(_act(self.conv1(x)))
        return pixel_norm(_act(self.conv2(x)))


class PgganGenerator(nn.Module):
    def __init__(self, resolutions: tuple[int, ...], channels: int, num_classes: int,
                 noise_dim: int, width: int):
        super().__init__()
        self.resolutions = tuple(resolutions)
        self.noise_dim = noise_dim
        self.num_classes = num_classes
        widths = level_widths(len(resolutions), width)
        self.start_size = resolutions[0]
        self.embed = nn.Embedding(num_classes, noise_dim) if num_classes > 1 else None
        in_dim = noise_dim * (2 if self.embed is not None else 1)
        self.dense = EqualisedLinear(in_dim, widths[0] * self.start_size ** 2,
                                     gain=2 ** 0.5 / 4)
        self.start_conv = EqualisedConv2d(widths[0], widths[0], 3, padding=1)
        self.blocks = nn.ModuleList(GeneratorBlock(widths[i - 1], widths[i])
                                    for i in range(1, len(resolutions)))
        self.to_rgb = nn.ModuleList(EqualisedConv2d(w, channels, 1, gain=1.0) for w in widths)

    @property
    def last_level(self) -> int:
        return len(self.resolutions) - 1

    def features(self, z: torch.Tensor, labels: torch.Tensor | None, level: int) -> torch.Tensor:
        """The feature map of ``level`` (before ``to_rgb``) through the stable path."""
        x = pixel_norm(z)
        if self.embed is not None:
            x = torch.cat([x, pixel_norm(self.embed(labels))], dim=1)
        x = self.dense(x).reshape(len(z), -1, self.start_size, self.start_size)
        x = pixel_norm(_act(x))
        x = pixel_norm(_act(self.start_conv(x)))
        for block in self.blocks[:level]:
            x = block(x)
        return x

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None,
                level: int | None = None, alpha: float = 1.0) -> torch.Tensor:
        """Images in [-1, 1] (no tanh, as in the paper) at ``resolutions[level]``; ``level``
        None: the last."""
        level = self.last_level if level is None else int(level)
        if level == 0 or alpha >= 1.0:
            return self.to_rgb[level](self.features(z, labels, level))
        h = self.features(z, labels, level - 1)
        old = F.interpolate(self.to_rgb[level - 1](h), scale_factor=2, mode="nearest")
        new = self.to_rgb[level](self.blocks[level - 1](h))
        return fade(old, new, alpha)


class DiscriminatorBlock(nn.Module):
    """Two 3x3 convolutions with leaky ReLU, then 2x average pooling."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1 = EqualisedConv2d(cin, cin, 3, padding=1)
        self.conv2 = EqualisedConv2d(cin, cout, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(_act(self.conv2(_act(self.conv1(x)))), 2)


class PgganDiscriminator(nn.Module):
    def __init__(self, resolutions: tuple[int, ...], channels: int, num_classes: int,
                 width: int, conditioning: str = "projection"):
        super().__init__()
        if conditioning not in CONDITIONINGS:
            raise ValueError(f"conditioning must be one of {CONDITIONINGS}, got {conditioning!r}")
        self.resolutions = tuple(resolutions)
        widths = level_widths(len(resolutions), width)
        self.from_rgb = nn.ModuleList(EqualisedConv2d(channels, w, 1) for w in widths)
        # blocks[i - 1] takes level i down to level i - 1
        self.blocks = nn.ModuleList(DiscriminatorBlock(widths[i], widths[i - 1])
                                    for i in range(1, len(resolutions)))
        w0, s0 = widths[0], resolutions[0]
        self.final_conv = EqualisedConv2d(w0 + 1, w0, 3, padding=1)
        self.final_dense = EqualisedLinear(w0 * s0 * s0, w0)
        self.out = EqualisedLinear(w0, 1, gain=1.0)
        conditional = num_classes > 1
        self.project = nn.Embedding(num_classes, w0) \
            if conditional and conditioning == "projection" else None
        if self.project is not None:
            nn.init.normal_(self.project.weight, 0.0, w0 ** -0.5)
        self.class_head = EqualisedLinear(w0, num_classes, gain=1.0) \
            if conditional and conditioning == "aux" else None

    @property
    def last_level(self) -> int:
        return len(self.resolutions) - 1

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None,
                level: int | None = None, alpha: float = 1.0,
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(logit [N], class logits [N, K] or None)`` for images at ``resolutions[level]``;
        class logits come from the auxiliary head (``conditioning="aux"``)."""
        level = self.last_level if level is None else int(level)
        h = _act(self.from_rgb[level](x))
        if level > 0:
            h = self.blocks[level - 1](h)
            if alpha < 1.0:
                old = _act(self.from_rgb[level - 1](F.avg_pool2d(x, 2)))
                h = fade(old, h, alpha)
            for i in range(level - 1, 0, -1):
                h = self.blocks[i - 1](h)
        h = _act(self.final_conv(minibatch_stddev(h)))
        h = _act(self.final_dense(h.flatten(1)))
        logit = self.out(h).squeeze(1)
        if self.project is not None:
            logit = logit + (self.project(labels) * h).sum(dim=1)
        return logit, (self.class_head(h) if self.class_head is not None else None)


def build_pggan(arch: dict) -> tuple[PgganGenerator, PgganDiscriminator]:
    """Fresh generator and discriminator from an ``arch`` dict (what a checkpoint stores)."""
    res = tuple(arch["resolutions"])
    g = PgganGenerator(res, arch["channels"], arch["num_classes"], arch["noise_dim"],
                       arch["g_width"])
    d = PgganDiscriminator(res, arch["channels"], arch["num_classes"], arch["d_width"],
                           arch.get("conditioning", "projection"))
    return g, d
