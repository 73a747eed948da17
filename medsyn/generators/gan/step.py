"""One GAN training step (D then G) and the health check that reads its log.

Losses (all kinds): the discriminator minimises BCE(D(x), 1 - label_smoothing) + BCE(D(G(z)), 0)
(one-sided label smoothing), the generator BCE(D(G(z)), 1) (label flipping: fakes labelled
real). AC-GAN adds the cross-entropy of the class head, on real and fake images for D and on
fake images for G: L = Ls + Lc. The update itself (two D passes, G through the frozen D, grad
scaler, autocast) is :class:`medsyn.generators.adversarial.AdversarialUpdate`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from medsyn.generators.adversarial import AdversarialUpdate, bce_with_logits
from medsyn.generators.engine import Precision
from medsyn.generators.gan.kinds import GanKind
from medsyn.model_range import to_model_range


class GanStep:
    """One optimisation step (D then G) on a batch of real images; returns the diagnostics.

    ``d_g_z1`` / ``d_g_z2`` are D's mean probability on the fakes before / after D's update.
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
        self.update = AdversarialUpdate(discriminator, opt_g, opt_d, scaler, precision,
                                        discriminator_for_g)
        self.precision = precision
        self.noise_dim = noise_dim
        self.num_classes = num_classes
        self.real_target = 1.0 - label_smoothing
        self.channels_last = channels_last

    def _loss(self, out, target: float, labels: torch.Tensor | None) -> torch.Tensor:
        """BCE of D's real/fake logit against ``target``, plus the class head's cross-entropy
        (AC-GAN)."""
        source, classes = out
        loss = bce_with_logits(source, target)
        if self.kind.aux_classifier:
            loss = loss + F.cross_entropy(classes.float(), labels)
        return loss

    def __call__(self, batch, state=None) -> dict[str, torch.Tensor]:
        real_u8, labels = batch
        kind = self.kind
        x = to_model_range(real_u8)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        n, device = x.shape[0], x.device
        z = torch.randn(n, self.noise_dim, device=device)
        fake_labels = (torch.randint(self.num_classes, (n,), device=device)
                       if kind.conditional else None)
        d_real_labels = labels if kind.label_input_to_d else None
        d_fake_labels = fake_labels if kind.label_input_to_d else None

        with self.precision.autocast():
            fake = self.g(z, fake_labels)
        d = self.update.discriminator_step(
            real=lambda net: net(x, d_real_labels),
            fake=lambda net: net(fake.detach(), d_fake_labels),
            loss_real=lambda out: self._loss(out, self.real_target, labels),
            loss_fake=lambda out: self._loss(out, 0.0, fake_labels))
        g = self.update.generator_step(
            forward=lambda net: net(fake, d_fake_labels),
            loss_terms=lambda out: {"loss_g": self._loss(out, 1.0, fake_labels)})
        (src_real, cls_real), (src_fake, cls_fake) = d.real, d.fake
        src_gen, _ = g.out

        with torch.no_grad():
            stats = {
                "loss_d": (d.loss_real + d.loss_fake).detach(),
                "loss_g": g.loss.detach(),
                "d_x": torch.sigmoid(src_real.float()).mean(),
                "d_g_z1": torch.sigmoid(src_fake.float()).mean(),
                "d_g_z2": torch.sigmoid(src_gen.float()).mean(),
                # how different G's images of one batch are (0: all the same image)
                "g_std": fake.detach().float().std(0).mean() if n > 1 else fake.new_zeros(()),
            }
            if kind.conditional:
                # the same within each class: a conditional G can collapse to one image per
                # class while its batch, spread over the classes, still looks diverse
                stats["g_std_class"] = class_spread(fake.detach(), fake_labels,
                                                    self.num_classes, stats["g_std"])
            if kind.aux_classifier:
                acc_real = (src_real > 0).float().mean()
                acc_fake = (src_fake < 0).float().mean()
                stats.update(
                    aux_acc_real=(cls_real.argmax(1) == labels).float().mean(),
                    aux_acc_fake=(cls_fake.argmax(1) == fake_labels).float().mean(),
                    d_acc=(acc_real + acc_fake) / 2, d_acc_real=acc_real, d_acc_fake=acc_fake)
        return stats


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
    - the generator's images all alike (``g_std < min_std`` throughout): mode collapse;
    - for a conditional generator, its images of each class all alike (``g_std_class``, the
      same spread within each class of the batch, averaged over the classes, ``<
      min_class_std`` throughout): one image per class, which ``g_std`` misses because the
      classes still differ. Collapsed AC-GANs (``--lr 1000``) give 0 to 0.002; healthy ones,
      even with 4-channel test networks, stay above 0.016.

    Every step of the window must qualify, so one odd batch never triggers it.
    """

    window: int = 20
    tol: float = 0.01
    min_std: float = 0.02
    min_class_std: float = 0.005

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
        if every(lambda r: r["g_std_class"] < self.min_class_std):
            return (f"collapse suspected: the generator's images of each class have been all "
                    f"alike for {self.window} steps (spread within a class "
                    f"{recent[-1]['g_std_class']:.3g} < {self.min_class_std:g} in [-1, 1] "
                    f"units: one image per class); {advice}.")
        return None
