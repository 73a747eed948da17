"""One training step of pix2pix and of CycleGAN, both through the shared adversarial update
(:class:`~medsyn.generators.adversarial.AdversarialUpdate`: D's step on real and detached fake
batches, then G's step through the updated, frozen D)."""

from __future__ import annotations

import torch

from medsyn.generators.adversarial import AdversarialUpdate, bce_with_logits
from medsyn.generators.engine import LoopState, Precision
from medsyn.generators.translation.config import TranslationTrainConfig
from medsyn.generators.translation.losses import (
    ImagePool,
    cycle_loss,
    identity_loss,
    l1_loss,
    lsgan_loss,
)
from medsyn.model_range import to_model_range

# seeds of the per-step random streams (B images drawn, pool decisions): a function of
# (seed, step, rank) only, so that a resumed run draws the same
_STREAM_STRIDE = 1_000_003


def step_generator(seed: int, step: int, rank: int, stream: int) -> torch.Generator:
    return torch.Generator().manual_seed(((seed * _STREAM_STRIDE + step) * 1024 + rank) * 4
                                         + stream)


def _layout(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


class Pix2PixStep:
    """pix2pix: D on (input, target) and (input, G(input)) pairs, BCE halved; G's loss
    ``loss_adv`` (BCE of D(input, G(input)) against real) + ``loss_l1`` (``l1_weight`` x L1)."""

    def __init__(self, config: TranslationTrainConfig, generator, discriminator, opt_g, opt_d,
                 scaler, precision: Precision, channels_last: bool, discriminator_for_g=None):
        self.config = config
        self.g = generator
        self.update = AdversarialUpdate(discriminator, opt_g, opt_d, scaler, precision,
                                        discriminator_for_g)
        self.precision = precision
        self.channels_last = channels_last

    def __call__(self, batch, state: LoopState) -> dict[str, torch.Tensor]:
        x_u8, y_u8 = batch
        x = _layout(to_model_range(x_u8), self.channels_last)
        y = _layout(to_model_range(y_u8), self.channels_last)
        with self.precision.autocast():
            fake = self.g(x)
        d = self.update.discriminator_step(
            real=lambda net: net(torch.cat([x, y], dim=1)),
            fake=lambda net: net(torch.cat([x, fake.detach()], dim=1)),
            loss_real=lambda logits: 0.5 * bce_with_logits(logits, 1.0),
            loss_fake=lambda logits: 0.5 * bce_with_logits(logits, 0.0))
        g = self.update.generator_step(
            forward=lambda net: net(torch.cat([x, fake], dim=1)),
            loss_terms=lambda logits: {
                "loss_adv": bce_with_logits(logits, 1.0),
                "loss_l1": self.config.l1_weight * l1_loss(fake, y)})
        with torch.no_grad():
            return {**{k: v.detach() for k, v in g.terms.items()},
                    "loss_g": g.loss.detach(), "loss_d": (d.loss_real + d.loss_fake).detach(),
                    "d_x": torch.sigmoid(d.real.float()).mean(),
                    "d_g_z1": torch.sigmoid(d.fake.float()).mean(),
                    "d_g_z2": torch.sigmoid(g.out.float()).mean()}


class CycleGANStep:
    """CycleGAN: a batch of A images (the epoch's order) and as many B images drawn at random;
    both generators in one forward; both discriminators' LSGAN loss on real images and on
    pooled fakes, halved; G's loss ``loss_adv`` (LSGAN of both D's on the fakes) +
    ``loss_cycle`` + ``loss_identity``. ``d_x`` / ``d_g_z1`` / ``d_g_z2``: mean raw D outputs
    (LSGAN targets 1 for real, 0 for fake) over both discriminators."""

    def __init__(self, config: TranslationTrainConfig, generators, discriminators, opt_g, opt_d,
                 scaler, precision: Precision, channels_last: bool, images_b: torch.Tensor,
                 pools: tuple[ImagePool, ImagePool], rank: int = 0, discriminator_for_g=None):
        self.config = config
        self.g = generators
        self.update = AdversarialUpdate(discriminators, opt_g, opt_d, scaler, precision,
                                        discriminator_for_g)
        self.precision = precision
        self.channels_last = channels_last
        self.images_b = images_b
        self.pool_a, self.pool_b = pools
        self.rank = rank
        self.identity_weight = config.cycle_weight * config.identity_weight

    def draw_b(self, n: int, step: int) -> torch.Tensor:
        gen = step_generator(self.config.seed, step, self.rank, 0)
        idx = torch.randint(0, self.images_b.shape[0], (n,), generator=gen)
        return self.images_b[idx.to(self.images_b.device)]

    def __call__(self, batch, state: LoopState) -> dict[str, torch.Tensor]:
        (a_u8,) = batch
        b_u8 = self.draw_b(a_u8.shape[0], state.step).to(a_u8.device)
        a = _layout(to_model_range(a_u8), self.channels_last)
        b = _layout(to_model_range(b_u8), self.channels_last)
        identity = self.identity_weight > 0
        with self.precision.autocast():
            fake_b, fake_a, rec_a, rec_b, idt_b, idt_a = self.g(a, b, identity)
        pool_gen = step_generator(self.config.seed, state.step, self.rank, 1)
        pooled_b = self.pool_b.query(fake_b, pool_gen)
        pooled_a = self.pool_a.query(fake_a, pool_gen)

        def both(outputs, target):
            return lsgan_loss(outputs[0], target) + lsgan_loss(outputs[1], target)

        d = self.update.discriminator_step(
            real=lambda net: net(b, a), fake=lambda net: net(pooled_b, pooled_a),
            loss_real=lambda out: 0.5 * both(out, 1.0),
            loss_fake=lambda out: 0.5 * both(out, 0.0))

        def terms(out):
            found = {"loss_adv": both(out, 1.0),
                     "loss_cycle": cycle_loss(rec_a, a, rec_b, b, self.config.cycle_weight)}
            if identity:
                found["loss_identity"] = identity_loss(idt_b, b, idt_a, a,
                                                       self.identity_weight)
            return found

        g = self.update.generator_step(forward=lambda net: net(fake_b, fake_a),
                                       loss_terms=terms)

        def mean_out(out):
            return 0.5 * (out[0].float().mean() + out[1].float().mean())

        with torch.no_grad():
            return {**{k: v.detach() for k, v in g.terms.items()},
                    "loss_g": g.loss.detach(), "loss_d": (d.loss_real + d.loss_fake).detach(),
                    "d_x": mean_out(d.real), "d_g_z1": mean_out(d.fake),
                    "d_g_z2": mean_out(g.out)}
