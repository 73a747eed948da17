"""Pieces shared by the CLI modules of each stage: the error-reporting Typer, and the
``medsyn train`` plumbing that turns option specs into commands.

Training commands are built from option specs (:class:`medsyn.generators.config.OptionSpec`, or
anything with ``name``, ``type``, ``flag`` and ``help``), so every trainer adds its command to
the same group with the same machinery:

    add_train_command(train_group(app), "srgan", option_specs, handler, "Train an SRGAN.")
"""

from __future__ import annotations

import errno
import functools
import inspect
from collections.abc import Callable, Sequence
from pathlib import Path

import typer
from rich.console import Console

from medsyn.errors import MedsynError
from medsyn.utils import DISK_FULL_ERRNOS, READ_ONLY_ERRNOS, DiskFullError

console = Console()


class MedsynTyper(typer.Typer):
    """Typer whose commands report a MedsynError as one line on stderr and a non-zero exit.

    Every command group of medsyn is one of these, so no user mistake ends in a traceback.
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("pretty_exceptions_enable", False)
        kwargs.setdefault("add_completion", False)
        super().__init__(*args, **kwargs)

    def command(self, *args, **kwargs):
        register = super().command(*args, **kwargs)

        def decorate(func):
            @functools.wraps(func)
            def guarded(*a, **kw):
                try:
                    return func(*a, **kw)
                except MedsynError as exc:
                    typer.echo(f"medsyn: error: {exc}", err=True)
                    raise typer.Exit(exc.exit_code) from None
                except OSError as exc:
                    message = os_error_message(exc)
                    if message is None:
                        raise
                    typer.echo(f"medsyn: error: {message}", err=True)
                    raise typer.Exit(1) from None

            register(guarded)
            return func

        return decorate


def os_error_message(exc: OSError) -> str | None:
    """A one-line explanation of a write that the file system refused (full or read-only), or
    ``None`` for other errors (those are bugs and keep their traceback)."""
    if isinstance(exc, DiskFullError):
        return exc.strerror + "."
    where = exc.filename or "an output file"
    if exc.errno in DISK_FULL_ERRNOS:
        # a copy (shutil.copyfile) names its source first and the file it was writing second
        where = exc.filename2 or where
        folder = Path(where).parent if exc.filename else "the output folder"
        return (f"disk full while writing {where} (in {folder}); earlier files were kept. Free "
                "some space there or write to another folder.")
    if exc.errno == errno.EROFS:
        return (f"cannot write {where}: {exc.strerror or 'read-only file system'}. Choose an "
                "output folder (--out) on a writable disk; nothing else was changed.")
    if exc.errno in READ_ONLY_ERRNOS:
        return (f"cannot write or read {where}: {exc.strerror or 'permission denied'} (the "
                "folder is read-only or not yours). For an output, choose a writable folder "
                "(--out) or fix its permissions; nothing else was changed.")
    return None


# ------------------------------------------------------------------ medsyn train

TRAIN_GROUP = "train"
TRAIN_HELP = ("Train a generator into a run folder (config.json, log.jsonl, samples/, "
              "epochNNN.pt, last.pt). See docs/training.md.")


def train_group(app: typer.Typer) -> MedsynTyper:
    """The ``medsyn train`` sub-group of ``app``, created on first use."""
    for group in app.registered_groups:
        if group.name == TRAIN_GROUP:
            return group.typer_instance
    group = MedsynTyper(help=TRAIN_HELP, no_args_is_help=True)
    app.add_typer(group, name=TRAIN_GROUP)
    return group


def option_parameter(spec) -> inspect.Parameter:
    """A typer parameter (default None = "not given") for an option spec."""
    if spec.type is bool:
        flags = (f"{spec.flag}/--no-{spec.flag[2:]}",)
    else:
        flags = (spec.flag,)
    return inspect.Parameter(spec.name, inspect.Parameter.KEYWORD_ONLY,
                             default=typer.Option(None, *flags, help=spec.help, show_default=False),
                             annotation=spec.type | None)


CONFIG_PARAMETER = inspect.Parameter(
    "config", inspect.Parameter.KEYWORD_ONLY,
    default=typer.Option(None, "--config", help="TOML file of options (keys named like the "
                         "options, e.g. batch_size = 32); options given here win.",
                         show_default=False, dir_okay=False),
    annotation=Path | None)


def build_command(specs: Sequence, handler: Callable[[dict, Path | None], None],
                  doc: str) -> Callable:
    """A function typer can register, with one option per spec plus ``--config``.

    ``handler(options, config_file)`` gets only the options the user gave.
    """
    params = [CONFIG_PARAMETER] + [option_parameter(s) for s in specs]

    def command(**kwargs):
        config_file = kwargs.pop("config", None)
        handler({k: v for k, v in kwargs.items() if v is not None}, config_file)

    command.__signature__ = inspect.Signature(params)
    command.__annotations__ = {p.name: p.annotation for p in params}
    command.__doc__ = doc
    return command


def add_train_command(group: typer.Typer, name: str, specs: Sequence,
                      handler: Callable[[dict, Path | None], None], doc: str) -> None:
    """Register ``medsyn train NAME`` on ``group`` (:func:`train_group`)."""
    cmd = build_command(specs, handler, doc)
    cmd.__name__ = f"train_{name}"
    group.command(name)(cmd)
