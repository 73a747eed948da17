"""Training options shared by every trainer: what an option is, the options every family has,
and how a run's options are resolved.

Precedence, lowest first: built-in defaults < the kind's defaults < the checkpoint's config
(``--resume``) < the TOML file (``--config``) < options given explicitly. Each option says what
``--resume`` does with it (:attr:`OptionSpec.on_resume`): ``fixed`` options define the model,
the data or the optimisation and cannot change; ``reset`` ones are per invocation and start
from their defaults again; the others are inherited from the checkpoint unless given.

A family (GAN, SR, ...) declares its configuration as a :class:`BaseTrainConfig` subclass with
its own fields only, and its option list from :func:`shared` specs plus its own
:class:`OptionSpec`s (the order of that list is the order of ``--help`` and of config.json).
Kept free of torch so that the CLI can build its commands without importing it.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from medsyn.errors import CheckpointError, ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

FIXED = "fixed"        # defines the model, the data or the optimisation: cannot change on resume
RESET = "reset"        # per invocation: not inherited from the checkpoint
INHERIT = "inherit"    # inherited from the checkpoint unless given


@dataclass(frozen=True)
class OptionSpec:
    """One training option: its type, help text, validity rule and behaviour on ``--resume``
    (used by the CLI, by config files and by validation alike)."""

    name: str
    type: type
    help: str
    choices: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    exclusive_max: bool = False
    exclusive_min: bool = False
    kinds: tuple[str, ...] | None = None     # None: every kind
    on_resume: str = INHERIT

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


@dataclass
class BaseTrainConfig:
    """The options every trainer has. A family subclasses it with its own fields (and may give
    a shared field another default), and sets :attr:`OPTIONS` to its option list."""

    OPTIONS = ()    # the family's option specs in --help order (a class attribute, not a field)

    kind: str
    dataset: str = "cxr3"
    data_root: str | None = None
    split: str = "train"
    epochs: int | None = None
    max_steps: int | None = None
    batch_size: int = 64
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    seed: int = 0
    out: str | None = None
    device: str = "auto"
    precision: str = "auto"
    compile: bool = False
    channels_last: bool | None = None
    data_on_device: bool | None = None
    deterministic: bool = False
    resume: str | None = None
    checkpoint_every: int = 1
    keep_last: int = 5
    quiet: bool = False

    def to_dict(self) -> dict:
        """Every option by name (what config.json and the checkpoint hold): ``kind``, then the
        options in the family's order."""
        values = dataclasses.asdict(self)
        order = ["kind", *(o.name for o in self.OPTIONS)]
        ordered = {k: values[k] for k in order if k in values}
        ordered.update((k, v) for k, v in values.items() if k not in ordered)
        return ordered

    @property
    def run_dir(self) -> Path:
        return Path(self.out)

    @classmethod
    def defaults(cls) -> dict:
        """Every option's value before anything is given (the dataclass defaults)."""
        return {f.name: f.default for f in dataclasses.fields(cls) if f.name != "kind"}


SHARED_OPTIONS: dict[str, OptionSpec] = {o.name: o for o in (
    OptionSpec("dataset", str, "Dataset to train on: cxr3, pneumoniamnist, mnist, ... or "
               "folder:<path> (see 'medsyn data list'). (default: cxr3)", on_resume=FIXED),
    OptionSpec("data_root", str, "Folder holding the datasets. (default: $MEDSYN_DATA_ROOT, "
               "then the per-user cache)"),
    OptionSpec("split", str, "Split to train on; a folder without split folders gives its "
               "automatic 70 % part, 'all' every image. (default: train)", on_resume=FIXED),
    OptionSpec("epochs", int, "Epochs to train (in total, counting those before --resume).",
               minimum=1),
    OptionSpec("max_steps", int, "Stop after this many optimizer steps in total (smoke runs); "
               "a checkpoint is written where it stops.", minimum=1, on_resume=RESET),
    OptionSpec("batch_size", int, "Images per step (the global batch under torchrun). "
               "(default: 64)", minimum=1, on_resume=FIXED),
    OptionSpec("lr", float, "Adam learning rate of both networks. (default: 2e-4)", minimum=0,
               exclusive_min=True, on_resume=FIXED),
    OptionSpec("beta1", float, "Adam beta1. (default: 0.5)", minimum=0, maximum=1,
               exclusive_max=True, on_resume=FIXED),
    OptionSpec("beta2", float, "Adam beta2. (default: 0.999)", minimum=0, maximum=1,
               exclusive_max=True, on_resume=FIXED),
    OptionSpec("seed", int, "Random seed (weights, data order). (default: 0)", minimum=0,
               on_resume=FIXED),
    OptionSpec("out", str, "Run folder to write. (default: runs/KIND-DATASET; with --resume, "
               "the checkpoint's folder)", on_resume=RESET),
    OptionSpec("device", str, "auto (GPU if present), cpu, cuda or cuda:N. (default: auto)",
               on_resume=RESET),
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
               "stopped.", on_resume=RESET),
    OptionSpec("checkpoint_every", int, "Write epochNNN.pt every N epochs (and always at the "
               "end). (default: 1)", minimum=1),
    OptionSpec("keep_last", int, "Keep the newest K epochNNN.pt files, 0 keeps all. "
               "(default: 5)", minimum=0),
    OptionSpec("quiet", bool, "No per-epoch summary lines. (default: off)", on_resume=RESET),
)}


def shared(name: str, help_text: str | None = None) -> OptionSpec:
    """The shared option ``name``, with the family's own help text if given (where its default
    differs)."""
    spec = SHARED_OPTIONS[name]
    return spec if help_text is None else dataclasses.replace(spec, help=help_text)


def options_of_kind(specs: Sequence[OptionSpec], kind: str) -> list[OptionSpec]:
    return [o for o in specs if o.kinds is None or kind in o.kinds]


def names_on_resume(specs: Sequence[OptionSpec], rule: str) -> tuple[str, ...]:
    """The names of the options whose :attr:`OptionSpec.on_resume` is ``rule``, in order."""
    return tuple(o.name for o in specs if o.on_resume == rule)


def default_run_dir(kind: str, dataset: str, image_size: int) -> Path:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(dataset.split(":", 1)[-1]).name
                  if dataset.startswith("folder:") else dataset).strip("-") or "data"
    if dataset.startswith("folder:"):
        slug = "folder-" + slug
    return Path("runs") / f"{kind}-{slug}-{image_size}px"


def read_config_file(path: str | os.PathLike, kind: str, specs: Sequence[OptionSpec]) -> dict:
    """Options from a TOML file: top-level keys named like the options (``batch_size`` or
    ``batch-size``), optionally a ``kind``. ``specs``: the valid options."""
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
    valid = {o.name for o in specs}
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


def resolve_options(kind: str, all_specs: Sequence[OptionSpec], defaults: dict,
                    options: dict | None = None, config_file=None,
                    ) -> tuple[dict, dict | None, set[str]]:
    """The option values of a run of any trainer, with the precedence and resume rules.

    ``all_specs``: the options of every kind of the trainer's family (those of ``kind`` apply;
    another kind's option gets "applies to ... only" and ends as None); ``defaults``: the value
    of every option before anything is given. Returns ``(values, checkpoint, given)``: every
    option's value, the checkpoint's content with ``resume`` (else None) and the names given
    explicitly (option or config file). With ``resume``: the checkpoint must be of ``kind``,
    ``fixed`` options must not change, the others are inherited from the checkpoint's config
    except ``reset`` ones, and ``out`` defaults to the checkpoint's folder.
    """
    from medsyn.generators.checkpoint import read_checkpoint

    specs = options_of_kind(all_specs, kind)
    by_name = {o.name: o for o in specs}
    fixed_on_resume = names_on_resume(specs, FIXED)
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
                    f"({', '.join(by_name[x].flag for x in fixed_on_resume)}). "
                    "Start a new run to change them.")
        not_inherited = set(names_on_resume(all_specs, RESET))
        base.update({k: v for k, v in saved.items() if k in base and k not in not_inherited})
        base["out"] = str(resume.parent)
        values["resume"] = str(resume)
    base.update(values)
    for spec in all_specs:
        if spec.kinds is not None and kind not in spec.kinds:
            base[spec.name] = None      # options of other kinds (acgan's embed_dim on a cgan run)
    return base, payload, set(given)
