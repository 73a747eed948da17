"""Losses of translation and CycleGAN's image pool.

- pix2pix (Isola et al. 2017): the conditional GAN loss (binary cross-entropy on the PatchGAN's
  logits; D's loss halved, as in the reference) plus ``l1_weight`` x L1(G(x), y);
- CycleGAN (Zhu et al. 2017): the least-squares GAN loss (Mao et al. 2017; D's loss halved),
  cycle consistency ``cycle_weight`` x (L1(G_BA(G_AB(a)), a) + L1(G_AB(G_BA(b)), b)), and the
  identity loss ``cycle_weight x identity_weight`` x (L1(G_AB(b), b) + L1(G_BA(a), a)).

Every loss is a float32 mean over all elements.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def lsgan_loss(prediction: torch.Tensor, target: float) -> torch.Tensor:
    """Least-squares GAN loss: ``mean((prediction - target) ** 2)``."""
    prediction = prediction.float()
    return F.mse_loss(prediction, torch.full_like(prediction, target))


def l1_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (output.float() - target.float()).abs().mean()


def cycle_loss(rec_a, a, rec_b, b, weight: float) -> torch.Tensor:
    """``weight`` x (L1(rec_a, a) + L1(rec_b, b))."""
    return weight * (l1_loss(rec_a, a) + l1_loss(rec_b, b))


def identity_loss(idt_b, b, idt_a, a, weight: float) -> torch.Tensor:
    """``weight`` x (L1(G_AB(b), b) + L1(G_BA(a), a)); ``weight`` = cycle x identity weight."""
    return weight * (l1_loss(idt_b, b) + l1_loss(idt_a, a))


class ImagePool:
    """The history of generated images the discriminators also see (Shrivastava et al. 2017,
    as in CycleGAN's reference ``ImagePool``).

    Until ``size`` images are stored, every image is stored and returned. Then each image is,
    with probability 1/2, returned as it is, else swapped with a random stored image (which is
    returned in its place). The draws come from the ``generator`` given to :meth:`query`, so a
    run seeds them per step; :meth:`state` / :meth:`load_state` carry the stored images across
    a resume.
    """

    def __init__(self, size: int):
        self.size = int(size)
        self.images: list[torch.Tensor] = []

    def query(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if self.size == 0:
            return images
        out = []
        for image in images.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
                continue
            swap = torch.rand((), generator=generator).item() > 0.5
            if swap:
                k = int(torch.randint(0, self.size, (), generator=generator).item())
                old = self.images[k].clone()
                self.images[k] = image.clone()
                out.append(old)
            else:
                out.append(image)
        return torch.cat(out, dim=0)

    def state(self) -> torch.Tensor | None:
        """The stored images as one CPU tensor (None while empty)."""
        return torch.cat(self.images).cpu() if self.images else None

    def load_state(self, stored: torch.Tensor | None, device: torch.device) -> None:
        self.images = [] if stored is None else [x.unsqueeze(0).to(device) for x in stored]
