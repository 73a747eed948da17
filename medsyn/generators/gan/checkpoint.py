"""What a GAN checkpoint loads as (``medsyn.generators.load_checkpoint``), and how images are
generated from noise.

    gen = medsyn.generators.load_checkpoint("runs/acgan-cxr3-112px/last.pt")
    images = gen.sample(16, seed=0)           # torch.uint8 [16, C, H, W], balanced classes
"""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import torch
from torch import nn

from medsyn.errors import CheckpointError
from medsyn.generators.checkpoint import checkpoint_metadata
from medsyn.generators.engine import Precision
from medsyn.generators.gan.kinds import gan_kind
from medsyn.generators.interface import Task
from medsyn.model_range import to_model_range, to_uint8


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

    ``generator`` is the network that :meth:`sample` uses: the EMA generator when the run kept
    one (``ema``: True; checkpoint entry ``models.generator_ema``), else the trained one.
    ``trained_generator`` is always the trained (not averaged) network.
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
        models = payload["models"]
        self.ema = models.get("generator_ema") is not None
        g_ema = self._spec.build(arch)[0] if self.ema else None
        try:
            g.load_state_dict(models["generator"])
            d.load_state_dict(models["discriminator"])
            if g_ema is not None:
                g_ema.load_state_dict(models["generator_ema"])
        except (KeyError, RuntimeError) as exc:
            first = str(exc).strip().splitlines()[0]
            raise CheckpointError(f"{path}: the network weights do not match its recorded "
                                  f"{self.kind} architecture ({first}).") from None
        self.trained_generator = g.to(device).eval()
        self.generator = g_ema.to(device).eval() if g_ema is not None else self.trained_generator
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
            src, cls = self.discriminator(x, lb)[:2]
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
