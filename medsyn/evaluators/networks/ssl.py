"""Self-supervised encoders trained offline on a real training split (the ``ssl`` space).

SimCLR (Chen et al. 2020): two augmented views of every image pass through a timm ResNet-18
(the stem adapted to the image size as for the diagnostic classifiers,
:func:`medsyn.evaluators.networks.classifier.build_classifier`) and a two-layer projection
head; the NT-Xent loss pulls the two views of an image together and pushes the other images of the
batch away. No labels are used. The encoder's pooled 512-d output is the feature space.

    from medsyn.evaluators.networks.ssl import get_ssl_recipe, real_ssl_encoder
    enc = real_ssl_encoder(train, get_ssl_recipe("quick"), seed=0)   # trained once, cached
    enc.encoder     # nn.Module: x / 127.5 - 1 -> [N, 512]

Augmentations are medical-safe: nothing that a real image of the same patient could not look
like. One random affine per view (crop-like zoom to 70-100 % of the area, rotation up to
10 degrees, shift up to 8 % of the side, reflection at the borders), brightness +-0.1 and
contrast x[0.8, 1.2] (on the [-1, 1] scale), and Gaussian noise with a standard deviation up
to 0.03. No flips (chest X-rays have a left and a right) and no colour jitter (grayscale). An
encoder is by construction blind to what it was trained to ignore: these strengths are small,
so that blur, stronger noise and different anatomy still move the features.

Trained encoders are cached under ``$MEDSYN_CACHE_DIR/ssl`` (evaluators/networks/netcache.py),
keyed by the training data's fingerprint, the recipe, the seed, the medsyn/torch/timm versions
and the device type; the weights' sha256 is verified on load.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field

import torch

from medsyn.errors import ConfigError, DataError
from medsyn.evaluators.networks.classifier import build_classifier
from medsyn.evaluators.networks.netcache import (
    cache_key,
    load_network,
    state_digest,
    store_network,
)
from medsyn.evaluators.networks.recipes import (
    PRECISIONS,
    Recipe,
    resolve_recipe,
    resolved_precision,
)
from medsyn.model_range import to_model_range
from medsyn.utils import progress

SSL_CACHE_VERSION = 1
CACHE_KIND = "ssl"


@dataclass(frozen=True)
class SSLRecipe:
    """How an SSL encoder is trained. Every field ends up in the extractor's conventions."""

    name: str = "quick"
    model: str = "resnet18"
    stem_stride: int | None = 4
    epochs: int = 10
    batch_size: int = 256
    lr: float = 1e-3                    # Adam, cosine decay to 0 over all steps
    weight_decay: float = 1e-6
    temperature: float = 0.2
    projection_dim: int = 128
    max_images: int | None = None       # train on a seeded subset of at most this many images
    crop_area: tuple[float, float] = (0.7, 1.0)
    max_rotation_deg: float = 10.0
    max_shift: float = 0.08             # fraction of the side
    brightness: float = 0.1             # additive, on the [-1, 1] scale
    contrast: float = 0.2               # multiplicative factor in [1 - c, 1 + c]
    noise_std: float = 0.03             # upper bound of the per-view noise level
    precision: str = "auto"

    def validate(self) -> SSLRecipe:
        def need(cond, msg):
            if not cond:
                raise ConfigError(f"SSL recipe {self.name!r}: {msg}")
        need(isinstance(self.epochs, int) and self.epochs >= 1,
             f"epochs must be an integer >= 1, got {self.epochs!r}.")
        need(isinstance(self.batch_size, int) and self.batch_size >= 4,
             f"batch_size must be an integer >= 4, got {self.batch_size!r}.")
        need(self.lr > 0 and self.temperature > 0, "lr and temperature must be > 0.")
        need(self.stem_stride in (None, 1, 2, 4), f"stem_stride must be 1, 2, 4 or None, got "
             f"{self.stem_stride!r}.")
        need(self.max_images is None or (isinstance(self.max_images, int)
                                         and self.max_images >= 4),
             f"max_images must be None or an integer >= 4, got {self.max_images!r}.")
        need(0 < self.crop_area[0] <= self.crop_area[1] <= 1,
             f"crop_area must satisfy 0 < lo <= hi <= 1, got {self.crop_area!r}.")
        need(self.precision in PRECISIONS, f"precision must be one of {', '.join(PRECISIONS)}.")
        return self

    def describe(self) -> dict:
        out = dataclasses.asdict(self)
        out["crop_area"] = list(self.crop_area)
        out["method"] = "SimCLR, NT-Xent loss, 2 views per image, projection MLP 512-512-" \
                        f"{self.projection_dim}, features before the projection"
        out["optimizer"] = "Adam, cosine decay of the lr to 0 over all steps"
        out["input"] = "x / 127.5 - 1"
        out["augmentations"] = "affine (zoom to crop_area, rotation, shift; reflection " \
                               "padding), brightness, contrast, Gaussian noise; no flips"
        return out


SSL_RECIPES: dict[str, SSLRecipe] = {
    # CPU-sized: timm's stride-4 stem at every size, 10 epochs, at most 4,000 images.
    "quick": SSLRecipe(name="quick", stem_stride=4, epochs=10, max_images=4000),
    # longer: the stem chosen from the size (stride 1 up to 32 px, 2 up to 64 px), 100 epochs
    # on every training image (a GPU recipe; docs/evaluation.md gives its measured cost).
    "standard": SSLRecipe(name="standard", stem_stride=None, epochs=100),
}


def get_ssl_recipe(recipe: str | SSLRecipe | dict | None = None, **overrides) -> SSLRecipe:
    """A named recipe (``quick``, ``standard``), an SSLRecipe or a dict of fields, with
    overrides (``None`` values ignored); a changed recipe is named ``<base>+custom``."""
    return resolve_recipe(recipe, overrides, recipe_type=SSLRecipe, named=SSL_RECIPES,
                          default="quick", what="SSL")


class SimCLRNet(torch.nn.Module):
    """Encoder (timm ResNet without its classifier) + projection head."""

    def __init__(self, recipe: SSLRecipe, channels: int, image_size: int):
        super().__init__()
        spec = Recipe(name=f"ssl-{recipe.name}", model=recipe.model,
                      stem_stride=recipe.stem_stride)
        self.encoder = build_classifier(spec, channels, 0, image_size)
        dim = int(self.encoder.num_features)
        self.feature_dim = dim
        self.head = torch.nn.Sequential(
            torch.nn.Linear(dim, dim), torch.nn.ReLU(inplace=True),
            torch.nn.Linear(dim, recipe.projection_dim))

    def forward(self, x):
        return self.head(self.encoder(x))


def augment(x: torch.Tensor, recipe: SSLRecipe, generator: torch.Generator) -> torch.Tensor:
    """One random view of each image of ``x`` (float ``[N, C, H, W]`` in [-1, 1])."""
    n, dev = len(x), x.device

    def uniform(lo, hi):
        return (lo + (hi - lo) * torch.rand(n, generator=generator, dtype=torch.float64)
                ).float().to(dev)

    zoom = uniform(*recipe.crop_area).sqrt()            # side of the sampled region
    angle = uniform(-recipe.max_rotation_deg, recipe.max_rotation_deg) * (math.pi / 180)
    tx = uniform(-2 * recipe.max_shift, 2 * recipe.max_shift)
    ty = uniform(-2 * recipe.max_shift, 2 * recipe.max_shift)
    cos, sin = torch.cos(angle) * zoom, torch.sin(angle) * zoom
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
    grid = torch.nn.functional.affine_grid(theta, list(x.shape), align_corners=False)
    x = torch.nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="reflection",
                                        align_corners=False)
    mean = x.mean((1, 2, 3), keepdim=True)
    c = uniform(1 - recipe.contrast, 1 + recipe.contrast)[:, None, None, None]
    b = uniform(-recipe.brightness, recipe.brightness)[:, None, None, None]
    x = (x - mean) * c + mean + b
    sigma = uniform(0.0, recipe.noise_std)[:, None, None, None]
    noise = torch.randn(x.shape, generator=generator).to(dev)
    return (x + sigma * noise).clamp(-1.0, 1.0)


def nt_xent(z: torch.Tensor, temperature: float) -> tuple[torch.Tensor, float]:
    """NT-Xent loss of ``2n`` projections (view 1 of every image, then view 2) and the fraction
    of views whose most similar other view is their positive."""
    z = torch.nn.functional.normalize(z.float(), dim=1)
    n2 = len(z)
    n = n2 // 2
    sim = z @ z.T / temperature
    sim = sim.masked_fill(torch.eye(n2, dtype=torch.bool, device=z.device), float("-inf"))
    target = torch.cat([torch.arange(n, n2), torch.arange(0, n)]).to(z.device)
    loss = torch.nn.functional.cross_entropy(sim, target)
    accuracy = float((sim.argmax(1) == target).float().mean())
    return loss, accuracy


@dataclass
class TrainedEncoder:
    net: SimCLRNet
    recipe: SSLRecipe
    seed: int
    history: list[dict] = field(default_factory=list)
    train_seconds: float = 0.0
    from_cache: bool = False
    n_train: int = 0
    weights_sha256: str | None = None
    device: str = "cpu"

    @property
    def encoder(self) -> torch.nn.Module:
        return self.net.encoder

    def describe(self) -> dict:
        return {"seed": self.seed, "n_train": self.n_train, "device": self.device,
                "train_seconds": round(self.train_seconds, 2), "from_cache": self.from_cache,
                "epochs": len(self.history),
                "final": self.history[-1] if self.history else None}


def train_ssl_encoder(images: torch.Tensor, recipe: SSLRecipe | str | None = None,
                      seed: int = 0, device=None, desc: str = "SSL encoder") -> TrainedEncoder:
    """Train the recipe's SimCLR network on uint8 images ``[N, C, H, W]`` (no labels).

    Same seed, data, recipe and device -> the same weights (on CPU)."""
    from medsyn.device import resolve_device

    recipe = get_ssl_recipe(recipe)
    dev = resolve_device(device)
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.ndim != 4:
        raise DataError(f"{desc}: expected uint8 images [N, C, H, W].")
    gen = torch.Generator().manual_seed(seed)
    if recipe.max_images is not None and len(images) > recipe.max_images:
        images = images[torch.randperm(len(images), generator=gen)[: recipe.max_images]]
    n = len(images)
    if n < 4:
        raise DataError(f"{desc}: needs at least 4 training images, got {n}.")
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        torch.manual_seed(seed)
        net = SimCLRNet(recipe, int(images.shape[1]), int(images.shape[2])).to(dev)
    batch = min(recipe.batch_size, n)
    steps_per_epoch = max(1, n // batch)          # the last partial batch is dropped
    opt = torch.optim.Adam(net.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, recipe.epochs * steps_per_epoch)
    bf16 = resolved_precision(recipe, dev) == "bf16"
    x_all = images.to(dev)
    history = []
    started = time.perf_counter()
    with progress(total=recipe.epochs, desc=desc, unit="epoch") as bar:
        for epoch in range(1, recipe.epochs + 1):
            net.train()
            perm = torch.randperm(n, generator=gen).to(dev)
            losses, accs = [], []
            for s in range(steps_per_epoch):
                x = to_model_range(x_all[perm[s * batch:(s + 1) * batch]])
                views = torch.cat([augment(x, recipe, gen), augment(x, recipe, gen)])
                with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
                    z = net(views)
                loss, acc = nt_xent(z, recipe.temperature)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                value = float(loss.detach())
                if not math.isfinite(value):
                    raise DataError(f"{desc}: the SSL loss became {value} in epoch {epoch}; "
                                    "lower the learning rate or check the images.")
                losses.append(value)
                accs.append(acc)
            record = {"epoch": epoch, "loss": sum(losses) / len(losses),
                      "pair_accuracy": sum(accs) / len(accs),
                      "seconds": round(time.perf_counter() - started, 2)}
            history.append(record)
            bar.set_postfix(loss=f"{record['loss']:.3f}", pair_acc=f"{record['pair_accuracy']:.2f}")
            bar.update(1)
    net.eval()
    return TrainedEncoder(net=net, recipe=recipe, seed=seed, history=history,
                          train_seconds=time.perf_counter() - started, n_train=n,
                          weights_sha256=state_digest(net), device=str(dev))


def _cache_key(train, recipe: SSLRecipe, seed: int, device: torch.device) -> str:
    import timm

    from medsyn import __version__

    return cache_key({"version": SSL_CACHE_VERSION, "medsyn": __version__,
                      "torch": torch.__version__.split("+")[0], "timm": timm.__version__,
                      "device_type": device.type, "precision": resolved_precision(recipe, device),
                      "train": {"name": train.name, "split": train.split,
                                "fingerprint": train.fingerprint, "n": len(train),
                                "image_size": list(train.image_size),
                                "channels": train.channels},
                      "recipe": recipe.describe(), "seed": int(seed)})


def real_ssl_encoder(train, recipe: SSLRecipe | str | None = None, seed: int = 0, device=None,
                     use_cache: bool = True, desc: str | None = None) -> TrainedEncoder:
    """The recipe's SimCLR encoder of the real dataset ``train``, from the cache when trained
    before with the same data, recipe, seed, versions and device type."""
    from medsyn.device import resolve_device

    recipe = get_ssl_recipe(recipe)
    dev = resolve_device(device)
    key = _cache_key(train, recipe, seed, dev)
    cached = load_network(CACHE_KIND, key, lambda: SimCLRNet(
        recipe, train.channels, train.image_size[0])) if use_cache else None
    if cached is not None:
        net, meta = cached
        return TrainedEncoder(net=net.to(dev).eval(), recipe=recipe, seed=seed,
                              history=meta["history"], train_seconds=meta["train_seconds"],
                              from_cache=True, n_train=meta["n_train"],
                              weights_sha256=meta["weights_sha256"],
                              device=meta.get("device", str(dev)))
    enc = train_ssl_encoder(train.images, recipe, seed, dev,
                            desc=desc or f"SSL encoder {train.name}/{train.split}")
    if use_cache:
        store_network(CACHE_KIND, key, enc.net, {
            "train": train.name, "split": train.split, "fingerprint": train.fingerprint,
            "recipe": recipe.describe(), "seed": seed, "history": enc.history,
            "train_seconds": enc.train_seconds, "n_train": enc.n_train, "device": str(dev)})
    return enc
