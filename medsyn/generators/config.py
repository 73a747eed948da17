"""Training options: defaults, TOML config files, resume, validation.

Precedence, lowest first: built-in defaults < the kind's defaults < the checkpoint's config
(``--resume``) < the TOML file (``--config``) < options given explicitly. On ``--resume`` the
options that define the model, the data or the optimisation (:data:`FIXED_ON_RESUME`) cannot
change; per-invocation ones (:data:`NOT_INHERITED`) start from their defaults again.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from medsyn.errors import CheckpointError, ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass(frozen=True)
class OptionSpec:
    """One training option: its type, help text and validity rule (used by the CLI, by config
    files and by validation alike)."""

    name: str
    type: type
    help: str
    choices: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    exclusive_max: bool = False
    exclusive_min: bool = False
    kinds: tuple[str, ...] | None = None     # None: every kind

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


@dataclass
class TrainConfig:
    """Every option of a training run (``config.json`` of the run folder holds these)."""

    kind: str
    dataset: str = "cxr3"
    data_root: str | None = None
    split: str = "train"
    bit_depth: str = "auto"
    image_size: int = 112
    epochs: int | None = None
    max_steps: int | None = None
    batch_size: int = 64
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    seed: int = 0
    out: str | None = None
    device: str = "auto"
    threads: int = 0
    precision: str = "auto"
    compile: bool = False
    channels_last: bool | None = None
    data_on_device: bool | None = None
    deterministic: bool = False
    resume: str | None = None
    checkpoint_every: int = 1
    keep_last: int = 5
    noise_dim: int | None = None
    g_width: int | None = None
    d_width: int | None = None
    embed_dim: int | None = None
    dropout: float | None = None
    label_smoothing: float | None = None
    sample_columns: int = 8
    quiet: bool = False

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def run_dir(self) -> Path:
        return Path(self.out)


OPTIONS: tuple[OptionSpec, ...] = (
    OptionSpec("dataset", str, "Dataset to train on: cxr3, pneumoniamnist, mnist, ... or "
               "folder:<path> (see 'medsyn data list'). (default: cxr3)"),
    OptionSpec("data_root", str, "Folder holding the datasets. (default: $MEDSYN_DATA_ROOT, "
               "then the per-user cache)"),
    OptionSpec("split", str, "Split to train on; a folder without split folders gives its "
               "automatic 70 % part, 'all' every image. (default: train)"),
    OptionSpec("bit_depth", str, "Intensity rule for images stored with more than 8 bits, one "
               "for the whole dataset: auto, 8..16 or minmax (docs/clinical_inputs.md). "
               "(default: auto)"),
    OptionSpec("image_size", int, "Image size in pixels (28, 32, 64, 112, 128, ...); the data "
               "are resized to it. (default: 112)", minimum=8),
    OptionSpec("epochs", int, "Epochs to train (in total, counting those before --resume). "
               "(default: acgan 388, cgan/dcgan 100)", minimum=1),
    OptionSpec("max_steps", int, "Stop after this many optimizer steps in total (smoke runs); "
               "a checkpoint is written where it stops.", minimum=1),
    OptionSpec("batch_size", int, "Images per step (the global batch under torchrun). "
               "(default: 64)", minimum=1),
    OptionSpec("lr", float, "Adam learning rate of both networks. (default: 2e-4)", minimum=0,
               exclusive_min=True),
    OptionSpec("beta1", float, "Adam beta1. (default: 0.5)", minimum=0, maximum=1,
               exclusive_max=True),
    OptionSpec("beta2", float, "Adam beta2. (default: 0.999)", minimum=0, maximum=1,
               exclusive_max=True),
    OptionSpec("seed", int, "Random seed (weights, noise, data order). (default: 0)", minimum=0),
    OptionSpec("out", str, "Run folder to write. (default: runs/KIND-DATASET-SIZEpx; with "
               "--resume, the checkpoint's folder)"),
    OptionSpec("device", str, "auto (GPU if present), cpu, cuda or cuda:N. (default: auto)"),
    OptionSpec("threads", int, "CPU threads for the networks; 0 = auto: 1 for images up to "
               "32 px (small networks lose speed to thread overhead), all cores above. "
               "(default: 0)", minimum=0),
    OptionSpec("precision", str, "auto (bf16 on GPUs that support it, else fp16 with grad "
               "scaling; fp32 on CPU), fp32, bf16 or fp16. (default: auto)",
               choices=("auto", "fp32", "bf16", "fp16")),
    OptionSpec("compile", bool, "torch.compile the networks (faster steps after a slow first "
               "one). (default: off)"),
    OptionSpec("channels_last", bool, "channels_last memory format. (default: on for GPU, off "
               "for CPU)"),
    OptionSpec("data_on_device", bool, "Hold the whole dataset in GPU memory. (default: when it "
               "takes < 1/4 of the free GPU memory)"),
    OptionSpec("deterministic", bool, "Repeatable GPU runs (no cuDNN autotuning or TF32; "
               "slower). CPU runs are always repeatable. (default: off)"),
    OptionSpec("resume", str, "Checkpoint (.pt) of this kind to continue from, exactly where it "
               "stopped."),
    OptionSpec("checkpoint_every", int, "Write epochNNN.pt every N epochs (and always at the "
               "end). (default: 1)", minimum=1),
    OptionSpec("keep_last", int, "Keep the newest K epochNNN.pt files, 0 keeps all. "
               "(default: 5)", minimum=0),
    OptionSpec("noise_dim", int, "Length of the noise vector. (default: 100)", minimum=1),
    OptionSpec("g_width", int, "Generator channels at the stage next to the image, doubling at "
               "each stage towards the start map. (default: acgan 128, cgan/dcgan 64)",
               minimum=1),
    OptionSpec("d_width", int, "Discriminator channels of its first stage, doubling at each "
               "stage. (default: 64)", minimum=1),
    OptionSpec("embed_dim", int, "Length of the label embedding. (default: 50)", minimum=1,
               kinds=("acgan",)),
    OptionSpec("dropout", float, "Dropout after each discriminator block. (default: 0.5)",
               minimum=0, maximum=1, exclusive_max=True, kinds=("acgan",)),
    OptionSpec("label_smoothing", float, "One-sided label smoothing: D's target for real images "
               "is 1 - this. (default: acgan 0.1, cgan/dcgan 0)", minimum=0, maximum=0.5,
               exclusive_max=True),
    OptionSpec("sample_columns", int, "Columns of the per-epoch sample grid (one row per "
               "class). (default: 8)", minimum=1, maximum=64),
    OptionSpec("quiet", bool, "No per-epoch summary lines. (default: off)"),
)
OPTION_BY_NAME = {o.name: o for o in OPTIONS}

FIXED_ON_RESUME = ("dataset", "split", "image_size", "batch_size", "lr", "beta1", "beta2", "seed",
                   "noise_dim", "g_width", "d_width", "embed_dim", "dropout", "label_smoothing",
                   "sample_columns")
NOT_INHERITED = ("resume", "max_steps", "out", "device", "threads", "quiet")


def options_for(kind: str) -> list[OptionSpec]:
    return [o for o in OPTIONS if o.kinds is None or kind in o.kinds]


def default_run_dir(kind: str, dataset: str, image_size: int) -> Path:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(dataset.split(":", 1)[-1]).name
                  if dataset.startswith("folder:") else dataset).strip("-") or "data"
    if dataset.startswith("folder:"):
        slug = "folder-" + slug
    return Path("runs") / f"{kind}-{slug}-{image_size}px"


def read_config_file(path: str | os.PathLike, kind: str,
                     specs: tuple[OptionSpec, ...] | list[OptionSpec] | None = None) -> dict:
    """Options from a TOML file: top-level keys named like the options (``batch_size`` or
    ``batch-size``), optionally a ``kind``. ``specs``: the valid options (default: those of the
    GAN ``kind``; another trainer passes its own)."""
    path = Path(path).expanduser()
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist.") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}.") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}.") from None
    options = {}
    valid = {o.name for o in (specs if specs is not None else options_for(kind))}
    for key, value in raw.items():
        name = key.replace("-", "_")
        if name == "kind":
            if value != kind:
                raise ConfigError(f"config file {path} is for kind {value!r} but the command "
                                  f"trains {kind!r}.")
            continue
        if isinstance(value, dict):
            raise ConfigError(f"config file {path}: tables ([{key}]) are not used; put the "
                              "options at the top level.")
        if name not in valid:
            raise ConfigError(f"config file {path}: unknown option {key!r} for {kind}. Valid: "
                              f"{', '.join(sorted(valid))}.")
        options[name] = value
    return options


def coerce_option(spec: OptionSpec, value, source: str):
    """``value`` checked against ``spec`` (type, choices, range); ``source`` names where it came
    from in the error message."""
    where = f"{spec.flag} ({source})"
    if value is None:
        return None
    if spec.type is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where} must be true or false, got {value!r}.")
    if spec.type is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be an integer, got {value!r}.")
    elif spec.type is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} must be a number, got {value!r}.")
        value = float(value)
        if not math.isfinite(value):
            raise ConfigError(f"{where} must be a finite number, got {value!r}.")
    elif spec.type is str:
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{where} must be a non-empty string, got {value!r}.")
    if spec.choices is not None and value not in spec.choices:
        raise ConfigError(f"{where} must be one of {', '.join(spec.choices)}, got {value!r}.")
    if spec.minimum is not None and (value <= spec.minimum if spec.exclusive_min
                                     else value < spec.minimum):
        rel = ">" if spec.exclusive_min else ">="
        raise ConfigError(f"{where} must be {rel} {spec.minimum}, got {value!r}.")
    if spec.maximum is not None and (value >= spec.maximum if spec.exclusive_max
                                     else value > spec.maximum):
        rel = "<" if spec.exclusive_max else "<="
        raise ConfigError(f"{where} must be {rel} {spec.maximum}, got {value!r}.")
    return value


def resolve_options(kind: str, specs, defaults: dict, options: dict | None = None,
                    config_file=None, *, fixed_on_resume=(), not_inherited=NOT_INHERITED,
                    all_specs=OPTIONS) -> tuple[dict, dict | None, set[str]]:
    """The option values of a run of any trainer, with the precedence and resume rules.

    ``specs``: the trainer's :class:`OptionSpec` list; ``defaults``: the value of every option
    before anything is given. Returns ``(values, checkpoint, given)``: every option's value, the
    checkpoint's content with ``resume`` (else None) and the names given explicitly (option or
    config file). With ``resume``: the checkpoint must be of ``kind``, ``fixed_on_resume``
    options must not change, the others are inherited from the checkpoint's config except
    ``not_inherited``, and ``out`` defaults to the checkpoint's folder. ``all_specs``: the
    options of every kind of this trainer (an option of another kind gets "applies to ... only").
    """
    from medsyn.generators.checkpoint import read_checkpoint

    by_name = {o.name: o for o in specs}
    given: dict[str, tuple[object, str]] = {}
    if config_file is not None:
        for k, v in read_config_file(config_file, kind, specs).items():
            given[k] = (v, f"config file {config_file}")
    for k, v in (options or {}).items():
        if v is None:
            continue
        if k not in by_name:
            known = next((o for o in all_specs if o.name == k), None)
            if known is not None and known.kinds is not None:
                raise ConfigError(f"{known.flag} applies to {', '.join(known.kinds)} only, not "
                                  f"{kind}.")
            raise ConfigError(f"unknown training option {k!r} for {kind}; valid: "
                              f"{', '.join(sorted(by_name))}.")
        given[k] = (v, "option")
    values = {name: coerce_option(by_name[name], v, src) for name, (v, src) in given.items()}

    base = dict(defaults)
    payload = None
    if values.get("resume"):
        resume = Path(values["resume"]).expanduser()
        payload = read_checkpoint(resume)
        if payload["kind"] != kind:
            raise CheckpointError(
                f"{resume} is a checkpoint of kind {payload['kind']!r}, not {kind!r}; nothing "
                f"was written. Resume it with 'medsyn train {payload['kind']} --resume "
                f"{resume}'.")
        saved = payload.get("config") or {}
        for k in fixed_on_resume:
            if k in values and k in saved and values[k] != saved[k]:
                raise ConfigError(
                    f"{by_name[k].flag} {values[k]!r} differs from the checkpoint's "
                    f"{saved[k]!r}: on --resume these options are fixed by the checkpoint "
                    f"({', '.join(by_name[x].flag for x in fixed_on_resume if x in by_name)}). "
                    "Start a new run to change them.")
        base.update({k: v for k, v in saved.items() if k in base and k not in not_inherited})
        base["out"] = str(resume.parent)
        values["resume"] = str(resume)
    base.update(values)
    return base, payload, set(given)


def resolve_config(kind: str, options: dict | None = None, config_file=None,
                   ) -> tuple[TrainConfig, dict | None]:
    """The full configuration of a GAN run and, with ``resume``, the checkpoint's content.

    ``options``: what the user gave explicitly (``None`` values mean "not given").
    """
    from medsyn.generators.gan import gan_kind

    spec_kind = gan_kind(kind)
    specs = options_for(kind)
    valid = {o.name for o in specs}
    base = {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.name != "kind"}
    base.update({k: v for k, v in spec_kind.train_defaults.items()})
    base.update({k: v for k, v in spec_kind.arch_defaults.items()})
    base, payload, _ = resolve_options(kind, specs, base, options, config_file,
                                       fixed_on_resume=FIXED_ON_RESUME)
    if base.get("out") is None:
        base["out"] = str(default_run_dir(kind, base["dataset"], base["image_size"]))
    for k in list(base):
        if k not in valid and k in OPTION_BY_NAME:
            base[k] = None          # options of other kinds (acgan's embed_dim on a cgan run)
    from medsyn.generators.nets import size_plan

    size_plan(base["image_size"])
    return TrainConfig(kind=kind, **base), payload
