"""Pieces shared by the CLI modules of each stage."""

from __future__ import annotations

import errno
import functools
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
