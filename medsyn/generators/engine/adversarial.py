"""The adversarial update every GAN-like trainer shares: D's step, then G's step through the
updated D.

The image GANs (:mod:`medsyn.generators.gan.step`) and SRGAN's adversarial phase
(:mod:`medsyn.generators.sr.step`) both train this way; they differ only in what their networks
take and in the loss terms they add, which they pass in as functions.

- D's step: two forward/backward passes, on the real batch and on the detached fakes (the
  DCGAN recipe; also what keeps DistributedDataParallel's one-forward-one-backward rule), then
  D's optimizer step.
- G's step: the same fakes through the updated D, whose weights are frozen meanwhile (no
  gradient is computed for them) and which is called past its DDP wrapper (nothing to
  synchronise); then G's optimizer step and the grad scaler's update.

Forward passes run under the precision's autocast; losses are computed in float32 outside it,
and every backward pass goes through the grad scaler (a pass-through unless fp16).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from medsyn.generators.engine import Precision, unwrap


def bce_with_logits(logits: torch.Tensor, target: float) -> torch.Tensor:
    """Binary cross-entropy of logits against one constant target, in float32."""
    logits = logits.float()
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


@dataclass
class DiscriminatorOutputs:
    """D's outputs on the real batch and on the fakes (before its update), and its losses."""

    real: Any
    fake: Any
    loss_real: torch.Tensor
    loss_fake: torch.Tensor


@dataclass
class GeneratorOutputs:
    """D's output on the fakes after its update (with whatever else G's forward computed), the
    terms of G's loss and their sum."""

    out: Any
    terms: dict[str, torch.Tensor]
    loss: torch.Tensor


class AdversarialUpdate:
    """Runs :meth:`discriminator_step` then :meth:`generator_step`, once per batch.

    ``discriminator``: D as trained (possibly DDP-wrapped and compiled);
    ``discriminator_for_g``: the same network without its DDP wrapper (possibly compiled on its
    own), used in G's step; default: ``discriminator`` itself, or its ``.module`` when it is
    DDP.
    """

    def __init__(self, discriminator: nn.Module, opt_g: torch.optim.Optimizer,
                 opt_d: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                 precision: Precision, discriminator_for_g: nn.Module | None = None):
        if discriminator_for_g is None:
            discriminator_for_g = (
                discriminator.module
                if isinstance(discriminator, nn.parallel.DistributedDataParallel)
                else discriminator)
        self.d = discriminator
        self.d_for_g = discriminator_for_g
        self.d_params = list(unwrap(discriminator).parameters())
        self.opt_g, self.opt_d = opt_g, opt_d
        self.scaler = scaler
        self.precision = precision

    def discriminator_step(self, real: Callable[[nn.Module], Any],
                           fake: Callable[[nn.Module], Any],
                           loss_real: Callable[[Any], torch.Tensor],
                           loss_fake: Callable[[Any], torch.Tensor]) -> DiscriminatorOutputs:
        """D's update. ``real(d)`` / ``fake(d)`` run D on the real batch / the detached fakes
        (under autocast); ``loss_real`` / ``loss_fake`` turn those outputs into D's losses."""
        self.opt_d.zero_grad(set_to_none=True)
        with self.precision.autocast():
            real_out = real(self.d)
        real_loss = loss_real(real_out)
        self.scaler.scale(real_loss).backward()
        with self.precision.autocast():
            fake_out = fake(self.d)
        fake_loss = loss_fake(fake_out)
        self.scaler.scale(fake_loss).backward()
        self.scaler.step(self.opt_d)
        return DiscriminatorOutputs(real_out, fake_out, real_loss, fake_loss)

    def generator_step(self, forward: Callable[[nn.Module], Any],
                       loss_terms: Callable[[Any], dict[str, torch.Tensor]],
                       ) -> GeneratorOutputs:
        """G's update through the updated, frozen D. ``forward(d)`` runs D on the (attached)
        fakes under autocast, plus anything else G's loss needs; ``loss_terms(out)`` returns the
        named terms of G's loss, summed in their order."""
        self.opt_g.zero_grad(set_to_none=True)
        for p in self.d_params:
            p.requires_grad_(False)
        try:
            with self.precision.autocast():
                out = forward(self.d_for_g)
            terms = loss_terms(out)
            values = iter(terms.values())
            loss = next(values)
            for term in values:
                loss = loss + term
            self.scaler.scale(loss).backward()
        finally:
            for p in self.d_params:
                p.requires_grad_(True)
        self.scaler.step(self.opt_g)
        self.scaler.update()
        return GeneratorOutputs(out, terms, loss)
