"""One GAN training step (D then G) and the health check that reads its log.

Losses (all kinds): the discriminator minimises BCE(D(x), 1 - label_smoothing) + BCE(D(G(z)), 0)
(one-sided label smoothing), the generator BCE(D(G(z)), 1) (label flipping: fakes labelled
real). AC-GAN adds the cross-entropy of the class head, on real and fake images for D and on
fake images for G: L = Ls + Lc.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from medsyn.generators.engine import Precision, unwrap
from medsyn.generators.gan.kinds import GanKind
from medsyn.model_range import to_model_range


def _bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    logits = logits.float()
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


class GanStep:
    """One optimisation step (D then G) on a batch of real images; returns the diagnostics.

    D sees the real batch and the detached fake batch in two forward/backward passes (the
    DCGAN recipe; also what keeps DistributedDataParallel's one-forward-one-backward rule).
    G's step reuses the same fakes through the updated D, whose weights are frozen meanwhile
    (no gradient is computed for them) and which is called past its DDP wrapper (nothing to
    synchronise). ``d_g_z1`` / ``d_g_z2`` are D's mean probability on the fakes before / after
    D's update.
    """

    def __init__(self, kind: GanKind, generator: nn.Module, discriminator: nn.Module,
                 opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer,
                 scaler: torch.amp.GradScaler, precision: Precision, noise_dim: int,
                 num_classes: int, label_smoothing: float = 0.0, channels_last: bool = False,
                 discriminator_for_g: nn.Module | None = None):
        """``discriminator_for_g``: the same network without its DDP wrapper (possibly compiled
        on its own), used in G's step; default: ``discriminator`` itself when it is not DDP."""
        self.kind = kind
        self.g, self.d = generator, discriminator
        if discriminator_for_g is None:
            discriminator_for_g = (
                discriminator.module
                if isinstance(discriminator, nn.parallel.DistributedDataParallel)
                else discriminator)
        self.d_plain = discriminator_for_g
        self.d_params = list(unwrap(discriminator).parameters())
        self.opt_g, self.opt_d = opt_g, opt_d
        self.scaler = scaler
        self.precision = precision
        self.noise_dim = noise_dim
        self.num_classes = num_classes
        self.real_target = 1.0 - label_smoothing
        self.channels_last = channels_last

    def __call__(self, batch, state=None) -> dict[str, torch.Tensor]:
        real_u8, labels = batch
        kind, scaler = self.kind, self.scaler
        x = to_model_range(real_u8)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        n, device = x.shape[0], x.device
        z = torch.randn(n, self.noise_dim, device=device)
        fake_labels = (torch.randint(self.num_classes, (n,), device=device)
                       if kind.conditional else None)
        d_real_labels = labels if kind.label_input_to_d else None
        d_fake_labels = fake_labels if kind.label_input_to_d else None

        # -- discriminator
        self.opt_d.zero_grad(set_to_none=True)
        with self.precision.autocast():
            fake = self.g(z, fake_labels)
            src_real, cls_real = self.d(x, d_real_labels)
        loss_real = _bce(src_real, self.real_target)
        if kind.aux_classifier:
            loss_real = loss_real + F.cross_entropy(cls_real.float(), labels)
        scaler.scale(loss_real).backward()
        with self.precision.autocast():
            src_fake, cls_fake = self.d(fake.detach(), d_fake_labels)
        loss_fake = _bce(src_fake, 0.0)
        if kind.aux_classifier:
            loss_fake = loss_fake + F.cross_entropy(cls_fake.float(), fake_labels)
        scaler.scale(loss_fake).backward()
        scaler.step(self.opt_d)

        # -- generator
        self.opt_g.zero_grad(set_to_none=True)
        for p in self.d_params:
            p.requires_grad_(False)
        try:
            with self.precision.autocast():
                src_gen, cls_gen = self.d_plain(fake, d_fake_labels)
            loss_g = _bce(src_gen, 1.0)
            if kind.aux_classifier:
                loss_g = loss_g + F.cross_entropy(cls_gen.float(), fake_labels)
            scaler.scale(loss_g).backward()
        finally:
            for p in self.d_params:
                p.requires_grad_(True)
        scaler.step(self.opt_g)
        scaler.update()

        with torch.no_grad():
            stats = {
                "loss_d": (loss_real + loss_fake).detach(),
                "loss_g": loss_g.detach(),
                "d_x": torch.sigmoid(src_real.float()).mean(),
                "d_g_z1": torch.sigmoid(src_fake.float()).mean(),
                "d_g_z2": torch.sigmoid(src_gen.float()).mean(),
                # how different G's images of one batch are (0: all the same image)
                "g_std": fake.detach().float().std(0).mean() if n > 1 else fake.new_zeros(()),
            }
            if kind.aux_classifier:
                acc_real = (src_real > 0).float().mean()
                acc_fake = (src_fake < 0).float().mean()
                stats.update(
                    aux_acc_real=(cls_real.argmax(1) == labels).float().mean(),
                    aux_acc_fake=(cls_fake.argmax(1) == fake_labels).float().mean(),
                    d_acc=(acc_real + acc_fake) / 2, d_acc_real=acc_real, d_acc_fake=acc_fake)
        return stats


@dataclass
class CollapseDetector:
    """Spots a GAN that has stopped learning although its losses stay finite.

    Looks at the last ``window`` steps of the log (``d_x`` = D(x), ``d_g_z1`` = D(G(z)) and
    ``g_std``, the spread of G's images within a batch in [-1, 1] units) and reports:

    - D saturated at the same value for real and fake images (it no longer tells them apart
      and its sigmoid passes no gradient): ``|D(x) - D(G(z))| < tol`` with both ``< tol`` or
      ``> 1 - tol`` at every step of the window;
    - D certain about everything (``D(x) > 1 - tol`` and ``D(G(z)) < tol`` throughout): G's
      gradient vanishes;
    - the generator's images all alike (``g_std < min_std`` throughout): mode collapse.

    Every step of the window must qualify, so one odd batch never triggers it.
    """

    window: int = 20
    tol: float = 0.01
    min_std: float = 0.02

    def __call__(self, records) -> str | None:
        recent = [r for r in records[-self.window:]]
        if len(recent) < self.window:
            return None

        def every(test) -> bool:
            try:
                return all(test(r) for r in recent)
            except (KeyError, TypeError):
                return False

        lo, hi = self.tol, 1 - self.tol
        advice = ("the run has likely collapsed; its samples are not worth evaluating. Start "
                  "a new run with a lower --lr (another --out)")
        if every(lambda r: abs(r["d_x"] - r["d_g_z1"]) < self.tol
                 and (max(r["d_x"], r["d_g_z1"]) < lo or min(r["d_x"], r["d_g_z1"]) > hi)):
            return (f"collapse suspected: the discriminator gave real and generated images the "
                    f"same saturated output (D(x) = {recent[-1]['d_x']:.3g}, D(G(z)) = "
                    f"{recent[-1]['d_g_z1']:.3g}) for {self.window} steps; {advice}.")
        if every(lambda r: r["d_x"] > hi and r["d_g_z1"] < lo):
            return (f"collapse suspected: the discriminator has been certain about every real "
                    f"and generated image for {self.window} steps (D(x) > {hi:g}, D(G(z)) < "
                    f"{lo:g}), so the generator gets no gradient; {advice}.")
        if every(lambda r: r["g_std"] < self.min_std):
            return (f"collapse suspected: the generator's images have been all alike for "
                    f"{self.window} steps (spread within a batch {recent[-1]['g_std']:.3g} < "
                    f"{self.min_std:g} in [-1, 1] units: mode collapse); {advice}.")
        return None
