"""Options of the image GAN trainers (``acgan``, ``cgan``, ``dcgan``): the fields a GAN run adds
to :class:`~medsyn.generators.config.BaseTrainConfig`, their specs, and their resolution.

Kept free of torch so that the CLI can build its commands without importing it.
"""

from __future__ import annotations

from dataclasses import dataclass

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
    shared("max_steps"), shared("batch_size"), shared("lr"), shared("beta1"), shared("beta2"),
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


def options_for(kind: str) -> list[OptionSpec]:
    return options_of_kind(OPTIONS, kind)


def resolve_config(kind: str, options: dict | None = None, config_file=None,
                   ) -> tuple[TrainConfig, dict | None]:
    """The full configuration of a GAN run and, with ``resume``, the checkpoint's content.

    ``options``: what the user gave explicitly (``None`` values mean "not given").
    """
    from medsyn.generators.gan.kinds import gan_kind
    from medsyn.generators.gan.nets import size_plan

    spec_kind = gan_kind(kind)
    defaults = TrainConfig.defaults()
    defaults.update(spec_kind.train_defaults)
    defaults.update(spec_kind.arch_defaults)
    values, payload, _ = resolve_options(kind, OPTIONS, defaults, options, config_file)
    if values.get("out") is None:
        values["out"] = str(default_run_dir(kind, values["dataset"], values["image_size"]))
    size_plan(values["image_size"])
    return TrainConfig(kind=kind, **values), payload
