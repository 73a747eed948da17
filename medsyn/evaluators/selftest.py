"""``medsyn selftest``: are the metrics right on this installation? The known-answer checks of
metrics/conformance.py as a pass/fail table with the versions and the device; exit status 1
when any check fails (docs/statistics.md)."""

from __future__ import annotations

import json

import typer

from medsyn.clitools import console


def selftest_command(
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON."),
    device: str = typer.Option("auto", "--device", help="The device to report (the checks run "
                               "on the CPU, in float64)."),
):
    """Check every metric against known answers (closed forms, a 50-digit FID, torch-fidelity's
    KID, the prdc package, hand computations), offline, in seconds. Exit status 1 when a check
    fails."""
    from rich.table import Table

    from medsyn.device import resolve_device
    from medsyn.evaluators.metrics.conformance import run_checks
    from medsyn.evaluators.scoring.evaluate import versions

    result = run_checks()
    result["versions"] = versions()
    result["device"] = str(resolve_device(device))
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    else:
        table = Table(title=f"medsyn selftest: {result['status'].upper()} "
                            f"({result['n_checks'] - len(result['failed'])}/{result['n_checks']} "
                            f"checks, {result['seconds']:.1f} s)")
        for col in ("check", "against", "expected", "got", "tolerance", "result"):
            table.add_column(col, overflow="fold")
        for c in result["checks"]:
            mark = "[green]pass[/]" if c["passed"] else "[bold red]FAIL[/]"
            table.add_row(c["name"], c["against"], _num(c["expected"]), _num(c["got"]),
                          c["error"] or c["tolerance"], mark)
        console.print(table)
        console.print(", ".join(f"{k} {v}" for k, v in result["versions"].items())
                      + f"; device {result['device']}", highlight=False)
    if result["failed"]:
        console.print(f"[bold red]selftest failed:[/] {'; '.join(result['failed'])}. The "
                      "numbers this installation computes for these metrics are wrong: do not "
                      "report them; reinstall medsyn and its dependencies (torch, "
                      "torch-fidelity, scipy) and run medsyn selftest again.", highlight=False)
        raise typer.Exit(1)


def _num(x) -> str:
    return "" if x is None else f"{x:.10g}"


def register(app) -> None:
    app.command("selftest")(selftest_command)
