"""Options of the image GAN trainers (``acgan``, ``cgan``, ``dcgan``): the fields a GAN run adds
to :class:`~medsyn.generators.config.BaseTrainConfig`, their specs, and their resolution.

Kept free of torch so that the CLI can build its commands without importing it.
"""

from __future__ import annotations

from dataclasses import dataclass

from medsyn.errors import ConfigError
from medsyn.generators.config import (
    FIXED,
    RESET,
    BaseTrainConfig,
    OptionSpec,
    default_run_dir,
    names_on_resume,
    options_of_kind,
    resolve_options,
    shared,
)

OPTIONS: tuple[OptionSpec, ...] = (
    shared("dataset"), shared("data_root"), shared("split"),
    OptionSpec("bit_depth", str, "Intensity rule for images stored with more than 8 bits, one "
               "for the whole dataset: auto, 8..16 or minmax (docs/clinical_inputs.md). "
               "(default: auto)"),
    OptionSpec("image_size", int, "Image size in pixels (28, 32, 64, 112, 128, ...); the data "
               "are resized to it. (default: 112)", minimum=8, on_resume=FIXED),
    shared("epochs", "Epochs to train (in total, counting those before --resume). "
           "(default: acgan 388, cgan/dcgan 100)"),
    shared("max_steps"), shared("batch_size"),
    shared("lr", "Adam learning rate of the generator, and of the discriminator unless --lr-d "
           "is given. (default: from the recipe: cxr-acgan 2e-4, stable 1e-4)"),
    shared("beta1", "Adam beta1. (default: from the recipe: cxr-acgan 0.5, stable 0.0)"),
    shared("beta2", "Adam beta2. (default: from the recipe: cxr-acgan 0.999, stable 0.9)"),
    shared("seed", "Random seed (weights, noise, data order). (default: 0)"),
    shared("out", "Run folder to write. (default: runs/KIND-DATASET-SIZEpx; with --resume, the "
           "checkpoint's folder)"),
    shared("device"),
    OptionSpec("threads", int, "CPU threads for the networks; 0 = auto: 1 for images up to "
               "32 px (small networks lose speed to thread overhead), all cores above. "
               "(default: 0)", minimum=0, on_resume=RESET),
    shared("precision"), shared("compile"), shared("channels_last"), shared("data_on_device"),
    shared("deterministic"), shared("resume"), shared("checkpoint_every"), shared("keep_last"),
    OptionSpec("noise_dim", int, "Length of the noise vector. (default: 100)", minimum=1,
               on_resume=FIXED),
    OptionSpec("g_width", int, "Generator channels at the stage next to the image, doubling at "
               "each stage towards the start map. (default: acgan 128, cgan/dcgan 64)",
               minimum=1, on_resume=FIXED),
    OptionSpec("d_width", int, "Discriminator channels of its first stage, doubling at each "
               "stage. (default: 64)", minimum=1, on_resume=FIXED),
    OptionSpec("embed_dim", int, "Length of the label embedding. (default: 50)", minimum=1,
               kinds=("acgan",), on_resume=FIXED),
    OptionSpec("dropout", float, "Dropout after each discriminator block. (default: 0.5)",
               minimum=0, maximum=1, exclusive_max=True, kinds=("acgan",), on_resume=FIXED),
    OptionSpec("label_smoothing", float, "One-sided label smoothing: D's target for real images "
               "is 1 - this. (default: acgan 0.1, cgan/dcgan 0)", minimum=0, maximum=0.5,
               exclusive_max=True, on_resume=FIXED),
    OptionSpec("sample_columns", int, "Columns of the per-epoch sample grid (one row per "
               "class). (default: 8)", minimum=1, maximum=64, on_resume=FIXED),
    shared("quiet"),
    OptionSpec("recipe", str, "Training recipe: default values of the options below "
               "(docs/training.md). stable: spectral norm, hinge loss, projection D (cgan), "
               "twin classifier (acgan), DiffAugment, EMA generator, fake labels from the class "
               "prior, two learning rates; cxr-acgan: the seed's CXR-ACGAN / DCGAN recipe, "
               "unchanged. Options given explicitly override it. (default: see "
               "docs/training.md)", choices=("stable", "cxr-acgan"), on_resume=FIXED),
    OptionSpec("loss", str, "Adversarial loss: bce (non-saturating) or hinge. (default: from "
               "the recipe)", choices=("bce", "hinge"), on_resume=FIXED),
    OptionSpec("spectral_norm", bool, "Spectral normalisation of every discriminator layer (and "
               "no batch norm in it). (default: from the recipe)", on_resume=FIXED),
    OptionSpec("conditioning", str, "How the discriminator gets the label: concat (one-hot "
               "planes appended to the image) or projection (Miyato & Koyama 2018). (default: "
               "from the recipe)", choices=("concat", "projection"), kinds=("cgan",),
               on_resume=FIXED),
    OptionSpec("twin_classifier", bool, "A second class head on the discriminator, trained on "
               "generated images, whose loss the generator maximises (TAC-GAN, Gong et al. "
               "2019): removes AC-GAN's pull towards one easy-to-classify image per class. "
               "(default: from the recipe)", kinds=("acgan",), on_resume=FIXED),
    OptionSpec("augment", str, "Differentiable augmentation of every image the discriminator "
               "sees: a comma list of translation, cutout, brightness, contrast, or none. "
               "(default: from the recipe)", on_resume=FIXED),
    OptionSpec("ema_decay", float, "Decay of the exponential moving average of the generator's "
               "weights that is sampled, evaluated and saved; 0 turns it off. (default: from the "
               "recipe)", minimum=0, maximum=1, exclusive_max=True, on_resume=FIXED),
    OptionSpec("fake_labels", str, "Class labels of generated images during training: uniform or "
               "prior (the training set's class frequencies). (default: from the recipe)",
               choices=("uniform", "prior"), kinds=("acgan", "cgan"), on_resume=FIXED),
    OptionSpec("lr_d", float, "Adam learning rate of the discriminator (two time-scale "
               "update rule). (default: from the recipe: cxr-acgan --lr, stable 4e-4)", minimum=0,
               exclusive_min=True, on_resume=FIXED),
)
OPTION_BY_NAME = {o.name: o for o in OPTIONS}
FIXED_ON_RESUME = names_on_resume(OPTIONS, FIXED)
NOT_INHERITED = names_on_resume(OPTIONS, RESET)


@dataclass
class TrainConfig(BaseTrainConfig):
    """Every option of a GAN training run (``config.json`` of the run folder holds these)."""

    OPTIONS = OPTIONS     # not annotated: a class attribute, not a field

    bit_depth: str = "auto"
    image_size: int = 112
    threads: int = 0
    noise_dim: int | None = None
    g_width: int | None = None
    d_width: int | None = None
    embed_dim: int | None = None
    dropout: float | None = None
    label_smoothing: float | None = None
    sample_columns: int = 8
    # the training recipe and its parts (gan/recipes.py); the defaults below are the seed's
    # (cxr-acgan) recipe, which a TrainConfig built by hand gets
    recipe: str | None = None
    loss: str = "bce"
    spectral_norm: bool = False
    conditioning: str | None = None
    twin_classifier: bool | None = None
    augment: str = "none"
    ema_decay: float = 0.0
    fake_labels: str | None = None
    lr_d: float | None = None


def options_for(kind: str) -> list[OptionSpec]:
    return options_of_kind(OPTIONS, kind)


def _apply_recipe(kind: str, values: dict, payload: dict | None, given: set[str]) -> None:
    """Fill the options nobody set from the run's recipe, in place; check the combination.

    A checkpoint written before recipes existed has no ``recipe`` in its config: it was trained
    with the seed's recipe, which its continuation keeps (and options of the recipe that it did
    not record cannot be given a different value on resume).
    """
    from medsyn.generators.gan import recipes

    if payload is not None and "recipe" not in (payload.get("config") or {}):
        legacy = recipes.recipe_values(recipes.LEGACY_RECIPE, kind, values["image_size"])
        legacy["recipe"] = recipes.LEGACY_RECIPE
        for name in sorted(given & set(legacy) & set(FIXED_ON_RESUME)):
            if values[name] != legacy[name]:
                raise ConfigError(
                    f"{OPTION_BY_NAME[name].flag} {values[name]!r} differs from the checkpoint, "
                    f"which was trained with the {recipes.LEGACY_RECIPE} recipe "
                    f"({legacy[name]!r}): on --resume the options of the recipe are fixed. "
                    "Start a new run to change them.")
        values["recipe"] = recipes.LEGACY_RECIPE
    if values.get("recipe") is None:
        values["recipe"] = recipes.default_recipe(kind)
    for name, value in recipes.recipe_values(values["recipe"], kind,
                                             values["image_size"]).items():
        if values.get(name) is None:
            values[name] = value
    for spec in OPTIONS:
        if spec.kinds is not None and kind not in spec.kinds:
            values[spec.name] = None
    from medsyn.generators.stabilisers.augment import parse_policy

    parse_policy(values["augment"])
    if values["loss"] == "hinge" and values.get("label_smoothing"):
        if "label_smoothing" in given:
            raise ConfigError(f"--label-smoothing {values['label_smoothing']} applies to --loss "
                              "bce only (it is the BCE target of real images); the hinge loss "
                              "has no target. Drop it or use --loss bce.")
        values["label_smoothing"] = 0.0         # the recipe's BCE target, unused by the hinge


def resolve_config(kind: str, options: dict | None = None, config_file=None,
                   ) -> tuple[TrainConfig, dict | None]:
    """The full configuration of a GAN run and, with ``resume``, the checkpoint's content.

    ``options``: what the user gave explicitly (``None`` values mean "not given").
    """
    from medsyn.generators.gan import recipes
    from medsyn.generators.gan.kinds import gan_kind
    from medsyn.generators.gan.nets import size_plan

    spec_kind = gan_kind(kind)
    defaults = TrainConfig.defaults()
    defaults.update(spec_kind.train_defaults)
    defaults.update(spec_kind.arch_defaults)
    defaults.update({k: None for k in recipes.RECIPE_OPTIONS})     # filled from the recipe
    values, payload, given = resolve_options(kind, OPTIONS, defaults, options, config_file)
    _apply_recipe(kind, values, payload, given)
    if values.get("out") is None:
        values["out"] = str(default_run_dir(kind, values["dataset"], values["image_size"]))
    size_plan(values["image_size"])
    return TrainConfig(kind=kind, **values), payload
