"""The three image GANs: their defaults, how their networks are built, one training step, and
the object a checkpoint loads as.

| kind    | generator input          | discriminator input        | discriminator output     |
|---------|--------------------------|----------------------------|--------------------------|
| `acgan` | noise, label (embedding) | image                      | real/fake + class logits |
| `cgan`  | noise (+) one-hot label  | image (+) one-hot planes   | real/fake                |
| `dcgan` | noise                    | image                      | real/fake                |

Losses (all kinds): the discriminator minimises BCE(D(x), 1 - label_smoothing) + BCE(D(G(z)), 0)
(one-sided label smoothing), the generator BCE(D(G(z)), 1) (label flipping: fakes labelled
real). AC-GAN adds the cross-entropy of the class head, on real and fake images for D and on
fake images for G: L = Ls + Lc.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from medsyn.errors import CheckpointError
from medsyn.generators.checkpoint import checkpoint_metadata
from medsyn.generators.engine import Precision, to_model_range, to_uint8, unwrap
from medsyn.generators.interface import Task
from medsyn.generators.nets import (
    AcganDiscriminator,
    AcganGenerator,
    DcganDiscriminator,
    DcganGenerator,
    init_weights,
    size_plan,
)


@dataclass(frozen=True)
class GanKind:
    """What distinguishes one GAN kind: conditioning, heads, and its default hyperparameters."""

    name: str
    description: str
    conditional: bool          # the generator takes a label
    label_input_to_d: bool     # the discriminator is fed the label (cGAN)
    aux_classifier: bool       # the discriminator has a class head (AC-GAN)
    arch_defaults: dict = field(default_factory=dict)
    train_defaults: dict = field(default_factory=dict)

    def arch(self, options: dict, num_classes: int, channels: int, image_size: int) -> dict:
        """The architecture hyperparameters stored in a checkpoint (enough to rebuild the nets)."""
        start, stages = size_plan(image_size)
        arch = {"kind": self.name, "image_size": image_size, "channels": channels,
                "num_classes": num_classes, "start_size": start, "stages": stages}
        for key, default in self.arch_defaults.items():
            value = options.get(key)
            arch[key] = default if value is None else value
        return arch

    def build(self, arch: dict) -> tuple[nn.Module, nn.Module]:
        """Fresh generator and discriminator, DCGAN-initialised, from an ``arch`` dict."""
        k, c, s = arch["num_classes"], arch["channels"], arch["image_size"]
        if self.name == "acgan":
            g = AcganGenerator(k, c, s, noise_dim=arch["noise_dim"], embed_dim=arch["embed_dim"],
                               width=arch["g_width"])
            d = AcganDiscriminator(k, c, s, width=arch["d_width"], dropout=arch["dropout"])
        else:
            cond = k if self.conditional else 0
            g = DcganGenerator(c, s, noise_dim=arch["noise_dim"], num_classes=cond,
                               width=arch["g_width"])
            d = DcganDiscriminator(c, s, num_classes=cond, width=arch["d_width"])
        init_weights(g)
        init_weights(d)
        return g, d


GAN_KINDS: dict[str, GanKind] = {
    "acgan": GanKind(
        "acgan", "AC-GAN of CXR-ACGAN: label embedding + noise, class head on the discriminator",
        conditional=True, label_input_to_d=False, aux_classifier=True,
        arch_defaults={"noise_dim": 100, "embed_dim": 50, "g_width": 128, "d_width": 64,
                       "dropout": 0.5},
        train_defaults={"epochs": 388, "label_smoothing": 0.1}),
    "cgan": GanKind(
        "cgan", "conditional DCGAN: one-hot label joined to the noise and to the image",
        conditional=True, label_input_to_d=True, aux_classifier=False,
        arch_defaults={"noise_dim": 100, "g_width": 64, "d_width": 64},
        train_defaults={"epochs": 100, "label_smoothing": 0.0}),
    "dcgan": GanKind(
        "dcgan", "DCGAN: the cGAN networks without labels",
        conditional=False, label_input_to_d=False, aux_classifier=False,
        arch_defaults={"noise_dim": 100, "g_width": 64, "d_width": 64},
        train_defaults={"epochs": 100, "label_smoothing": 0.0}),
}


def gan_kind(name: str) -> GanKind:
    from medsyn.errors import ConfigError

    try:
        return GAN_KINDS[name]
    except KeyError:
        raise ConfigError(f"unknown GAN kind {name!r}; choose one of "
                          f"{', '.join(GAN_KINDS)}.") from None


# ------------------------------------------------------------------ one training step


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


# ------------------------------------------------------------------ sampling


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


def balanced_labels(n: int, num_classes: int) -> torch.Tensor:
    """Class i gets n // K labels, the first n % K classes one more; sorted by class."""
    counts = [n // num_classes + (1 if i < n % num_classes else 0) for i in range(num_classes)]
    return torch.repeat_interleave(torch.arange(num_classes), torch.tensor(counts))


@torch.no_grad()
def generate(generator: nn.Module, z: torch.Tensor, labels: torch.Tensor | None,
             device: torch.device, batch_size: int = 256,
             precision: Precision | None = None, check_finite: bool = False) -> torch.Tensor:
    """uint8 images [N, C, H, W] on the CPU from noise (and labels), in eval mode, in batches.

    The generator is put back in the mode it was in. ``check_finite``: raise a
    ``CheckpointError`` if the network outputs NaN or infinity (a uint8 cast would silently
    turn them into black pixels).
    """
    was_training = generator.training
    generator.eval()
    out = []
    try:
        for i in range(0, len(z), batch_size):
            zb = z[i:i + batch_size].to(device)
            lb = None if labels is None else labels[i:i + batch_size].to(device)
            with precision.autocast() if precision is not None else nullcontext():
                y = generator(zb, lb)
            if check_finite and not bool(torch.isfinite(y).all()):
                bad = int((~torch.isfinite(y.flatten(1))).any(1).sum())
                raise CheckpointError(
                    f"the generator produced NaN or infinite pixels in {bad} of {len(y)} images "
                    f"(batch from image {i}); its weights are broken (a diverged run?): use an "
                    "earlier checkpoint.")
            out.append(to_uint8(y).cpu())
    finally:
        generator.train(was_training)
    return torch.cat(out) if out else torch.empty(0, dtype=torch.uint8)


class GanCheckpoint:
    """A trained GAN loaded from a checkpoint (``medsyn.generators.load_checkpoint``).

    ``kind``, ``class_names``, ``conditional``, ``image_size``, ``channels``, ``num_classes``,
    ``noise_dim``, ``metadata`` (the checkpoint minus the network/optimizer/RNG state),
    ``generator`` and ``discriminator`` (in eval mode on ``device``), ``path``.
    """

    def __init__(self, payload: dict, device: torch.device, path: Path | None = None):
        self.path = path
        self.device = device
        self.metadata = checkpoint_metadata(payload)
        self.kind = payload["kind"]
        self._spec = gan_kind(self.kind)
        self.task = Task.CONDITIONAL if self._spec.conditional else Task.UNCONDITIONAL
        arch = payload["arch"]
        self.arch = dict(arch)
        self.conditional = self._spec.conditional
        self.class_names = list(payload["dataset"]["class_names"])
        self.num_classes = int(arch["num_classes"])
        self.image_size = int(arch["image_size"])
        self.channels = int(arch["channels"])
        self.noise_dim = int(arch["noise_dim"])
        self.epoch = int(payload["epoch"])
        self.step = int(payload["step"])
        g, d = self._spec.build(arch)
        try:
            g.load_state_dict(payload["models"]["generator"])
            d.load_state_dict(payload["models"]["discriminator"])
        except (KeyError, RuntimeError) as exc:
            first = str(exc).strip().splitlines()[0]
            raise CheckpointError(f"{path}: the network weights do not match its recorded "
                                  f"{self.kind} architecture ({first}).") from None
        self.generator = g.to(device).eval()
        self.discriminator = d.to(device).eval()

    def __repr__(self) -> str:
        return (f"GanCheckpoint(kind={self.kind!r}, epoch={self.epoch}, step={self.step}, "
                f"image_size={self.image_size}, channels={self.channels}, "
                f"classes={self.class_names}, path={str(self.path)!r})")

    def sample_labels(self, n: int) -> torch.Tensor:
        """The labels ``sample(n)`` uses without ``labels``: balanced, class i gets n // K, the
        first n % K classes one more, in class order."""
        if not self.conditional:
            raise ValueError(f"a {self.kind} checkpoint is unconditional: its samples have no "
                             "labels (check .conditional first)")
        return balanced_labels(int(n), self.num_classes)

    def _check_labels(self, labels, n: int) -> torch.Tensor:
        labels = torch.as_tensor(labels, dtype=torch.long).flatten().cpu()
        if labels.numel() != n:
            raise ValueError(f"got {labels.numel()} labels for {n} images")
        if n and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise ValueError(f"labels must be in 0..{self.num_classes - 1} "
                             f"({', '.join(self.class_names)})")
        return labels

    def sample(self, n: int, labels=None, seed: int | None = None,
               batch_size: int = 256) -> torch.Tensor:
        """``n`` generated images, ``torch.uint8 [n, C, H, W]`` on the CPU.

        ``labels``: one class index per image (conditional kinds), ``None`` -> balanced
        (:meth:`sample_labels`). ``seed`` makes the noise (drawn on the CPU) reproducible on any
        device; ``None`` draws a fresh seed.
        """
        n = int(n)
        if n < 0:
            raise ValueError("n must be >= 0")
        if self.conditional:
            labels = self.sample_labels(n) if labels is None else self._check_labels(labels, n)
        elif labels is not None:
            raise ValueError(f"a {self.kind} checkpoint is unconditional; pass labels=None")
        gen = torch.Generator()
        if seed is None:
            gen.seed()
        else:
            gen.manual_seed(int(seed))
        z = torch.randn(n, self.noise_dim, generator=gen)
        if n == 0:
            return torch.empty(0, self.channels, self.image_size, self.image_size,
                               dtype=torch.uint8)
        return generate(self.generator, z, labels, self.device, batch_size, check_finite=True)

    @torch.no_grad()
    def discriminate(self, images: torch.Tensor, labels=None, batch_size: int = 256) -> dict:
        """The discriminator (eval mode) on uint8 images ``[N, C, H, W]``.

        Returns ``{"p_real": float32 [N], "class_logits": float32 [N, K] or None}`` on the CPU;
        ``class_logits`` come from the AC-GAN's class head. A cGAN's discriminator needs the
        ``labels``; a DCGAN's ignores them.
        """
        if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError("images must be a torch.uint8 tensor [N, C, H, W]")
        expected = (self.channels, self.image_size, self.image_size)
        if tuple(images.shape[1:]) != expected:
            raise ValueError(f"images are {tuple(images.shape[1:])} (C, H, W) but this "
                             f"checkpoint's discriminator takes {expected}")
        n = images.shape[0]
        if self._spec.label_input_to_d:
            if labels is None:
                raise ValueError("a cgan discriminator needs the labels of the images")
            labels = self._check_labels(labels, n)
        else:
            labels = None
        p_real, logits = [], []
        for i in range(0, n, batch_size):
            x = to_model_range(images[i:i + batch_size].to(self.device))
            lb = None if labels is None else labels[i:i + batch_size].to(self.device)
            src, cls = self.discriminator(x, lb)
            p_real.append(torch.sigmoid(src.float()).cpu())
            if cls is not None:
                logits.append(cls.float().cpu())
        return {"p_real": torch.cat(p_real) if p_real else torch.empty(0),
                "class_logits": (torch.cat(logits) if logits else
                                 (torch.empty(0, self.num_classes) if self._spec.aux_classifier
                                  else None))}


def load_gan_checkpoint(payload: dict, device: torch.device, path: Path | None = None):
    """Registered loader of the ``acgan`` / ``cgan`` / ``dcgan`` kinds."""
    return GanCheckpoint(payload, device, path)
