"""``medsyn train pggan``: progressive growing into a run folder (docs/highres.md).

    run_dir = train_pggan(dataset="cxr3", image_size=128, fade_images=60000, stable_images=60000)

One step: the growth schedule gives (level, alpha) from the images seen so far; the real batch
is average-pooled to the level's resolution and, while a level fades in, blended with its own
2x-downsampled-then-upsampled version by the same alpha (as the paper's reals); then D's step
and G's step (non-saturating logistic loss, the StyleGAN default, plus the class head's
cross-entropy with ``--conditioning aux``, through
:class:`~medsyn.generators.engine.adversarial.AdversarialUpdate`) and the EMA generator's update.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F

from medsyn.generators import engine
from medsyn.generators.engine.adversarial import AdversarialUpdate, bce_with_logits
from medsyn.generators.highres.checkpoint import generate_pggan
from medsyn.generators.highres.config import (
    GrowthSchedule,
    HighResTrainConfig,
    growth_plan,
    resolve_config,
)
from medsyn.generators.highres.pggan_nets import build_pggan, fade
from medsyn.generators.highres.runner import HighResRun, open_high_res_run
from medsyn.generators.stabilisers.collapse import class_spread
from medsyn.generators.stabilisers.ema import GeneratorEMA
from medsyn.model_range import to_model_range


def schedule_of(arch: dict) -> GrowthSchedule:
    return GrowthSchedule(tuple(arch["resolutions"]), int(arch["fade_images"]),
                          int(arch["stable_images"]))


def growth_at(arch: dict, step: int, batch_size: int) -> dict:
    """Where the growth stands before optimizer step number ``step`` (0-based)."""
    level, alpha = schedule_of(arch).at(step * batch_size)
    return {"level": level, "resolution": arch["resolutions"][level], "alpha": alpha,
            "images_seen": step * batch_size}


def reals_at(x: torch.Tensor, resolution: int, alpha: float) -> torch.Tensor:
    """Real images [-1, 1] average-pooled to ``resolution``, faded like the generator's output
    while the level fades in."""
    if x.shape[-1] != resolution:
        x = F.adaptive_avg_pool2d(x, resolution) if x.shape[-1] % resolution == 0 else \
            F.interpolate(x, size=resolution, mode="area")
    if alpha < 1.0:
        low = F.interpolate(F.avg_pool2d(x, 2), scale_factor=2, mode="nearest")
        x = fade(low, x, alpha)
    return x


class PgganStep:
    """One D-then-G update at the growth position of the step, then the EMA update."""

    def __init__(self, arch: dict, generator, discriminator, update: AdversarialUpdate,
                 ema: GeneratorEMA, ema_source, batch_size: int):
        self.arch = arch
        self.g, self.d = generator, discriminator
        self.update = update
        self.ema, self.ema_source = ema, ema_source
        self.batch_size = batch_size
        self.conditional = arch["num_classes"] > 1

    def __call__(self, batch, state: engine.LoopState) -> dict[str, torch.Tensor]:
        real_u8, labels = batch
        where = growth_at(self.arch, state.step, self.batch_size)
        level, alpha = where["level"], where["alpha"]
        x = reals_at(to_model_range(real_u8), where["resolution"], alpha)
        n, device = x.shape[0], x.device
        z = torch.randn(n, self.arch["noise_dim"], device=device)
        fake_labels = (torch.randint(self.arch["num_classes"], (n,), device=device)
                       if self.conditional else None)
        real_labels = labels if self.conditional else None
        with self.update.precision.autocast():
            fake = self.g(z, fake_labels, level, alpha)
        d = self.update.discriminator_step(
            real=lambda net: net(x, real_labels, level, alpha),
            fake=lambda net: net(fake.detach(), fake_labels, level, alpha),
            loss_real=lambda out: self._loss(out, 1.0, real_labels),
            loss_fake=lambda out: self._loss(out, 0.0, fake_labels))
        g = self.update.generator_step(
            forward=lambda net: net(fake, fake_labels, level, alpha),
            loss_terms=lambda out: {"loss_g": self._loss(out, 1.0, fake_labels)})
        self.ema.update(self.ema_source, state.step)
        with torch.no_grad():
            stats = {
                "loss_d": (d.loss_real + d.loss_fake).detach(), "loss_g": g.loss.detach(),
                "d_x": torch.sigmoid(d.real[0].float()).mean(),
                "d_g_z1": torch.sigmoid(d.fake[0].float()).mean(),
                "d_g_z2": torch.sigmoid(g.out[0].float()).mean(),
                "g_std": fake.detach().float().std(0).mean() if n > 1 else fake.new_zeros(()),
                "real_std": x.float().std(0).mean() if n > 1 else x.new_zeros(()),
            }
            if self.conditional:
                k = self.arch["num_classes"]
                stats["g_std_class"] = class_spread(fake.detach(), fake_labels, k,
                                                    stats["g_std"])
                stats["real_std_class"] = class_spread(x, real_labels, k, stats["real_std"])
            if d.real[1] is not None:
                stats["aux_acc_real"] = (d.real[1].argmax(1) == real_labels).float().mean()
                stats["aux_acc_fake"] = (d.fake[1].argmax(1) == fake_labels).float().mean()
            return stats

    @staticmethod
    def _loss(out, target: float, labels) -> torch.Tensor:
        """Non-saturating logistic loss, plus the class head's cross-entropy (``aux``): on the
        real and the generated images for D, on the generated images for G (AC-GAN)."""
        logit, classes = out
        loss = bce_with_logits(logit, target)
        if classes is not None:
            loss = loss + F.cross_entropy(classes.float(), labels)
        return loss


class PgganCollapseDetector:
    """Spots a PGGAN whose images have stopped varying within a class, measured against the
    real images at the same resolution.

    Reads the last ``window`` steps of the log: ``g_std_class`` (the per-pixel spread of the
    generated batch within each class, averaged over the classes, in [-1, 1] units; see
    :func:`~medsyn.generators.stabilisers.collapse.class_spread`) and ``real_std_class`` (the
    same of the real batch, pooled and faded to the step's resolution), or ``g_std`` /
    ``real_std`` for one class. The ratio of their window means below ``min_ratio`` is a
    collapse. A relative test, because the GAN family's absolute one (0.005) misses it: the
    aux-head PGGAN of docs/highres.md, which made one image per class at 128 px, still had a
    spread of about 0.06. Measured on the final generators of that page's two 128 px runs
    (batches of 16, 60 batches): aux 0.19 (per batch 0.14 to 0.23), projection 0.68 (per
    batch 0.44 to 1.12). A short projection run (4 -> 32 px, 2,000 images per phase), whose
    samples are alike but not identical, stayed at 0.39 to 0.41 in its stable phases and fell
    to 0.35 during fade-ins, hence 0.3, read on the last ``window`` steps of stable phases.
    """

    window: int = 50
    min_ratio: float = 0.3

    def __init__(self, conditioning: str | None = None):
        self.conditioning = conditioning

    def __call__(self, records) -> str | None:
        # a fade-in lowers the spread for a while (the new layer starts from nothing), so
        # only steps of stable phases count
        recent = [r for r in records if r.get("alpha", 1.0) >= 1.0][-self.window:]
        if len(recent) < self.window or recent[-1] is not records[-1]:
            return None
        keys = ("g_std_class", "real_std_class") if "g_std_class" in recent[-1] else \
            ("g_std", "real_std")
        values = [(r.get(keys[0]), r.get(keys[1])) for r in recent]
        if not all(isinstance(f, (int, float)) and isinstance(x, (int, float))
                   for f, x in values):
            return None
        fake = sum(f for f, _ in values) / len(values)
        real = sum(x for _, x in values) / len(values)
        if real <= 0 or fake / real >= self.min_ratio:
            return None
        within = "within each class " if keys[0] == "g_std_class" else ""
        return (f"collapse suspected: {within}the generator's images have varied "
                f"{fake / real:.2f} times as much as the real images at this resolution over "
                f"the last {self.window} steps (spread {fake:.3g} vs {real:.3g} in [-1, 1] "
                f"units, below {self.min_ratio:g}): it makes nearly the same image"
                f"{' per class' if within else ''} whatever the noise; {self._advice()}.")

    def _advice(self) -> str:
        start = ("its samples are not worth evaluating. Start a new run (another --out)")
        if self.conditioning == "aux":
            return (f"{start} with --conditioning projection, which did not collapse on the "
                    "same schedule (docs/highres.md)")
        return f"{start} with a lower --lr or longer phases (--fade-images, --stable-images)"


def pggan_arch(config: HighResTrainConfig, num_classes: int, channels: int) -> dict:
    return {"kind": "pggan", "image_size": config.image_size, "channels": channels,
            "num_classes": num_classes,
            "resolutions": list(growth_plan(config.start_size, config.image_size)),
            "noise_dim": config.noise_dim, "g_width": config.g_width, "d_width": config.d_width,
            "conditioning": config.conditioning,
            "fade_images": config.fade_images, "stable_images": config.stable_images,
            "batch_size": config.batch_size}


def train_pggan(*, config_file=None, step_callback=None, **options) -> Path:
    """Train a PGGAN; returns the run folder. ``options``: the training options by name."""
    config, payload = resolve_config("pggan", options, config_file)
    return open_high_res_run(config, payload, _Pggan, step_callback=step_callback)


class _Pggan(HighResRun):
    """The PGGAN parts of :class:`~medsyn.generators.highres.runner.HighResRun`."""

    def build(self, ds, payload):
        config = self.config
        arch = dict(payload["arch"]) if payload is not None else \
            pggan_arch(config, ds.num_classes, ds.channels)
        if config.epochs is None:
            per_epoch = (len(ds) // config.batch_size) * config.batch_size
            config.epochs = max(1, math.ceil(schedule_of(arch).total_images / max(per_epoch, 1)))
        self.seed()
        g, d = build_pggan(arch)
        return arch, {"generator": g, "discriminator": d}, [ds.images, ds.labels]

    def make_step(self, arch, nets, train_nets, optimizers, scaler, precision):
        update = AdversarialUpdate(train_nets["discriminator"], optimizers["generator"],
                                   optimizers["discriminator"], scaler, precision,
                                   train_nets.get("discriminator_for_g"))
        return PgganStep(arch, train_nets["generator"], train_nets["discriminator"], update,
                         self.ema, nets["generator"], self.config.batch_size)

    def health_check(self, arch):
        return PgganCollapseDetector(arch.get("conditioning"))

    def record_fields(self, arch):
        batch = self.config.batch_size

        def fields(step: int, epoch: int) -> dict:
            where = growth_at(arch, step - 1, batch)
            return {"resolution": where["resolution"], "alpha": where["alpha"]}
        return fields

    def checkpoint_extra(self, arch, state: engine.LoopState) -> dict:
        # the position the weights were last trained at (what sampling uses); a resume
        # continues from the step count, which the schedule turns into the next position
        return {"growth": growth_at(arch, max(state.step - 1, 0), self.config.batch_size)}

    def grid_images(self, arch, fixed, state: engine.LoopState) -> torch.Tensor:
        where = growth_at(arch, max(state.step - 1, 0), self.config.batch_size)
        return generate_pggan(self.ema.module, fixed["noise"], fixed["labels"], self.device,
                              where["level"], where["alpha"], out_size=None)

    def fixed_inputs(self, arch, rows: int) -> dict:
        gen = torch.Generator().manual_seed(self.config.seed)
        noise = torch.randn(rows * self.config.sample_columns, arch["noise_dim"], generator=gen)
        labels = torch.arange(rows).repeat_interleave(self.config.sample_columns) \
            if arch["num_classes"] > 1 else None
        return {"noise": noise, "labels": labels}
