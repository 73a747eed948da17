"""Pieces shared by the CLI modules of each stage."""

from __future__ import annotations

import functools

import typer
from rich.console import Console

from medsyn.errors import MedsynError

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

            register(guarded)
            return func

        return decorate
