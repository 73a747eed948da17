"""Adversarial losses on the discriminator's raw outputs (logits), besides BCE.

| name    | D on real           | D on fake              | G               |
|---------|---------------------|------------------------|-----------------|
| `bce`   | BCE(D(x), 1 - s)    | BCE(D(G(z)), 0)        | BCE(D(G(z)), 1) |
| `hinge` | mean relu(1 - D(x)) | mean relu(1 + D(G(z))) | -mean D(G(z))   |

``bce``: Goodfellow et al. 2014 with the non-saturating generator loss; ``s`` is one-sided
label smoothing (Salimans et al. 2016); it is
:func:`medsyn.generators.engine.adversarial.bce_with_logits`, the seed recipe's loss, unchanged.
``hinge``: Lim & Ye 2017, as in SN-GAN (Miyato et al. 2018) and BigGAN (Brock et al. 2019).
Both are averaged over the batch and computed in float32.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

LOSSES = ("bce", "hinge")


def hinge_real(logits: torch.Tensor) -> torch.Tensor:
    """The discriminator's hinge loss on real images."""
    return F.relu(1.0 - logits.float()).mean()


def hinge_fake(logits: torch.Tensor) -> torch.Tensor:
    """The discriminator's hinge loss on generated images."""
    return F.relu(1.0 + logits.float()).mean()


def hinge_generator(logits: torch.Tensor) -> torch.Tensor:
    """The generator's hinge loss on its images as the discriminator scores them."""
    return -logits.float().mean()


HINGE = {"real": hinge_real, "fake": hinge_fake, "generator": hinge_generator}
