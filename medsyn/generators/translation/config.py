"""Options of the image-to-image translation trainers (``pix2pix``, ``cyclegan``).

The fields a translation run adds to :class:`~medsyn.generators.config.BaseTrainConfig`, their
specs and their resolution. Kept free of torch so that the CLI can build its commands without
importing it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from medsyn.errors import ConfigError
from medsyn.generators.config import (
    FIXED,
    BaseTrainConfig,
    OptionSpec,
    default_run_dir,
    options_of_kind,
    resolve_options,
    shared,
)

TRANSLATION_KINDS = ("pix2pix", "cyclegan")
CONDITIONS = ("edges", "lowres", "noise")

KIND_DEFAULTS = {
    # Isola et al. 2017: Adam 2e-4 / 0.5, lambda_L1 = 100, 200 epochs on small sets
    "pix2pix": {"epochs": 200, "batch_size": 16, "condition": "edges", "l1_weight": 100.0},
    # Zhu et al. 2017: Adam 2e-4 / 0.5, batch 1, lambda_cyc = 10, identity 0.5, pool of 50
    "cyclegan": {"epochs": 200, "batch_size": 1, "cycle_weight": 10.0, "identity_weight": 0.5,
                 "pool_size": 50, "n_blocks": None},
}

_DATASET = dataclasses.replace(
    shared("dataset"), kinds=("pix2pix",),
    help="pix2pix: dataset whose images are the targets; the inputs are built from them "
         "offline (--condition). (default: cxr3)")
_SPLIT = dataclasses.replace(shared("split"), kinds=("pix2pix",))

TRANSLATION_OPTIONS: tuple[OptionSpec, ...] = (
    _DATASET, shared("data_root"), _SPLIT,
    OptionSpec("paired_folder", str, "pix2pix: train on a folder of pairs instead, PATH/A/ "
               "(inputs) and PATH/B/ (targets) with matching file names, or PATH/SPLIT/A/ and "
               "PATH/SPLIT/B/. Replaces --dataset and --condition.", kinds=("pix2pix",),
               on_resume=FIXED),
    OptionSpec("condition", str, "pix2pix: input built from each target image: edges (Canny, "
               "scikit-image), lowres (MATLAB bicubic down by --lowres-scale and back up) or "
               "noise (added Gaussian noise). (default: edges)", choices=CONDITIONS,
               kinds=("pix2pix",), on_resume=FIXED),
    OptionSpec("canny_sigma", float, "pix2pix edges: sigma of the Canny filter's Gaussian, in "
               "px. (default: 2.0)", minimum=0, exclusive_min=True, kinds=("pix2pix",),
               on_resume=FIXED),
    OptionSpec("lowres_scale", int, "pix2pix lowres: downscaling factor. (default: 4)",
               minimum=2, maximum=16, kinds=("pix2pix",), on_resume=FIXED),
    OptionSpec("noise_std", float, "pix2pix noise: standard deviation of the added noise on the "
               "0..255 scale. (default: 25)", minimum=0, exclusive_min=True, kinds=("pix2pix",),
               on_resume=FIXED),
    # the examples leave the split empty: rich would print ':train:' as an emoji in --help
    OptionSpec("source", str, "cyclegan: domain A, DATASET[:SPLIT][:CLASS], e.g. "
               "'cxr3::Normal' (an empty or no split: train; no class: every class).",
               kinds=("cyclegan",), on_resume=FIXED),
    OptionSpec("target", str, "cyclegan: domain B, DATASET[:SPLIT][:CLASS], e.g. "
               "'cxr3::Viral Pneumonia'.", kinds=("cyclegan",), on_resume=FIXED),
    OptionSpec("image_size", int, "Resize every image to this square size in px (bicubic, "
               "antialiased). (default: the dataset's size; cyclegan: the source's)",
               minimum=16, on_resume=FIXED),
    shared("epochs", "Epochs to train in total, counting those before --resume. (default: "
           "200)"),
    shared("max_steps"),
    shared("batch_size", "Images per step (the global batch under torchrun). (default: "
           "pix2pix 16, cyclegan 1 as in the paper)"),
    shared("lr"), shared("beta1"), shared("beta2"),
    shared("seed", "Random seed (weights, data order, conditions, pairing, image pool). "
           "(default: 0)"),
    shared("out", "Run folder to write. (default: runs/KIND-DATASET-SIZEpx; with --resume, the "
           "checkpoint's folder)"),
    shared("device"), shared("precision"), shared("compile"), shared("channels_last"),
    shared("data_on_device"), shared("deterministic"), shared("resume"),
    shared("checkpoint_every"), shared("keep_last"),
    OptionSpec("features", int, "Channels of the generator's first layer. (default: 64)",
               minimum=1, on_resume=FIXED),
    OptionSpec("d_features", int, "Channels of the PatchGAN discriminator's first layer. "
               "(default: 64)", minimum=1, on_resume=FIXED),
    OptionSpec("d_layers", int, "Strided layers of the PatchGAN discriminator: 3 is the "
               "70x70 PatchGAN of the papers. (default: 3, fewer on small images)", minimum=1,
               maximum=6, on_resume=FIXED),
    OptionSpec("unet_depth", int, "pix2pix: down-sampling steps of the U-Net (8 at 256 px). "
               "(default: log2 of the image size, at most 8)", minimum=2, maximum=9,
               kinds=("pix2pix",), on_resume=FIXED),
    OptionSpec("l1_weight", float, "pix2pix: weight of the L1 loss against the adversarial "
               "loss. (default: 100)", minimum=0, kinds=("pix2pix",), on_resume=FIXED),
    OptionSpec("n_blocks", int, "cyclegan: residual blocks of each ResNet generator. "
               "(default: 9 from 256 px, else 6)", minimum=1, kinds=("cyclegan",),
               on_resume=FIXED),
    OptionSpec("cycle_weight", float, "cyclegan: weight of each cycle-consistency L1 loss. "
               "(default: 10)", minimum=0, kinds=("cyclegan",), on_resume=FIXED),
    OptionSpec("identity_weight", float, "cyclegan: weight of the identity loss, relative to "
               "--cycle-weight; 0 turns it off (domains with other channels must). "
               "(default: 0.5)", minimum=0, kinds=("cyclegan",), on_resume=FIXED),
    OptionSpec("pool_size", int, "cyclegan: images in each history pool the discriminators "
               "also see; 0: no pool. (default: 50)", minimum=0, kinds=("cyclegan",),
               on_resume=FIXED),
    # the stabilisers of generators/stabilisers/ that apply to translation; off by default (the
    # papers' recipes, trained bit for bit as before they existed)
    OptionSpec("spectral_norm", bool, "Spectral normalisation of every PatchGAN layer (Miyato "
               "et al. 2018); pix2pix's batch norm in D goes with it, CycleGAN's instance norm "
               "stays. (default: off)", on_resume=FIXED),
    OptionSpec("augment", str, "DiffAugment (Zhao et al. 2020) of everything the "
               "discriminators see: a comma list of translation, cutout, brightness, contrast, "
               "or none. pix2pix: one draw per (input, image) pair, so both halves move "
               "together. (default: none)", on_resume=FIXED),
    OptionSpec("ema_decay", float, "Decay of the exponential moving average of the "
               "generators' weights, which the strips, translate and evaluate use and the "
               "checkpoint saves; 0 turns it off. (default: 0)", minimum=0, maximum=1,
               exclusive_max=True, on_resume=FIXED),
    OptionSpec("lr_d", float, "Adam learning rate of the discriminators, when it differs from "
               "--lr (two time-scale update rule, Heusel et al. 2017). (default: --lr)",
               minimum=0, exclusive_min=True, on_resume=FIXED),
    OptionSpec("sample_count", int, "Images in the per-epoch strip (input | output | target). "
               "(default: 4)", minimum=1, maximum=32, on_resume=FIXED),
    shared("quiet"),
)


@dataclass
class TranslationTrainConfig(BaseTrainConfig):
    """Every option of a translation run (``config.json`` of the run folder holds these)."""

    OPTIONS = TRANSLATION_OPTIONS     # not annotated: a class attribute, not a field

    dataset: str | None = "cxr3"
    split: str | None = "train"
    paired_folder: str | None = None
    condition: str | None = None
    canny_sigma: float | None = 2.0
    lowres_scale: int | None = 4
    noise_std: float | None = 25.0
    source: str | None = None
    target: str | None = None
    image_size: int | None = None
    features: int = 64
    d_features: int = 64
    d_layers: int | None = None
    unet_depth: int | None = None
    l1_weight: float | None = None
    n_blocks: int | None = None
    cycle_weight: float | None = None
    identity_weight: float | None = None
    pool_size: int | None = None
    sample_count: int = 4
    spectral_norm: bool = False
    augment: str = "none"
    ema_decay: float = 0.0
    lr_d: float | None = None


def translation_options_for(kind: str) -> list[OptionSpec]:
    _check_kind(kind)
    return options_of_kind(TRANSLATION_OPTIONS, kind)


def _check_kind(kind: str) -> None:
    if kind not in TRANSLATION_KINDS:
        raise ConfigError(f"unknown translation kind {kind!r}; choose one of "
                          f"{', '.join(TRANSLATION_KINDS)}.")


def _slug(values: dict, kind: str) -> str:
    if kind == "cyclegan":
        def name(spec: str) -> str:
            parts = [p for p in spec.split(":") if p]
            return "-".join(p.replace(" ", "_") for p in (parts[:1] + parts[2:3]))
        return f"{name(values['source'])}-to-{name(values['target'])}"
    if values.get("paired_folder"):
        return "folder:" + values["paired_folder"]
    return f"{values['dataset']}-{values['condition']}"


def resolve_translation_config(kind: str, options: dict | None = None, config_file=None,
                               ) -> tuple[TranslationTrainConfig, dict | None]:
    """The full configuration of a translation run and, with ``resume``, the checkpoint's
    content. Checks that need the data (image sizes, classes) happen when training starts."""
    _check_kind(kind)
    defaults = TranslationTrainConfig.defaults()
    defaults.update(KIND_DEFAULTS[kind])
    values, payload, given = resolve_options(kind, TRANSLATION_OPTIONS, defaults, options,
                                             config_file)
    if kind == "cyclegan" and payload is None:
        missing = [flag for flag in ("source", "target") if not values.get(flag)]
        if missing:
            raise ConfigError(f"cyclegan needs {' and '.join('--' + m for m in missing)} "
                              "(DATASET[:SPLIT][:CLASS], e.g. --source 'cxr3:train:Normal' "
                              "--target 'cxr3:train:Viral Pneumonia').")
    if kind == "pix2pix" and values.get("paired_folder") and payload is None:
        if "condition" in given:
            raise ConfigError("--condition builds inputs from --dataset; with --paired-folder "
                              "the inputs are the folder's A/ images. Give one of the two.")
        values["condition"] = None
    from medsyn.generators.stabilisers.augment import parse_policy

    parse_policy(values.get("augment"))
    if values.get("out") is None:
        values["out"] = str(default_run_dir(kind, _slug(values, kind), values["image_size"] or 0)
                            ).removesuffix("-0px")
    return TranslationTrainConfig(kind=kind, **values), payload


def default_unet_depth(size: int) -> int:
    """Down-sampling steps of the U-Net: as many halvings as the size allows, at most 8."""
    depth = 0
    while size % 2 == 0 and size > 1 and depth < 8:
        size //= 2
        depth += 1
    return depth


def default_d_layers(size: int) -> int:
    """3 strided layers (the 70x70 PatchGAN) when the image leaves a patch map of at least
    2x2, fewer on small images."""
    layers = 3
    while layers > 1 and size // 2 ** layers < 4:
        layers -= 1
    return layers


def default_n_blocks(size: int) -> int:
    return 9 if size >= 256 else 6
