"""One super-resolution training step: pixel MSE (phase ``mse``), or content loss plus the
adversarial loss (phase ``adversarial``, srgan)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from medsyn.generators.engine import LoopState, Precision, unwrap
from medsyn.generators.sr.config import PHASE_MSE, SRTrainConfig, lr_of, phase_of
from medsyn.model_range import to_model_range


def _bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    logits = logits.float()
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


class SRStep:
    """One optimisation step on a batch of LR/HR pairs; returns the diagnostics.

    Phase ``mse``: the generator alone, pixel MSE. Phase ``adversarial``: D on HR and on the
    detached SR batch (two forward/backward passes, as the GAN step), D's Adam step; then G's
    step on content loss + adv_weight x BCE(D(SR), real) through the updated D, whose weights are
    frozen meanwhile and which is called past its DDP wrapper. Random crops come from a
    generator seeded by (seed, step, rank), so a resumed run crops the same patches.
    """

    def __init__(self, config: SRTrainConfig, generator, discriminator, opt_g, opt_d, scaler,
                 precision: Precision, content_loss, channels_last: bool,
                 rank: int = 0, discriminator_for_g=None):
        self.config = config
        self.g, self.d = generator, discriminator
        self.d_plain = discriminator_for_g if discriminator_for_g is not None else discriminator
        self.d_params = (list(unwrap(discriminator).parameters())
                         if discriminator is not None else [])
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
        scaler = self.scaler
        # -- discriminator
        self.opt_d.zero_grad(set_to_none=True)
        with self.precision.autocast():
            sr = self.g(x)
            real_logits = self.d(y)
        loss_real = _bce(real_logits, 1.0)
        scaler.scale(loss_real).backward()
        with self.precision.autocast():
            fake_logits = self.d(sr.detach())
        loss_fake = _bce(fake_logits, 0.0)
        scaler.scale(loss_fake).backward()
        scaler.step(self.opt_d)

        # -- generator
        self.opt_g.zero_grad(set_to_none=True)
        for p in self.d_params:
            p.requires_grad_(False)
        try:
            with self.precision.autocast():
                gen_logits = self.d_plain(sr)
                content = self.content_loss(sr, y).float()
            adversarial = self.config.adv_weight * _bce(gen_logits, 1.0)
            loss_g = content + adversarial
            scaler.scale(loss_g).backward()
        finally:
            for p in self.d_params:
                p.requires_grad_(True)
        scaler.step(self.opt_g)
        scaler.update()
        with torch.no_grad():
            return {
                "loss_content": content.detach(), "loss_adv": adversarial.detach(),
                "loss_g": loss_g.detach(), "loss_d": (loss_real + loss_fake).detach(),
                "d_x": torch.sigmoid(real_logits.float()).mean(),
                "d_g_z1": torch.sigmoid(fake_logits.float()).mean(),
                "d_g_z2": torch.sigmoid(gen_logits.float()).mean(),
            }


