"""Networks of translation, after the reference implementation of Isola et al. / Zhu et al.
(junyanz/pytorch-CycleGAN-and-pix2pix):

- :class:`UNetGenerator`: pix2pix's U-Net (4x4 stride-2 convolutions, skips, batch norm,
  dropout 0.5 in the inner decoder blocks of 8 x features channels, tanh);
- :class:`ResnetGenerator`: CycleGAN's generator (7x7 reflection-padded stem, two stride-2
  downsamplings, residual blocks, two upsamplings, instance norm, tanh);
- :class:`PatchDiscriminator`: the PatchGAN (70x70 receptive field with 3 strided layers);
- :class:`CycleGenerators` / :class:`CycleDiscriminators`: CycleGAN's two generators and two
  discriminators as one module each (one optimizer each, as the paper; one forward per
  backward, as DistributedDataParallel wants).

Weights start from N(0, 0.02) (norm layers' scales from N(1, 0.02)), as in the reference.
With ``--spectral-norm`` (``arch["discriminator"]["spectral_norm"]``) every layer of the
PatchGANs is spectrally normalised after that initialisation
(:func:`medsyn.generators.stabilisers.spectral.spectrally_normalise`): pix2pix's batch norm
layers in D are removed with it, CycleGAN's instance norm (no parameters, no running
statistics) stays, as in SPADE's spectral-instance-norm discriminators.
"""

from __future__ import annotations

import torch
from torch import nn

from medsyn.generators.stabilisers.spectral import spectrally_normalise
from medsyn.model_range import to_model_range, to_uint8


def init_weights(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    return nn.InstanceNorm2d(channels, affine=False)


class UNetGenerator(nn.Module):
    """pix2pix's U-Net: ``depth`` halvings (the image size must divide by ``2 ** depth``)."""

    def __init__(self, in_channels: int, out_channels: int, features: int = 64, depth: int = 8,
                 dropout: float = 0.5):
        super().__init__()
        if depth < 2:
            raise ValueError("a U-Net needs depth >= 2")
        self.depth = depth
        widths = [features * min(2 ** i, 8) for i in range(depth)]
        self.downs = nn.ModuleList()
        for i in range(depth):
            innermost, outermost = i == depth - 1, i == 0
            layers: list[nn.Module] = [] if outermost else [nn.LeakyReLU(0.2, True)]
            cin = in_channels if outermost else widths[i - 1]
            layers.append(nn.Conv2d(cin, widths[i], 4, 2, 1, bias=outermost or innermost))
            if not (outermost or innermost):
                layers.append(nn.BatchNorm2d(widths[i]))
            self.downs.append(nn.Sequential(*layers))
        self.ups = nn.ModuleList()
        for i in reversed(range(depth)):
            cin = widths[i] if i == depth - 1 else 2 * widths[i]
            cout = out_channels if i == 0 else widths[i - 1]
            layers = [nn.ReLU(True), nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=i == 0)]
            if i == 0:
                layers.append(nn.Tanh())
            else:
                layers.append(nn.BatchNorm2d(cout))
                # the reference's dropout blocks: the 8 x features ones between the innermost
                # block and the first four levels
                if dropout and 4 <= i <= depth - 2:
                    layers.append(nn.Dropout(dropout))
            self.ups.append(nn.Sequential(*layers))
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        h = x
        for down in self.downs:
            h = down(h)
            skips.append(h)
        h = self.ups[0](skips[-1])
        for k, up in enumerate(self.ups[1:]):
            h = up(torch.cat([skips[self.depth - 2 - k], h], dim=1))
        return h


class ResidualBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=True),
            nn.InstanceNorm2d(channels), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=True),
            nn.InstanceNorm2d(channels))

    def forward(self, x):
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """CycleGAN's generator (the image size must divide by 4)."""

    def __init__(self, in_channels: int, out_channels: int, features: int = 64,
                 n_blocks: int = 9):
        super().__init__()
        f = features
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, f, 7),
                                   nn.InstanceNorm2d(f), nn.ReLU(True)]
        for mult in (1, 2):
            layers += [nn.Conv2d(f * mult, f * mult * 2, 3, 2, 1), nn.InstanceNorm2d(f * mult * 2),
                       nn.ReLU(True)]
        layers += [ResidualBlock(f * 4) for _ in range(n_blocks)]
        for mult in (4, 2):
            layers += [nn.ConvTranspose2d(f * mult, f * mult // 2, 3, 2, 1, output_padding=1),
                       nn.InstanceNorm2d(f * mult // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(f, out_channels, 7), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        init_weights(self)

    def forward(self, x):
        return self.net(x)


class PatchDiscriminator(nn.Module):
    """PatchGAN: ``n_layers`` stride-2 4x4 convolutions, one stride-1, then a 1-channel map of
    logits, one per overlapping patch."""

    def __init__(self, in_channels: int, features: int = 64, n_layers: int = 3,
                 norm: str = "batch"):
        super().__init__()
        use_bias = norm != "batch"
        layers: list[nn.Module] = [nn.Conv2d(in_channels, features, 4, 2, 1),
                                   nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2 ** n, 8)
            stride = 2 if n < n_layers else 1
            layers += [nn.Conv2d(features * prev, features * mult, 4, stride, 1, bias=use_bias),
                       _norm(norm, features * mult), nn.LeakyReLU(0.2, True)]
        layers.append(nn.Conv2d(features * mult, 1, 4, 1, 1))
        self.net = nn.Sequential(*layers)
        init_weights(self)

    def forward(self, x):
        return self.net(x)


class CycleGenerators(nn.Module):
    """``g_ab`` (A -> B) and ``g_ba`` (B -> A). ``forward(a, b)`` returns every image the
    losses need: fake B, fake A, the two reconstructions, and the identity mappings
    ``g_ab(b)`` / ``g_ba(a)`` (None when ``identity`` is off)."""

    def __init__(self, channels_a: int, channels_b: int, features: int, n_blocks: int):
        super().__init__()
        self.g_ab = ResnetGenerator(channels_a, channels_b, features, n_blocks)
        self.g_ba = ResnetGenerator(channels_b, channels_a, features, n_blocks)

    def forward(self, a, b, identity: bool = True):
        fake_b, fake_a = self.g_ab(a), self.g_ba(b)
        rec_a, rec_b = self.g_ba(fake_b), self.g_ab(fake_a)
        idt_b = self.g_ab(b) if identity else None
        idt_a = self.g_ba(a) if identity else None
        return fake_b, fake_a, rec_a, rec_b, idt_b, idt_a


class CycleDiscriminators(nn.Module):
    """``d_a`` (real A vs translated B -> A) and ``d_b``; ``forward(b_images, a_images)``
    returns ``(d_b(b_images), d_a(a_images))``."""

    def __init__(self, channels_a: int, channels_b: int, features: int, n_layers: int):
        super().__init__()
        self.d_a = PatchDiscriminator(channels_a, features, n_layers, norm="instance")
        self.d_b = PatchDiscriminator(channels_b, features, n_layers, norm="instance")

    def forward(self, b_images, a_images):
        return self.d_b(b_images), self.d_a(a_images)


def build_translation_networks(arch: dict) -> tuple[nn.Module, nn.Module]:
    """``(generator, discriminator)`` from an ``arch`` dict (stored in checkpoints)."""
    g, d = arch["generator"], arch["discriminator"]
    if arch["kind"] == "pix2pix":
        gen = UNetGenerator(g["in_channels"], g["out_channels"], g["features"], g["depth"],
                            g["dropout"])
        disc = PatchDiscriminator(d["in_channels"], d["features"], d["n_layers"], "batch")
    elif arch["kind"] == "cyclegan":
        gen = CycleGenerators(g["channels_a"], g["channels_b"], g["features"], g["n_blocks"])
        disc = CycleDiscriminators(g["channels_a"], g["channels_b"], d["features"],
                                   d["n_layers"])
    else:
        raise ValueError(f"unknown translation architecture {arch['kind']!r}")
    if d.get("spectral_norm"):              # absent in checkpoints from before the option: off
        spectrally_normalise(disc)
    return gen, disc


@torch.no_grad()
def translate_uint8(net: nn.Module, images: torch.Tensor, batch_size: int = 16,
                    device: torch.device | str | None = None, amp: bool = False) -> torch.Tensor:
    """uint8 ``[N, C, H, W]`` through an image-to-image ``net`` (in [-1, 1]) -> uint8 on the
    CPU, in batches, in eval mode (its training flag is restored afterwards); float16 autocast
    when ``amp`` on CUDA."""
    if device is None:
        device = next(net.parameters()).device
    device = torch.device(device)
    was_training = net.training
    net.eval()
    outs = []
    try:
        for start in range(0, images.shape[0], batch_size):
            x = to_model_range(images[start:start + batch_size].to(device))
            with torch.autocast(device.type, dtype=torch.float16,
                                enabled=amp and device.type == "cuda"):
                y = net(x)
            outs.append(to_uint8(y.float()).cpu())
    finally:
        net.train(was_training)
    return torch.cat(outs) if outs else images.new_zeros((0, *images.shape[1:]))
