"""One super-resolution training step: pixel MSE (phase ``mse``), or content loss plus the
adversarial loss (phase ``adversarial``, srgan)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from medsyn.generators.engine import LoopState, Precision
from medsyn.generators.engine.adversarial import AdversarialUpdate, bce_with_logits
from medsyn.generators.sr.config import PHASE_MSE, SRTrainConfig, lr_of, phase_of
from medsyn.generators.sr.losses import generator_adversarial_loss
from medsyn.model_range import to_model_range


class SRStep:
    """One optimisation step on a batch of LR/HR pairs; returns the diagnostics.

    Phase ``mse``: the generator alone, pixel MSE. Phase ``adversarial``: the adversarial update
    of :class:`~medsyn.generators.engine.adversarial.AdversarialUpdate` (D on HR and on the
    detached SR batch, then G through the updated, frozen D) with G's loss content loss +
    adv_weight x BCE(D(SR), real). Random crops come from a generator seeded by (seed, step,
    rank), so a resumed run crops the same patches.
    """

    def __init__(self, config: SRTrainConfig, generator, discriminator, opt_g, opt_d, scaler,
                 precision: Precision, content_loss, channels_last: bool,
                 rank: int = 0, discriminator_for_g=None):
        self.config = config
        self.g, self.d = generator, discriminator
        self.update = (AdversarialUpdate(discriminator, opt_g, opt_d, scaler, precision,
                                         discriminator_for_g)
                       if discriminator is not None else None)
        self.opt_g, self.opt_d = opt_g, opt_d
        self.scaler, self.precision = scaler, precision
        self.content_loss = content_loss
        self.channels_last = channels_last
        self.rank = rank
        self.patch = config.patch_size or 0

    def _inputs(self, batch, step: int):
        lr_u8, hr_u8 = batch
        if self.patch:
            from medsyn.generators.sr.data import paired_random_crop

            gen = torch.Generator().manual_seed(
                (self.config.seed * 1_000_003 + step) * 1024 + self.rank)
            lr_u8, hr_u8 = paired_random_crop(lr_u8, hr_u8, self.patch, self.config.scale, gen)
        x, y = to_model_range(lr_u8), to_model_range(hr_u8)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
            y = y.contiguous(memory_format=torch.channels_last)
        return x, y

    def __call__(self, batch, state: LoopState) -> dict[str, torch.Tensor]:
        epoch_no = state.epoch + 1
        lr = lr_of(self.config, epoch_no)
        for opt in (self.opt_g, self.opt_d):
            if opt is not None:
                for group in opt.param_groups:
                    group["lr"] = lr
        x, y = self._inputs(batch, state.step)
        if phase_of(self.config, epoch_no) == PHASE_MSE:
            return self._mse_step(x, y)
        return self._adversarial_step(x, y)

    def _mse_step(self, x, y) -> dict[str, torch.Tensor]:
        self.opt_g.zero_grad(set_to_none=True)
        with self.precision.autocast():
            sr = self.g(x)
        loss = F.mse_loss(sr.float(), y)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.opt_g)
        self.scaler.update()
        loss = loss.detach()
        return {"loss_content": loss, "loss_g": loss}

    def _adversarial_step(self, x, y) -> dict[str, torch.Tensor]:
        with self.precision.autocast():
            sr = self.g(x)
        d = self.update.discriminator_step(
            real=lambda net: net(y), fake=lambda net: net(sr.detach()),
            loss_real=lambda logits: bce_with_logits(logits, 1.0),
            loss_fake=lambda logits: bce_with_logits(logits, 0.0))
        g = self.update.generator_step(
            forward=lambda net: (net(sr), self.content_loss(sr, y).float()),
            loss_terms=lambda out: {
                "loss_content": out[1],
                "loss_adv": generator_adversarial_loss(out[0], self.config.adv_weight)})
        gen_logits = g.out[0]
        with torch.no_grad():
            return {
                **{k: v.detach() for k, v in g.terms.items()},
                "loss_g": g.loss.detach(), "loss_d": (d.loss_real + d.loss_fake).detach(),
                "d_x": torch.sigmoid(d.real.float()).mean(),
                "d_g_z1": torch.sigmoid(d.fake.float()).mean(),
                "d_g_z2": torch.sigmoid(gen_logits.float()).mean(),
            }
