"""Generator and discriminator networks of the image GANs (AC-GAN, conditional DCGAN, DCGAN).

Size rule (all models): an image of ``S`` pixels is built from a ``s0 x s0`` start map by ``k``
stride-2 stages, ``S = s0 * 2**k``, with ``k`` the largest number <= 4 such that ``S / 2**k``
is a whole number >= 4; ``k`` must be at least 2. So 28 -> 7 x 2**2, 32 -> 4 x 2**3,
64 -> 4 x 2**4, 112 -> 7 x 2**4, 128 -> 8 x 2**4. The discriminator mirrors it with ``k``
stride-2 stages down to ``s0 x s0``.

Widths follow the DCGAN convention: ``width`` is the channel count of the stage next to the
image, doubling at each stage away from it. The defaults reproduce the source material at 112 px
(AC-GAN: a 7x7x1024 noise map, transposed convolutions to 512, 256, 128, C channels; the
discriminator's 64, 128, 256, 512 channels down to 7x7x512).

Every network returns / takes tensors in the ``[-1, 1]`` convention; discriminators return
``(source_logit [N], class_logits [N, K] or None)`` -- the sigmoid / softmax live in the losses.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from medsyn.errors import ConfigError

MAX_STAGES = 4
MIN_START = 4
TESTED_SIZES = (28, 32, 64, 112, 128)


def size_plan(image_size: int) -> tuple[int, int]:
    """``(start_size, stages)`` with ``image_size == start_size * 2**stages`` (rule above)."""
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise ConfigError(f"image size must be a positive integer, got {image_size!r}.")
    for stages in range(MAX_STAGES, 1, -1):
        start, rest = divmod(image_size, 2 ** stages)
        if rest == 0 and start >= MIN_START:
            return start, stages
    raise ConfigError(
        f"image size {image_size} px is not supported: it must be s0 * 2**k with k >= 2 stride-2 "
        f"stages and a start map s0 >= {MIN_START} (a multiple of 4, at least 16), e.g. "
        f"{', '.join(map(str, TESTED_SIZES))}.")


def init_weights(module: nn.Module) -> None:
    """DCGAN initialisation: conv / transposed-conv / dense weights N(0, 0.02), biases 0;
    batch-norm scale N(1, 0.02), shift 0. Embeddings keep PyTorch's N(0, 1)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def _up(cin: int, cout: int, kernel: int, bias: bool = False) -> nn.ConvTranspose2d:
    """A transposed convolution that exactly doubles the map (Keras ``padding='same'``)."""
    pad = (kernel - 1) // 2
    return nn.ConvTranspose2d(cin, cout, kernel, stride=2, padding=pad,
                              output_padding=2 + 2 * pad - kernel, bias=bias)


# ------------------------------------------------------------------ AC-GAN (CXR-ACGAN)


class AcganGenerator(nn.Module):
    """Noise + integer label -> image.

    label -> embedding(``embed_dim``) -> dense -> ``s0 x s0 x 1`` map; noise -> dense + ReLU ->
    ``s0 x s0 x (width * 2**(k-1))``; concatenated; ``k`` transposed convolutions (kernel 5,
    stride 2), all but the last with batch norm + ReLU, the last with tanh.
    """

    def __init__(self, num_classes: int, channels: int, image_size: int, noise_dim: int = 100,
                 embed_dim: int = 50, width: int = 128, kernel: int = 5):
        super().__init__()
        self.start, stages = size_plan(image_size)
        self.start_channels = width * 2 ** (stages - 1)
        self.label_embedding = nn.Embedding(num_classes, embed_dim)
        self.label_dense = nn.Linear(embed_dim, self.start * self.start)
        self.noise_dense = nn.Linear(noise_dim, self.start_channels * self.start * self.start)
        layers: list[nn.Module] = []
        cin = self.start_channels + 1
        for i in range(stages - 1):
            cout = width * 2 ** (stages - 2 - i)
            layers += [_up(cin, cout, kernel), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
            cin = cout
        layers += [_up(cin, channels, kernel, bias=True), nn.Tanh()]
        self.blocks = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        s = self.start
        noise_map = F.relu(self.noise_dense(z)).view(-1, self.start_channels, s, s)
        label_map = self.label_dense(self.label_embedding(labels)).view(-1, 1, s, s)
        x = torch.cat([noise_map, label_map.to(noise_map.dtype)], dim=1)
        if self.blocks[0].weight.is_contiguous(memory_format=torch.channels_last):
            x = x.contiguous(memory_format=torch.channels_last)
        return self.blocks(x)


class AcganDiscriminator(nn.Module):
    """Image -> (real/fake logit, class logits).

    ``k`` blocks of convolution (kernel 3, stride 2), batch norm, LeakyReLU(0.2), dropout(0.5)
    down to ``s0 x s0 x (width * 2**(k-1))``; flatten; a dense source head and a dense class
    head (sigmoid and softmax are applied by the losses). ``twin_classifier``: a second dense
    class head (TAC-GAN), returned third.
    """

    def __init__(self, num_classes: int, channels: int, image_size: int, width: int = 64,
                 kernel: int = 3, dropout: float = 0.5, twin_classifier: bool = False):
        super().__init__()
        start, stages = size_plan(image_size)
        layers: list[nn.Module] = []
        cin = channels
        for i in range(stages):
            cout = width * 2 ** i
            layers += [nn.Conv2d(cin, cout, kernel, stride=2, padding=(kernel - 1) // 2,
                                 bias=False),
                       nn.BatchNorm2d(cout), nn.LeakyReLU(0.2, inplace=True), nn.Dropout(dropout)]
            cin = cout
        self.features = nn.Sequential(*layers)
        flat = cin * start * start
        self.source = nn.Linear(flat, 1)
        self.classifier = nn.Linear(flat, num_classes)
        # TAC-GAN's twin classifier (Gong et al. 2019): a second class head, trained on
        # generated images, whose loss the generator maximises
        self.twin = nn.Linear(flat, num_classes) if twin_classifier else None

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None):
        """``(source logit, class logits)``, plus the twin head's class logits when it has
        one."""
        h = self.features(x).flatten(1)
        if self.twin is not None:
            return self.source(h).squeeze(1), self.classifier(h), self.twin(h)
        return self.source(h).squeeze(1), self.classifier(h)


# ------------------------------------------------------------------ (conditional) DCGAN


class DcganGenerator(nn.Module):
    """Noise (concatenated with a one-hot label when ``num_classes`` > 0) -> image.

    A transposed convolution (kernel ``s0``) makes the ``s0 x s0 x (width * 2**(k-1))`` start map
    from the 1x1 input; then ``k`` transposed convolutions (kernel 4, stride 2), batch norm + ReLU
    between them, tanh at the end.
    """

    def __init__(self, channels: int, image_size: int, noise_dim: int = 100,
                 num_classes: int = 0, width: int = 64):
        super().__init__()
        start, stages = size_plan(image_size)
        self.num_classes = num_classes
        cin = width * 2 ** (stages - 1)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(noise_dim + num_classes, cin, start, 1, 0, bias=False),
            nn.BatchNorm2d(cin), nn.ReLU(inplace=True)]
        for i in range(stages - 1):
            cout = width * 2 ** (stages - 2 - i)
            layers += [_up(cin, cout, 4), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
            cin = cout
        layers += [_up(cin, channels, 4), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.num_classes:
            if labels is None:
                raise ValueError("this conditional generator needs labels")
            z = torch.cat([z, F.one_hot(labels, self.num_classes).to(z.dtype)], dim=1)
        x = z[:, :, None, None]
        if self.net[0].weight.is_contiguous(memory_format=torch.channels_last):
            x = x.contiguous(memory_format=torch.channels_last)
        return self.net(x)


class DcganDiscriminator(nn.Module):
    """Image (with one-hot label planes appended when ``num_classes`` > 0) -> real/fake logit.

    ``k`` convolutions (kernel 4, stride 2) with LeakyReLU(0.2), batch norm on all but the first,
    then a convolution of kernel ``s0`` to one logit.

    ``projection=True`` (conditional only): the label is not appended to the image; instead the
    logit gets the inner product of a learned class embedding with the last feature map summed
    over space, ``D(x, y) = psi(phi(x)) + <e_y, sum phi(x)>`` (the projection discriminator of
    Miyato & Koyama 2018; ``psi`` is the same kernel-``s0`` convolution as above).
    """

    def __init__(self, channels: int, image_size: int, num_classes: int = 0, width: int = 64,
                 projection: bool = False):
        super().__init__()
        start, stages = size_plan(image_size)
        self.num_classes = num_classes
        self.projection = bool(projection and num_classes)
        planes = 0 if self.projection else num_classes
        layers: list[nn.Module] = [nn.Conv2d(channels + planes, width, 4, 2, 1, bias=False),
                                   nn.LeakyReLU(0.2, inplace=True)]
        cin = width
        for i in range(1, stages):
            cout = width * 2 ** i
            layers += [nn.Conv2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout),
                       nn.LeakyReLU(0.2, inplace=True)]
            cin = cout
        layers += [nn.Conv2d(cin, 1, start, 1, 0, bias=False)]
        self.net = nn.Sequential(*layers)
        if self.projection:
            self.class_embedding = nn.Embedding(num_classes, cin)
            nn.init.xavier_uniform_(self.class_embedding.weight)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None):
        if self.num_classes and labels is None:
            raise ValueError("this conditional discriminator needs labels")
        if self.projection:
            features = self.net[:-1](x)
            projected = (self.class_embedding(labels).to(features.dtype)
                         * features.sum(dim=(2, 3))).sum(1)
            return self.net[-1](features).flatten() + projected, None
        if self.num_classes:
            planes = F.one_hot(labels, self.num_classes).to(x.dtype)[:, :, None, None]
            x = torch.cat([x, planes.expand(-1, -1, x.shape[2], x.shape[3])], dim=1)
        return self.net(x).flatten(), None
