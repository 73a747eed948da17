"""One training step of pix2pix and of CycleGAN, both through the shared adversarial update
(:class:`~medsyn.generators.engine.adversarial.AdversarialUpdate`: D's step on real and detached
fake batches, then G's step through the updated, frozen D), and the health check that reads their
log (:class:`TranslationCollapseDetector`).

The stabilisers that apply (``--augment``, ``--ema-decay``; docs/translation.md) act here:
DiffAugment of everything the discriminators see, and the EMA generator's update after G's
step. Both are off by default, and then nothing here draws a random number or touches a weight
that the papers' recipes do not.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from medsyn.generators.engine import LoopState, Precision, unwrap
from medsyn.generators.engine.adversarial import AdversarialUpdate, bce_with_logits
from medsyn.generators.stabilisers.collapse import class_spread
from medsyn.generators.stabilisers.ema import GeneratorEMA
from medsyn.generators.translation.config import TranslationTrainConfig
from medsyn.generators.translation.losses import (
    ImagePool,
    cycle_loss,
    identity_loss,
    l1_loss,
    lsgan_loss,
)
from medsyn.model_range import to_model_range

Augment = Callable[[torch.Tensor], torch.Tensor]

# seeds of the per-step random streams (B images drawn, pool decisions): a function of
# (seed, step, rank) only, so that a resumed run draws the same
_STREAM_STRIDE = 1_000_003


def step_generator(seed: int, step: int, rank: int, stream: int) -> torch.Generator:
    return torch.Generator().manual_seed(((seed * _STREAM_STRIDE + step) * 1024 + rank) * 4
                                         + stream)


def _layout(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def output_spread(images: torch.Tensor) -> torch.Tensor:
    """The spread of a generator's outputs in [-1, 1] units: the per-pixel standard deviation
    over the images, averaged over pixels (:func:`class_spread` with one group; 0 for fewer
    than two images)."""
    images = images.detach()
    return class_spread(images, torch.zeros(images.shape[0], dtype=torch.int64,
                                            device=images.device), 1, images.new_zeros(()))


class Pix2PixStep:
    """pix2pix: D on (input, target) and (input, G(input)) pairs, BCE halved; G's loss
    ``loss_adv`` (BCE of D(input, G(input)) against real) + ``loss_l1`` (``l1_weight`` x L1).

    ``augment`` (DiffAugment) is applied to each pair as one tensor (input and image
    concatenated along the channels), so both halves get the same shift, cutout, brightness and
    contrast: D still sees aligned pairs, and G's image is judged against its own input. G's
    step reuses the augmented fakes of D's step, as the image GANs do. ``g_std``: the spread
    of G's outputs in the batch (:func:`output_spread`), which the collapse check reads."""

    def __init__(self, config: TranslationTrainConfig, generator, discriminator, opt_g, opt_d,
                 scaler, precision: Precision, channels_last: bool, discriminator_for_g=None,
                 augment: Augment | None = None, ema: GeneratorEMA | None = None):
        self.config = config
        self.g = generator
        self.augment = augment
        self.ema = ema
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
        augment = self.augment or (lambda t: t)
        seen = {}                         # the (augmented) fake pairs, in D's and in G's step

        def d_on_fakes(net):
            seen["fake"] = augment(torch.cat([x, fake], dim=1))   # after the real pairs' draw
            return net(seen["fake"].detach())

        d = self.update.discriminator_step(
            real=lambda net: net(augment(torch.cat([x, y], dim=1))),
            fake=d_on_fakes,
            loss_real=lambda logits: 0.5 * bce_with_logits(logits, 1.0),
            loss_fake=lambda logits: 0.5 * bce_with_logits(logits, 0.0))
        g = self.update.generator_step(
            forward=lambda net: net(seen["fake"]),
            loss_terms=lambda logits: {
                "loss_adv": bce_with_logits(logits, 1.0),
                "loss_l1": self.config.l1_weight * l1_loss(fake, y)})
        if self.ema is not None:
            self.ema.update(unwrap(self.g), state.step)
        with torch.no_grad():
            return {**{k: v.detach() for k, v in g.terms.items()},
                    "loss_g": g.loss.detach(), "loss_d": (d.loss_real + d.loss_fake).detach(),
                    "d_x": torch.sigmoid(d.real.float()).mean(),
                    "d_g_z1": torch.sigmoid(d.fake.float()).mean(),
                    "d_g_z2": torch.sigmoid(g.out.float()).mean(),
                    **({"g_std": output_spread(fake)} if fake.shape[0] > 1 else {})}


class CycleGANStep:
    """CycleGAN: a batch of A images (the epoch's order) and as many B images drawn at random;
    both generators in one forward; both discriminators' LSGAN loss on real images and on
    pooled fakes, halved; G's loss ``loss_adv`` (LSGAN of both D's on the fakes) +
    ``loss_cycle`` + ``loss_identity``. ``d_x`` / ``d_g_z1`` / ``d_g_z2``: mean raw D outputs
    (LSGAN targets 1 for real, 0 for fake) over both discriminators.

    ``augment`` (DiffAugment) draws anew for each image D sees: the real batches, the pooled
    fakes of D's step, and the fresh fakes of G's step (the pool's images are not the batch's,
    so D's draw cannot be reused there). ``g_std_ab`` / ``g_std_ba``: the spread of each
    generator's outputs (:func:`output_spread`) in the batch, or over its image pool when the
    batch holds one image (the paper's batch of 1); absent when neither holds two."""

    def __init__(self, config: TranslationTrainConfig, generators, discriminators, opt_g, opt_d,
                 scaler, precision: Precision, channels_last: bool, images_b: torch.Tensor,
                 pools: tuple[ImagePool, ImagePool], rank: int = 0, discriminator_for_g=None,
                 augment: Augment | None = None, ema: GeneratorEMA | None = None):
        self.config = config
        self.g = generators
        self.augment = augment
        self.ema = ema
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

        augment = self.augment or (lambda t: t)
        d = self.update.discriminator_step(
            real=lambda net: net(augment(b), augment(a)),
            fake=lambda net: net(augment(pooled_b), augment(pooled_a)),
            loss_real=lambda out: 0.5 * both(out, 1.0),
            loss_fake=lambda out: 0.5 * both(out, 0.0))

        def terms(out):
            found = {"loss_adv": both(out, 1.0),
                     "loss_cycle": cycle_loss(rec_a, a, rec_b, b, self.config.cycle_weight)}
            if identity:
                found["loss_identity"] = identity_loss(idt_b, b, idt_a, a,
                                                       self.identity_weight)
            return found

        g = self.update.generator_step(forward=lambda net: net(augment(fake_b), augment(fake_a)),
                                       loss_terms=terms)
        if self.ema is not None:
            self.ema.update(unwrap(self.g), state.step)

        def mean_out(out):
            return 0.5 * (out[0].float().mean() + out[1].float().mean())

        with torch.no_grad():
            return {**{k: v.detach() for k, v in g.terms.items()},
                    "loss_g": g.loss.detach(), "loss_d": (d.loss_real + d.loss_fake).detach(),
                    "d_x": mean_out(d.real), "d_g_z1": mean_out(d.fake),
                    "d_g_z2": mean_out(g.out), **self._spreads(fake_b, fake_a)}

    def _spreads(self, fake_b: torch.Tensor, fake_a: torch.Tensor) -> dict[str, torch.Tensor]:
        found = {}
        for key, fake, pool in (("g_std_ab", fake_b, self.pool_b), ("g_std_ba", fake_a,
                                                                     self.pool_a)):
            if fake.shape[0] > 1:
                found[key] = output_spread(fake)
            elif len(pool.images) > 1:
                found[key] = output_spread(torch.cat(pool.images))
        return found


SPREAD_KEYS = {"g_std": "generator", "g_std_ab": "A -> B generator",
               "g_std_ba": "B -> A generator"}


@dataclass
class TranslationCollapseDetector:
    """Spots a translation generator that gives the same image whatever its input.

    Reads the last ``window`` steps of the log: the spread of each generator's outputs
    (``g_std`` for pix2pix, ``g_std_ab`` / ``g_std_ba`` for CycleGAN, in [-1, 1] units; see
    :func:`output_spread`) -- the measure of the image GANs' per-class check
    (:func:`medsyn.generators.stabilisers.collapse.class_spread`), here over outputs of
    different inputs. A spread below ``min_std`` at every step of the window is a collapse: the
    generator ignores its input. The threshold is the image GANs'. Measured (docs/translation.md):
    CycleGAN at ``--lr 1000`` gives 0 to 0.005 within two steps; healthy runs stay above it,
    the tightest being 4-channel test networks at 32 px (pix2pix 0.027 to 0.036 over their
    first 25 steps, CycleGAN at batch 1, read on its pools, 0.065 to 0.14); pix2pix with
    32-channel networks at 64 px starts at 0.10. The warning ends with the stabilisers the run
    did not use (``run_config``: the run's options).
    """

    window: int = 20
    min_std: float = 0.02
    run_config: dict | None = None

    def __call__(self, records) -> str | None:
        recent = list(records[-self.window:])
        if len(recent) < self.window:
            return None
        for key, who in SPREAD_KEYS.items():
            values = [r.get(key) for r in recent]
            if all(isinstance(v, (int, float)) and v < self.min_std for v in values):
                return (f"collapse suspected: the {who}'s outputs have been all alike for "
                        f"{self.window} steps although its inputs differ (spread "
                        f"{values[-1]:.3g} < {self.min_std:g} in [-1, 1] units: it ignores its "
                        f"input); {self._advice()}.")
        return None

    def _advice(self) -> str:
        config = self.run_config or {}
        unused = [flag for flag, on in (
            ("--spectral-norm", config.get("spectral_norm")),
            ("--augment translation,cutout", (config.get("augment") or "none") != "none"))
            if not on]
        if unused:
            return f"a new run (another --out) with {' and '.join(unused)} may avoid it"
        return "a new run (another --out) with a lower --lr may avoid it"
