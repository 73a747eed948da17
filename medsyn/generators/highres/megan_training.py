"""``medsyn train megan``: every scale of a MEGAN trained side by side, one batch at a time.

    run_dir = train_megan(dataset="cxr3", image_size=256, low_size=64, patch_size=64)

Before training (offline, deterministic): the images at each scale are the data average-pooled
from ``image_size``; the edge map of the low scale is Canny of the low-resolution image, and
that of each higher scale is Canny of the previous scale upscaled 2x (bilinear), exactly what
sampling computes from the generated previous scale (:mod:`.megan_sampling`).

One step, for the same batch of real images:

- scale 0: the U-Net makes the whole low-resolution image from its edge map and a noise plane;
  its PatchGAN discriminator sees (edge map, class planes, image);
- each scale s above: one random ``patch x patch`` position per image; the patch generator
  makes the patch from the crops of the upscaled real previous scale, the edge map and a noise
  plane; its discriminator sees those conditions with the real or the generated patch.

Each generator's loss is the non-saturating BCE plus ``l1_weight`` times the L1 distance to the
real image (pix2pix). Each scale has its own Adam pair and EMA generator; the logged
``loss_d`` / ``loss_g`` are sums over scales, ``loss_d_s`` / ``loss_g_s`` / ``l1_s`` per scale.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from medsyn.data.transforms.edges import DEFAULT_CANNY, CannyParams, canny_edges
from medsyn.generators import engine
from medsyn.generators.engine.adversarial import AdversarialUpdate, bce_with_logits
from medsyn.generators.highres.config import HighResTrainConfig, resolve_config, scale_plan
from medsyn.generators.highres.megan_nets import build_megan, class_planes, join
from medsyn.generators.highres.megan_sampling import generate_megan, pick_edges
from medsyn.generators.highres.patches import crop, downscale, upscale
from medsyn.generators.highres.runner import HighResRun, open_high_res_run
from medsyn.model_range import to_model_range, to_uint8

EDGE_CHUNK = 128


def offline_edges(images: torch.Tensor, scales: tuple[int, ...],
                  params: CannyParams = DEFAULT_CANNY) -> list[torch.Tensor]:
    """uint8 edge maps of every image at every scale: ``[N, 1, scales[0], scales[0]]`` of the
    low-resolution image, then ``[N, 1, s, s]`` of the upscaled previous scale."""
    out: list[list[torch.Tensor]] = [[] for _ in scales]
    for i in range(0, len(images), EDGE_CHUNK):
        x = to_model_range(images[i:i + EDGE_CHUNK])
        levels = [downscale(x, s) for s in scales]
        out[0].append(torch.from_numpy(canny_edges(to_uint8(levels[0]), params)))
        for s in range(1, len(scales)):
            out[s].append(torch.from_numpy(canny_edges(to_uint8(upscale(levels[s - 1])),
                                                       params)))
    return [torch.cat(parts) for parts in out]


class MeganStep:
    """One update of every scale's discriminator and generator on the same batch."""

    def __init__(self, arch: dict, nets: dict, updates: list[AdversarialUpdate], emas: dict,
                 l1_weight: float):
        self.arch, self.nets, self.updates = arch, nets, updates
        self.emas, self.l1_weight = emas, l1_weight
        self.k = arch["num_classes"]

    def _adversarial(self, s: int, cond: torch.Tensor, gen_input: torch.Tensor,
                     real: torch.Tensor) -> dict[str, torch.Tensor]:
        g, update = self.nets[f"generator_{s}"], self.updates[s]
        with update.precision.autocast():
            fake = g(gen_input)
        d = update.discriminator_step(
            real=lambda net: net(join(cond, real)),
            fake=lambda net: net(join(cond, fake.detach())),
            loss_real=lambda out: bce_with_logits(out, 1.0),
            loss_fake=lambda out: bce_with_logits(out, 0.0))
        gen = update.generator_step(
            forward=lambda net: net(join(cond, fake)),
            loss_terms=lambda out: {"adv": bce_with_logits(out, 1.0),
                                    "l1": self.l1_weight * F.l1_loss(fake.float(), real.float())})
        return {f"loss_d_{s}": (d.loss_real + d.loss_fake).detach(),
                f"loss_g_{s}": gen.loss.detach(),
                f"l1_{s}": F.l1_loss(fake.detach().float(), real.float())}

    def __call__(self, batch, state: engine.LoopState) -> dict[str, torch.Tensor]:
        real_u8, labels, *edges_u8 = batch
        scales, patch = self.arch["scales"], self.arch["patch_size"]
        labels = labels if self.k > 1 else None
        x = to_model_range(real_u8)
        levels = [downscale(x, s) for s in scales]
        n, device = x.shape[0], x.device
        e0 = to_model_range(edges_u8[0])
        z0 = torch.randn(n, 1, scales[0], scales[0], device=device)
        planes0 = class_planes(labels, self.k, scales[0])
        stats = self._adversarial(0, join(e0, planes0), join(e0, z0, planes0), levels[0])
        for s in range(1, len(scales)):
            tops = torch.randint(scales[s] - patch + 1, (n,), device=device).tolist()
            lefts = torch.randint(scales[s] - patch + 1, (n,), device=device).tolist()
            up = crop(upscale(levels[s - 1]), tops, lefts, patch)
            edge = crop(to_model_range(edges_u8[s]), tops, lefts, patch)
            real = crop(levels[s], tops, lefts, patch)
            z = torch.randn(n, 1, patch, patch, device=device)
            planes = class_planes(labels, self.k, patch)
            stats.update(self._adversarial(s, join(up, edge, planes), join(up, edge, z, planes),
                                           real))
        for name, ema in self.emas.items():
            ema.update(self.nets[name], state.step)
        stats["loss_d"] = sum(stats[f"loss_d_{s}"] for s in range(len(scales)))
        stats["loss_g"] = sum(stats[f"loss_g_{s}"] for s in range(len(scales)))
        return stats


def megan_arch(config: HighResTrainConfig, num_classes: int, channels: int) -> dict:
    return {"kind": "megan", "image_size": config.image_size, "channels": channels,
            "num_classes": num_classes,
            "scales": list(scale_plan(config.low_size, config.image_size, config.patch_size)),
            "patch_size": config.patch_size, "g_width": config.g_width,
            "d_width": config.d_width, "edges": DEFAULT_CANNY.as_dict(),
            "upscale": "bilinear 2x, align_corners=False", "downscale": "average pooling"}


def train_megan(*, config_file=None, step_callback=None, **options) -> Path:
    """Train a MEGAN; returns the run folder. ``options``: the training options by name."""
    config, payload = resolve_config("megan", options, config_file)
    return open_high_res_run(config, payload, _Megan, step_callback=step_callback)


class _Megan(HighResRun):
    """The MEGAN parts of :class:`~medsyn.generators.highres.runner.HighResRun`."""

    def build(self, ds, payload):
        arch = dict(payload["arch"]) if payload is not None else \
            megan_arch(self.config, ds.num_classes, ds.channels)
        edges = offline_edges(ds.images, tuple(arch["scales"]),
                              CannyParams.from_dict(arch["edges"]))
        self.bank = {"edges": edges[0], "labels": ds.labels.clone()}
        self.seed()
        return arch, build_megan(arch), [ds.images, ds.labels, *edges]

    def make_step(self, arch, nets, train_nets, optimizers, scaler, precision):
        updates = [AdversarialUpdate(train_nets[f"discriminator_{s}"],
                                     optimizers[f"generator_{s}"],
                                     optimizers[f"discriminator_{s}"], scaler, precision,
                                     train_nets[f"discriminator_{s}_for_g"])
                   for s in range(len(arch["scales"]))]
        return MeganStep(arch, train_nets, updates, self.emas, self.config.l1_weight)

    def save_models_extra(self) -> dict:
        return {"edge_bank": self.bank}

    def fixed_inputs(self, arch, rows: int) -> dict:
        labels = torch.arange(rows).repeat_interleave(self.config.sample_columns) \
            if arch["num_classes"] > 1 else None
        return {"noise": torch.tensor([self.config.seed]), "labels": labels}

    def grid_images(self, arch, fixed, state: engine.LoopState) -> torch.Tensor:
        rng = torch.Generator().manual_seed(int(fixed["noise"][0]))
        labels = fixed["labels"]
        n = self.config.sample_columns * (4 if labels is None else arch["num_classes"])
        index = (torch.randint(len(self.bank["labels"]), (n,), generator=rng) if labels is None
                 else pick_edges(self.bank["labels"], labels, rng))
        gens = [self.emas[f"generator_{s}"].module for s in range(len(arch["scales"]))]
        return to_uint8(generate_megan(gens, arch, self.bank["edges"][index], labels, rng,
                                       self.device)).cpu()
