"""What ``pggan`` and ``megan`` checkpoints load as (``medsyn.generators.load_checkpoint``).

Both sample from noise, with one row per class when the data have classes (task
``conditional``), so ``medsyn sample`` and ``medsyn evaluate --checkpoint`` treat them like the
image GANs. Sampling uses the EMA generators (``models["generator*_ema"]``).

A PGGAN checkpoint written before the growth reached ``image_size`` samples at the resolution
and alpha it had reached (``growth``) and enlarges its images to ``image_size`` (nearest
neighbour), so every checkpoint of a run is evaluated at the same size.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from medsyn.errors import CheckpointError
from medsyn.generators.checkpoint import checkpoint_metadata
from medsyn.generators.interface import Task
from medsyn.model_range import to_model_range, to_uint8


def balanced_labels(n: int, num_classes: int) -> torch.Tensor:
    """Class i gets n // K labels, the first n % K classes one more; sorted by class."""
    counts = [n // num_classes + (1 if i < n % num_classes else 0) for i in range(num_classes)]
    return torch.repeat_interleave(torch.arange(num_classes), torch.tensor(counts))


def check_finite(y: torch.Tensor, start: int) -> None:
    if not bool(torch.isfinite(y).all()):
        bad = int((~torch.isfinite(y.flatten(1))).any(1).sum())
        raise CheckpointError(
            f"the generator produced NaN or infinite pixels in {bad} of {len(y)} images (batch "
            f"from image {start}); its weights are broken (a diverged run?): use an earlier "
            "checkpoint.")


@torch.no_grad()
def generate_pggan(generator, z: torch.Tensor, labels: torch.Tensor | None,
                   device: torch.device, level: int, alpha: float, out_size: int | None,
                   batch_size: int = 256, finite: bool = False) -> torch.Tensor:
    """uint8 images [N, C, S, S] on the CPU at the growth position (``level``, ``alpha``),
    enlarged to ``out_size`` by nearest neighbour when given."""
    was_training = generator.training
    generator.eval()
    out = []
    try:
        for i in range(0, len(z), batch_size):
            lb = None if labels is None else labels[i:i + batch_size].to(device)
            y = generator(z[i:i + batch_size].to(device), lb, level, alpha)
            if finite:
                check_finite(y, i)
            if out_size is not None and y.shape[-1] != out_size:
                y = F.interpolate(y.float(), size=out_size, mode="nearest")
            out.append(to_uint8(y).cpu())
    finally:
        generator.train(was_training)
    return torch.cat(out) if out else torch.empty(0, dtype=torch.uint8)


class HighResCheckpoint:
    """What both kinds share: metadata, classes, labels, the checks of ``sample``."""

    def __init__(self, payload: dict, device: torch.device, path: Path | None):
        self.path = path
        self.device = device
        self.metadata = checkpoint_metadata(payload)
        self.kind = payload["kind"]
        arch = payload["arch"]
        self.arch = dict(arch)
        self.class_names = list(payload["dataset"]["class_names"])
        self.num_classes = int(arch["num_classes"])
        self.conditional = self.num_classes > 1
        self.task = Task.CONDITIONAL if self.conditional else Task.UNCONDITIONAL
        self.image_size = int(arch["image_size"])
        self.channels = int(arch["channels"])
        self.epoch = int(payload["epoch"])
        self.step = int(payload["step"])

    def _load(self, net, state: dict, name: str):
        try:
            net.load_state_dict(state[name])
        except (KeyError, RuntimeError) as exc:
            first = str(exc).strip().splitlines()[0]
            raise CheckpointError(f"{self.path}: the {name} weights do not match its recorded "
                                  f"{self.kind} architecture ({first}).") from None
        return net.to(self.device).eval()

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(kind={self.kind!r}, epoch={self.epoch}, "
                f"step={self.step}, image_size={self.image_size}, channels={self.channels}, "
                f"classes={self.class_names}, path={str(self.path)!r})")

    def sample_labels(self, n: int) -> torch.Tensor:
        """The labels ``sample(n)`` uses without ``labels``: balanced, in class order."""
        if not self.conditional:
            raise ValueError(f"this {self.kind} checkpoint is unconditional: its samples have "
                             "no labels (check .conditional first)")
        return balanced_labels(int(n), self.num_classes)

    def _labels_for(self, n: int, labels) -> torch.Tensor | None:
        if not self.conditional:
            if labels is not None:
                raise ValueError(f"this {self.kind} checkpoint is unconditional; pass "
                                 "labels=None")
            return None
        if labels is None:
            return self.sample_labels(n)
        labels = torch.as_tensor(labels, dtype=torch.long).flatten().cpu()
        if labels.numel() != n:
            raise ValueError(f"got {labels.numel()} labels for {n} images")
        if n and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise ValueError(f"labels must be in 0..{self.num_classes - 1} "
                             f"({', '.join(self.class_names)})")
        return labels

    @staticmethod
    def _rng(seed: int | None) -> torch.Generator:
        gen = torch.Generator()
        if seed is None:
            gen.seed()
        else:
            gen.manual_seed(int(seed))
        return gen


class PgganCheckpoint(HighResCheckpoint):
    """A PGGAN: ``generator`` (the EMA generator), ``discriminator``, ``growth`` (``level``,
    ``resolution``, ``alpha`` it had reached), ``noise_dim``."""

    def __init__(self, payload: dict, device: torch.device, path: Path | None = None):
        from medsyn.generators.highres.pggan_nets import build_pggan

        super().__init__(payload, device, path)
        self.noise_dim = int(self.arch["noise_dim"])
        self.growth = dict(payload["growth"])
        g, d = build_pggan(self.arch)
        models = payload["models"]
        self.generator = self._load(g, models, "generator_ema")
        self.discriminator = self._load(d, models, "discriminator")

    def sample(self, n: int, labels=None, seed: int | None = None,
               batch_size: int = 256) -> torch.Tensor:
        """``n`` images, ``torch.uint8 [n, C, image_size, image_size]`` on the CPU; noise drawn
        on the CPU from ``seed``; ``labels`` None -> balanced."""
        n = int(n)
        if n < 0:
            raise ValueError("n must be >= 0")
        labels = self._labels_for(n, labels)
        z = torch.randn(n, self.noise_dim, generator=self._rng(seed))
        if n == 0:
            return torch.empty(0, self.channels, self.image_size, self.image_size,
                               dtype=torch.uint8)
        return generate_pggan(self.generator, z, labels, self.device, self.growth["level"],
                              self.growth["alpha"], self.image_size, batch_size, finite=True)

    @torch.no_grad()
    def discriminate(self, images: torch.Tensor, labels=None, batch_size: int = 256) -> dict:
        """The discriminator at the growth position on uint8 images [N, C, S, S] (average-
        pooled to the resolution reached): ``{"p_real": float32 [N], "class_logits": float32
        [N, K] (auxiliary head) or None}``. A conditional PGGAN's discriminator needs the
        labels (the projection reads them; the auxiliary head does not)."""
        if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError("images must be a torch.uint8 tensor [N, C, H, W]")
        expected = (self.channels, self.image_size, self.image_size)
        if tuple(images.shape[1:]) != expected:
            raise ValueError(f"images are {tuple(images.shape[1:])} (C, H, W) but this "
                             f"checkpoint's discriminator takes {expected}")
        if self.conditional and labels is None:
            raise ValueError("a conditional pggan discriminator needs the labels of the images")
        labels = self._labels_for(len(images), labels) if self.conditional else None
        res, p_real, logits = self.growth["resolution"], [], []
        for i in range(0, len(images), batch_size):
            x = to_model_range(images[i:i + batch_size].to(self.device))
            if x.shape[-1] != res:
                x = F.adaptive_avg_pool2d(x, res)
            lb = None if labels is None else labels[i:i + batch_size].to(self.device)
            logit, classes = self.discriminator(x, lb, self.growth["level"],
                                                self.growth["alpha"])
            p_real.append(torch.sigmoid(logit.float()).cpu())
            if classes is not None:
                logits.append(classes.float().cpu())
        aux = self.arch.get("conditioning") == "aux" and self.conditional
        return {"p_real": torch.cat(p_real) if p_real else torch.empty(0),
                "class_logits": (torch.cat(logits) if logits else
                                 torch.empty(0, self.num_classes)) if aux else None}


def load_pggan_checkpoint(payload: dict, device: torch.device, path: Path | None = None):
    """Registered loader of the ``pggan`` kind."""
    return PgganCheckpoint(payload, device, path)

