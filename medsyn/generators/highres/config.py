"""Options of the high-resolution trainers, ``pggan`` and ``megan``, and the size rules both
check before anything is loaded: the growth plan and schedule of PGGAN, the scale and patch
plan of MEGAN. Kept free of torch so that the CLI can build its commands without importing it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from medsyn.errors import ConfigError
from medsyn.generators.config import (
    FIXED,
    RESET,
    BaseTrainConfig,
    OptionSpec,
    default_run_dir,
    options_of_kind,
    resolve_options,
    shared,
)

KINDS = ("pggan", "megan")
PGGAN_START_SIZES = (4, 8)
MEGAN_MIN_LOW_SIZE = 16         # the low-resolution U-Net halves the image down to 4 px
MEGAN_MIN_PATCH = 16            # the patch discriminator halves a patch three times

OPTIONS: tuple[OptionSpec, ...] = (
    shared("dataset"), shared("data_root"), shared("split"),
    OptionSpec("bit_depth", str, "Intensity rule for images stored with more than 8 bits: "
               "auto, 8..16 or minmax (docs/clinical_inputs.md). (default: auto)"),
    OptionSpec("image_size", int, "Output size in pixels, a power of two (the data are resized "
               "to it). (default: 256)", minimum=8, on_resume=FIXED),
    OptionSpec("start_size", int, "Resolution the growth starts at: 4 or 8. (default: 4)",
               kinds=("pggan",), on_resume=FIXED),
    OptionSpec("fade_images", int, "Real images shown while a new resolution fades in (alpha "
               "0 -> 1). (default: 60000)", minimum=1, kinds=("pggan",), on_resume=FIXED),
    OptionSpec("stable_images", int, "Real images shown at each resolution once it has faded "
               "in (also at the start resolution). (default: 60000)", minimum=1,
               kinds=("pggan",), on_resume=FIXED),
    OptionSpec("conditioning", str, "How the discriminator reads the class: projection "
               "(Miyato & Koyama 2018) or aux (an auxiliary class head, AC-GAN). (default: "
               "projection)", choices=("projection", "aux"), kinds=("pggan",), on_resume=FIXED),
    OptionSpec("low_size", int, "Size of the low-resolution whole image the U-Net generates; "
               "each scale above it doubles up to --image-size. (default: 64)", minimum=1,
               kinds=("megan",), on_resume=FIXED),
    OptionSpec("patch_size", int, "Side of the patches the high-resolution GANs generate; it "
               "must divide every scale above --low-size. (default: 64)", minimum=1,
               kinds=("megan",), on_resume=FIXED),
    shared("epochs", "Epochs to train (in total, counting those before --resume). (default: "
           "pggan: enough to finish the growth schedule; megan: 100)"),
    shared("max_steps"),
    shared("batch_size", "Images per step (the global batch under torchrun). (default: 16)"),
    shared("lr", "Adam learning rate of all networks. (default: pggan 1e-3, megan 2e-4)"),
    shared("beta1", "Adam beta1. (default: pggan 0, megan 0.5)"),
    shared("beta2", "Adam beta2. (default: 0.99 pggan, 0.999 megan)"),
    shared("seed", "Random seed (weights, noise, patch positions, data order). (default: 0)"),
    shared("out", "Run folder to write. (default: runs/KIND-DATASET-SIZEpx; with --resume, the "
           "checkpoint's folder)"),
    shared("device"),
    OptionSpec("threads", int, "CPU threads for the networks; 0 = auto (1 up to 32 px, all "
               "cores above). (default: 0)", minimum=0, on_resume=RESET),
    shared("precision"), shared("compile"), shared("channels_last"), shared("data_on_device"),
    shared("deterministic"), shared("resume"), shared("checkpoint_every"), shared("keep_last"),
    OptionSpec("noise_dim", int, "Length of the noise vector. (default: 128)", minimum=1,
               kinds=("pggan",), on_resume=FIXED),
    OptionSpec("g_width", int, "Generator channels at the highest resolution (pggan: doubling "
               "towards the start, at most 8x; megan: the first U-Net / patch network stage). "
               "(default: 16)", minimum=1, on_resume=FIXED),
    OptionSpec("d_width", int, "Discriminator channels at the highest resolution. "
               "(default: 16)", minimum=1, on_resume=FIXED),
    OptionSpec("l1_weight", float, "Weight of the L1 distance to the real image in each "
               "generator's loss (pix2pix's lambda). (default: 100)", minimum=0,
               kinds=("megan",), on_resume=FIXED),
    OptionSpec("ema_decay", float, "Decay of the moving average of the generator weights that "
               "is saved, sampled and evaluated. (default: 0.999)", minimum=0, maximum=1,
               exclusive_min=True, exclusive_max=True, on_resume=FIXED),
    OptionSpec("sample_columns", int, "Columns of the per-epoch sample grid (one row per "
               "class). (default: 8)", minimum=1, maximum=64, on_resume=FIXED),
    shared("quiet"),
)

KIND_DEFAULTS = {
    "pggan": {"lr": 1e-3, "beta1": 0.0, "beta2": 0.99, "epochs": None},
    "megan": {"lr": 2e-4, "beta1": 0.5, "beta2": 0.999, "epochs": 100},
}


@dataclass
class HighResTrainConfig(BaseTrainConfig):
    """Every option of a ``pggan`` or ``megan`` run (``config.json`` holds these)."""

    OPTIONS = OPTIONS

    bit_depth: str = "auto"
    image_size: int = 256
    start_size: int | None = 4
    fade_images: int | None = 60_000
    stable_images: int | None = 60_000
    conditioning: str | None = "projection"
    low_size: int | None = 64
    patch_size: int | None = 64
    batch_size: int = 16
    threads: int = 0
    noise_dim: int | None = 128
    g_width: int = 16
    d_width: int = 16
    l1_weight: float | None = 100.0
    ema_decay: float = 0.999
    sample_columns: int = 8


def options_for(kind: str) -> list[OptionSpec]:
    return options_of_kind(OPTIONS, kind)


def _power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def growth_plan(start_size: int, image_size: int) -> tuple[int, ...]:
    """The resolutions of progressive growing, ``start_size`` doubling up to ``image_size``."""
    if start_size not in PGGAN_START_SIZES:
        raise ConfigError(f"--start-size must be 4 or 8, got {start_size!r}.")
    if not _power_of_two(image_size) or image_size <= start_size:
        below = 2 ** max(int(math.log2(max(image_size, 1))), int(math.log2(start_size)) + 1)
        choices = sorted({below, below * 2} - {image_size})
        raise ConfigError(
            f"--image-size {image_size} is not reachable from --start-size {start_size} by "
            f"doubling (pggan grows {start_size}, {start_size * 2}, {start_size * 4}, ... px); "
            f"choose a power of two above {start_size}, e.g. {' or '.join(map(str, choices))}.")
    return tuple(start_size * 2 ** i for i in range(int(math.log2(image_size // start_size)) + 1))


@dataclass(frozen=True)
class GrowthSchedule:
    """Where progressive growing stands after a number of real images: level 0 (the start
    resolution) is trained for ``stable_images``; each later level fades in over
    ``fade_images`` (alpha rising linearly from 0) and is then trained for ``stable_images``
    at alpha 1; after the last level, training stays there.

    The position is a pure function of the images seen (``step * batch_size``), so a run
    resumed at any step, in the middle of a fade-in included, continues at the same level and
    alpha.
    """

    resolutions: tuple[int, ...]
    fade_images: int
    stable_images: int

    @property
    def total_images(self) -> int:
        """Images until the last level has faded in and been trained for ``stable_images``."""
        return self.stable_images + (len(self.resolutions) - 1) * (self.fade_images
                                                                   + self.stable_images)

    def at(self, images_seen: int) -> tuple[int, float]:
        """``(level, alpha)`` for a step that starts after ``images_seen`` real images."""
        seen = int(images_seen) - self.stable_images
        if seen < 0:
            return 0, 1.0
        period = self.fade_images + self.stable_images
        level = 1 + seen // period
        if level >= len(self.resolutions):
            return len(self.resolutions) - 1, 1.0
        into = seen % period
        alpha = into / self.fade_images if into < self.fade_images else 1.0
        return level, alpha


def scale_plan(low_size: int, image_size: int, patch_size: int) -> tuple[int, ...]:
    """MEGAN's scales: ``low_size`` (the whole image) doubling up to ``image_size``, each scale
    above the first generated in ``patch_size`` tiles."""
    if low_size < MEGAN_MIN_LOW_SIZE or not _power_of_two(low_size):
        raise ConfigError(f"--low-size must be a power of two of at least {MEGAN_MIN_LOW_SIZE} "
                          f"px (the U-Net halves it down to 4 px), got {low_size}.")
    if image_size < 2 * low_size:
        raise ConfigError(f"--image-size {image_size} is too small for --low-size {low_size}: "
                          f"megan needs at least one patch scale above the low-resolution "
                          f"image, so --image-size must be at least {2 * low_size}.")
    ratio = image_size // low_size
    if image_size % low_size or not _power_of_two(ratio):
        raise ConfigError(f"--image-size {image_size} is not --low-size {low_size} doubled a "
                          f"whole number of times (e.g. {2 * low_size} or {4 * low_size}).")
    scales = tuple(low_size * 2 ** i for i in range(int(math.log2(ratio)) + 1))
    if patch_size < MEGAN_MIN_PATCH:
        raise ConfigError(f"--patch-size must be at least {MEGAN_MIN_PATCH} px, got "
                          f"{patch_size}.")
    bad = [s for s in scales[1:] if s % patch_size]
    if bad:
        raise ConfigError(f"--patch-size {patch_size} does not divide the {bad[0]} px scale "
                          f"(scales {', '.join(map(str, scales))}); choose a divisor such as "
                          f"{math.gcd(*scales[1:], low_size)}.")
    return scales


def resolve_config(kind: str, options: dict | None = None, config_file=None,
                   ) -> tuple[HighResTrainConfig, dict | None]:
    """The full configuration of a ``pggan`` / ``megan`` run and, with ``resume``, the
    checkpoint's content. ``options``: what the user gave (``None`` means not given)."""
    if kind not in KINDS:
        raise ConfigError(f"unknown high-resolution kind {kind!r}; choose one of "
                          f"{', '.join(KINDS)}.")
    defaults = HighResTrainConfig.defaults()
    defaults.update(KIND_DEFAULTS[kind])
    values, payload, _ = resolve_options(kind, OPTIONS, defaults, options, config_file)
    if kind == "pggan":
        growth_plan(values["start_size"], values["image_size"])
    else:
        scale_plan(values["low_size"], values["image_size"], values["patch_size"])
    if values.get("out") is None:
        values["out"] = str(default_run_dir(kind, values["dataset"], values["image_size"]))
    return HighResTrainConfig(kind=kind, **values), payload
