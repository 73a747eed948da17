"""One GAN training step (D then G) and the health check that reads its log.

Losses: ``--loss bce`` (the seed's): D minimises BCE(D(x), 1 - label_smoothing) + BCE(D(G(z)), 0)
(one-sided label smoothing), G minimises BCE(D(G(z)), 1) (label flipping: fakes labelled real);
``--loss hinge``: :mod:`medsyn.generators.stabilisers.losses`. AC-GAN adds the cross-entropy of
the class head, on real and fake images for D and on fake images for G: L = Ls + Lc; with the twin
classifier (TAC-GAN) the class head learns on real images only, the twin head on fakes, and G
adds minus the twin head's cross-entropy. The update itself (two D passes, G through the frozen
D, grad scaler, autocast) is :class:`medsyn.generators.engine.adversarial.AdversarialUpdate`. The
recipe's other parts act here too: fake labels drawn from the class prior, differentiable
augmentation of everything D sees, and the EMA generator's update after G's step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from medsyn.generators.engine import Precision, unwrap
from medsyn.generators.engine.adversarial import AdversarialUpdate, bce_with_logits
from medsyn.generators.gan.kinds import GanKind
from medsyn.generators.stabilisers import losses
from medsyn.generators.stabilisers.collapse import class_spread
from medsyn.generators.stabilisers.ema import GeneratorEMA
from medsyn.model_range import to_model_range


class GanStep:
    """One optimisation step (D then G) on a batch of real images; returns the diagnostics.

    ``d_g_z1`` / ``d_g_z2`` are D's mean probability on the fakes before / after D's update.
    """

    def __init__(self, kind: GanKind, generator: nn.Module, discriminator: nn.Module,
                 opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer,
                 scaler: torch.amp.GradScaler, precision: Precision, noise_dim: int,
                 num_classes: int, label_smoothing: float = 0.0, channels_last: bool = False,
                 discriminator_for_g: nn.Module | None = None, loss: str = "bce",
                 augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 ema: GeneratorEMA | None = None, label_prior: torch.Tensor | None = None):
        """``discriminator_for_g``: the same network without its DDP wrapper (possibly compiled
        on its own), used in G's step; default: ``discriminator`` itself when it is not DDP.
        ``loss``: ``bce`` or ``hinge``; ``augment``: applied to every image D sees (DiffAugment,
        :mod:`medsyn.generators.stabilisers.augment`); ``ema``: updated after every G step;
        ``label_prior``: class probabilities to draw the fake labels from (``None``: uniform).
        """
        self.kind = kind
        self.g, self.d = generator, discriminator
        self.update = AdversarialUpdate(discriminator, opt_g, opt_d, scaler, precision,
                                        discriminator_for_g)
        self.precision = precision
        self.noise_dim = noise_dim
        self.num_classes = num_classes
        self.real_target = 1.0 - label_smoothing
        self.channels_last = channels_last
        self.loss = loss
        self.augment = augment
        self.ema = ema
        self.label_prior = label_prior
        self.g_updates = 0          # G steps taken by this object (the EMA's warm-up counter
                                    # when no loop state is passed)

    def _source_loss(self, source: torch.Tensor, role: str) -> torch.Tensor:
        """The adversarial loss of D's real/fake output for ``role``: D on ``real`` images, D
        on ``fake`` ones, or the ``generator``'s loss."""
        if self.loss == "hinge":
            return losses.HINGE[role](source)
        target = {"real": self.real_target, "fake": 0.0, "generator": 1.0}[role]
        return bce_with_logits(source, target)

    def _loss(self, out, role: str, labels: torch.Tensor | None) -> torch.Tensor:
        """The adversarial loss plus the class head's cross-entropy (AC-GAN) and, with a twin
        head (TAC-GAN), the twin's: learnt on fakes by D, subtracted by G."""
        source, classes, *twin = out
        loss = self._source_loss(source, role)
        if self.kind.aux_classifier and not (twin and role == "fake"):
            loss = loss + F.cross_entropy(classes.float(), labels)
        if twin:
            if role == "fake":        # the class head learns on real images only
                loss = loss + F.cross_entropy(twin[0].float(), labels) + 0.0 * classes.sum()
            elif role == "real":      # (0 x: every head in the graph, as DDP requires)
                loss = loss + 0.0 * twin[0].sum()
            else:                     # cancels AC-GAN's pull towards easy-to-classify images
                loss = loss - F.cross_entropy(twin[0].float(), labels)
        return loss

    def __call__(self, batch, state=None) -> dict[str, torch.Tensor]:
        real_u8, labels = batch
        kind = self.kind
        x = to_model_range(real_u8)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        n, device = x.shape[0], x.device
        z = torch.randn(n, self.noise_dim, device=device)
        if not kind.conditional:
            fake_labels = None
        elif self.label_prior is not None:
            fake_labels = torch.multinomial(self.label_prior, n, replacement=True)
        else:
            fake_labels = torch.randint(self.num_classes, (n,), device=device)
        d_real_labels = labels if kind.label_input_to_d else None
        d_fake_labels = fake_labels if kind.label_input_to_d else None
        augment = self.augment or (lambda t: t)

        seen = {}                         # what D sees of the fakes, in D's and in G's step

        def d_on_fakes(net):
            seen["fake"] = augment(fake)   # drawn after the real batch's augmentation
            return net(seen["fake"].detach(), d_fake_labels)

        with self.precision.autocast():
            fake = self.g(z, fake_labels)
        d = self.update.discriminator_step(
            real=lambda net: net(augment(x), d_real_labels),
            fake=d_on_fakes,
            loss_real=lambda out: self._loss(out, "real", labels),
            loss_fake=lambda out: self._loss(out, "fake", fake_labels))
        g = self.update.generator_step(
            forward=lambda net: net(seen["fake"], d_fake_labels),
            loss_terms=lambda out: {"loss_g": self._loss(out, "generator", fake_labels)})
        if self.ema is not None:
            self.ema.update(unwrap(self.g), state.step if state is not None else self.g_updates)
        self.g_updates += 1
        (src_real, cls_real, *_), (src_fake, cls_fake, *_) = d.real, d.fake
        src_gen = g.out[0]

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


@dataclass
class CollapseDetector:
    """Spots a GAN that has stopped learning although its losses stay finite.

    Looks at the last ``window`` steps of the log (``d_x`` = D(x), ``d_g_z1`` = D(G(z)),
    ``g_std``, the spread of G's images within a batch in [-1, 1] units, and for conditional
    kinds ``g_std_class``, the same spread within each class, averaged over the classes) and
    reports:

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

    Every step of the window must qualify, so one odd batch never triggers it. The warning
    ends with the recipe option that usually prevents that failure and that the run did not
    use (``run_config``: the run's options; :func:`medsyn.generators.gan.recipes.collapse_advice`).
    """

    window: int = 20
    tol: float = 0.01
    min_std: float = 0.02
    min_class_std: float = 0.005
    run_config: dict | None = None

    def __call__(self, records) -> str | None:
        from medsyn.generators.gan.recipes import collapse_advice

        recent = [r for r in records[-self.window:]]
        if len(recent) < self.window:
            return None

        def every(test) -> bool:
            try:
                return all(test(r) for r in recent)
            except (KeyError, TypeError):
                return False

        def advice(failure: str) -> str:
            return collapse_advice(failure, self.run_config)

        lo, hi = self.tol, 1 - self.tol
        if every(lambda r: abs(r["d_x"] - r["d_g_z1"]) < self.tol
                 and (max(r["d_x"], r["d_g_z1"]) < lo or min(r["d_x"], r["d_g_z1"]) > hi)):
            return (f"collapse suspected: the discriminator gave real and generated images the "
                    f"same saturated output (D(x) = {recent[-1]['d_x']:.3g}, D(G(z)) = "
                    f"{recent[-1]['d_g_z1']:.3g}) for {self.window} steps; "
                    f"{advice('saturated')}.")
        if every(lambda r: r["d_x"] > hi and r["d_g_z1"] < lo):
            return (f"collapse suspected: the discriminator has been certain about every real "
                    f"and generated image for {self.window} steps (D(x) > {hi:g}, D(G(z)) < "
                    f"{lo:g}), so the generator gets no gradient; {advice('certain')}.")
        if every(lambda r: r["g_std"] < self.min_std):
            return (f"collapse suspected: the generator's images have been all alike for "
                    f"{self.window} steps (spread within a batch {recent[-1]['g_std']:.3g} < "
                    f"{self.min_std:g} in [-1, 1] units: mode collapse); {advice('alike')}.")
        if every(lambda r: r["g_std_class"] < self.min_class_std):
            return (f"collapse suspected: the generator's images of each class have been all "
                    f"alike for {self.window} steps (spread within a class "
                    f"{recent[-1]['g_std_class']:.3g} < {self.min_class_std:g} in [-1, 1] "
                    f"units: one image per class); {advice('alike')}.")
        return None
