"""Options of the super-resolution trainers (``srresnet``, ``srgan``) and their schedule.

The fields an SR run adds to :class:`~medsyn.generators.config.BaseTrainConfig`, their specs,
their resolution and the phase / learning-rate schedule. Kept free of torch so that the CLI can
build its commands without importing it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from medsyn.errors import ConfigError
from medsyn.generators.config import (
    FIXED,
    BaseTrainConfig,
    OptionSpec,
    default_run_dir,
    names_on_resume,
    options_of_kind,
    resolve_options,
    shared,
)
from medsyn.settings import ENV_VGG19_WEIGHTS

SR_KINDS = ("srresnet", "srgan")
PHASE_MSE = "mse"
PHASE_ADVERSARIAL = "adversarial"
LR_DECAY_FACTOR = 0.1

KIND_DEFAULTS = {
    "srresnet": {"epochs": 100},
    "srgan": {"epochs": 200, "pretrain_epochs": 100, "d_features": 64, "content_loss": "auto",
              "adv_weight": 1e-3},
}

SR_OPTIONS: tuple[OptionSpec, ...] = (
    shared("dataset"), shared("data_root"), shared("split"),
    OptionSpec("scale", int, "Upscaling factor: 2, 4 or 8. (default: 4)", minimum=2, maximum=8,
               on_resume=FIXED),
    OptionSpec("hr_size", int, "HR image size in px: the dataset's images are resized to it "
               "(bicubic) and LR images are made from them with MATLAB imresize 1/scale. "
               "(default: the dataset's size, 256 on cxr3 -> LR 64 at x4)", minimum=16,
               on_resume=FIXED),
    OptionSpec("patch_size", int, "HR crop per image and step (aligned LR crop = this / scale); "
               "0 trains on whole images. (default: 96 as in the paper, or whole images when "
               "they are smaller)", minimum=0, on_resume=FIXED),
    shared("epochs", "Epochs to train in total, counting pre-training and those before "
           "--resume. (default: srresnet 100, srgan 200)"),
    OptionSpec("pretrain_epochs", int, "srgan: epochs of MSE pre-training before the "
               "adversarial phase. (default: 100, or 0 with --init-from)", minimum=0,
               kinds=("srgan",), on_resume=FIXED),
    OptionSpec("lr_decay_epoch", int, "First epoch (1-based) trained at lr x 0.1; 0: never. "
               "(default: srgan: the middle of the adversarial phase, as the paper's 1e-4 then "
               "1e-5; srresnet: never)", minimum=0, on_resume=FIXED),
    shared("max_steps"),
    shared("batch_size", "Images per step (the global batch under torchrun). (default: 16, "
           "the paper's)"),
    shared("lr", "Adam learning rate of both networks. (default: 1e-4)"),
    shared("beta1", "Adam beta1. (default: 0.9)"), shared("beta2"),
    shared("seed", "Random seed (weights, data order, crops). (default: 0)"),
    shared("out", "Run folder to write. (default: runs/KIND-DATASET-xSCALE; with --resume, the "
           "checkpoint's folder)"),
    shared("device"), shared("precision"), shared("compile"), shared("channels_last"),
    shared("data_on_device"), shared("deterministic"), shared("resume"),
    OptionSpec("init_from", str, "srgan: start from the generator of this srresnet (or srgan) "
               "checkpoint, e.g. runs/srresnet-cxr3-x4/last.pt.", kinds=("srgan",),
               on_resume=FIXED),
    shared("checkpoint_every"), shared("keep_last"),
    OptionSpec("n_blocks", int, "Residual blocks of the generator. (default: 16)", minimum=1,
               on_resume=FIXED),
    OptionSpec("features", int, "Channels of the generator. (default: 64)", minimum=1,
               on_resume=FIXED),
    OptionSpec("d_features", int, "srgan: channels of the discriminator's first block, "
               "doubling to 8x. (default: 64)", minimum=1, kinds=("srgan",), on_resume=FIXED),
    OptionSpec("content_loss", str, "srgan: content loss of the adversarial phase: auto (VGG19 "
               f"feature MSE when --vgg19-weights or ${ENV_VGG19_WEIGHTS} names a file, else "
               "pixel MSE), vgg19 or pixel. (default: auto)", choices=("auto", "vgg19", "pixel"),
               kinds=("srgan",), on_resume=FIXED),
    OptionSpec("vgg19_weights", str, "srgan: torchvision VGG19 state_dict file for the VGG "
               f"content loss. (default: ${ENV_VGG19_WEIGHTS})", kinds=("srgan",)),
    OptionSpec("adv_weight", float, "srgan: weight of the adversarial loss. (default: 1e-3)",
               minimum=0, exclusive_min=True, kinds=("srgan",), on_resume=FIXED),
    OptionSpec("sample_count", int, "Images in the per-epoch strip (LR | bicubic | SR | HR). "
               "(default: 4)", minimum=1, maximum=32, on_resume=FIXED),
    shared("quiet"),
)
SR_OPTION_BY_NAME = {o.name: o for o in SR_OPTIONS}
SR_FIXED_ON_RESUME = names_on_resume(SR_OPTIONS, FIXED)


@dataclass
class SRTrainConfig(BaseTrainConfig):
    """Every option of an SR training run (``config.json`` of the run folder holds these)."""

    OPTIONS = SR_OPTIONS     # not annotated: a class attribute, not a field

    batch_size: int = 16
    lr: float = 1e-4
    beta1: float = 0.9
    scale: int = 4
    hr_size: int | None = None
    patch_size: int | None = None        # resolved: HR crop px, or 0 for whole images
    pretrain_epochs: int | None = None
    lr_decay_epoch: int | None = None     # resolved: 1-based epoch from which lr x 0.1; 0 never
    init_from: str | None = None
    n_blocks: int = 16
    features: int = 64
    d_features: int | None = None
    content_loss: str | None = None
    vgg19_weights: str | None = None
    adv_weight: float | None = None
    sample_count: int = 4


def sr_options_for(kind: str) -> list[OptionSpec]:
    _check_kind(kind)
    return options_of_kind(SR_OPTIONS, kind)


def _check_kind(kind: str) -> None:
    if kind not in SR_KINDS:
        raise ConfigError(f"unknown SR kind {kind!r}; choose one of {', '.join(SR_KINDS)}.")


def default_sr_run_dir(kind: str, dataset: str, scale: int, hr_size: int | None) -> Path:
    base = default_run_dir(kind, dataset, hr_size or 0)
    name = base.name.removesuffix("-0px") if hr_size is None else base.name
    return base.parent / f"{name}-x{scale}"


def resolve_sr_config(kind: str, options: dict | None = None, config_file=None,
                      ) -> tuple[SRTrainConfig, dict | None]:
    """The full configuration of an SR run and, with ``resume``, the checkpoint's content.

    Option checks that need the data (patch size against the image size) happen when training
    starts; everything else is checked here.
    """
    _check_kind(kind)
    defaults = SRTrainConfig.defaults()
    defaults.update(KIND_DEFAULTS[kind])
    values, payload, given = resolve_options(kind, SR_OPTIONS, defaults, options, config_file)
    if values["scale"] not in (2, 4, 8):
        raise ConfigError(f"--scale must be 2, 4 or 8, got {values['scale']}.")
    if kind == "srgan" and payload is None:
        if values.get("init_from") and "pretrain_epochs" not in given:
            values["pretrain_epochs"] = 0
        if values["pretrain_epochs"] >= values["epochs"]:
            raise ConfigError(
                f"srgan: --epochs {values['epochs']} leaves no adversarial epoch after "
                f"--pretrain-epochs {values['pretrain_epochs']}; give more --epochs (or train "
                "an MSE-only model with 'medsyn train srresnet').")
        if values["lr_decay_epoch"] is None:
            adversarial = values["epochs"] - values["pretrain_epochs"]
            values["lr_decay_epoch"] = (values["pretrain_epochs"] + adversarial // 2 + 1
                                        if adversarial >= 2 else 0)
    if kind == "srresnet" and values["lr_decay_epoch"] is None:
        values["lr_decay_epoch"] = 0
    if values.get("content_loss") == "vgg19" and values.get("vgg19_weights") is None and \
            not os.environ.get(ENV_VGG19_WEIGHTS):
        raise ConfigError(f"--content-loss vgg19 needs VGG19 weights: give --vgg19-weights FILE "
                          f"or set {ENV_VGG19_WEIGHTS} (a torchvision vgg19 state_dict).")
    if values.get("out") is None:
        values["out"] = str(default_sr_run_dir(kind, values["dataset"], values["scale"],
                                               values["hr_size"]))
    return SRTrainConfig(kind=kind, **values), payload


# ------------------------------------------------------------------ schedule


def phase_of(config: SRTrainConfig, epoch_no: int) -> str:
    """The phase of 1-based epoch ``epoch_no``."""
    if config.kind == "srresnet" or epoch_no <= (config.pretrain_epochs or 0):
        return PHASE_MSE
    return PHASE_ADVERSARIAL


def lr_of(config: SRTrainConfig, epoch_no: int) -> float:
    if config.lr_decay_epoch and epoch_no >= config.lr_decay_epoch:
        return config.lr * LR_DECAY_FACTOR
    return config.lr


def phase_plan(config: SRTrainConfig) -> list[dict]:
    """``[{"phase", "epochs": [first, last]}, ...]`` (1-based, inclusive)."""
    if config.kind == "srresnet":
        return [{"phase": PHASE_MSE, "epochs": [1, config.epochs]}]
    plan = []
    if config.pretrain_epochs:
        plan.append({"phase": PHASE_MSE, "epochs": [1, config.pretrain_epochs]})
    plan.append({"phase": PHASE_ADVERSARIAL, "epochs": [config.pretrain_epochs + 1,
                                                        config.epochs]})
    return plan
