"""The measure behind the collapse warnings of adversarial trainers: how much a generator's
images differ within a group (a class of a conditional GAN's batch, the outputs of one
translation direction). A generator that gives the same image for every input of a group has a
spread near 0 there (the image GANs' ``CollapseDetector``, the translation trainers'
``TranslationCollapseDetector``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def class_spread(images: torch.Tensor, labels: torch.Tensor, num_classes: int,
                 fallback: torch.Tensor) -> torch.Tensor:
    """Mean over classes of the per-pixel standard deviation of ``images`` within the class
    (classes with at least two images in the batch; ``fallback`` when none has two). A 0-d
    tensor, computed without a host synchronisation."""
    flat = images.float().flatten(1)
    member = F.one_hot(labels, num_classes).to(flat.dtype)           # [n, K]
    counts = member.sum(0)                                           # [K]
    means = (member.T @ flat) / counts.clamp(min=1)[:, None]         # [K, P]
    squares = member.T @ (flat - means[labels]) ** 2                 # [K, P]
    spreads = (squares / (counts - 1).clamp(min=1)[:, None]).sqrt().mean(1)
    valid = (counts >= 2).to(flat.dtype)
    mean = (spreads * valid).sum() / valid.sum().clamp(min=1)
    return torch.where(valid.sum() > 0, mean, fallback.float())
